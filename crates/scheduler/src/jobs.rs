//! The jobs, as plain functions: the [`crate::Scheduler`] calls them on a timer, each
//! behind its [`Exclusive`] guard; tests call them directly.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sales::store::invariants::Scope;
use service_kit::postgres::Database;

use crate::metrics;
use crate::relay::Relay;

/// How much longer than its statement timeout a watchdog run may wait for an answer.
const WATCHDOG_DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// Ends every expired hold and frees its seats, batch by batch, until none is left
/// that another replica is not already handling; places freed in a section with a
/// waitlist become offers in the same transaction. Returns how many holds this call
/// ended.
///
/// Like every job here, each statement runs through [`Database`]: in a task of its
/// own and within the services' client-side deadline, so a partition from PostgreSQL
/// fails the run in seconds instead of hanging it (and its tick's successors) until
/// the network returns.
pub async fn release_expired_holds(db: &Database, batch: i64) -> Result<u64, sales::Error> {
    let mut released = 0;
    loop {
        let n = db.transaction(move |tx| Box::pin(sales::waitlist::release_expired_holds(tx, batch))).await?;
        released += n;
        ::metrics::counter!(metrics::HOLDS_RELEASED).increment(n);
        if n < batch as u64 {
            return Ok(released);
        }
    }
}

/// The checkout's reconciliation pass ([`sales::Sales::reconcile`]); returns how many
/// attempts, refunds and payments it took up.
pub async fn reconcile_payments(
    sales: &sales::Sales,
    unsettled_after: Duration,
    batch: i64,
) -> Result<u64, sales::Error> {
    let done = sales.reconcile(unsettled_after, batch).await?;
    ::metrics::counter!(metrics::PAYMENTS_RECONCILED, "kind" => "attempt").increment(done.attempts_checked);
    ::metrics::counter!(metrics::PAYMENTS_RECONCILED, "kind" => "refund").increment(done.refunds_retried);
    ::metrics::counter!(metrics::PAYMENTS_RECONCILED, "kind" => "unresolved").increment(done.payments_resolved);
    ::metrics::counter!(metrics::PAYMENTS_RECONCILED, "kind" => "cancelled_event_booking")
        .increment(done.bookings_cancelled);
    Ok(done.attempts_checked + done.refunds_retried + done.payments_resolved + done.bookings_cancelled)
}

/// What a job that works in batches did: rows in all, and the statements it took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batches {
    pub rows: u64,
    pub statements: u32,
}

/// Deletes idempotency keys older than the retention, at most `batch` per statement
/// (each its own transaction), until a batch comes back short. Keys another replica is
/// deleting are left to it.
pub async fn purge_idempotency_keys(db: &Database, retention_hours: i32, batch: i64) -> Result<Batches, sales::Error> {
    let mut done = Batches::default();
    loop {
        let n = db
            .write(move |conn| Box::pin(sales::store::idempotency::purge_older_than(conn, retention_hours, batch)))
            .await?;
        done.rows += n;
        done.statements += 1;
        ::metrics::counter!(metrics::IDEMPOTENCY_KEYS_PURGED).increment(n);
        if n < batch as u64 {
            return Ok(done);
        }
    }
}

/// Deletes revocations that no longer cover any valid token (see
/// `sales::store::revocations::purge_expired`), at most `batch` per statement, until a
/// batch comes back short. Gateways ignore such rows already; this keeps the table as
/// small as the last day's revocations.
pub async fn purge_token_revocations(db: &Database, batch: i64) -> Result<Batches, sales::Error> {
    let mut done = Batches::default();
    loop {
        let n = db.write(move |conn| Box::pin(sales::store::revocations::purge_expired(conn, batch))).await?;
        done.rows += n;
        done.statements += 1;
        ::metrics::counter!(metrics::TOKEN_REVOCATIONS_PURGED).increment(n);
        if n < batch as u64 {
            return Ok(done);
        }
    }
}

/// Deletes the seat feed's changes older than `retention_secs` (DECISIONS.md D3), at
/// most `batch` per statement, until a batch comes back short; each event's horizon
/// moves past them in the same statement, so a reader that far behind takes a snapshot
/// instead of missing them.
pub async fn prune_seat_changes(db: &Database, retention_secs: u64, batch: i64) -> Result<Batches, sales::Error> {
    let mut done = Batches::default();
    loop {
        let n = db
            .write(move |conn| {
                Box::pin(async move {
                    Ok::<_, sales::Error>(seat_feed::store::prune(conn, retention_secs as f64, batch).await?)
                })
            })
            .await?;
        done.rows += n;
        done.statements += 1;
        ::metrics::counter!(metrics::SEAT_CHANGES_PRUNED).increment(n);
        if n < batch as u64 {
            return Ok(done);
        }
    }
}

/// The oversell watchdog: re-reads the inventory invariants of the events in `scope`
/// and exports what it finds, with the time it finished. Read-only, so every replica
/// may run it; each exports the same figures. Returns the number of violations. A
/// failed check exports nothing, so the last-run timestamp goes stale.
///
/// Its statements may run for `scope.time_limit` (set per transaction, longer than the
/// services' statement timeout); the client-side deadline allows that and a little more,
/// so the server's timeout, which rolls back cleanly, fires first when it can.
pub async fn check_invariants(db: &Database, scope: Scope) -> Result<u64, sales::Error> {
    let deadline = scope.time_limit + WATCHDOG_DEADLINE_MARGIN;
    let violations =
        db.with_deadline(deadline).transaction(move |tx| Box::pin(sales::store::invariants::check(tx, scope))).await?;
    metrics::invariants_checked(&violations);
    let money =
        db.with_deadline(deadline).transaction(move |tx| Box::pin(sales::store::invariants::money(tx, scope))).await?;
    metrics::money_counted(&money);
    let total: i64 = violations.by_invariant().iter().map(|(_, n)| n).sum();
    if total > 0 {
        tracing::error!(?violations, "inventory invariants broken: seats may be oversold");
    }
    Ok(total as u64)
}

/// Relays the outbox to webhook endpoints until nothing is due (see [`Relay::run`]).
/// Returns how many deliveries this run delivered.
pub async fn relay_outbox(db: &Database, relay: &Relay) -> Result<u64, sales::Error> {
    relay.run(db).await.map(|run| run.delivered)
}

/// Turns the confirmation emails' subscriber on or off as this scheduler sends them or
/// not (`sales::confirmations::set_enabled`), once, at start-up: retried every few
/// seconds until the database answers.
pub async fn set_email_subscriber(db: Database, on: bool) {
    while let Err(e) = sales::confirmations::set_enabled(&db, on).await {
        tracing::warn!(error = %e, on, "the confirmation emails' subscriber could not be set; retrying");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Logs a job's outcome; a failed run is retried at the next tick.
pub fn log(job: &'static str, outcome: Result<u64, sales::Error>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::info!(job, rows = n, "job done"),
        Err(e) => {
            ::metrics::counter!(metrics::JOB_FAILURES, "task" => job).increment(1);
            tracing::warn!(job, error = %e, "job failed; retrying at the next tick");
        }
    }
}

/// One run at a time of a job within this process.
///
/// tokio-cron-scheduler starts a repeated job at every tick, even while its previous
/// run is still going: runs stuck behind a slow or hung statement would pile up, each
/// holding a pool connection and repeating the same work. A run that finds the
/// previous one still going skips instead: it logs, counts
/// `boxoffice_scheduler_job_skipped_total{task}` and does nothing else (so the
/// watchdog's last-run timestamp stays as it was, and goes stale if the runs hang).
/// Replicas do not coordinate through it: each runs its own jobs.
#[derive(Debug, Clone)]
pub struct Exclusive {
    task: &'static str,
    running: Arc<tokio::sync::Mutex<()>>,
}

/// What one tick of an [`Exclusive`] job did.
#[derive(Debug, PartialEq, Eq)]
pub enum Run<T> {
    /// The job ran and returned this.
    Ran(T),
    /// The previous run was still going; this one did nothing.
    Skipped,
}

impl Exclusive {
    /// A guard for the job named `task` (its metric label).
    pub fn new(task: &'static str) -> Self {
        Self { task, running: Arc::default() }
    }

    /// Runs `job` unless another run through this guard (or a clone of it) is still
    /// going; then skips at once, without waiting for it.
    pub async fn run<F, Fut>(&self, job: F) -> Run<Fut::Output>
    where
        F: FnOnce() -> Fut,
        Fut: Future,
    {
        let Ok(_running) = self.running.try_lock() else {
            ::metrics::counter!(metrics::JOB_SKIPPED, "task" => self.task).increment(1);
            tracing::info!(job = self.task, "the previous run is still going; skipping this tick");
            return Run::Skipped;
        };
        Run::Ran(job().await)
    }
}
