//! Taking seats: the locking at the heart of "never oversell".
//!
//! Chosen seats are locked and written by one statement (see [`lock_cte`], used by
//! `holds::write` and `bookings::write`). The any-N paths first find and lock free
//! seats here, inside the caller's transaction, then write them the same way by id.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::best_available::{self, Candidate};
use crate::error::{Error, Result};
use crate::model::OrderSeat;

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
pub(crate) struct WrittenRow {
    #[sqlx(flatten)]
    seat: LockedSeat,
    at: Option<DateTime<Utc>>,
}

impl Written {
    pub(crate) fn from_rows(rows: Vec<WrittenRow>) -> Self {
        match rows.first().and_then(|row| row.at) {
            Some(at) => Self::Done { seats: rows.into_iter().map(|row| row.seat).collect(), at },
            None => Self::Refused(rows.into_iter().map(|row| row.seat).collect()),
        }
    }
}

/// The first CTE of every order statement (`lock_cte!(labels)` or `lock_cte!(ids)`):
/// lock the named seats in id order, so two orders for overlapping seats never
/// deadlock, failing at once (NOWAIT, SQLSTATE 55P03) if another transaction holds
/// one. `verdict` says whether all were found and takeable: available, held by a hold
/// that has expired, or held by `$4` (the hold being confirmed). The statements that
/// follow write only when `verdict.ok`, so an order is taken whole or not at all, in
/// one statement.
///
/// Parameters: $1 event, $4 confirming hold (or NULL), $5 labels or ids.
macro_rules! lock_cte {
    (labels) => {
        $crate::store::inventory::lock_cte!(@ "s.label = ANY($5::text[])", "NOWAIT")
    };
    (ids) => {
        $crate::store::inventory::lock_cte!(@ "s.id = ANY($5::bigint[])", "NOWAIT")
    };
    // A fan confirming their own hold waits for a lock instead: only a rival order's
    // short NOWAIT attempt can hold it, and that attempt never waits in turn.
    (own_hold) => {
        $crate::store::inventory::lock_cte!(@ "s.id = ANY($5::bigint[])", "")
    };
    (@ $filter:literal, $wait:literal) => {
        concat!(
            "locked AS (
                 SELECT s.id AS seat_id, s.section_id, s.label, sec.price_minor,
                        s.state = 'available'
                        OR (s.state = 'held' AND (s.held_until <= now() OR coalesce(s.hold_id = $4::uuid, false))) AS takeable
                 FROM seats s JOIN sections sec ON sec.id = s.section_id
                 WHERE s.event_id = $1 AND ",
            $filter,
            "
                 ORDER BY s.id FOR UPDATE OF s ",
            $wait,
            "
             ), verdict AS (
                 SELECT count(*) = cardinality($5) AND coalesce(bool_and(takeable), false) AS ok,
                        coalesce(sum(price_minor), 0)::bigint AS total
                 FROM locked
             )"
        )
    };
}
pub(crate) use lock_cte;

/// Binds the seat keys as the next parameter (`$5` in [`lock_cte`]).
pub(crate) fn bind_keys<'q, O>(
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    keys: SeatKeys<'q>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    match keys {
        SeatKeys::Labels(labels) => query.bind(labels),
        SeatKeys::Ids(ids) => query.bind(ids),
    }
}

/// Takes the next `quantity` free places of a general-admission section.
///
/// `SKIP LOCKED` lets concurrent orders each take different rows instead of queueing
/// on one counter, and the partial index `seats_available` means the scan starts at
/// the first free place rather than walking past every place already sold.
pub async fn take_next(conn: &mut PgConnection, section_id: Uuid, quantity: u32) -> Result<Vec<OrderSeat>> {
    let mut seats: Vec<OrderSeat> = sqlx::query_as(
        "SELECT id AS seat_id, section_id, label FROM seats
         WHERE section_id = $1 AND state = 'available'
         ORDER BY sort_key LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(section_id)
    .bind(i64::from(quantity))
    .fetch_all(&mut *conn)
    .await?;
    if seats.len() < quantity as usize {
        let expired: Vec<OrderSeat> = sqlx::query_as(
            "SELECT id AS seat_id, section_id, label FROM seats
             WHERE section_id = $1 AND state = 'held' AND held_until <= now()
             ORDER BY held_until LIMIT $2 FOR UPDATE SKIP LOCKED",
        )
        .bind(section_id)
        .bind(i64::from(quantity) - seats.len() as i64)
        .fetch_all(&mut *conn)
        .await?;
        seats.extend(expired);
    }
    if seats.len() < quantity as usize {
        return Err(shortage(conn, section_id, quantity).await);
    }
    Ok(seats)
}

/// Takes the best `quantity` seats of a reserved section (see [`best_available`]).
///
/// Reads the free seats without locks, ranks disjoint choices, then locks one choice
/// at a time with `SKIP LOCKED`: a choice another order got to first is passed over
/// for the next instead of waiting.
pub async fn take_best(
    conn: &mut PgConnection,
    section_id: Uuid,
    quantity: u32,
    attempts: usize,
) -> Result<Vec<OrderSeat>> {
    let candidates: Vec<Candidate> = sqlx::query_as::<_, (i64, i32, i32)>(
        "SELECT id, row_rank, seat_number FROM seats
         WHERE section_id = $1 AND (state = 'available' OR (state = 'held' AND held_until <= now()))
         ORDER BY row_rank, seat_number",
    )
    .bind(section_id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(id, row_rank, seat_number)| Candidate { id, row_rank, seat_number })
    .collect();
    for option in best_available::options(&candidates, quantity as usize, attempts) {
        let seats: Vec<OrderSeat> = sqlx::query_as(
            "SELECT id AS seat_id, section_id, label FROM seats
             WHERE id = ANY($1) AND (state = 'available' OR (state = 'held' AND held_until <= now()))
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
        "SELECT count(*) FROM seats
         WHERE section_id = $1 AND (state = 'available' OR (state = 'held' AND held_until <= now()))",
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
