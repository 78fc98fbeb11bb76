//! Every metric the waiting room records, named in one place.

use std::time::Duration;

use uuid::Uuid;

use crate::domain::budget::{self, Budget, RateReason};
use crate::store::{Room, Step};

/// Joins that put a fan in line (repeated joins of a waiting fan are not counted).
pub const JOINS: &str = "boxoffice_waitroom_joins_total";
/// Fans admitted, by event.
pub const ADMISSIONS: &str = "boxoffice_waitroom_admissions_total";
/// Abandoned fans skipped when their turn came, by event.
pub const SKIPPED: &str = "boxoffice_waitroom_abandoned_skipped_total";
/// Access tokens signed (every poll of an admitted fan signs one).
pub const TOKENS_ISSUED: &str = "boxoffice_waitroom_tokens_issued_total";
/// Fans waiting (pre-queue included), by event, as of this replica's last admission
/// step; every replica reports the same line, so aggregate with `max by (event)`.
pub const QUEUE_LENGTH: &str = "boxoffice_waitroom_queue_length";
/// Admitted fans whose admission has not expired, by event (counts under `max_active`).
pub const ACTIVE: &str = "boxoffice_waitroom_active";
/// The organizer's cap on active fans, by event.
pub const MAX_ACTIVE: &str = "boxoffice_waitroom_max_active";
/// The admission rate in force, by event: the organizer's rate while running (a share
/// of it while the gateways report distress), 0 while paused, closed or before
/// opening, and while the room or the admission budget is full (so "queue waiting,
/// rate > 0, nobody admitted" is a stall). Why: [`ADMIT_RATE_REASON`].
pub const ADMIT_RATE: &str = "boxoffice_waitroom_admit_rate";
/// Places the next order may take, by event, as this replica's seat feed says (issue
/// 18); absent for an event the sale does not know.
pub const PLACES_SELLABLE: &str = "boxoffice_waitroom_places_sellable";
/// Places in someone's basket (held by a hold still running), by event.
pub const PLACES_HELD: &str = "boxoffice_waitroom_places_held";
/// The admission budget: admitted fans the remaining places can use, by event.
pub const SHOPPER_CAP: &str = "boxoffice_waitroom_shopper_cap";
/// 1 while an event's counts are too old to use (the seat feed cannot be read), so
/// admission follows the organizer's rate alone; 0 otherwise.
pub const INVENTORY_STALE: &str = "boxoffice_waitroom_inventory_stale";
/// Reads of the seat feed that failed (retried at the next refresh).
pub const INVENTORY_READ_FAILURES: &str = "boxoffice_waitroom_inventory_read_failures_total";
/// Admissions released because the fan booked (`crate::release`).
pub const SLOTS_RELEASED: &str = "boxoffice_waitroom_slots_released_total";
/// How long after the booking (or the waitlist join, by the database's clock) its fan's
/// admission was released: the "within a second or two" of issue 18.
pub const SLOT_RELEASE_DURATION: &str = "boxoffice_waitroom_slot_release_duration_seconds";
/// Bookings the slot release handled, by `outcome` (as every outbox consumer's:
/// `delivered`, `retried`, `abandoned`, `superseded`).
pub const SLOT_RELEASE_DELIVERIES: &str = "boxoffice_waitroom_slot_release_deliveries_total";
/// Slot releases that failed, by `reason`: `redis` (retried), `unreadable` (a message
/// that is not a booking this waiting room could have admitted: given up).
pub const SLOT_RELEASE_FAILURES: &str = "boxoffice_waitroom_slot_release_failures_total";
/// Runs of the slot release that failed (PostgreSQL unreachable): retried at the next
/// poll.
pub const SLOT_RELEASE_ERRORS: &str = "boxoffice_waitroom_slot_release_errors_total";
/// 1 for the reason the event's rate in force is what it is (`reason`: organizer_rate,
/// not_running, sold_out, budget_full, room_full, gateway_distress), 0 for the others.
pub const ADMIT_RATE_REASON: &str = "boxoffice_waitroom_admit_rate_reason";
/// Gateway replicas whose distress report has not expired.
pub const GATEWAYS_REPORTING: &str = "boxoffice_waitroom_gateways_reporting";
/// The gateways' mean distress level, 0 (fine) to 1 (saturated).
pub const GATEWAY_DISTRESS: &str = "boxoffice_waitroom_gateway_distress";
/// The share of the organizer's rate the back-pressure leaves, 0 to 1.
pub const RATE_SHARE: &str = "boxoffice_waitroom_backpressure_rate_share";
/// Each Redis script call of the waiting room, by command.
pub const REDIS_COMMAND_DURATION: &str = "boxoffice_redis_command_duration_seconds";
/// Joins, polls and leaves refused by a rate limit, by limit (`address` or `fan`: the
/// fan id of a join, the ticket of a poll or leave), counted by
/// [`service_kit::rate_limit::ClientLimits`].
pub const RATE_LIMITED: &str = "boxoffice_waitroom_rate_limited_total";
/// Admission steps that failed (Redis unreachable or a script error).
pub const ADMITTER_ERRORS: &str = "boxoffice_waitroom_admitter_errors_total";
/// Admissions admitted but not yet recorded in PostgreSQL, in this replica.
pub const RECORDS_PENDING: &str = "boxoffice_waitroom_admission_records_pending";
/// Writes of admission records that failed (kept and retried).
pub const RECORD_FAILURES: &str = "boxoffice_waitroom_admission_record_failures_total";
/// Admission records dropped unwritten because the buffer was full.
pub const RECORDS_DROPPED: &str = "boxoffice_waitroom_admission_records_dropped_total";
/// Events whose Redis state this replica rebuilt from PostgreSQL after Redis lost it.
pub const REBUILDS: &str = "boxoffice_waitroom_rebuilds_total";
/// Fans put back at the place their ticket named, after a wipe.
pub const PLACES_RESTORED: &str = "boxoffice_waitroom_places_restored_total";
/// Polls answered `409 queue_reset`: after a wipe, a ticket that could not restore.
pub const QUEUE_RESETS: &str = "boxoffice_waitroom_queue_resets_total";
/// Fans streaming their standing from this replica (`GET …/queue/{ticket}/stream`).
pub const LINE_STREAMS: &str = "boxoffice_waitroom_streams";
/// Events whose line this replica reads for its streaming fans.
pub const LINE_STREAM_EVENTS: &str = "boxoffice_waitroom_stream_events";
/// Reads of a line for its streams, by outcome (`ok`, `unknown_event`, `failed`): one
/// per event and replica per `waitroom.stream.tick_ms`, whatever the fans streaming.
pub const LINE_STREAM_READS: &str = "boxoffice_waitroom_stream_reads_total";
/// Streams refused for `waitroom.stream.max_streams`.
pub const LINE_STREAMS_REFUSED: &str = "boxoffice_waitroom_streams_refused_total";

/// Creates the event-independent counters at 0, so their first increment shows in
/// `rate()` and an idle panel reads 0 rather than "no data".
pub fn register() {
    for queue in ["queue", "pre_queue"] {
        metrics::counter!(JOINS, "queue" => queue).increment(0);
    }
    metrics::counter!(TOKENS_ISSUED).increment(0);
    metrics::counter!(ADMITTER_ERRORS).increment(0);
    metrics::gauge!(RECORDS_PENDING).set(0.0);
    metrics::counter!(RECORD_FAILURES).increment(0);
    metrics::counter!(RECORDS_DROPPED).increment(0);
    metrics::counter!(PLACES_RESTORED).increment(0);
    metrics::counter!(QUEUE_RESETS).increment(0);
    metrics::counter!(INVENTORY_READ_FAILURES).increment(0);
    metrics::counter!(SLOTS_RELEASED).increment(0);
    metrics::counter!(SLOT_RELEASE_ERRORS).increment(0);
    for outcome in ["ok", "unknown_event", "failed"] {
        metrics::counter!(LINE_STREAM_READS, "outcome" => outcome).increment(0);
    }
    metrics::counter!(LINE_STREAMS_REFUSED).increment(0);
    line_streams(0, 0);
}

pub fn line_streams(open: usize, events: usize) {
    metrics::gauge!(LINE_STREAMS).set(open as f64);
    metrics::gauge!(LINE_STREAM_EVENTS).set(events as f64);
}

pub fn line_stream_read(outcome: &'static str) {
    metrics::counter!(LINE_STREAM_READS, "outcome" => outcome).increment(1);
}

pub fn line_stream_refused() {
    metrics::counter!(LINE_STREAMS_REFUSED).increment(1);
}

pub fn joined(pre_queue: bool) {
    metrics::counter!(JOINS, "queue" => if pre_queue { "pre_queue" } else { "queue" }).increment(1);
}

pub fn admission_step(event_id: Uuid, step: &Step, budget: Option<&Budget>, rate_share: f64) {
    let event = event_id.to_string();
    metrics::counter!(ADMISSIONS, "event" => event.clone()).increment(step.admitted.len() as u64);
    metrics::counter!(SKIPPED, "event" => event).increment(step.skipped.len() as u64);
    room(event_id, &step.room, budget, rate_share);
}

/// The gauges of an event's line and room, from any admission step.
pub fn room(event_id: Uuid, room: &Room, budget: Option<&Budget>, rate_share: f64) {
    let event = event_id.to_string();
    metrics::gauge!(QUEUE_LENGTH, "event" => event.clone()).set(room.queue_length as f64);
    metrics::gauge!(ACTIVE, "event" => event.clone()).set(room.active as f64);
    metrics::gauge!(MAX_ACTIVE, "event" => event.clone()).set(room.max_active as f64);
    let in_force = budget::rate_in_force(room.admit_rate, room.active, room.max_active, budget, rate_share);
    metrics::gauge!(ADMIT_RATE, "event" => event.clone()).set(in_force.rate);
    for reason in RateReason::ALL {
        let now = if reason == in_force.reason { 1.0 } else { 0.0 };
        metrics::gauge!(ADMIT_RATE_REASON, "event" => event.clone(), "reason" => reason.as_str()).set(now);
    }
}

/// The gateways' distress as this replica last read it, and the share of the
/// organizer's rate it leaves.
pub fn backpressure(reporting: u64, level: f64, rate_share: f64) {
    metrics::gauge!(GATEWAYS_REPORTING).set(reporting as f64);
    metrics::gauge!(GATEWAY_DISTRESS).set(level);
    metrics::gauge!(RATE_SHARE).set(rate_share);
}

/// The admission budget's gauges, at every step (before it runs).
pub fn budget(event_id: Uuid, budget: Option<&Budget>, stale: bool) {
    let event = event_id.to_string();
    metrics::gauge!(INVENTORY_STALE, "event" => event.clone()).set(if stale { 1.0 } else { 0.0 });
    if let Some(budget) = budget {
        metrics::gauge!(PLACES_SELLABLE, "event" => event.clone()).set(budget.availability.sellable as f64);
        metrics::gauge!(PLACES_HELD, "event" => event.clone()).set(budget.availability.held as f64);
        metrics::gauge!(SHOPPER_CAP, "event" => event).set(budget.shopper_cap as f64);
    }
}

pub fn inventory_read_failed() {
    metrics::counter!(INVENTORY_READ_FAILURES).increment(1);
}

pub fn redis_command(command: &'static str, took: Duration) {
    metrics::histogram!(REDIS_COMMAND_DURATION, "command" => command).record(took);
}

pub fn token_issued() {
    metrics::counter!(TOKENS_ISSUED).increment(1);
}

pub fn admitter_error() {
    metrics::counter!(ADMITTER_ERRORS).increment(1);
}

pub fn admission_records_pending(pending: usize) {
    metrics::gauge!(RECORDS_PENDING).set(pending as f64);
}

pub fn admission_record_failed() {
    metrics::counter!(RECORD_FAILURES).increment(1);
}

pub fn admission_records_dropped(dropped: u64) {
    metrics::counter!(RECORDS_DROPPED).increment(dropped);
}

pub fn rebuilt(event_id: Uuid) {
    metrics::counter!(REBUILDS, "event" => event_id.to_string()).increment(1);
}

pub fn place_restored() {
    metrics::counter!(PLACES_RESTORED).increment(1);
}

pub fn queue_reset() {
    metrics::counter!(QUEUE_RESETS).increment(1);
}

pub fn slot_released(lag: Duration) {
    metrics::counter!(SLOTS_RELEASED).increment(1);
    metrics::histogram!(SLOT_RELEASE_DURATION).record(lag);
}

pub fn slot_release_failed() {
    metrics::counter!(SLOT_RELEASE_ERRORS).increment(1);
}
