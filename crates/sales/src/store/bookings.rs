//! Bookings: seats sold to a fan, until cancelled.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::refund_policy::RefundPolicy;
use crate::error::Result;
use crate::model::{AdminBookedSeat, AdminBookingView, BookingView, NamedRef, Price, RefundView};
use crate::scope::FanScope;
use crate::states::{BookingStatus, RefundStatus};
use crate::store::inventory::{self, OrderStatement, SeatKeys, Written};

/// What every booking statement writes once it has locked and judged its seats (its
/// `locked` and `booking` parts): the booking's seats, the seats' new state, one ticket
/// per seat, and the `booking.confirmed` outbox message (its `data` is
/// [`crate::outbox::BookingConfirmed`]; `version` is [`crate::outbox::VERSION`]) with a
/// delivery per subscriber that wants it, a disabled subscriber's paused. Written by the
/// statement that books, so no booking exists without its tickets and its message,
/// whichever path made it (a one-step booking, a confirmed hold, a payment's webhook, a
/// late payment, the reconciliation pass), and a one-step booking needs no transaction.
macro_rules! booking_writes {
    () => {
        "), items AS (
         INSERT INTO booking_seats (booking_id, seat_id, price_minor)
         SELECT $2, seat_id, price_minor FROM locked WHERE EXISTS (SELECT 1 FROM booking)
     ), booked AS (
         UPDATE seats SET state = 'booked', booking_id = $2, hold_id = NULL, held_until = NULL
         WHERE id IN (SELECT seat_id FROM locked) AND EXISTS (SELECT 1 FROM booking)
     ), tickets AS (
         INSERT INTO tickets (id, event_id, booking_id, seat_id)
         SELECT gen_random_uuid(), $1, $2, seat_id FROM locked WHERE EXISTS (SELECT 1 FROM booking)
     ), message AS (
         INSERT INTO outbox_messages (message_id, event_id, topic, payload)
         SELECT gen_random_uuid(), $1, 'booking.confirmed',
                jsonb_build_object('type', 'booking.confirmed', 'version', 1, 'timestamp', now(), 'data',
                    jsonb_build_object(
                        'event_id', $1::uuid, 'booking_id', $2::uuid, 'fan_id', $3::text, 'hold_id', $4::uuid,
                        'payment_id', $7::uuid, 'email', booking.contact_email,
                        'seats', (SELECT jsonb_agg(jsonb_build_object('seat_id', seat_id, 'section_id', section_id,
                                                                      'label', label) ORDER BY seat_id)
                                  FROM locked),
                        'total', jsonb_build_object('amount_minor', booking.total_minor, 'currency', e.currency)))
         FROM booking JOIN events e ON e.id = $1
         RETURNING id
     ), deliveries AS (
         INSERT INTO outbox_deliveries (subscriber_id, message_id, event_id, next_attempt_at)
         SELECT s.id, message.id, $1, CASE WHEN s.active THEN now() ELSE 'infinity'::timestamptz END
         FROM message JOIN outbox_subscribers s
           ON (s.event_id IS NULL OR s.event_id = $1)
          AND (s.topics IS NULL OR 'booking.confirmed' = ANY (s.topics))
     )
     SELECT locked.*, (SELECT created_at FROM booking) AS at FROM locked"
    };
}

/// Books the seats the fan chose by label (parameters: [`OrderStatement`]).
const BOOK_BY_LABELS: &str = concat!(
    "WITH locked AS (
         SELECT s.id AS seat_id, s.section_id, s.label, sec.price_minor,
                seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting) AS takeable
         FROM seats s JOIN sections sec ON sec.id = s.section_id
         WHERE s.event_id = $1 AND s.label = ANY($5::text[])
         ORDER BY s.id FOR UPDATE OF s NOWAIT
     ), verdict AS (
         SELECT count(*) = cardinality($5::text[]) AND coalesce(bool_and(takeable), false) AS ok,
                coalesce(sum(price_minor), 0)::bigint AS total
         FROM locked
     ), booking AS (
         INSERT INTO bookings (id, event_id, fan_id, quantity, total_minor, contact_email)
         SELECT $2, $1, $3, cardinality($5::text[]), total, $8 FROM verdict WHERE ok
         RETURNING created_at, total_minor, contact_email
     ",
    booking_writes!()
);

/// Books seats an any-N path found and locked, by id (parameters: [`OrderStatement`]).
const BOOK_BY_IDS: &str = concat!(
    "WITH locked AS (
         SELECT s.id AS seat_id, s.section_id, s.label, sec.price_minor,
                seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting) AS takeable
         FROM seats s JOIN sections sec ON sec.id = s.section_id
         WHERE s.event_id = $1 AND s.id = ANY($5::bigint[])
         ORDER BY s.id FOR UPDATE OF s NOWAIT
     ), verdict AS (
         SELECT count(*) = cardinality($5::bigint[]) AND coalesce(bool_and(takeable), false) AS ok,
                coalesce(sum(price_minor), 0)::bigint AS total
         FROM locked
     ), booking AS (
         INSERT INTO bookings (id, event_id, fan_id, quantity, total_minor, contact_email)
         SELECT $2, $1, $3, cardinality($5::bigint[]), total, $8 FROM verdict WHERE ok
         RETURNING created_at, total_minor, contact_email
     ",
    booking_writes!()
);

/// Books the seats of the hold `$4` the fan is confirming, paid by the payment `$7`
/// (NULL for a free hold), for the address the fan gave with the hold
/// (parameters: [`OrderStatement`]). The hold's own seats count as takeable, and this
/// statement waits for a seat's lock instead of NOWAIT: only a rival order's short
/// NOWAIT attempt can hold it, and that attempt never waits in turn.
const BOOK_HELD_SEATS: &str = concat!(
    "WITH locked AS (
         SELECT s.id AS seat_id, s.section_id, s.label, sec.price_minor,
                seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting) OR coalesce(s.hold_id = $4, false)
                    AS takeable
         FROM seats s JOIN sections sec ON sec.id = s.section_id
         WHERE s.event_id = $1 AND s.id = ANY($5::bigint[])
         ORDER BY s.id FOR UPDATE OF s
     ), verdict AS (
         SELECT count(*) = cardinality($5::bigint[]) AND coalesce(bool_and(takeable), false) AS ok,
                coalesce(sum(price_minor), 0)::bigint AS total
         FROM locked
     ), booking AS (
         INSERT INTO bookings (id, event_id, fan_id, hold_id, quantity, total_minor, payment_id, contact_email)
         SELECT $2, $1, $3, $4, cardinality($5::bigint[]), total, $7,
                (SELECT contact_email FROM holds WHERE id = $4)
         FROM verdict WHERE ok
         RETURNING created_at, total_minor, contact_email
     ",
    booking_writes!()
);

/// Locks the seats and books them, in one statement; refused as a whole if any seat
/// is missing or taken.
#[tracing::instrument(level = "debug", skip_all, fields(%booking_id))]
pub async fn write(
    conn: &mut PgConnection,
    scope: &FanScope,
    booking_id: Uuid,
    seats: SeatKeys<'_>,
    contact_email: Option<&str>,
) -> Result<Written> {
    let sql = match seats {
        SeatKeys::Labels(_) => BOOK_BY_LABELS,
        SeatKeys::Ids(_) => BOOK_BY_IDS,
    };
    let order = OrderStatement {
        sql,
        scope,
        order_id: booking_id,
        confirming: None,
        seats,
        hold_seconds: None,
        payment_id: None,
        contact_email,
        waitlist_entry: None,
    };
    inventory::write_order(conn, order).await
}

/// Books the seats `seat_ids` for the fan's hold `hold_id`, paid by `payment_id`, in one
/// statement; refused as a whole if any of them is no longer the hold's and taken.
#[tracing::instrument(level = "debug", skip_all, fields(%booking_id, %hold_id))]
pub async fn write_held(
    conn: &mut PgConnection,
    scope: &FanScope,
    booking_id: Uuid,
    hold_id: Uuid,
    seat_ids: &[i64],
    payment_id: Option<Uuid>,
) -> Result<Written> {
    let order = OrderStatement {
        sql: BOOK_HELD_SEATS,
        scope,
        order_id: booking_id,
        confirming: Some(hold_id),
        seats: SeatKeys::Ids(seat_ids),
        hold_seconds: None,
        payment_id,
        contact_email: None,
        waitlist_entry: None,
    };
    inventory::write_order(conn, order).await
}

/// Which booking a request may reach, and whose: the booking's fan (by access token),
/// whoever holds a link of the booking's current generation, or anyone (the organizer,
/// the sale's own work). Every statement that takes one filters by all of it, so a
/// revoked link's request finds no row, also when the link is revoked while it runs.
#[derive(Debug, Clone)]
pub struct BookingKey {
    pub event_id: Uuid,
    pub booking_id: Uuid,
    /// The fan's own bookings only (access token); None with a link or for anyone.
    pub fan_id: Option<String>,
    /// The link's generation, which must still be the booking's; None without a link.
    pub link_generation: Option<i32>,
}

impl BookingKey {
    /// The fan's own booking, by access token.
    pub fn of_fan(scope: &FanScope, booking_id: Uuid) -> Self {
        Self { event_id: scope.event_id, booking_id, fan_id: Some(scope.fan_id.clone()), link_generation: None }
    }

    /// The booking whoever asks: the organizer, or the sale's own work.
    pub fn any(event_id: Uuid, booking_id: Uuid) -> Self {
        Self { event_id, booking_id, fan_id: None, link_generation: None }
    }
}

/// A booking row with its event's name and currency; every booking read selects it.
#[derive(sqlx::FromRow)]
struct BookingRow {
    id: Uuid,
    payment_id: Option<Uuid>,
    event_id: Uuid,
    event_name: String,
    fan_id: String,
    hold_id: Option<Uuid>,
    status: BookingStatus,
    created_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
    total_minor: i64,
    currency: String,
    link_generation: i32,
}

/// A seat of a booking, as [`booked_seats`] reads it.
#[derive(sqlx::FromRow)]
struct BookedSeatRow {
    booking_id: Uuid,
    seat_id: i64,
    label: Option<String>,
    section_id: Uuid,
    section_name: String,
    price_minor: i64,
}

/// The booking `key` names, as its fan sees it.
#[tracing::instrument(level = "debug", skip_all, fields(booking_id = %key.booking_id))]
pub async fn find(conn: &mut PgConnection, key: &BookingKey) -> Result<Option<BookingView>> {
    let row: Option<BookingRow> = sqlx::query_as(
        "SELECT b.id, b.payment_id, b.event_id, e.name AS event_name, b.fan_id, b.hold_id, b.status, b.created_at,
                b.cancelled_at, b.total_minor, e.currency::text AS currency, b.link_generation
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.id = $1 AND b.event_id = $2 AND ($3::text IS NULL OR b.fan_id = $3)
           AND ($4::integer IS NULL OR b.link_generation = $4)",
    )
    .bind(key.booking_id)
    .bind(key.event_id)
    .bind(key.fan_id.as_deref())
    .bind(key.link_generation)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(fan_views(conn, row.into_iter().collect()).await?.pop())
}

/// The booking made by confirming the fan's hold `hold_id`.
#[tracing::instrument(level = "debug", skip(conn, scope))]
pub async fn find_by_hold(conn: &mut PgConnection, scope: &FanScope, hold_id: Uuid) -> Result<Option<BookingView>> {
    let row: Option<BookingRow> = sqlx::query_as(
        "SELECT b.id, b.payment_id, b.event_id, e.name AS event_name, b.fan_id, b.hold_id, b.status, b.created_at,
                b.cancelled_at, b.total_minor, e.currency::text AS currency, b.link_generation
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.hold_id = $1 AND b.event_id = $2 AND b.fan_id = $3",
    )
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(fan_views(conn, row.into_iter().collect()).await?.pop())
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list_for_fan(conn: &mut PgConnection, scope: &FanScope) -> Result<Vec<BookingView>> {
    let rows: Vec<BookingRow> = sqlx::query_as(
        "SELECT b.id, b.payment_id, b.event_id, e.name AS event_name, b.fan_id, b.hold_id, b.status, b.created_at,
                b.cancelled_at, b.total_minor, e.currency::text AS currency, b.link_generation
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.event_id = $1 AND b.fan_id = $2 ORDER BY b.created_at",
    )
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_all(&mut *conn)
    .await?;
    fan_views(conn, rows).await
}

/// Every booking (optionally of one event), newest first, for the organizer.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn list_all(
    conn: &mut PgConnection,
    event_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AdminBookingView>> {
    let rows: Vec<BookingRow> = sqlx::query_as(
        "SELECT b.id, b.payment_id, b.event_id, e.name AS event_name, b.fan_id, b.hold_id, b.status, b.created_at,
                b.cancelled_at, b.total_minor, e.currency::text AS currency, b.link_generation
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE $1::uuid IS NULL OR b.event_id = $1
         ORDER BY b.id DESC LIMIT $2 OFFSET $3",
    )
    .bind(event_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let mut seats = booked_seats(conn, &rows).await?;
    Ok(rows
        .into_iter()
        .map(|r| AdminBookingView {
            id: r.id,
            fan_id: r.fan_id,
            event: NamedRef { id: r.event_id, name: r.event_name },
            status: r.status,
            created_at: r.created_at,
            cancelled_at: r.cancelled_at,
            seats: seats.remove(&r.id).unwrap_or_default(),
            total: Price { amount_minor: r.total_minor, currency: r.currency },
        })
        .collect())
}

/// The fan's view of each booking, with its seats and refund.
async fn fan_views(conn: &mut PgConnection, rows: Vec<BookingRow>) -> Result<Vec<BookingView>> {
    let mut seats = booked_seats(conn, &rows).await?;
    let mut refunds = booking_refunds(conn, &rows).await?;
    Ok(rows
        .into_iter()
        .map(|r| BookingView {
            id: r.id,
            event_id: r.event_id,
            hold_id: r.hold_id,
            status: r.status,
            created_at: r.created_at,
            cancelled_at: r.cancelled_at,
            seats: seats.remove(&r.id).unwrap_or_default().into_iter().map(AdminBookedSeat::into_order_seat).collect(),
            refund: refunds.remove(&r.id).map(|(id, amount_minor, status)| RefundView {
                id,
                amount: Price { amount_minor, currency: r.currency.clone() },
                status,
            }),
            total: Price { amount_minor: r.total_minor, currency: r.currency },
            payment_id: r.payment_id,
            link: None,
            link_generation: r.link_generation,
        })
        .collect())
}

/// The refund of each booking that has one.
async fn booking_refunds(
    conn: &mut PgConnection,
    bookings: &[BookingRow],
) -> Result<HashMap<Uuid, (Uuid, i64, RefundStatus)>> {
    let ids: Vec<Uuid> = bookings.iter().filter(|b| b.payment_id.is_some()).map(|b| b.id).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(Uuid, Uuid, i64, RefundStatus)> =
        sqlx::query_as("SELECT booking_id, id, amount_minor, status FROM refunds WHERE booking_id = ANY($1)")
            .bind(&ids)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(booking, id, amount, status)| (booking, (id, amount, status))).collect())
}

/// The one seats loader: every seat of `bookings`, best first, by booking.
async fn booked_seats(conn: &mut PgConnection, bookings: &[BookingRow]) -> Result<HashMap<Uuid, Vec<AdminBookedSeat>>> {
    if bookings.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = bookings.iter().map(|b| b.id).collect();
    let rows: Vec<BookedSeatRow> = sqlx::query_as(
        "SELECT bs.booking_id, s.id AS seat_id, s.label, sec.id AS section_id, sec.name AS section_name,
                bs.price_minor
         FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id JOIN sections sec ON sec.id = s.section_id
         WHERE bs.booking_id = ANY($1) ORDER BY s.sort_key",
    )
    .bind(&ids)
    .fetch_all(conn)
    .await?;
    let mut seats: HashMap<Uuid, Vec<AdminBookedSeat>> = HashMap::new();
    for row in rows {
        seats.entry(row.booking_id).or_default().push(AdminBookedSeat {
            seat_id: row.seat_id,
            label: row.label,
            section: NamedRef { id: row.section_id, name: row.section_name },
            price_minor: row.price_minor,
        });
    }
    Ok(seats)
}

/// What cancelling a booking needs to know, read with the booking locked until the
/// transaction ends: by the fan (their own bookings) or the organizer (`fan_id` None).
#[derive(Debug, sqlx::FromRow)]
pub struct Cancellable {
    pub id: Uuid,
    pub event_id: Uuid,
    pub fan_id: String,
    pub status: BookingStatus,
    pub payment_id: Option<Uuid>,
    pub total_minor: i64,
    pub currency: String,
    pub refund_policy: Option<sqlx::types::Json<RefundPolicy>>,
    /// Hours from now to the event's start by the database clock (negative once it has
    /// started); None for an event without a start date.
    pub hours_before_start: Option<f64>,
}

/// Locks the booking `key` names for cancelling. The key's conditions are this
/// statement's: a link revoked by a rotation that commits first finds no row here.
#[tracing::instrument(level = "debug", skip_all, fields(booking_id = %key.booking_id))]
pub async fn lock_for_cancel(conn: &mut PgConnection, key: &BookingKey) -> Result<Option<Cancellable>> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.event_id, b.fan_id, b.status, b.payment_id, b.total_minor, e.currency::text AS currency,
                e.refund_policy, (extract(epoch FROM e.starts_at - now()) / 3600.0)::float8 AS hours_before_start
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.id = $1 AND b.event_id = $2 AND ($3::text IS NULL OR b.fan_id = $3)
           AND ($4::integer IS NULL OR b.link_generation = $4)
         FOR UPDATE OF b",
    )
    .bind(key.booking_id)
    .bind(key.event_id)
    .bind(key.fan_id.as_deref())
    .bind(key.link_generation)
    .fetch_optional(conn)
    .await?)
}

/// Moves the link generation of the booking `key` names on by one, in one conditional
/// statement: every link given out before stops working when this commits, and of two
/// rotations through the same link only the first finds the row. The new generation;
/// None when `key` names no booking (another fan's, a revoked link's).
#[tracing::instrument(level = "debug", skip_all, fields(booking_id = %key.booking_id))]
pub async fn rotate_link(conn: &mut PgConnection, key: &BookingKey) -> Result<Option<i32>> {
    let row: Option<(i32,)> = sqlx::query_as(
        "UPDATE bookings SET link_generation = link_generation + 1
         WHERE id = $1 AND event_id = $2 AND ($3::text IS NULL OR fan_id = $3)
           AND ($4::integer IS NULL OR link_generation = $4)
         RETURNING link_generation",
    )
    .bind(key.booking_id)
    .bind(key.event_id)
    .bind(key.fan_id.as_deref())
    .bind(key.link_generation)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(generation,)| generation))
}

/// Up to `limit` live bookings of the event, locked for cancelling, skipping those
/// another transaction holds (a fan cancelling, another pass of the same cancellation).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn lock_live_of_event(conn: &mut PgConnection, event_id: Uuid, limit: i64) -> Result<Vec<Cancellable>> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.event_id, b.fan_id, b.status, b.payment_id, b.total_minor, e.currency::text AS currency,
                e.refund_policy, (extract(epoch FROM e.starts_at - now()) / 3600.0)::float8 AS hours_before_start
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.event_id = $1 AND b.status = 'confirmed'
         ORDER BY b.id LIMIT $2
         FOR UPDATE OF b SKIP LOCKED",
    )
    .bind(event_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Cancels a booking and puts its seats back on sale in the same transaction, revoking
/// its tickets (each with the revocation offline scanners read) in the same statement:
/// no seat can be sold again while a valid ticket names it (`tickets_one_live_per_seat`).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn cancel(conn: &mut PgConnection, booking_id: Uuid) -> Result<()> {
    sqlx::query(
        "WITH revoked AS (
             UPDATE tickets SET revoked_at = now() WHERE booking_id = $1 AND revoked_at IS NULL
             RETURNING event_id, id, issue
         ), recorded AS (
             INSERT INTO ticket_revocations (event_id, ticket_id, issue, reason)
             SELECT event_id, id, issue, 'cancelled' FROM revoked
         ), freed AS (
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
