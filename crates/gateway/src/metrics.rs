//! Every metric the gateway records, named in one place.

/// Holds and bookings by outcome (`success` or an error code such as `seat_contended`).
pub const ORDERS: &str = "boxoffice_gateway_orders_total";
/// Chosen-seat requests refused because another transaction held a seat's row lock.
pub const LOCK_CONTENTION: &str = "boxoffice_gateway_lock_contention_total";
/// Requests refused by a rate limit, by limit (`global`, `address`, `fan`), counted by
/// [`service_kit::rate_limit::ClientLimits`].
pub const RATE_LIMITED: &str = "boxoffice_gateway_rate_limited_total";
/// Access tokens refused, by reason.
pub const TOKEN_REJECTIONS: &str = "boxoffice_gateway_token_rejections_total";

/// Payment webhooks whose signature did not verify.
pub const WEBHOOK_SIGNATURE_FAILURES: &str = "boxoffice_gateway_payment_webhook_signature_failures_total";
/// Payment webhooks verified, by outcome (`applied`, `already_applied`, `ignored`).
pub const WEBHOOKS_APPLIED: &str = "boxoffice_gateway_payment_webhooks_total";

/// Ticket scans by result (`valid`, `already_checked_in`, `revoked`, `wrong_event`,
/// `invalid`), online and uploaded.
pub const CHECKINS: &str = "boxoffice_gateway_checkins_total";

/// This replica's mean wait for a database connection over the last report interval
/// (back-pressure, `crate::distress`).
pub const POOL_WAIT: &str = "boxoffice_gateway_pool_wait_seconds";
/// This replica's distress level as it reports it to the waiting room, 0 to 1.
pub const DISTRESS: &str = "boxoffice_gateway_distress_level";
/// Distress reports that could not be written to Redis.
pub const DISTRESS_REPORT_FAILURES: &str = "boxoffice_gateway_distress_report_failures_total";

/// Live seat-map streams open on this replica.
pub const SEAT_STREAMS: &str = "boxoffice_gateway_seat_streams";
/// Events whose changes this replica reads for its seat-map streams.
pub const SEAT_STREAM_EVENTS: &str = "boxoffice_gateway_seat_stream_events";
/// What was sent to seat-map streams, by kind (`snapshot`, `delta`).
pub const SEAT_STREAM_SENT: &str = "boxoffice_gateway_seat_stream_messages_total";
/// Reads of the change feed for the streams, by outcome (`changes`, `behind`, `failed`).
pub const SEAT_STREAM_READS: &str = "boxoffice_gateway_seat_stream_reads_total";
/// Streams refused for `max_streams`.
pub const SEAT_STREAMS_REFUSED: &str = "boxoffice_gateway_seat_streams_refused_total";

/// Creates the counters a dashboard plots at 0, so their first increment shows in
/// `rate()` and an idle panel reads 0 rather than "no data".
pub fn register() {
    for kind in ["hold", "book"] {
        for outcome in ["success", "seat_unavailable", "seat_contended", "sold_out"] {
            metrics::counter!(ORDERS, "kind" => kind, "outcome" => outcome).increment(0);
        }
        metrics::counter!(LOCK_CONTENTION, "kind" => kind).increment(0);
    }
    for outcome in ["success", "hold_expired"] {
        metrics::counter!(ORDERS, "kind" => "confirm", "outcome" => outcome).increment(0);
    }
    metrics::counter!(WEBHOOK_SIGNATURE_FAILURES).increment(0);
    for outcome in ["applied", "already_applied", "ignored"] {
        metrics::counter!(WEBHOOKS_APPLIED, "outcome" => outcome).increment(0);
    }
    for result in ["valid", "already_checked_in", "revoked", "wrong_event", "invalid"] {
        metrics::counter!(CHECKINS, "result" => result).increment(0);
    }
    for reason in ["missing", "expired", "bad_signature", "other_event", "revoked"] {
        metrics::counter!(TOKEN_REJECTIONS, "reason" => reason).increment(0);
    }
    metrics::counter!(DISTRESS_REPORT_FAILURES).increment(0);
    for kind in ["snapshot", "delta"] {
        metrics::counter!(SEAT_STREAM_SENT, "kind" => kind).increment(0);
    }
    for outcome in ["changes", "behind", "failed"] {
        metrics::counter!(SEAT_STREAM_READS, "outcome" => outcome).increment(0);
    }
    metrics::counter!(SEAT_STREAMS_REFUSED).increment(0);
    metrics::gauge!(SEAT_STREAMS).set(0.0);
    metrics::gauge!(SEAT_STREAM_EVENTS).set(0.0);
}

pub fn seat_streams(open: usize, events: usize) {
    metrics::gauge!(SEAT_STREAMS).set(open as f64);
    metrics::gauge!(SEAT_STREAM_EVENTS).set(events as f64);
}

pub fn seat_stream_sent(kind: &'static str) {
    metrics::counter!(SEAT_STREAM_SENT, "kind" => kind).increment(1);
}

pub fn seat_stream_read(outcome: &'static str) {
    metrics::counter!(SEAT_STREAM_READS, "outcome" => outcome).increment(1);
}

pub fn seat_stream_refused() {
    metrics::counter!(SEAT_STREAMS_REFUSED).increment(1);
}

pub fn distress(pool_wait: std::time::Duration, level: f64) {
    metrics::gauge!(POOL_WAIT).set(pool_wait.as_secs_f64());
    metrics::gauge!(DISTRESS).set(level);
}

pub fn distress_report_failed() {
    metrics::counter!(DISTRESS_REPORT_FAILURES).increment(1);
}

/// Records how an order attempt (`hold`, `book`, `confirm`) ended: `success`, or the
/// error's code.
pub fn order_outcome<T>(kind: &'static str, result: &Result<T, crate::Error>) {
    let outcome = match result {
        Ok(_) => "success",
        Err(e) => e.code(),
    };
    metrics::counter!(ORDERS, "kind" => kind, "outcome" => outcome).increment(1);
    if outcome == "seat_contended" {
        metrics::counter!(LOCK_CONTENTION, "kind" => kind).increment(1);
    }
}

pub fn token_rejected(reason: &'static str) {
    metrics::counter!(TOKEN_REJECTIONS, "reason" => reason).increment(1);
}

pub fn checkin(result: &'static str) {
    metrics::counter!(CHECKINS, "result" => result).increment(1);
}
