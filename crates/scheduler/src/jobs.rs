//! The jobs, as plain functions: the [`crate::Scheduler`] calls them on a timer, tests
//! call them directly.

use sqlx::PgPool;

use crate::metrics;

/// Ends every expired hold and frees its seats, batch by batch, until none is left
/// that another replica is not already handling. Returns how many this call ended.
pub async fn release_expired_holds(pool: &PgPool, batch: i64) -> Result<u64, gateway::Error> {
    let mut released = 0;
    loop {
        let n = gateway::store::holds::release_expired(pool, batch).await?;
        released += n;
        ::metrics::counter!(metrics::HOLDS_RELEASED).increment(n);
        if n < batch as u64 {
            return Ok(released);
        }
    }
}

/// Deletes idempotency keys older than the retention.
pub async fn purge_idempotency_keys(pool: &PgPool, retention_hours: i32) -> Result<u64, gateway::Error> {
    let purged = gateway::store::idempotency::purge_older_than(pool, retention_hours).await?;
    ::metrics::counter!(metrics::IDEMPOTENCY_KEYS_PURGED).increment(purged);
    Ok(purged)
}

/// The oversell watchdog: re-reads the inventory invariants and exports what it finds.
/// Read-only, so every replica may run it; each exports the same figures. Returns the
/// number of violations.
pub async fn check_invariants(pool: &PgPool, after_start_hours: i32) -> Result<u64, gateway::Error> {
    let violations = gateway::store::invariants::check(pool, after_start_hours).await?;
    metrics::invariants_checked(&violations);
    let total: i64 = violations.by_invariant().iter().map(|(_, n)| n).sum();
    if total > 0 {
        tracing::error!(?violations, "inventory invariants broken: seats may be oversold");
    }
    Ok(total as u64)
}

/// Logs a job's outcome; a failed run is retried at the next tick.
pub fn log(job: &'static str, outcome: Result<u64, gateway::Error>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::info!(job, rows = n, "job done"),
        Err(e) => {
            ::metrics::counter!(metrics::JOB_FAILURES, "task" => job).increment(1);
            tracing::warn!(job, error = %e, "job failed; retrying at the next tick");
        }
    }
}
