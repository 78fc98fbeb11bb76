//! What the sale's reads and orders return: read models the store fills and the
//! gateway serialises as they are.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::sale_state::SaleState;
use crate::states::{BookingStatus, HoldStatus, SeatState, SectionKind};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Price {
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct EventSummary {
    pub id: Uuid,
    pub name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub currency: String,
    pub capacity: i64,
    pub created_at: DateTime<Utc>,
    /// Since when the public catalogue lists it; none: not listed.
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventDetails {
    pub id: Uuid,
    pub name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub max_per_order: i32,
    /// Places one fan may hold and book in this event in all; none: no limit.
    pub max_per_fan: Option<i32>,
    pub hold_ttl_seconds: i32,
    pub sections: Vec<SectionView>,
    /// How much a fan gets back for cancelling; none: fans may not cancel.
    pub refund_policy: Option<crate::domain::refund_policy::RefundPolicy>,
    /// When the organizer cancelled the whole event; nothing is sold after it.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Whether fans may join a waitlist for its sold-out sections.
    pub waitlist_enabled: bool,
    /// How long a waitlist offer holds its places for the fan.
    pub waitlist_offer_ttl_secs: i32,
    /// Since when the public catalogue lists it; none: not listed.
    pub published_at: Option<DateTime<Utc>>,
}

/// An event as the public catalogue lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogueEvent {
    pub id: Uuid,
    pub name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub currency: String,
    /// The cheapest section's price.
    pub price_from: Price,
    /// The dearest section's price.
    pub price_to: Price,
    /// Whether places are for sale now (as stale as `gateway.seat_map_max_age_ms`).
    pub sale_state: SaleState,
    /// In the venue's order, with what each has for sale.
    pub sections: Vec<CatalogueSection>,
    /// Whether fans may wait for its sold-out sections.
    pub waitlist_enabled: bool,
    /// Its waiting room, when the organizer has set one: fans join it to buy.
    pub waiting_room: Option<WaitingRoomStatus>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CatalogueSection {
    pub id: Uuid,
    pub name: String,
    pub kind: SectionKind,
    /// In the event's currency.
    pub price_minor: i64,
    /// Places for sale now.
    pub remaining: i64,
}

/// An event's waiting room as the catalogue shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitingRoomStatus {
    /// The organizer's setting: `running`, `paused` or `closed`.
    #[schema(pattern = "^(running|paused|closed)$")]
    pub state: String,
    /// When it lets fans in, if it has not yet.
    pub opens_at: Option<DateTime<Utc>>,
    /// Running, and its opening time (if any) passed: fans joining now are let in as
    /// their turn comes.
    pub open: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SectionView {
    pub id: Uuid,
    pub name: String,
    pub kind: SectionKind,
    pub price: Price,
    pub capacity: i64,
    pub remaining: i64,
    pub held: i64,
    pub booked: i64,
    /// Free places kept for the section's waitlist (nothing is for sale while anyone
    /// waits for it): remaining + held + booked + kept_for_waitlist = capacity.
    pub kept_for_waitlist: i64,
}

/// A fan's waitlist entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitlistEntryView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub status: crate::states::WaitlistState,
    pub quantity: i32,
    /// The sections the fan accepts, the preferred first.
    pub section_ids: Vec<Uuid>,
    pub allow_partial: bool,
    /// While waiting: 1 + the entries ahead that want any of these sections.
    pub position: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The hold offered, once there is one.
    pub offer: Option<WaitlistOffer>,
}

/// Places offered to a waitlist entry: a hold for the fan. Take it with the hold's
/// checkout (or confirm it when free) before `expires_at`; release it to decline.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitlistOffer {
    pub hold_id: Uuid,
    pub expires_at: DateTime<Utc>,
    /// The offer's capability link: the hold's routes take it as `?link=…` in place of
    /// an access token (the offer may come after the fan's token expired). None where
    /// the gateway has no ticket keys.
    pub link: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SeatView {
    pub id: i64,
    pub label: String,
    pub section_id: Uuid,
    pub row: Option<String>,
    pub number: i32,
    pub status: SeatState,
}

/// An event's venue as the live seat map draws it (issue 17): what never changes after
/// creation (D8), so it is cached long; the seats' states come separately
/// (`seat_feed::live`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeatLayout {
    pub event_id: Uuid,
    pub sections: Vec<LayoutSection>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LayoutSection {
    pub id: Uuid,
    pub name: String,
    pub kind: SectionKind,
    pub price: Price,
    /// General admission: how many places (they have no seats on the map).
    pub capacity: i64,
    /// Reserved: rows best first, each with its seats in number order.
    pub rows: Vec<LayoutRow>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LayoutRow {
    /// None for a section of one unnamed row.
    pub label: Option<String>,
    /// `[seat id, seat number, seat label]` each.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub seats: Vec<(i64, i32, String)>,
}

/// What an open page's heartbeat did to its hold.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HoldHeartbeat {
    pub hold_id: Uuid,
    /// When the hold lapses now.
    pub expires_at: DateTime<Utc>,
    /// The latest it can ever last (its creation plus `gateway.hold_max_lifetime_secs`;
    /// a waitlist offer: its own expiry, offers are not extended). Show it: no
    /// heartbeat moves it.
    pub latest_expires_at: DateTime<Utc>,
    /// Whether this heartbeat moved `expires_at`: false at the cap, for an offer, or
    /// when the hold already lasts longer than a heartbeat would make it.
    pub extended: bool,
}

/// A seat inside a hold or booking.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct OrderSeat {
    pub seat_id: i64,
    pub section_id: Uuid,
    /// None for general admission.
    pub label: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HoldView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub status: HoldStatus,
    pub expires_at: DateTime<Utc>,
    pub seats: Vec<OrderSeat>,
    pub total: Price,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BookingView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub hold_id: Option<Uuid>,
    pub status: BookingStatus,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub seats: Vec<OrderSeat>,
    pub total: Price,
    /// The payment that bought it (none for a free booking).
    pub payment_id: Option<Uuid>,
    /// The refund its cancellation started, and how far it got.
    pub refund: Option<RefundView>,
    /// The booking's capability link (DECISIONS.md D7), on the fan's own answers: its
    /// tickets are at `…/bookings/{id}/tickets?link=<this>` until a day after the event
    /// starts, without an access token. Keep it private, like the tickets themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Which links are valid: moving it on revokes the ones given out before.
    #[serde(skip)]
    pub link_generation: i32,
}

/// Money going back for a booking.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundView {
    pub id: Uuid,
    pub amount: Price,
    pub status: crate::states::RefundStatus,
}

/// A booking as the organizer sees it: with the fan, event and sections named.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminBookingView {
    pub id: Uuid,
    pub fan_id: String,
    pub event: NamedRef,
    pub status: BookingStatus,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub seats: Vec<AdminBookedSeat>,
    pub total: Price,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NamedRef {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdminBookedSeat {
    pub seat_id: i64,
    pub label: Option<String>,
    pub section: NamedRef,
    pub price_minor: i64,
}

impl AdminBookedSeat {
    pub fn into_order_seat(self) -> OrderSeat {
        OrderSeat { seat_id: self.seat_id, section_id: self.section.id, label: self.label }
    }
}

/// An admission the organizer revoked: one token (`jti`) or every token a fan held for
/// the event up to `revoked_at` (`fan_id`); the other field is null. Past `expires_at`
/// no token it matches is valid any more.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema, PartialEq, Eq)]
pub struct Revocation {
    pub event_id: Uuid,
    pub jti: Option<Uuid>,
    pub fan_id: Option<String>,
    pub revoked_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a payment is listed for the organizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttentionReason {
    /// Paid after its hold lapsed and its seats were sold: refunded in full.
    LatePaymentRefunded,
    /// The provider gave up a refund of it (a closed card): the money is not back with
    /// the fan, and must be returned another way.
    RefundFailed,
}

/// A payment the organizer should look at.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttentionPayment {
    pub reason: AttentionReason,
    /// The provider's status and reason when a refund failed, e.g.
    /// `failed: expired_or_canceled_card`.
    pub refund_failure: Option<String>,
    pub payment_id: Uuid,
    pub event_id: Uuid,
    pub hold_id: Uuid,
    pub fan_id: String,
    pub amount: Price,
    pub refunded: Price,
    pub status: crate::states::PaymentStatus,
    pub resolution: Option<crate::states::PaymentResolution>,
    pub created_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}
