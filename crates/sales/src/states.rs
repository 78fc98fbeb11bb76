//! The states the database types as enums (`migrations/*_inventory.sql`), as Rust enums
//! that read and write those types directly and serialise as the API spells them.

use std::fmt;

use serde::Serialize;

/// `seat_state`: who owns a seat row now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "seat_state", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SeatState {
    Available,
    Held,
    Booked,
}

/// `hold_status`: an active hold ends confirmed, released by the fan, or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "hold_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Confirmed,
    Released,
    Expired,
}

/// `booking_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "booking_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Confirmed,
    Cancelled,
}

/// `waitlist_entry_status`: in line, out of it with an offer, or gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[sqlx(type_name = "waitlist_entry_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum WaitlistEntryStatus {
    Waiting,
    Offered,
    Left,
}

/// Where a fan's waitlist entry stands, as they see it: its status and its offer's
/// hold together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WaitlistState {
    /// In line (see `position`).
    Waiting,
    /// Places are held for the fan until `offer.expires_at`.
    Offered,
    /// The fan took the offer: it is a booking.
    Accepted,
    /// The fan released the offer's hold.
    Declined,
    /// The offer ran out before the fan took it.
    Expired,
    /// The fan left the line, or the organizer closed the waitlist.
    Left,
}

/// `section_kind`: named seats in rows, or places without names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "section_kind", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    Reserved,
    GeneralAdmission,
}

/// `payment_status`: a payment attempt, from creation to the provider's verdict, then
/// refunds. `failed` is not final: a declined intent may be paid again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "payment_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Created,
    Pending,
    Succeeded,
    Failed,
    Canceled,
    Refunded,
    PartiallyRefunded,
}

/// `payment_resolution`: what became of a succeeded payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "payment_resolution", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PaymentResolution {
    /// Its hold was live and became a booking.
    Booked,
    /// Its hold had lapsed; its seats (or like places) were taken again and booked.
    LateBooked,
    /// Nothing could be booked for it; it was refunded in full.
    Refunded,
}

/// `refund_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "refund_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

/// `refund_reason`: why money goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "refund_reason", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Cancellation,
    LatePayment,
    DuplicatePayment,
    EventCancelled,
}

/// `outbox_subscriber_kind`: who an outbox subscriber is, and so which consumer drains
/// its deliveries (the webhook relay, the confirmation emails' sender, or the waiting
/// room's slot release).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "outbox_subscriber_kind", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SubscriberKind {
    Webhook,
    ConfirmationEmail,
    SlotRelease,
}

/// Messages name a state as the API does; the serde rename rule is the one spelling.
impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => f.write_str(&name),
            _ => write!(f, "{self:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_named_as_the_api_and_the_database_name_them() {
        assert_eq!(HoldStatus::Released.to_string(), "released");
        assert_eq!(serde_json::to_value(SectionKind::GeneralAdmission).unwrap(), "general_admission");
        assert_eq!(serde_json::to_value(BookingStatus::Cancelled).unwrap(), "cancelled");
        assert_eq!(serde_json::to_value(SeatState::Available).unwrap(), "available");
    }
}
