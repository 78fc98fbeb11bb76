//! Every metric the waiting room records, named in one place.

use uuid::Uuid;

/// Joins that put a fan in line (repeated joins of a waiting fan are not counted).
pub const JOINS: &str = "boxoffice_waitroom_joins_total";
/// Fans admitted, by event.
pub const ADMISSIONS: &str = "boxoffice_waitroom_admissions_total";
/// Abandoned fans skipped when their turn came, by event.
pub const SKIPPED: &str = "boxoffice_waitroom_abandoned_skipped_total";
/// Access tokens signed (every poll of an admitted fan signs one).
pub const TOKENS_ISSUED: &str = "boxoffice_waitroom_tokens_issued_total";
/// Fans waiting (pre-queue included), by event, as of the last admission step.
pub const QUEUE_LENGTH: &str = "boxoffice_waitroom_queue_length";
/// Join requests refused by the rate limiter, by key (`address` or `fan`).
pub const RATE_LIMITED: &str = "boxoffice_waitroom_rate_limited_total";
/// Admission steps that failed (Redis unreachable or a script error).
pub const ADMITTER_ERRORS: &str = "boxoffice_waitroom_admitter_errors_total";

pub fn joined(pre_queue: bool) {
    metrics::counter!(JOINS, "queue" => if pre_queue { "pre_queue" } else { "queue" }).increment(1);
}

pub fn admission_step(event_id: Uuid, admitted: usize, skipped: u64, queue_length: u64) {
    let event = event_id.to_string();
    metrics::counter!(ADMISSIONS, "event" => event.clone()).increment(admitted as u64);
    metrics::counter!(SKIPPED, "event" => event.clone()).increment(skipped);
    metrics::gauge!(QUEUE_LENGTH, "event" => event).set(queue_length as f64);
}

pub fn token_issued() {
    metrics::counter!(TOKENS_ISSUED).increment(1);
}

pub fn rate_limited(key: &'static str) {
    metrics::counter!(RATE_LIMITED, "key" => key).increment(1);
}

pub fn admitter_error() {
    metrics::counter!(ADMITTER_ERRORS).increment(1);
}
