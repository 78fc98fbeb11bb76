//! What a sandbox is started with, and the faults it can be told to inject.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a sandbox behaves. Every wait in it is set here, down to milliseconds, so tests
/// never sleep for real minutes.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The `sk_…` key every API call must carry as `Authorization: Bearer …`.
    pub secret_key: String,
    /// Where events are delivered; tests usually set it later with
    /// [`Sandbox::set_webhook_endpoint`](crate::Sandbox::set_webhook_endpoint), once
    /// they know their receiver's port.
    pub webhook: Option<WebhookEndpoint>,
    pub retry: RetryPolicy,
    /// One delivery attempt's bound (connect, send, answer).
    pub delivery_timeout: Duration,
    pub faults: Faults,
    /// Seeds every fault decision (drop, duplicate, API failure), so a run repeats.
    /// Object ids are random regardless, so restarts never reuse one.
    pub seed: u64,
}

impl SandboxConfig {
    /// Local defaults: no endpoint, no faults, retries from 1 s doubling up to 60 s, ten
    /// attempts (Stripe itself retries for three days).
    pub fn new(secret_key: impl Into<String>) -> Self {
        Self {
            secret_key: secret_key.into(),
            webhook: None,
            retry: RetryPolicy::default(),
            delivery_timeout: Duration::from_secs(10),
            faults: Faults::default(),
            seed: 0,
        }
    }
}

/// A webhook endpoint and its signing secret (`whsec_…`, used whole as the HMAC key, as
/// Stripe does).
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub url: String,
    pub secret: String,
    /// The event types delivered to it, as Stripe's `enabled_events`: `*` is every type.
    /// Events of other types are still recorded (and retrievable), never sent.
    pub enabled_events: Vec<String>,
}

impl WebhookEndpoint {
    /// An endpoint sent every event type.
    pub fn new(url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self { url: url.into(), secret: secret.into(), enabled_events: vec!["*".to_owned()] }
    }

    /// Sent only events of these types.
    pub fn only(mut self, event_types: &[&str]) -> Self {
        self.enabled_events = event_types.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    pub fn wants(&self, event_type: &str) -> bool {
        self.enabled_events.iter().any(|enabled| enabled == "*" || enabled == event_type)
    }
}

/// Webhook retries: attempt `n + 1` waits `min(base × factor^(n−1), max_delay)` after
/// attempt `n` failed (non-2xx, connection error or timeout), up to `max_attempts`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub factor: f64,
    pub max_delay: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), factor: 2.0, max_delay: Duration::from_secs(60), max_attempts: 10 }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let millis = self.base.as_millis() as f64 * self.factor.max(1.0).powi(exponent);
        let capped = millis.min(self.max_delay.as_millis() as f64);
        // `as` saturates (and maps NaN to 0): never a panic, never an unbounded wait.
        Duration::from_millis(capped as u64)
    }
}

/// Faults for tests and rehearsals, set at spawn, with
/// [`Sandbox::set_faults`](crate::Sandbox::set_faults) or with `POST /_sandbox/faults`
/// (this JSON; missing fields are 0). Probabilities are in 0..=1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Each event's first delivery waits this long.
    pub webhook_delay_ms: u64,
    /// A share of events (this chance each) waits `webhook_late_ms` more before its first
    /// delivery: "5 % of webhooks 30 s late" while the others arrive at once.
    pub webhook_late_probability: f64,
    pub webhook_late_ms: u64,
    /// Extra copies of every event (1 → each delivered twice).
    pub webhook_duplicates: u32,
    /// The chance that an event gets one more copy.
    pub webhook_duplicate_probability: f64,
    /// The chance that an event is never delivered.
    pub webhook_drop_probability: f64,
    /// Events are held this long and the batch delivered newest first.
    pub webhook_reorder_window_ms: u64,
    /// The chance that an API call answers `500 api_error` without doing anything.
    pub api_failure_probability: f64,
    /// The next N API calls answer `500 api_error` without doing anything.
    pub api_fail_next: u32,
    /// Every API call waits this long before it is handled (longer than a client's
    /// timeout: a timeout).
    pub api_latency_ms: u64,
    /// Refunds are created `pending` and succeed this long after, told by a
    /// `refund.updated` event, as a bank's refund settles later (0: they succeed at once).
    pub refund_settle_ms: u64,
    /// The chance that a refund fails: it is created `pending` and, `refund_settle_ms`
    /// later, becomes `failed` with `failure_reason: expired_or_canceled_card` (told by
    /// `refund.updated`), its amount back on the intent, as a refund to a closed card
    /// does at Stripe.
    pub refund_failure_probability: f64,
}

/// Faults refused: a probability outside 0..=1, or a wait beyond an hour.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidFaults {
    #[error("{0} must be a probability between 0 and 1")]
    Probability(&'static str),
    #[error("{0} must be at most {MAX_FAULT_WAIT_MS} ms")]
    Wait(&'static str),
}

/// The longest wait a fault may add (an hour): every wait stays bounded.
pub const MAX_FAULT_WAIT_MS: u64 = 3_600_000;

impl Faults {
    pub fn validate(&self) -> Result<(), InvalidFaults> {
        let waits = [
            ("webhook_delay_ms", self.webhook_delay_ms),
            ("webhook_late_ms", self.webhook_late_ms),
            ("webhook_reorder_window_ms", self.webhook_reorder_window_ms),
            ("api_latency_ms", self.api_latency_ms),
            ("refund_settle_ms", self.refund_settle_ms),
        ];
        for (name, ms) in waits {
            if ms > MAX_FAULT_WAIT_MS {
                return Err(InvalidFaults::Wait(name));
            }
        }
        let probabilities = [
            ("webhook_duplicate_probability", self.webhook_duplicate_probability),
            ("webhook_late_probability", self.webhook_late_probability),
            ("webhook_drop_probability", self.webhook_drop_probability),
            ("api_failure_probability", self.api_failure_probability),
            ("refund_failure_probability", self.refund_failure_probability),
        ];
        for (name, p) in probabilities {
            if !(0.0..=1.0).contains(&p) {
                return Err(InvalidFaults::Probability(name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_factor_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_millis(10),
            factor: 3.0,
            max_delay: Duration::from_millis(200),
            max_attempts: 10,
        };
        let delays: Vec<u64> = (1..=5).map(|n| policy.delay_after(n).as_millis() as u64).collect();
        assert_eq!(delays, [10, 30, 90, 200, 200]);
        assert_eq!(policy.delay_after(u32::MAX), Duration::from_millis(200));
    }

    #[test]
    fn a_probability_above_one_and_a_wait_beyond_an_hour_are_refused() {
        let faults = Faults { webhook_drop_probability: 1.5, ..Faults::default() };
        assert_eq!(faults.validate(), Err(InvalidFaults::Probability("webhook_drop_probability")));
        let forever = Faults { webhook_reorder_window_ms: u64::MAX, ..Faults::default() };
        assert_eq!(forever.validate(), Err(InvalidFaults::Wait("webhook_reorder_window_ms")));
        assert!(Faults { api_failure_probability: f64::NAN, ..Faults::default() }.validate().is_err());
    }
}
