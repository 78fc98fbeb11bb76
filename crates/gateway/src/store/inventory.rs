//! Taking seats: the locking at the heart of "never oversell".
//!
//! Every function here runs inside the caller's transaction and returns seats whose
//! rows it has locked and found takeable: available, or held by a hold that has
//! expired. The caller then writes its hold or booking over them and commits.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::best_available::{self, Candidate};
use crate::domain::Invalid;
use crate::error::{Error, Result};
use crate::model::OrderSeat;

/// Locks exactly these seats, all or none, failing fast: a row another transaction
/// has locked is `seat_contended` at once (NOWAIT), a row that is taken is
/// `seat_unavailable`. Rows are locked in id order, so two orders for overlapping
/// seats never deadlock.
pub async fn lock_chosen(conn: &mut PgConnection, event_id: Uuid, labels: &[String]) -> Result<Vec<OrderSeat>> {
    let rows: Vec<(i64, Uuid, Option<String>, bool)> = sqlx::query_as(
        "SELECT id, section_id, label,
                state = 'available' OR (state = 'held' AND held_until <= now()) AS takeable
         FROM seats WHERE event_id = $1 AND label = ANY($2)
         ORDER BY id FOR UPDATE NOWAIT",
    )
    .bind(event_id)
    .bind(labels)
    .fetch_all(&mut *conn)
    .await?;
    if rows.len() < labels.len() {
        let missing = labels.iter().find(|l| !rows.iter().any(|r| r.2.as_deref() == Some(l.as_str())));
        let label = missing.map(String::as_str).unwrap_or_default();
        return Err(Invalid::new("unknown_seat", format!("this event has no seat {label}")).into());
    }
    if let Some((_, _, label, _)) = rows.iter().find(|r| !r.3) {
        return Err(Error::SeatUnavailable(label.clone().unwrap_or_default()));
    }
    Ok(rows.into_iter().map(|(seat_id, section_id, label, _)| OrderSeat { seat_id, section_id, label }).collect())
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
