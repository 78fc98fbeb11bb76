//! After the sale: what the database says was sold, and whether anything was sold twice.
//! The simulator's own counts are not trusted for this.

use gateway::store::invariants::{self, Violations};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::error::Error;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseCheck {
    pub capacity: i64,
    /// Places in live bookings of the event.
    pub seats_sold: i64,
    /// Confirmed bookings of the event.
    pub bookings: i64,
    /// The oversell watchdog's invariants, all of which must be 0.
    pub violations: Violations,
}

/// The watchdog's default scope: a rehearsal's event has no start time and was created
/// moments ago, so it is in scope.
const SCOPE: invariants::Scope =
    invariants::Scope { after_start_hours: 24, undated_days: 7, time_limit: std::time::Duration::from_secs(60) };

pub async fn check(database_url: &str, event: Uuid) -> Result<DatabaseCheck, Error> {
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
    let violations = invariants::check(&pool, SCOPE).await?;
    pool.close().await;
    Ok(DatabaseCheck { capacity, seats_sold, bookings, violations })
}
