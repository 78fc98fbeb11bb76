use std::net::SocketAddr;

use serde::Deserialize;
use service_kit::serve::HttpConfig;

/// The `[scheduler]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub listen: SocketAddr,
    /// Expired holds count as free the moment they expire; the sweep only tidies
    /// their rows, so this can be seconds, not milliseconds.
    pub release_expired_holds_every_secs: u64,
    /// Holds ended per transaction; small batches keep each transaction's locks short.
    pub release_batch: i64,
    pub purge_idempotency_keys_every_secs: u64,
    /// How long a retry with the same `Idempotency-Key` still finds the first answer.
    pub idempotency_key_retention_hours: i32,
    /// How often the oversell watchdog re-reads the inventory invariants.
    pub check_invariants_every_secs: u64,
    /// The watchdog checks an event until this long after it starts, so its cost
    /// follows the events on sale, not the whole history.
    pub check_invariants_after_start_hours: i32,
    /// How long probe clients may take (`[scheduler.http]`).
    pub http: HttpConfig,
}

impl SchedulerConfig {
    pub fn validate(&self) -> Result<(), String> {
        let intervals = [
            self.release_expired_holds_every_secs,
            self.purge_idempotency_keys_every_secs,
            self.check_invariants_every_secs,
        ];
        self.http.validate("scheduler")?;
        if intervals.contains(&0) {
            return Err("scheduler intervals must be at least 1 second".into());
        }
        if !(1..=10_000).contains(&self.release_batch) {
            return Err("scheduler.release_batch must be 1-10000".into());
        }
        if self.idempotency_key_retention_hours < 1 {
            return Err("scheduler.idempotency_key_retention_hours must be at least 1".into());
        }
        if self.check_invariants_after_start_hours < 0 {
            return Err("scheduler.check_invariants_after_start_hours must not be negative".into());
        }
        Ok(())
    }
}
