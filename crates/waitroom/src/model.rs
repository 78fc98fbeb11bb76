//! What the waiting room answers, as JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::backpressure::BackpressureView;
use crate::domain::budget::{rate_in_force, Budget, RateReason, SaleState};
use crate::domain::settings::{EventState, WaitroomEvent};
use crate::store::Stats;

/// A fan's standing, answered to join and poll.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FanView {
    pub event_id: Uuid,
    pub fan_id: String,
    /// What the fan polls and leaves with. Every answer carries a fresh one, which
    /// says where the fan stands now: keep the latest. If the waiting room loses its
    /// queue (a Redis failure), polling with it puts the fan back in their place.
    pub ticket: String,
    /// `pre_queue` (joined before opening; place told once the sale opens), `waiting` or `admitted`.
    #[schema(value_type = String)]
    pub status: &'static str,
    /// 1 is next; absent in the pre-queue and once admitted.
    pub position: Option<u64>,
    pub queue_length: u64,
    /// Absent when nobody can say (paused, closed, pre-queue, admitted).
    pub eta_seconds: Option<u64>,
    /// Seconds to wait before polling again: short near the front, up to a third of
    /// the abandonment timeout far back. Absent once admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_after_secs: Option<u64>,
    pub event_state: EventState,
    /// What the sale has left, derived from its inventory beside the organizer's
    /// `event_state`: `on_sale`; `all_held` (every remaining place is in someone's
    /// basket, some may come back: keep your place); `sold_out` (nobody more is let in).
    /// Absent when the waiting room cannot tell (the sale does not know the event, or
    /// its counts could not be read lately).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sale_state: Option<SaleState>,
    pub opens_at: Option<DateTime<Utc>>,
    /// Present while the fan waits in line for a show that is `sold_out` and has a
    /// waitlist: a token the gateway accepts for joining that waitlist only
    /// (`POST /v1/events/{event_id}/waitlist`, then `GET …/waitlist/me`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waitlist_token_expires_at: Option<DateTime<Utc>>,
    /// Present once admitted: the token the booking gateway accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_expires_at: Option<DateTime<Utc>>,
}

/// An event's waiting room as the organizer sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SettingsView {
    pub event_id: Uuid,
    pub state: EventState,
    pub admit_rate: f64,
    pub max_active: u32,
    pub token_lifetime_secs: u32,
    pub opens_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    /// Proof of work at the door: absent when joins need none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pow_difficulty: Option<u32>,
    #[serde(flatten)]
    pub shuffle: ShuffleView,
}

/// The shuffle audit trail: commitment before opening, seed after.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ShuffleView {
    pub seed_sha256: String,
    pub seed: Option<String>,
}

/// An event's waiting room as anyone may see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicEventView {
    pub event_id: Uuid,
    pub state: EventState,
    pub opens_at: Option<DateTime<Utc>>,
    pub opened_at: Option<DateTime<Utc>>,
    /// Present when a join must carry a proof of work: fetch a challenge from
    /// `GET /v1/events/{event_id}/queue/challenge` and solve it first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pow_difficulty: Option<u32>,
    #[serde(flatten)]
    pub shuffle: ShuffleView,
}

impl SettingsView {
    pub fn new(event_id: Uuid, event: WaitroomEvent) -> Self {
        let s = event.settings;
        Self {
            event_id,
            state: s.state,
            admit_rate: s.admit_rate,
            max_active: s.max_active,
            token_lifetime_secs: s.token_lifetime_secs,
            opens_at: s.opens_at,
            opened_at: event.opened_at,
            pow_difficulty: s.pow_difficulty,
            shuffle: ShuffleView { seed_sha256: event.seed_sha256, seed: event.seed },
        }
    }
}

impl PublicEventView {
    pub fn new(event_id: Uuid, event: WaitroomEvent) -> Self {
        Self {
            event_id,
            state: event.settings.state,
            opens_at: event.settings.opens_at,
            opened_at: event.opened_at,
            pow_difficulty: event.settings.pow_difficulty,
            shuffle: ShuffleView { seed_sha256: event.seed_sha256, seed: event.seed },
        }
    }
}

/// The organizer's live stats: the queue and the room, and what the sale has left.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsView {
    #[serde(flatten)]
    pub room: Stats,
    /// Absent when the sale does not know the event or its counts are stale (then
    /// admission follows `admit_rate` and `max_active` alone).
    pub inventory: Option<InventoryView>,
    pub admission: AdmissionView,
}

/// The rate fans are let in at now, why, and the gateways' distress behind it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdmissionView {
    /// Fans per second.
    pub rate_in_force: f64,
    pub reason: RateReason,
    pub backpressure: BackpressureView,
}

impl AdmissionView {
    /// The event's admission now, with `active` fans admitted: the organizer's rate
    /// once the sale is open and running, capped and cut as [`rate_in_force`] says.
    pub fn new(
        event: &WaitroomEvent,
        active: u64,
        budget: Option<&Budget>,
        backpressure: BackpressureView,
        now: DateTime<Utc>,
    ) -> Self {
        let settings = &event.settings;
        let open = event.opened_at.is_some() || settings.opens_at.is_none_or(|at| at <= now);
        let admit_rate = if open && settings.state == EventState::Running { settings.admit_rate } else { 0.0 };
        let max_active = u64::from(settings.max_active);
        let in_force = rate_in_force(admit_rate, active, max_active, budget, backpressure.rate_share);
        Self { rate_in_force: in_force.rate, reason: in_force.reason, backpressure }
    }
}

/// The admission budget as this replica last read the sale's inventory.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventoryView {
    pub sale_state: SaleState,
    /// Places the next order may take.
    pub sellable: i64,
    /// Places held by holds still running.
    pub held: i64,
    /// Admitted fans the remaining places can use: admission stops while as many shop.
    pub shopper_cap: u64,
}

impl InventoryView {
    pub fn new(budget: Budget) -> Self {
        Self {
            sale_state: budget.sale_state(),
            sellable: budget.availability.sellable,
            held: budget.availability.held,
            shopper_cap: budget.shopper_cap,
        }
    }
}
