//! Every metric the gateway records, named in one place.

/// Holds and bookings by outcome (`success` or an error code such as `seat_contended`).
pub const ORDERS: &str = "boxoffice_gateway_orders_total";
/// Chosen-seat requests refused because another transaction held a seat's row lock.
pub const LOCK_CONTENTION: &str = "boxoffice_gateway_lock_contention_total";
/// Requests refused by a rate limit, by limit (`global`, `address`, `fan`).
pub const RATE_LIMITED: &str = "boxoffice_gateway_rate_limited_total";
/// Access tokens refused, by reason.
pub const TOKEN_REJECTIONS: &str = "boxoffice_gateway_token_rejections_total";

/// Records how an order attempt (`hold`, `book`, `confirm`) ended.
pub fn order_outcome(kind: &'static str, outcome: &'static str) {
    metrics::counter!(ORDERS, "kind" => kind, "outcome" => outcome).increment(1);
    if outcome == "seat_contended" {
        metrics::counter!(LOCK_CONTENTION, "kind" => kind).increment(1);
    }
}

pub fn token_rejected(reason: &'static str) {
    metrics::counter!(TOKEN_REJECTIONS, "reason" => reason).increment(1);
}

pub fn rate_limited(limit: &'static str) {
    metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
}
