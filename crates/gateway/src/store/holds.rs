use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::auth::Fan;
use crate::error::Result;
use crate::model::OrderSeat;
use crate::store::inventory::{self, SeatKeys, Written};

/// A hold row as read (and locked) by confirm and release.
#[derive(Debug, sqlx::FromRow)]
pub struct HoldRow {
    pub id: Uuid,
    pub status: String,
    pub expires_at: DateTime<Utc>,
    /// Decided by the database clock, the same clock that decides seat expiry.
    pub expired: bool,
    pub quantity: i32,
    pub total_minor: i64,
}

/// Locks the seats and writes a hold over them, in one statement (see
/// [`inventory::lock_cte`]); refused as a whole if any seat is missing or taken.
pub async fn write(
    conn: &mut PgConnection,
    fan: &Fan,
    hold_id: Uuid,
    seats: SeatKeys<'_>,
    ttl_seconds: i32,
) -> Result<Written> {
    macro_rules! statement {
        ($keys:tt) => {
            concat!(
                "WITH ",
                inventory::lock_cte!($keys),
                ", hold AS (
                     INSERT INTO holds (id, event_id, fan_id, quantity, total_minor, expires_at)
                     SELECT $2, $1, $3, cardinality($5), total, now() + make_interval(secs => $6)
                     FROM verdict WHERE ok
                     RETURNING expires_at
                 ), members AS (
                     INSERT INTO hold_seats (hold_id, seat_id) SELECT $2, seat_id FROM locked WHERE EXISTS (SELECT 1 FROM hold)
                 ), held AS (
                     UPDATE seats SET state = 'held', hold_id = $2, held_until = hold.expires_at, booking_id = NULL
                     FROM hold WHERE seats.id IN (SELECT seat_id FROM locked)
                 )
                 SELECT locked.*, (SELECT expires_at FROM hold) AS at FROM locked"
            )
        };
    }
    let sql = match seats {
        SeatKeys::Labels(_) => statement!(labels),
        SeatKeys::Ids(_) => statement!(ids),
    };
    let query = sqlx::query_as(sql).bind(fan.event_id).bind(hold_id).bind(&fan.fan_id).bind(None::<Uuid>);
    let rows = inventory::bind_keys(query, seats).bind(f64::from(ttl_seconds)).fetch_all(conn).await?;
    Ok(Written::from_rows(rows))
}

const HOLD_COLUMNS: &str =
    "id, status::text AS status, expires_at, expires_at <= now() AS expired, quantity, total_minor";

/// The fan's hold, locked until the transaction ends.
pub async fn lock(conn: &mut PgConnection, fan: &Fan, hold_id: Uuid) -> Result<Option<HoldRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 AND event_id = $2 AND fan_id = $3 FOR UPDATE"
    ))
    .bind(hold_id)
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn find(conn: &mut PgConnection, fan: &Fan, hold_id: Uuid) -> Result<Option<HoldRow>> {
    Ok(sqlx::query_as(&format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1 AND event_id = $2 AND fan_id = $3"))
        .bind(hold_id)
        .bind(fan.event_id)
        .bind(&fan.fan_id)
        .fetch_optional(conn)
        .await?)
}

/// The seats a hold was created with.
pub async fn seats(conn: &mut PgConnection, hold_id: Uuid) -> Result<Vec<OrderSeat>> {
    Ok(sqlx::query_as(
        "SELECT s.id AS seat_id, s.section_id, s.label
         FROM hold_seats h JOIN seats s ON s.id = h.seat_id WHERE h.hold_id = $1 ORDER BY s.sort_key",
    )
    .bind(hold_id)
    .fetch_all(conn)
    .await?)
}

/// Puts the seats the hold still owns back on sale and ends the hold with `status`.
pub async fn end(conn: &mut PgConnection, hold_id: Uuid, status: &'static str) -> Result<()> {
    sqlx::query(
        "WITH freed AS (
             UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL
             WHERE id IN (SELECT seat_id FROM hold_seats WHERE hold_id = $1) AND hold_id = $1
         )
         UPDATE holds SET status = $2::hold_status, ended_at = now() WHERE id = $1",
    )
    .bind(hold_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends up to `batch` expired holds and frees their seats. Holds locked by another
/// sweeper (or a fan confirming) are skipped, so any number of schedulers can run
/// this at once without releasing a hold twice or waiting on each other.
pub async fn release_expired(conn: &mut PgConnection, batch: i64) -> Result<u64> {
    let released: Vec<Uuid> = sqlx::query_scalar(
        "WITH expired AS (
             SELECT id FROM holds WHERE status = 'active' AND expires_at <= now()
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
         ), freed AS (
             UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL
             WHERE id IN (SELECT seat_id FROM hold_seats WHERE hold_id IN (SELECT id FROM expired))
               AND hold_id IN (SELECT id FROM expired)
         )
         UPDATE holds SET status = 'expired', ended_at = now()
         WHERE id IN (SELECT id FROM expired) RETURNING id",
    )
    .bind(batch)
    .fetch_all(conn)
    .await?;
    Ok(released.len() as u64)
}
