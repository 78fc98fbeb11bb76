//! Taking seats: the locking at the heart of "never oversell".
//!
//! An order names its seats (labels the fan chose, or ids an any-N path locked first)
//! and one statement locks, checks and writes them: the hold statements in
//! [`super::holds`], the booking statements in [`super::bookings`], each written out
//! whole there and run by [`write_order`]. The any-N paths find and lock free seats
//! here first, inside the caller's transaction.
//!
//! Which seats are free is the database's `seat_is_takeable` (see
//! `migrations/*_seat_takeable.sql`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::best_available::{Candidate, Ranker};
use crate::error::{Error, Result};
use crate::model::OrderSeat;
use crate::scope::FanScope;

/// The seats an order names: labels the fan chose, or ids the caller already locked
/// (any-N paths, a hold being confirmed).
#[derive(Debug, Clone, Copy)]
pub enum SeatKeys<'a> {
    Labels(&'a [String]),
    Ids(&'a [i64]),
}

/// A seat an order statement locked, with whether it could be taken.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LockedSeat {
    pub seat_id: i64,
    pub section_id: Uuid,
    pub label: Option<String>,
    pub price_minor: i64,
    pub takeable: bool,
}

impl LockedSeat {
    pub fn into_order_seat(self) -> OrderSeat {
        OrderSeat { seat_id: self.seat_id, section_id: self.section_id, label: self.label }
    }
}

/// What an order statement did: wrote the order at `at`, or refused and wrote nothing.
pub enum Written {
    Done { seats: Vec<LockedSeat>, at: DateTime<Utc> },
    Refused(Vec<LockedSeat>),
}

/// A row of an order statement's answer: a locked seat, and when the order was
/// written (NULL when it was refused).
#[derive(sqlx::FromRow)]
struct WrittenRow {
    #[sqlx(flatten)]
    seat: LockedSeat,
    at: Option<DateTime<Utc>>,
}

/// One order statement's parameters. Every order statement reads them by the same
/// numbers, so one function binds them all:
///
/// | | |
/// |---|---|
/// | `$1` | the event ([`FanScope::event_id`]) |
/// | `$2` | the new hold's or booking's id |
/// | `$3` | the fan ([`FanScope::fan_id`]) |
/// | `$4` | the hold being confirmed, whose own seats count as takeable (confirm only; NULL otherwise) |
/// | `$5` | the seat labels (`text[]`) or ids (`bigint[]`) |
/// | `$6` | the hold's lifetime in seconds (holds only) |
/// | `$7` | the payment that paid for the booking (confirm only; NULL when free) |
/// | `$8` | the address the fan gave for their confirmation, or NULL (new holds and one-step bookings) |
///
/// Each statement is the same in shape: `locked` locks the named seats in id order (so
/// two orders for overlapping seats never deadlock), `NOWAIT` failing at once (SQLSTATE
/// 55P03) when another transaction holds one; `verdict` says whether all were found and
/// takeable; the writes that follow run only when `verdict.ok`, so an order is taken
/// whole or not at all, in one statement. A statement a parameter does not concern
/// leaves it unread.
pub(crate) struct OrderStatement<'a> {
    pub sql: &'static str,
    pub scope: &'a FanScope,
    pub order_id: Uuid,
    pub confirming: Option<Uuid>,
    pub seats: SeatKeys<'a>,
    pub hold_seconds: Option<i32>,
    pub payment_id: Option<Uuid>,
    pub contact_email: Option<&'a str>,
}

/// Runs an order statement: the order written whole, or refused with the seats it found.
#[tracing::instrument(level = "debug", skip_all, fields(event_id = %order.scope.event_id))]
pub(crate) async fn write_order(conn: &mut PgConnection, order: OrderStatement<'_>) -> Result<Written> {
    let query = sqlx::query_as::<_, WrittenRow>(order.sql)
        .bind(order.scope.event_id)
        .bind(order.order_id)
        .bind(&order.scope.fan_id)
        .bind(order.confirming);
    let query = match order.seats {
        SeatKeys::Labels(labels) => query.bind(labels),
        SeatKeys::Ids(ids) => query.bind(ids),
    };
    let rows = query
        .bind(order.hold_seconds.map(f64::from))
        .bind(order.payment_id)
        .bind(order.contact_email)
        .fetch_all(conn)
        .await?;
    Ok(match rows.first().and_then(|row| row.at) {
        Some(at) => Written::Done { seats: rows.into_iter().map(|row| row.seat).collect(), at },
        None => Written::Refused(rows.into_iter().map(|row| row.seat).collect()),
    })
}

/// Locks the seats `ids`, in id order as every order statement does, waiting for them;
/// for work that must hold them before it asks something else (the fan's allowance).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn lock_seats(conn: &mut PgConnection, ids: &[i64]) -> Result<()> {
    sqlx::query("SELECT id FROM seats WHERE id = ANY($1) ORDER BY id FOR UPDATE").bind(ids).execute(conn).await?;
    Ok(())
}

/// The next `$2` free places of the general-admission section `$1`, locked.
///
/// Takeable places are available ones or lapsed holds; each is scanned through its own
/// partial index in its own order (`seats_available` by `sort_key`, then
/// `seats_held_by_expiry` by `held_until`), so the scan starts at the first free place
/// rather than walking past every place already sold, and lapsed holds are read only
/// when the available places run short (a `LIMIT` of 0 reads nothing). `SKIP LOCKED`
/// lets concurrent orders each take different rows instead of queueing on one.
/// Public so tests can `EXPLAIN` it.
pub const TAKE_NEXT: &str = "WITH available AS (
         SELECT id AS seat_id, section_id, label FROM seats
         WHERE section_id = $1 AND state = 'available'
         ORDER BY sort_key LIMIT $2 FOR UPDATE SKIP LOCKED
     ), lapsed AS (
         SELECT id AS seat_id, section_id, label FROM seats
         WHERE section_id = $1 AND seat_hold_lapsed(state, held_until)
         ORDER BY held_until LIMIT $2 - (SELECT count(*) FROM available) FOR UPDATE SKIP LOCKED
     )
     SELECT * FROM available UNION ALL SELECT * FROM lapsed";

/// Takes the next `quantity` free places of a general-admission section.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn take_next(conn: &mut PgConnection, section_id: Uuid, quantity: u32) -> Result<Vec<OrderSeat>> {
    let seats: Vec<OrderSeat> =
        sqlx::query_as(TAKE_NEXT).bind(section_id).bind(i64::from(quantity)).fetch_all(&mut *conn).await?;
    if seats.len() < quantity as usize {
        return Err(shortage(conn, section_id, quantity).await);
    }
    Ok(seats)
}

/// The next `$3` takeable seats of the reserved section `$1` after sort key `$2`, best
/// row first (a section's sort key runs by row, then seat number): one window of the
/// candidates [`best_available`](crate::domain::best_available) chooses from. Available seats are read through
/// `seats_available` in `sort_key` order, starting at `$2`, so a window costs its own
/// size rather than the section's; lapsed holds (few: the sweeper releases them) through
/// `seats_held_by_expiry`. Public so tests can `EXPLAIN` it.
pub const BEST_AVAILABLE_CANDIDATES: &str = "WITH available AS (
         SELECT id, row_rank, seat_number, sort_key FROM seats
         WHERE section_id = $1 AND state = 'available' AND sort_key > $2
         ORDER BY sort_key LIMIT $3
     ), lapsed AS (
         SELECT id, row_rank, seat_number, sort_key FROM seats
         WHERE section_id = $1 AND seat_hold_lapsed(state, held_until) AND sort_key > $2
         ORDER BY sort_key LIMIT $3
     )
     SELECT id, row_rank, seat_number, sort_key FROM available
     UNION ALL SELECT id, row_rank, seat_number, sort_key FROM lapsed
     ORDER BY sort_key LIMIT $3";

/// The first window of candidates read; each next one is twice as large, up to
/// [`LAST_WINDOW`], so a choice settled early costs one small read and a section read
/// to its end (no row with a block that strands nobody) a handful of round trips.
const FIRST_WINDOW: i64 = 256;
const LAST_WINDOW: i64 = 16_384;

/// Takes the best `quantity` seats of a reserved section (see [`best_available`](crate::domain::best_available)).
///
/// Reads the free seats without locks, a window at a time until the choice is settled
/// (usually the first), ranks disjoint choices, then locks one choice at a time with
/// `SKIP LOCKED`: a choice another order got to first is passed over for the next
/// instead of waiting. The ranking is linear in the seats read, so it stays on the
/// async worker.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn take_best(
    conn: &mut PgConnection,
    section_id: Uuid,
    quantity: u32,
    attempts: usize,
) -> Result<Vec<OrderSeat>> {
    let mut ranker = Ranker::new(quantity as usize, attempts);
    let (mut after, mut window) = (i32::MIN, FIRST_WINDOW);
    loop {
        let rows: Vec<(i64, i32, i32, i32)> = sqlx::query_as(BEST_AVAILABLE_CANDIDATES)
            .bind(section_id)
            .bind(after)
            .bind(window)
            .fetch_all(&mut *conn)
            .await?;
        let read = rows.len() as i64;
        let Some(&(_, _, _, last)) = rows.last() else { break };
        after = last;
        let candidates: Vec<Candidate> =
            rows.into_iter().map(|(id, row_rank, seat_number, _)| Candidate { id, row_rank, seat_number }).collect();
        if ranker.push(&candidates) || read < window {
            break;
        }
        window = (window * 2).min(LAST_WINDOW);
    }
    for option in ranker.finish() {
        let seats: Vec<OrderSeat> = sqlx::query_as(
            "SELECT id AS seat_id, section_id, label FROM seats
             WHERE id = ANY($1) AND seat_is_takeable(state, held_until)
             ORDER BY id FOR UPDATE SKIP LOCKED",
        )
        .bind(&option)
        .fetch_all(&mut *conn)
        .await?;
        if seats.len() == option.len() {
            return Ok(seats);
        }
    }
    Err(shortage(conn, section_id, quantity).await)
}

/// Tells "sold out" from "busy": if the committed state still has enough takeable
/// seats, other orders merely hold their locks, and a retry may succeed.
async fn shortage(conn: &mut PgConnection, section_id: Uuid, quantity: u32) -> Error {
    let remaining = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM seats WHERE section_id = $1 AND seat_is_takeable(state, held_until)",
    )
    .bind(section_id)
    .fetch_one(&mut *conn)
    .await;
    match remaining {
        Ok(n) if n >= i64::from(quantity) => Error::SeatContended,
        Ok(0) => Error::SoldOut("this section is sold out".into()),
        Ok(n) => Error::SoldOut(format!("only {n} left in this section")),
        Err(e) => e.into(),
    }
}
