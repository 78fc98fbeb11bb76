use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::auth::Fan;
use crate::error::Result;
use crate::model::{AdminBookedSeat, AdminBookingView, BookingView, NamedRef, OrderSeat, Price};
use crate::store::inventory::{self, SeatKeys, Written};

/// Locks the seats and books them, in one statement (see [`inventory::lock_cte`]);
/// refused as a whole if any seat is missing or taken. `hold_id` is the hold being
/// confirmed: its own seats count as takeable.
pub async fn write(
    conn: &mut PgConnection,
    fan: &Fan,
    booking_id: Uuid,
    hold_id: Option<Uuid>,
    seats: SeatKeys<'_>,
) -> Result<Written> {
    macro_rules! statement {
        ($keys:tt) => {
            concat!(
                "WITH ",
                inventory::lock_cte!($keys),
                ", booking AS (
                     INSERT INTO bookings (id, event_id, fan_id, hold_id, quantity, total_minor)
                     SELECT $2, $1, $3, $4, cardinality($5), total FROM verdict WHERE ok
                     RETURNING created_at
                 ), items AS (
                     INSERT INTO booking_seats (booking_id, seat_id, price_minor)
                     SELECT $2, seat_id, price_minor FROM locked WHERE EXISTS (SELECT 1 FROM booking)
                 ), booked AS (
                     UPDATE seats SET state = 'booked', booking_id = $2, hold_id = NULL, held_until = NULL
                     WHERE id IN (SELECT seat_id FROM locked) AND EXISTS (SELECT 1 FROM booking)
                 )
                 SELECT locked.*, (SELECT created_at FROM booking) AS at FROM locked"
            )
        };
    }
    let sql = match (seats, hold_id) {
        (SeatKeys::Labels(_), _) => statement!(labels),
        (SeatKeys::Ids(_), None) => statement!(ids),
        (SeatKeys::Ids(_), Some(_)) => statement!(own_hold),
    };
    let query = sqlx::query_as(sql).bind(fan.event_id).bind(booking_id).bind(&fan.fan_id).bind(hold_id);
    let rows = inventory::bind_keys(query, seats).fetch_all(conn).await?;
    Ok(Written::from_rows(rows))
}

#[derive(sqlx::FromRow)]
struct BookingRow {
    id: Uuid,
    event_id: Uuid,
    hold_id: Option<Uuid>,
    status: String,
    created_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    total_minor: i64,
    currency: String,
}

const BOOKING_COLUMNS: &str = "b.id, b.event_id, b.hold_id, b.status::text AS status, b.created_at, b.cancelled_at,
     b.total_minor, e.currency::text AS currency";

pub async fn find(conn: &mut PgConnection, fan: &Fan, booking_id: Uuid) -> Result<Option<BookingView>> {
    let row: Option<BookingRow> = sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.id = $1 AND b.event_id = $2 AND b.fan_id = $3"
    ))
    .bind(booking_id)
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(with_seats(conn, row.into_iter().collect()).await?.pop())
}

pub async fn find_by_hold(conn: &mut PgConnection, hold_id: Uuid) -> Result<Option<BookingView>> {
    let row: Option<BookingRow> = sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN events e ON e.id = b.event_id WHERE b.hold_id = $1"
    ))
    .bind(hold_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(with_seats(&mut *conn, row.into_iter().collect()).await?.pop())
}

pub async fn list_for_fan(conn: &mut PgConnection, fan: &Fan) -> Result<Vec<BookingView>> {
    let rows: Vec<BookingRow> = sqlx::query_as(&format!(
        "SELECT {BOOKING_COLUMNS} FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.event_id = $1 AND b.fan_id = $2 ORDER BY b.created_at"
    ))
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .fetch_all(&mut *conn)
    .await?;
    with_seats(conn, rows).await
}

async fn with_seats(conn: &mut PgConnection, rows: Vec<BookingRow>) -> Result<Vec<BookingView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut seats: HashMap<Uuid, Vec<OrderSeat>> = HashMap::new();
    let seat_rows = sqlx::query(
        "SELECT bs.booking_id, s.id, s.section_id, s.label FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id
         WHERE bs.booking_id = ANY($1) ORDER BY s.sort_key",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    for r in seat_rows {
        let seat = OrderSeat { seat_id: r.get("id"), section_id: r.get("section_id"), label: r.get("label") };
        seats.entry(r.get("booking_id")).or_default().push(seat);
    }
    Ok(rows
        .into_iter()
        .map(|r| BookingView {
            id: r.id,
            event_id: r.event_id,
            hold_id: r.hold_id,
            status: r.status,
            created_at: r.created_at,
            cancelled_at: r.cancelled_at,
            seats: seats.remove(&r.id).unwrap_or_default(),
            total: Price { amount_minor: r.total_minor, currency: r.currency },
        })
        .collect())
}

/// The fan's booking status, locked until the transaction ends.
pub async fn lock_status(conn: &mut PgConnection, fan: &Fan, booking_id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT status::text FROM bookings WHERE id = $1 AND event_id = $2 AND fan_id = $3 FOR UPDATE",
    )
    .bind(booking_id)
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .fetch_optional(conn)
    .await?)
}

/// Cancels a booking and puts its seats back on sale in the same transaction.
pub async fn cancel(conn: &mut PgConnection, booking_id: Uuid) -> Result<()> {
    sqlx::query(
        "WITH freed AS (
             UPDATE seats SET state = 'available', booking_id = NULL
             WHERE id IN (SELECT seat_id FROM booking_seats WHERE booking_id = $1) AND booking_id = $1
         ), items AS (
             UPDATE booking_seats SET live = false WHERE booking_id = $1
         )
         UPDATE bookings SET status = 'cancelled', cancelled_at = now() WHERE id = $1",
    )
    .bind(booking_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every booking (optionally of one event), newest first, for the organizer.
pub async fn list_all(
    conn: &mut PgConnection,
    event_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AdminBookingView>> {
    let rows = sqlx::query(
        "SELECT b.id, b.fan_id, b.event_id, e.name AS event_name, b.status::text AS status, b.created_at,
                b.cancelled_at, b.total_minor, e.currency::text AS currency
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE $1::uuid IS NULL OR b.event_id = $1
         ORDER BY b.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(event_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect();
    let mut seats: HashMap<Uuid, Vec<AdminBookedSeat>> = HashMap::new();
    let seat_rows = sqlx::query(
        "SELECT bs.booking_id, s.id, s.label, sec.id AS section_id, sec.name AS section_name, bs.price_minor
         FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id JOIN sections sec ON sec.id = s.section_id
         WHERE bs.booking_id = ANY($1) ORDER BY s.sort_key",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?;
    for r in seat_rows {
        seats.entry(r.get("booking_id")).or_default().push(AdminBookedSeat {
            seat_id: r.get("id"),
            label: r.get("label"),
            section: NamedRef { id: r.get("section_id"), name: r.get("section_name") },
            price_minor: r.get("price_minor"),
        });
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let id: Uuid = r.get("id");
            AdminBookingView {
                id,
                fan_id: r.get("fan_id"),
                event: NamedRef { id: r.get("event_id"), name: r.get("event_name") },
                status: r.get("status"),
                created_at: r.get("created_at"),
                cancelled_at: r.get("cancelled_at"),
                seats: seats.remove(&id).unwrap_or_default(),
                total: Price { amount_minor: r.get("total_minor"), currency: r.get("currency") },
            }
        })
        .collect())
}
