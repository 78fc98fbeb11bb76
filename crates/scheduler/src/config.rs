use std::net::SocketAddr;

use serde::Deserialize;

/// The `[scheduler]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    /// Where `/healthz` and `/readyz` answer, for the orchestrator's probes.
    pub listen: SocketAddr,
    /// Expired holds count as free the moment they expire; the sweep only tidies
    /// their rows, so this can be seconds, not milliseconds.
    pub release_expired_holds_every_secs: u64,
    /// Holds ended per transaction; small batches keep each transaction's locks short.
    pub release_batch: i64,
    pub purge_idempotency_keys_every_secs: u64,
    /// How long a retry with the same `Idempotency-Key` still finds the first answer.
    pub idempotency_key_retention_hours: i32,
}

impl SchedulerConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.release_expired_holds_every_secs == 0 || self.purge_idempotency_keys_every_secs == 0 {
            return Err("scheduler intervals must be at least 1 second".into());
        }
        if !(1..=10_000).contains(&self.release_batch) {
            return Err("scheduler.release_batch must be 1-10000".into());
        }
        if self.idempotency_key_retention_hours < 1 {
            return Err("scheduler.idempotency_key_retention_hours must be at least 1".into());
        }
        Ok(())
    }
}
