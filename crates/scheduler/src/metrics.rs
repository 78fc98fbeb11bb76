//! Every metric the scheduler records, named in one place.

/// Holds ended by the sweep because they expired.
pub const HOLDS_RELEASED: &str = "boxoffice_scheduler_holds_released_total";
/// Idempotency keys deleted after their retention.
pub const IDEMPOTENCY_KEYS_PURGED: &str = "boxoffice_scheduler_idempotency_keys_purged_total";
/// Token revocations deleted once no token they cover can still be valid.
pub const TOKEN_REVOCATIONS_PURGED: &str = "boxoffice_scheduler_token_revocations_purged_total";
/// The seat feed's changes deleted once older than `seat_change_retention_secs`.
pub const SEAT_CHANGES_PRUNED: &str = "boxoffice_scheduler_seat_changes_pruned_total";
/// Job runs that failed, by `task` (not `job`: Prometheus sets that label itself).
pub const JOB_FAILURES: &str = "boxoffice_scheduler_job_failures_total";
/// Ticks at which a job did not run because its previous run in this replica was still
/// going, by `task`. Rising steadily means a run takes longer than its interval, or hangs.
pub const JOB_SKIPPED: &str = "boxoffice_scheduler_job_skipped_total";
/// Seats sold twice or free to sell while sold, from the last watchdog run; must be 0.
pub const OVERSOLD_SEATS: &str = "boxoffice_oversold_seats";
/// Rows breaking an inventory invariant, by invariant, from the last watchdog run; must be 0.
pub const INVARIANT_VIOLATIONS: &str = "boxoffice_invariant_violations";
/// When the watchdog last finished a check (Unix seconds): a stale value means nobody checks.
/// Only a completed check sets it; a skipped or failed run leaves it as it was.
pub const WATCHDOG_LAST_RUN: &str = "boxoffice_watchdog_last_run_timestamp_seconds";

/// Payments of the events on sale by `status`, succeeded payments by `resolution`
/// (`booked`, `late_booked`, `refunded`, `unresolved`), refunds by `status`, as the
/// watchdog last read them.
pub const PAYMENTS: &str = "boxoffice_payments";
pub const PAYMENT_RESOLUTIONS: &str = "boxoffice_payment_resolutions";
pub const REFUNDS: &str = "boxoffice_refunds";

/// What checkout reconciliation took up, by `kind`: `attempt` (a payment attempt left
/// unsettled, asked about at the provider), `refund` (a refund retried), `unresolved` (a
/// succeeded payment without a booking or refund), `cancelled_event_booking` (a booking
/// that raced its event's cancellation, cancelled and refunded). Attempts rising steadily
/// mean webhooks are being lost.
pub const PAYMENTS_RECONCILED: &str = "boxoffice_scheduler_payments_reconciled_total";

/// The outbox's lag: how long (seconds) the oldest pending delivery that is due has
/// waited since its message was written, after the relay's last run; 0 when none is.
/// Rising means the relay is down or behind, or a stream's head keeps failing.
pub const OUTBOX_LAG: &str = "boxoffice_outbox_lag_seconds";
/// Delivery attempts by what came of them (`outcome`, [`DELIVERY_OUTCOMES`]).
pub const OUTBOX_DELIVERIES: &str = "boxoffice_outbox_deliveries_total";
/// Webhook attempts that failed, by `reason` ([`FAILURE_REASONS`]): a status other than
/// 2xx (`status`), `timeout`, `connect`, another `transport` error, `gone` (410, the
/// endpoint is disabled), `signing` (a secret that cannot sign).
pub const WEBHOOK_FAILURES: &str = "boxoffice_webhook_delivery_failures_total";

/// Confirmation email deliveries by what came of them (`outcome`,
/// [`DELIVERY_OUTCOMES`], as the webhooks').
pub const CONFIRMATION_EMAIL_DELIVERIES: &str = "boxoffice_confirmation_email_deliveries_total";
/// Confirmation email attempts that failed, by `reason` ([`EMAIL_FAILURE_REASONS`]).
pub const CONFIRMATION_EMAIL_FAILURES: &str = "boxoffice_confirmation_email_failures_total";
/// Confirmation email deliveries done, by `result`: `sent`; `no_address` (the fan gave
/// none: nothing to send); `booking_cancelled` (cancelled before its email went out).
pub const CONFIRMATION_EMAILS: &str = "boxoffice_confirmation_emails_total";
/// Waitlist offer emails done, by `result`: `sent`; `no_address`; `offer_ended` (taken,
/// declined or lapsed before its email went out). They share the confirmations'
/// deliveries and failures counters: one subscriber, one sender.
pub const OFFER_EMAILS: &str = "boxoffice_waitlist_offer_emails_total";

/// The `reason` label of [`CONFIRMATION_EMAIL_FAILURES`]: retried: `transport` (no
/// connection, or it broke), `timeout`, `deferred` (a 4xx reply), `database`, `render`;
/// given up at once: `rejected` (a 5xx reply), `bad_address`, `malformed`.
pub const EMAIL_FAILURE_REASONS: [&str; 8] =
    ["transport", "timeout", "deferred", "database", "render", "rejected", "bad_address", "malformed"];

/// The `outcome` label of [`OUTBOX_DELIVERIES`]: delivered; retried later; abandoned
/// (retries ran out, or the endpoint was disabled before it was sent); disabled (it
/// answered 410); superseded (the claim's lease ended before the outcome was recorded).
pub const DELIVERY_OUTCOMES: [&str; 5] = ["delivered", "retried", "abandoned", "disabled", "superseded"];
/// The `reason` label of [`WEBHOOK_FAILURES`].
pub const FAILURE_REASONS: [&str; 6] = ["status", "timeout", "connect", "transport", "gone", "signing"];

/// The job names, as the `task` label of [`JOB_FAILURES`] and [`JOB_SKIPPED`].
pub const TASKS: [&str; 8] = [
    "release_expired_holds",
    "purge_idempotency_keys",
    "purge_token_revocations",
    "prune_seat_changes",
    "check_invariants",
    "reconcile_payments",
    "relay_outbox",
    "send_confirmation_emails",
];

/// Creates the counters at 0, so their first increment shows in `rate()`.
pub fn register() {
    metrics::counter!(HOLDS_RELEASED).increment(0);
    metrics::counter!(IDEMPOTENCY_KEYS_PURGED).increment(0);
    for kind in ["attempt", "refund", "unresolved", "cancelled_event_booking"] {
        metrics::counter!(PAYMENTS_RECONCILED, "kind" => kind).increment(0);
    }
    metrics::counter!(TOKEN_REVOCATIONS_PURGED).increment(0);
    metrics::counter!(SEAT_CHANGES_PRUNED).increment(0);
    for outcome in DELIVERY_OUTCOMES {
        metrics::counter!(OUTBOX_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for reason in FAILURE_REASONS {
        metrics::counter!(WEBHOOK_FAILURES, "reason" => reason).increment(0);
    }
    for outcome in DELIVERY_OUTCOMES {
        metrics::counter!(CONFIRMATION_EMAIL_DELIVERIES, "outcome" => outcome).increment(0);
    }
    for reason in EMAIL_FAILURE_REASONS {
        metrics::counter!(CONFIRMATION_EMAIL_FAILURES, "reason" => reason).increment(0);
    }
    for result in ["sent", "no_address", "booking_cancelled"] {
        metrics::counter!(CONFIRMATION_EMAILS, "result" => result).increment(0);
    }
    for result in ["sent", "no_address", "offer_ended"] {
        metrics::counter!(OFFER_EMAILS, "result" => result).increment(0);
    }
    for task in TASKS {
        metrics::counter!(JOB_FAILURES, "task" => task).increment(0);
        metrics::counter!(JOB_SKIPPED, "task" => task).increment(0);
    }
}

/// Sets the money gauges; a label absent from this read reads 0 (it may have been
/// present before).
pub fn money_counted(money: &sales::store::invariants::MoneyCounts) {
    let set = |name: &'static str, label: &'static str, all: &[&'static str], counted: &[(String, i64)]| {
        for value in all {
            let n = counted.iter().find(|(l, _)| l == value).map_or(0, |(_, n)| *n);
            metrics::gauge!(name, label => *value).set(n as f64);
        }
    };
    let statuses = ["created", "pending", "succeeded", "failed", "canceled", "refunded", "partially_refunded"];
    set(PAYMENTS, "status", &statuses, &money.payments);
    set(PAYMENT_RESOLUTIONS, "resolution", &["booked", "late_booked", "refunded", "unresolved"], &money.resolutions);
    set(REFUNDS, "status", &["pending", "succeeded", "failed"], &money.refunds);
}

pub fn invariants_checked(violations: &sales::store::invariants::Violations) {
    metrics::gauge!(OVERSOLD_SEATS).set(violations.oversold_seats as f64);
    for (invariant, count) in violations.by_invariant() {
        metrics::gauge!(INVARIANT_VIOLATIONS, "invariant" => invariant).set(count as f64);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    metrics::gauge!(WATCHDOG_LAST_RUN).set(now.as_secs_f64());
}
