//! Whose rows a request may touch.

use uuid::Uuid;

/// An admitted fan acting on one event. The gateway builds it from a verified access
/// token whose event matches the request's; every fan use case and every store function
/// on fans' rows takes it and filters by both fields, so a fan can reach only their own
/// holds, bookings and idempotency keys, and only in that event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanScope {
    pub event_id: Uuid,
    pub fan_id: String,
}
