//! What the sale tells the world: the outbox's messages, written by the transaction
//! that makes the change they report (`migrations/*_outbox.sql`), delivered at least
//! once to every subscriber by the relay in the scheduler.
//!
//! Each message is a versioned JSON document:
//! `{"type": "booking.confirmed", "version": 1, "timestamp": "…", "data": {…}}`, where
//! `timestamp` is the database's clock at the change and `data` is the
//! [`Message`]'s fields, or [`BookingConfirmed`]'s, which the booking statements write
//! themselves (`store::bookings`). A field may be added within a version; removing or changing
//! one makes a new version. The README's "Outbox events" lists them all.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::Price;

/// One outbox message's content; its variant names the topic.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Message {
    BookingCancelled(BookingCancelled),
    PaymentSucceeded(PaymentSucceeded),
    PaymentRefunded(PaymentRefunded),
    RefundFailed(RefundFailed),
    HoldExpired(HoldExpired),
    LatePaymentNeedsAttention(LatePaymentNeedsAttention),
    WaitlistJoined(WaitlistJoined),
    WaitlistOfferMade(WaitlistOfferMade),
}

/// The version every message is written with today.
pub const VERSION: i32 = 1;

/// Every topic, as [`Message::topic`] names them: what a subscriber's topic filter may
/// name.
pub const TOPICS: [&str; 9] = [
    "booking.confirmed",
    "booking.cancelled",
    "payment.succeeded",
    "payment.refunded",
    "refund.failed",
    "hold.expired",
    "late_payment.needs_attention",
    "waitlist.joined",
    "waitlist.offer_made",
];

impl Message {
    pub fn topic(&self) -> &'static str {
        match self {
            Self::BookingCancelled(_) => "booking.cancelled",
            Self::PaymentSucceeded(_) => "payment.succeeded",
            Self::PaymentRefunded(_) => "payment.refunded",
            Self::RefundFailed(_) => "refund.failed",
            Self::HoldExpired(_) => "hold.expired",
            Self::LatePaymentNeedsAttention(_) => "late_payment.needs_attention",
            Self::WaitlistJoined(_) => "waitlist.joined",
            Self::WaitlistOfferMade(_) => "waitlist.offer_made",
        }
    }

    pub fn event_id(&self) -> Uuid {
        match self {
            Self::BookingCancelled(m) => m.event_id,
            Self::PaymentSucceeded(m) => m.event_id,
            Self::PaymentRefunded(m) => m.event_id,
            Self::RefundFailed(m) => m.refund.event_id,
            Self::HoldExpired(m) => m.event_id,
            Self::LatePaymentNeedsAttention(m) => m.event_id,
            Self::WaitlistJoined(m) => m.event_id,
            Self::WaitlistOfferMade(m) => m.event_id,
        }
    }

    /// The message's `data`.
    pub fn data(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("outbox messages always serialise")
    }
}

/// A seat of a booking, as messages name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSeat {
    pub seat_id: i64,
    pub section_id: Uuid,
    /// None for general admission.
    pub label: Option<String>,
}

/// `booking.confirmed`'s `data`. Written in SQL by the statement that books (so a
/// one-step booking needs no transaction around it), hence not a [`Message`]; read it
/// with this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingConfirmed {
    pub event_id: Uuid,
    pub booking_id: Uuid,
    pub fan_id: String,
    pub hold_id: Option<Uuid>,
    /// None for free bookings.
    pub payment_id: Option<Uuid>,
    /// The address the fan gave for their confirmation, if any.
    pub email: Option<String>,
    /// In seat id order.
    pub seats: Vec<MessageSeat>,
    pub total: Price,
}

/// Who cancelled a booking.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Fan,
    Organizer,
    /// The organizer cancelled the whole event.
    EventCancelled,
}

#[derive(Debug, Clone, Serialize)]
pub struct BookingCancelled {
    pub event_id: Uuid,
    pub booking_id: Uuid,
    pub fan_id: String,
    pub cancelled_by: CancelledBy,
    /// The refund the cancellation started, if any (its own `payment.refunded` follows
    /// when the provider confirms it).
    pub refund_id: Option<Uuid>,
    pub refund: Option<Price>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentSucceeded {
    pub event_id: Uuid,
    pub payment_id: Uuid,
    pub hold_id: Uuid,
    pub fan_id: String,
    pub intent_id: String,
    pub amount: Price,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentRefunded {
    pub event_id: Uuid,
    pub refund_id: Uuid,
    pub payment_id: Uuid,
    pub booking_id: Option<Uuid>,
    pub reason: crate::states::RefundReason,
    pub amount: Price,
}

/// The provider gave up on a refund (the card was closed, the bank refused it), or one
/// it had confirmed failed later: the money is not back with the fan, and the payment
/// is listed for the organizer (`needs_attention`) to return it another way.
/// Its `data` is the refund as `payment.refunded` names it, and `failure`.
#[derive(Debug, Clone, Serialize)]
pub struct RefundFailed {
    #[serde(flatten)]
    pub refund: PaymentRefunded,
    /// The provider's status and reason, e.g. `failed: expired_or_canceled_card`.
    pub failure: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HoldExpired {
    pub event_id: Uuid,
    pub hold_id: Uuid,
    pub fan_id: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatePaymentNeedsAttention {
    pub event_id: Uuid,
    pub payment_id: Uuid,
    pub hold_id: Uuid,
    pub fan_id: String,
    pub amount: Price,
    /// The full refund already started for it.
    pub refund_id: Uuid,
    pub reason: String,
}

/// A fan joined the event's waitlist: done shopping for now (the waiting room frees
/// their place in the room, as for a booking).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitlistJoined {
    pub event_id: Uuid,
    pub entry_id: Uuid,
    pub fan_id: String,
    pub quantity: i64,
    pub section_ids: Vec<Uuid>,
    pub allow_partial: bool,
}

/// Places offered to a waitlist entry: a hold for the fan until `expires_at`. Read back
/// by the email sender.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitlistOfferMade {
    pub event_id: Uuid,
    pub entry_id: Uuid,
    pub fan_id: String,
    pub hold_id: Uuid,
    /// The address the fan gave when joining, if any.
    pub email: Option<String>,
    pub seats: Vec<MessageSeat>,
    pub total: Price,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}
