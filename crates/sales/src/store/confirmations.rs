//! The confirmation emails' subscriber and what an email says about a booking
//! (`migrations/*_confirmation_emails.sql`). The tickets themselves are read by
//! [`crate::store::tickets::of_booking`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::refund_policy::RefundPolicy;
use crate::error::Result;
use crate::states::BookingStatus;

/// Turns the confirmation emails' subscriber (`id`) on, writing it if it is missing:
/// active, hearing every event's `booking.confirmed`, and the deliveries written while
/// it was paused due now; or off: inactive and hearing nothing, so no delivery piles up
/// while emails are off (a missing subscriber stays missing). One statement; doing it
/// again changes nothing.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn set_subscriber(conn: &mut PgConnection, id: Uuid, on: bool) -> Result<()> {
    sqlx::query(
        "WITH turned_on AS (
             INSERT INTO outbox_subscribers (id, kind, event_id, topics, active)
             SELECT $1, 'confirmation_email', NULL, ARRAY['booking.confirmed'], true
             WHERE $2
             ON CONFLICT (id) DO UPDATE SET active = true, topics = excluded.topics
         ), turned_off AS (
             UPDATE outbox_subscribers SET active = false, topics = '{}'
             WHERE id = $1 AND NOT $2
         )
         UPDATE outbox_deliveries SET next_attempt_at = now()
         WHERE $2 AND subscriber_id = $1 AND status = 'pending' AND next_attempt_at = 'infinity'",
    )
    .bind(id)
    .bind(on)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a confirmation email says of the booking besides its tickets.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BookingRow {
    pub event_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub refund_policy: Option<sqlx::types::Json<RefundPolicy>>,
    pub status: BookingStatus,
    pub link_generation: i32,
    pub total_minor: i64,
    pub currency: String,
}

/// The booking `booking_id` of `event_id`, whoever's it is; None if there is none.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn booking(conn: &mut PgConnection, event_id: Uuid, booking_id: Uuid) -> Result<Option<BookingRow>> {
    Ok(sqlx::query_as(
        "SELECT e.name AS event_name, e.starts_at, e.refund_policy, b.status, b.link_generation,
                b.total_minor, e.currency
         FROM bookings b JOIN events e ON e.id = b.event_id
         WHERE b.id = $1 AND b.event_id = $2",
    )
    .bind(booking_id)
    .bind(event_id)
    .fetch_optional(conn)
    .await?)
}
