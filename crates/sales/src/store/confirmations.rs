//! The fan emails' subscriber and what an email says about a booking or a waitlist
//! offer (`migrations/*_confirmation_emails.sql`). A booking's tickets themselves are
//! read by [`crate::store::tickets::of_booking`].

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::refund_policy::RefundPolicy;
use crate::error::Result;
use crate::states::BookingStatus;

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
