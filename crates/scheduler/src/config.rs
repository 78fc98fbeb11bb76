use std::net::SocketAddr;

use sales::store::invariants::Scope;
use serde::Deserialize;
use service_kit::serve::HttpConfig;
use service_kit::settings::Section;

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
    /// Keys (and token revocations) deleted per statement; the purges loop until a
    /// batch comes back short, so however many rows piled up, no statement locks or
    /// writes more than this.
    pub purge_batch: i64,
    /// How often token revocations that cover no valid token any more (a day and five
    /// minutes after they were written) are deleted.
    pub purge_token_revocations_every_secs: u64,
    /// How often the oversell watchdog re-reads the inventory invariants. A run that
    /// finds the previous one still going skips (each job runs once at a time per replica).
    pub check_invariants_every_secs: u64,
    /// The watchdog checks an event until this long after it starts, so its cost
    /// follows the events on sale, not the whole history.
    pub check_invariants_after_start_hours: i32,
    /// The watchdog checks an event without a start date until this many days after it
    /// was created: nothing else says when its sale is over (the schema has no sale
    /// state yet), and checking it forever made every run scan all its seats.
    pub check_invariants_undated_days: i32,
    /// How long one watchdog run's statements may take: checking a large event during
    /// its sale takes seconds, more than the services' `database.statement_timeout_ms`.
    pub check_invariants_timeout_secs: u64,
    pub reconcile_payments_every_secs: u64,
    /// An attempt the provider has not settled for this long is asked about.
    pub reconcile_unsettled_after_secs: u64,
    pub reconcile_batch: i64,
    /// How long probe clients may take (`[scheduler.http]`).
    pub http: HttpConfig,
}

impl Section for SchedulerConfig {
    const KEY: &'static str = "scheduler";

    fn validate(&self) -> Result<(), String> {
        let intervals = [
            self.release_expired_holds_every_secs,
            self.purge_idempotency_keys_every_secs,
            self.purge_token_revocations_every_secs,
            self.check_invariants_every_secs,
            self.reconcile_payments_every_secs,
            self.reconcile_unsettled_after_secs,
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
        if !(1..=10_000).contains(&self.purge_batch) {
            return Err("scheduler.purge_batch must be 1-10000".into());
        }
        if self.check_invariants_after_start_hours < 0 {
            return Err("scheduler.check_invariants_after_start_hours must not be negative".into());
        }
        if self.check_invariants_undated_days < 1 {
            return Err("scheduler.check_invariants_undated_days must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.reconcile_batch) {
            return Err("scheduler.reconcile_batch must be 1-10000".into());
        }
        if self.check_invariants_timeout_secs == 0 {
            return Err("scheduler.check_invariants_timeout_secs must be at least 1".into());
        }
        Ok(())
    }
}

impl SchedulerConfig {
    /// The events each watchdog run checks.
    pub fn invariant_scope(&self) -> Scope {
        Scope {
            after_start_hours: self.check_invariants_after_start_hours,
            undated_days: self.check_invariants_undated_days,
            time_limit: std::time::Duration::from_secs(self.check_invariants_timeout_secs),
            payment_window: std::time::Duration::from_secs(
                self.reconcile_unsettled_after_secs + self.reconcile_payments_every_secs,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[scheduler]` as tests load it (see `test_support::config`).
    fn config() -> SchedulerConfig {
        test_support::config(&[], |_| {})
    }

    #[test]
    fn bounds_are_checked_naming_the_key() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(config().invariant_scope(), Scope::default());
        type Change = fn(&mut SchedulerConfig);
        let wrong: [(Change, &str); 4] = [
            (|c| c.purge_batch = 0, "scheduler.purge_batch"),
            (|c| c.purge_batch = 10_001, "scheduler.purge_batch"),
            (|c| c.check_invariants_undated_days = 0, "scheduler.check_invariants_undated_days"),
            (|c| c.check_invariants_undated_days = -1, "scheduler.check_invariants_undated_days"),
        ];
        for (change, key) in wrong {
            let mut c = config();
            change(&mut c);
            let error = c.validate().unwrap_err();
            assert!(error.starts_with(key), "{error}");
        }
    }
}
