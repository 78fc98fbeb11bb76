//! Holds: seats set aside for a fan until a deadline, then confirmed, released or expired.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::model::OrderSeat;
use crate::outbox::{HoldExpired, Message};
use crate::scope::FanScope;
use crate::states::HoldStatus;
use crate::store::inventory::{self, OrderStatement, SeatKeys, Written};

/// A hold row as read (and locked) by confirm and release.
#[derive(Debug, sqlx::FromRow)]
pub struct HoldRow {
    pub id: Uuid,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
    /// Decided by the database clock, the same clock that decides seat expiry.
    pub expired: bool,
    pub quantity: i32,
    pub total_minor: i64,
}

/// Holds the seats the fan chose by label (parameters: [`OrderStatement`]).
const HOLD_BY_LABELS: &str = "WITH locked AS (
         SELECT s.id AS seat_id, s.section_id, s.label, sec.price_minor,
                seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting)
                OR ($9::uuid IS NOT NULL AND seat_is_takeable(s.state, s.held_until)) AS takeable
         FROM seats s JOIN sections sec ON sec.id = s.section_id
         WHERE s.event_id = $1 AND s.label = ANY($5::text[])
         ORDER BY s.id FOR UPDATE OF s NOWAIT
     ), verdict AS (
         SELECT count(*) = cardinality($5::text[]) AND coalesce(bool_and(takeable), false) AS ok,
                coalesce(sum(price_minor), 0)::bigint AS total
         FROM locked
     ), hold AS (
         INSERT INTO holds (id, event_id, fan_id, quantity, total_minor, expires_at, contact_email, waitlist_entry_id)
         SELECT $2, $1, $3, cardinality($5::text[]), total, now() + make_interval(secs => $6), $8, $9
         FROM verdict WHERE ok
         RETURNING expires_at
     ), members AS (
         INSERT INTO hold_seats (hold_id, seat_id) SELECT $2, seat_id FROM locked WHERE EXISTS (SELECT 1 FROM hold)
     ), held AS (
         UPDATE seats SET state = 'held', hold_id = $2, held_until = hold.expires_at, booking_id = NULL
         FROM hold WHERE seats.id IN (SELECT seat_id FROM locked)
     )
     SELECT locked.*, (SELECT expires_at FROM hold) AS at FROM locked";

/// Holds seats an any-N path found and locked, by id (parameters: [`OrderStatement`]).
const HOLD_BY_IDS: &str = "WITH locked AS (
         SELECT s.id AS seat_id, s.section_id, s.label, sec.price_minor,
                seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting)
                OR ($9::uuid IS NOT NULL AND seat_is_takeable(s.state, s.held_until)) AS takeable
         FROM seats s JOIN sections sec ON sec.id = s.section_id
         WHERE s.event_id = $1 AND s.id = ANY($5::bigint[])
         ORDER BY s.id FOR UPDATE OF s NOWAIT
     ), verdict AS (
         SELECT count(*) = cardinality($5::bigint[]) AND coalesce(bool_and(takeable), false) AS ok,
                coalesce(sum(price_minor), 0)::bigint AS total
         FROM locked
     ), hold AS (
         INSERT INTO holds (id, event_id, fan_id, quantity, total_minor, expires_at, contact_email, waitlist_entry_id)
         SELECT $2, $1, $3, cardinality($5::bigint[]), total, now() + make_interval(secs => $6), $8, $9
         FROM verdict WHERE ok
         RETURNING expires_at
     ), members AS (
         INSERT INTO hold_seats (hold_id, seat_id) SELECT $2, seat_id FROM locked WHERE EXISTS (SELECT 1 FROM hold)
     ), held AS (
         UPDATE seats SET state = 'held', hold_id = $2, held_until = hold.expires_at, booking_id = NULL
         FROM hold WHERE seats.id IN (SELECT seat_id FROM locked)
     )
     SELECT locked.*, (SELECT expires_at FROM hold) AS at FROM locked";

/// Locks the seats and writes a hold over them, in one statement; refused as a whole
/// if any seat is missing or taken.
#[tracing::instrument(level = "debug", skip_all, fields(%hold_id))]
pub async fn write(
    conn: &mut PgConnection,
    scope: &FanScope,
    hold_id: Uuid,
    seats: SeatKeys<'_>,
    ttl_seconds: i32,
    contact_email: Option<&str>,
) -> Result<Written> {
    let sql = match seats {
        SeatKeys::Labels(_) => HOLD_BY_LABELS,
        SeatKeys::Ids(_) => HOLD_BY_IDS,
    };
    let order = OrderStatement {
        sql,
        scope,
        order_id: hold_id,
        confirming: None,
        seats,
        hold_seconds: Some(ttl_seconds),
        payment_id: None,
        contact_email,
        waitlist_entry: None,
    };
    inventory::write_order(conn, order).await
}

/// Writes the offer to the waitlist entry `entry` over seats the caller found and
/// locked (which may be places its section keeps for the waitlist): a hold for the
/// entry's fan lasting `ttl_seconds`, in one statement.
#[tracing::instrument(level = "debug", skip(conn, scope, seat_ids, entry), fields(entry_id = %entry.id))]
pub async fn write_offer(
    conn: &mut PgConnection,
    scope: &FanScope,
    hold_id: Uuid,
    seat_ids: &[i64],
    ttl_seconds: i32,
    entry: &crate::store::waitlist::EntryRow,
) -> Result<Written> {
    let order = OrderStatement {
        sql: HOLD_BY_IDS,
        scope,
        order_id: hold_id,
        confirming: None,
        seats: SeatKeys::Ids(seat_ids),
        hold_seconds: Some(ttl_seconds),
        payment_id: None,
        contact_email: entry.contact_email.as_deref(),
        waitlist_entry: Some(entry.id),
    };
    inventory::write_order(conn, order).await
}

/// The fan's hold, locked until the transaction ends.
#[tracing::instrument(level = "debug", skip(conn, scope))]
pub async fn lock(conn: &mut PgConnection, scope: &FanScope, hold_id: Uuid) -> Result<Option<HoldRow>> {
    Ok(sqlx::query_as(
        "SELECT id, status, expires_at, expires_at <= now() AS expired, quantity, total_minor
         FROM holds WHERE id = $1 AND event_id = $2 AND fan_id = $3 FOR UPDATE",
    )
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_optional(conn)
    .await?)
}

/// The fan's hold, locked until the transaction ends, with its seats and whether its
/// event was cancelled, in one statement: what confirming it, or a payment for it, needs.
#[derive(Debug, sqlx::FromRow)]
pub struct LockedHold {
    #[sqlx(flatten)]
    pub hold: HoldRow,
    pub event_cancelled: bool,
    pub seat_ids: Vec<i64>,
}

#[tracing::instrument(level = "debug", skip(conn, scope))]
pub async fn lock_with_seats(conn: &mut PgConnection, scope: &FanScope, hold_id: Uuid) -> Result<Option<LockedHold>> {
    Ok(sqlx::query_as(
        "SELECT h.id, h.status, h.expires_at, h.expires_at <= now() AS expired, h.quantity, h.total_minor,
                e.cancelled_at IS NOT NULL AS event_cancelled,
                ARRAY(SELECT seat_id FROM hold_seats WHERE hold_id = h.id ORDER BY seat_id) AS seat_ids
         FROM holds h JOIN events e ON e.id = h.event_id
         WHERE h.id = $1 AND h.event_id = $2 AND h.fan_id = $3
         FOR UPDATE OF h",
    )
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_optional(conn)
    .await?)
}

#[tracing::instrument(level = "debug", skip(conn, scope))]
pub async fn find(conn: &mut PgConnection, scope: &FanScope, hold_id: Uuid) -> Result<Option<HoldRow>> {
    Ok(sqlx::query_as(
        "SELECT id, status, expires_at, expires_at <= now() AS expired, quantity, total_minor
         FROM holds WHERE id = $1 AND event_id = $2 AND fan_id = $3",
    )
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_optional(conn)
    .await?)
}

/// What a heartbeat did to a hold.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Heartbeat {
    /// None when the hold was not extended (ended, lapsed, an offer, or at its cap).
    pub extended_to: Option<DateTime<Utc>>,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
    pub expired: bool,
    /// The latest it may ever last: creation + the cap (an offer: its own expiry).
    pub latest_expiry: DateTime<Utc>,
}

/// Keeps an open page's hold: the hold and its seats last `ttl_seconds` from now if
/// that is later than they would, but never past `max_lifetime_secs` from the hold's
/// creation, and only while it is active and not lapsed; waitlist offers are not
/// extended. One statement; None for a hold that is not the fan's.
#[tracing::instrument(level = "debug", skip(conn, scope))]
pub async fn heartbeat(
    conn: &mut PgConnection,
    scope: &FanScope,
    hold_id: Uuid,
    ttl_seconds: i32,
    max_lifetime_secs: i32,
) -> Result<Option<Heartbeat>> {
    Ok(sqlx::query_as(
        "WITH extended AS (
             UPDATE holds
             SET expires_at = least(greatest(expires_at, now() + make_interval(secs => $4)),
                                    created_at + make_interval(secs => $5))
             WHERE id = $1 AND event_id = $2 AND fan_id = $3 AND status = 'active' AND expires_at > now()
               AND waitlist_entry_id IS NULL
               AND expires_at < least(now() + make_interval(secs => $4), created_at + make_interval(secs => $5))
             RETURNING expires_at
         ), seats_extended AS (
             UPDATE seats SET held_until = extended.expires_at
             FROM extended WHERE seats.hold_id = $1 AND seats.state = 'held'
         )
         SELECT (SELECT expires_at FROM extended) AS extended_to, h.status,
                coalesce((SELECT expires_at FROM extended), h.expires_at) AS expires_at,
                h.expires_at <= now() AS expired,
                CASE WHEN h.waitlist_entry_id IS NULL THEN h.created_at + make_interval(secs => $5)
                     ELSE h.expires_at END AS latest_expiry
         FROM holds h WHERE h.id = $1 AND h.event_id = $2 AND h.fan_id = $3",
    )
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .bind(ttl_seconds)
    .bind(max_lifetime_secs)
    .fetch_optional(conn)
    .await?)
}

/// Whether the hold still keeps its seats (active and not past its time), by the
/// database clock; for work that is not a fan's (reconciliation).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn is_live(conn: &mut PgConnection, hold_id: Uuid) -> Result<bool> {
    Ok(sqlx::query_scalar("SELECT status = 'active' AND expires_at > now() FROM holds WHERE id = $1")
        .bind(hold_id)
        .fetch_optional(conn)
        .await?
        .unwrap_or(false))
}

/// The seats a hold was created with.
#[tracing::instrument(level = "debug", skip(conn))]
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
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn end(conn: &mut PgConnection, hold_id: Uuid, status: HoldStatus) -> Result<()> {
    sqlx::query(
        "WITH freed AS (
             UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL
             WHERE id IN (SELECT seat_id FROM hold_seats WHERE hold_id = $1) AND hold_id = $1
         )
         UPDATE holds SET status = $2, ended_at = now() WHERE id = $1",
    )
    .bind(hold_id)
    .bind(status)
    .execute(conn)
    .await?;
    Ok(())
}

/// Releases up to `limit` active holds of the event and frees their seats (the event
/// was cancelled); holds another transaction has locked are left to the next pass.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn release_all_of_event(conn: &mut PgConnection, event_id: Uuid, limit: i64) -> Result<u64> {
    let released: Vec<Uuid> = sqlx::query_scalar(
        "WITH active AS (
             SELECT id FROM holds WHERE event_id = $1 AND status = 'active'
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
         ), freed AS (
             UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL
             WHERE id IN (SELECT seat_id FROM hold_seats WHERE hold_id IN (SELECT id FROM active))
               AND hold_id IN (SELECT id FROM active)
         )
         UPDATE holds SET status = 'released', ended_at = now()
         WHERE id IN (SELECT id FROM active) RETURNING id",
    )
    .bind(event_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(released.len() as u64)
}

/// What a pass of the hold sweep ended: how many holds, and the events they were of.
#[derive(Debug, Default)]
pub struct Released {
    pub holds: u64,
    pub events: Vec<Uuid>,
}

/// Ends up to `batch` expired holds, frees their seats and writes a `hold.expired`
/// message for each, inside the caller's transaction. Holds locked by another sweeper
/// (or a fan confirming) are skipped, so any number of schedulers can run this at once
/// without releasing a hold twice or waiting on each other.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn release_expired(conn: &mut PgConnection, batch: i64) -> Result<Released> {
    let released: Vec<(Uuid, Uuid, String, i32)> = sqlx::query_as(
        "WITH expired AS (
             SELECT id FROM holds WHERE status = 'active' AND expires_at <= now()
             ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
         ), freed AS (
             UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL
             WHERE id IN (SELECT seat_id FROM hold_seats WHERE hold_id IN (SELECT id FROM expired))
               AND hold_id IN (SELECT id FROM expired)
         )
         UPDATE holds SET status = 'expired', ended_at = now()
         WHERE id IN (SELECT id FROM expired) RETURNING id, event_id, fan_id, quantity",
    )
    .bind(batch)
    .fetch_all(&mut *conn)
    .await?;
    let messages: Vec<Message> = released
        .iter()
        .map(|(hold_id, event_id, fan_id, quantity)| {
            Message::HoldExpired(HoldExpired {
                event_id: *event_id,
                hold_id: *hold_id,
                fan_id: fan_id.clone(),
                quantity: *quantity,
            })
        })
        .collect();
    crate::store::outbox::enqueue(conn, &messages).await?;
    let mut events: Vec<Uuid> = released.iter().map(|(_, event_id, _, _)| *event_id).collect();
    events.sort_unstable();
    events.dedup();
    Ok(Released { holds: released.len() as u64, events })
}
