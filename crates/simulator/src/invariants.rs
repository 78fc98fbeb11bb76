//! After the sale: what the database says was sold, and whether anything was sold twice.
//! The simulator's own counts are not trusted for this.

use sales::states::BookingStatus;
use sales::store::invariants::{self, Violations};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::error::Error;
use crate::fan::ToldBooking;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseCheck {
    /// The event the rehearsal created and sold.
    pub event_id: Uuid,
    pub capacity: i64,
    /// Places in live bookings of the event.
    pub seats_sold: i64,
    /// Confirmed bookings of the event.
    pub bookings: i64,
    /// The oversell watchdog's invariants, all of which must be 0.
    pub violations: Violations,
    pub told: ToldCheck,
}

/// Bookings fans were told about (a 2xx with a booking id), looked up in the database.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ToldCheck {
    pub told: usize,
    /// Found, in the state the fan was last told (or either, when a cancel got no answer).
    pub found: usize,
    /// Ids not in the database at all.
    pub missing: Vec<Uuid>,
    /// Ids in the database in another state than the fan was told.
    pub wrong_state: Vec<Uuid>,
}

/// The watchdog's default scope: a rehearsal's event has no start time and was created
/// moments ago, so it is in scope.
const SCOPE: invariants::Scope = invariants::Scope {
    after_start_hours: 24,
    undated_days: 7,
    time_limit: std::time::Duration::from_secs(60),
    payment_window: std::time::Duration::from_secs(330),
};

pub async fn check(database_url: &str, event: Uuid, told: &[ToldBooking]) -> Result<DatabaseCheck, Error> {
    let pool = PgPoolOptions::new().max_connections(1).connect(database_url).await?;
    let (capacity, seats_sold, bookings): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(capacity), 0)::bigint FROM sections WHERE event_id = $1),
                (SELECT count(*) FROM booking_seats bs JOIN bookings b ON b.id = bs.booking_id
                 WHERE bs.live AND b.event_id = $1),
                (SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'confirmed')",
    )
    .bind(event)
    .fetch_one(&pool)
    .await?;
    let violations = invariants::check(&mut *pool.begin().await?, SCOPE).await?;
    let ids: Vec<Uuid> = told.iter().map(|t| t.id).collect();
    let rows: Vec<(Uuid, BookingStatus)> =
        sqlx::query_as("SELECT id, status FROM bookings WHERE event_id = $1 AND id = ANY($2)")
            .bind(event)
            .bind(&ids)
            .fetch_all(&pool)
            .await?;
    pool.close().await;
    let states: std::collections::HashMap<Uuid, BookingStatus> = rows.into_iter().collect();
    let mut check = ToldCheck { told: told.len(), ..ToldCheck::default() };
    for booking in told {
        match states.get(&booking.id) {
            None => check.missing.push(booking.id),
            Some(_) if booking.cancel_unanswered => check.found += 1,
            Some(BookingStatus::Cancelled) if booking.cancelled => check.found += 1,
            Some(BookingStatus::Confirmed) if !booking.cancelled => check.found += 1,
            Some(_) => check.wrong_state.push(booking.id),
        }
    }
    Ok(DatabaseCheck { event_id: event, capacity, seats_sold, bookings, violations, told: check })
}
