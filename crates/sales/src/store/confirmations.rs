//! The fan emails' subscriber and what an email says about a booking or a waitlist
//! offer (`migrations/*_confirmation_emails.sql`). A booking's tickets themselves are
//! read by [`crate::store::tickets::of_booking`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::refund_policy::RefundPolicy;
use crate::error::Result;
use crate::states::BookingStatus;

/// Turns the fan emails' subscriber (`id`) on, writing it if it is missing: active,
/// hearing every event's `booking.confirmed` and `waitlist.offer_made` (an older row's
/// topics are brought up to date), and the deliveries written while
/// it was paused due now; or off: inactive and hearing nothing, so no delivery piles up
/// while emails are off (a missing subscriber stays missing). One statement; doing it
/// again changes nothing.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn set_subscriber(conn: &mut PgConnection, id: Uuid, on: bool) -> Result<()> {
    sqlx::query(
        "WITH turned_on AS (
             INSERT INTO outbox_subscribers (id, kind, event_id, topics, active)
             SELECT $1, 'confirmation_email', NULL, ARRAY['booking.confirmed', 'waitlist.offer_made'], true
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

/// What an offer's email says of the hold made for the fan.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OfferRow {
    pub event_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// Still active and in its time: worth telling the fan about.
    pub live: bool,
}

/// The event's hold `hold_id` if it was made as a waitlist offer; None otherwise.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn offer(conn: &mut PgConnection, event_id: Uuid, hold_id: Uuid) -> Result<Option<OfferRow>> {
    Ok(sqlx::query_as(
        "SELECT e.name AS event_name, e.starts_at, h.expires_at,
                h.status = 'active' AND h.expires_at > now() AS live
         FROM holds h JOIN events e ON e.id = h.event_id
         WHERE h.id = $1 AND h.event_id = $2 AND h.waitlist_entry_id IS NOT NULL",
    )
    .bind(hold_id)
    .bind(event_id)
    .fetch_optional(conn)
    .await?)
}

/// One place a hold holds, as an email names it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlaceRow {
    /// None for general admission.
    pub label: Option<String>,
    pub section_name: String,
}

/// The places the hold was made with, best first.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn hold_places(conn: &mut PgConnection, hold_id: Uuid) -> Result<Vec<PlaceRow>> {
    Ok(sqlx::query_as(
        "SELECT s.label, sec.name AS section_name
         FROM hold_seats h JOIN seats s ON s.id = h.seat_id JOIN sections sec ON sec.id = s.section_id
         WHERE h.hold_id = $1 ORDER BY s.sort_key",
    )
    .bind(hold_id)
    .fetch_all(conn)
    .await?)
}
