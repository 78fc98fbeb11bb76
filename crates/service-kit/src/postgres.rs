//! PostgreSQL: connection settings, the pool, and [`Database`], the one way services
//! run database work so that a request that goes away cannot leave it half-done.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::distress::PoolPressure;
use crate::settings::Section;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tracing::Instrument;

#[derive(Debug, Clone, Deserialize)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database`; may carry a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request waits for a free connection before it is answered 503.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when a service starts.
    pub migrate_on_start: bool,
    /// The server cancels any one statement running longer (`statement_timeout`).
    pub statement_timeout_ms: u64,
    /// The server gives up waiting for a row lock after this long (`lock_timeout`).
    pub lock_timeout_ms: u64,
    /// The server ends a session left idle inside a transaction this long
    /// (`idle_in_transaction_session_timeout`): a safety net that bounds how long a
    /// stranded transaction holds row locks. It saves no writes by itself.
    pub idle_in_transaction_timeout_ms: u64,
    /// Client-side bound on one unit of work (a use case's transaction). The server's
    /// timeouts cannot fire when no bytes reach it (a network partition); this one
    /// does, and the connection it fired on is closed, never reused.
    pub work_deadline_ms: u64,
}

impl Section for PostgresConfig {
    const KEY: &'static str = "database";

    fn validate(&self) -> Result<(), String> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("database.url must start with postgres:// or postgresql://".into());
        }
        self.connect_options().map_err(|e| format!("database.url is not a PostgreSQL URL: {e}"))?;
        if self.max_connections == 0 {
            return Err("database.max_connections must be at least 1".into());
        }
        for (name, value) in [
            ("acquire_timeout_ms", self.acquire_timeout_ms),
            ("statement_timeout_ms", self.statement_timeout_ms),
            ("lock_timeout_ms", self.lock_timeout_ms),
            ("idle_in_transaction_timeout_ms", self.idle_in_transaction_timeout_ms),
            ("work_deadline_ms", self.work_deadline_ms),
        ] {
            if value == 0 {
                return Err(format!("database.{name} must be at least 1"));
            }
        }
        // The server's own limits should end a slow statement or lock wait first, with
        // a clear error and a rolled-back transaction; the client-side deadline is for
        // when the server cannot be reached at all.
        if self.work_deadline_ms <= self.statement_timeout_ms.max(self.lock_timeout_ms) {
            return Err(
                "database.work_deadline_ms must be longer than database.statement_timeout_ms and database.lock_timeout_ms"
                    .into(),
            );
        }
        Ok(())
    }
}

impl PostgresConfig {
    /// The longest a unit of work can take from asking for a connection to its answer.
    pub fn longest_work(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms + self.work_deadline_ms)
    }

    /// Connection settings for services. Every boxoffice statement is a short index
    /// lookup whose best plan does not depend on its parameters, so connections use
    /// generic plans: a prepared statement is planned once per connection instead of
    /// on every call (the booking statement's planning cost more than its execution:
    /// +50% bookings/s). The server-side timeouts bound every statement and lock wait.
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        let (statement, lock, idle) = (
            format!("{}ms", self.statement_timeout_ms),
            format!("{}ms", self.lock_timeout_ms),
            format!("{}ms", self.idle_in_transaction_timeout_ms),
        );
        Ok(self.migration_connect_options()?.options([
            ("plan_cache_mode", "force_generic_plan"),
            ("statement_timeout", statement.as_str()),
            ("lock_timeout", lock.as_str()),
            ("idle_in_transaction_session_timeout", idle.as_str()),
        ]))
    }

    /// Connection settings for migrations: no statement timeout, since building an
    /// index on a large table may rightly take minutes.
    pub fn migration_connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        self.url.expose_secret().parse()
    }

    /// A lazily connecting pool: services start even while the database is still coming
    /// up, and `/readyz` reports it until it is reachable.
    pub fn pool(&self) -> Result<PgPool, sqlx::Error> {
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            // A broken connection fails its request and is dropped; pinging every
            // connection before every use would add a round trip to each order.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_millis(self.acquire_timeout_ms))
            .connect_lazy_with(self.connect_options()?))
    }

    /// The pool wrapped for cancel-safe, deadline-bounded work.
    pub fn database(&self) -> Result<Database, sqlx::Error> {
        Ok(Database::new(self.pool()?, Duration::from_millis(self.work_deadline_ms)))
    }
}

/// Why database work failed before or around the work itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Nothing was written: no connection in time, or the database could not be
    /// reached before anything could commit.
    #[error("the database is unavailable")]
    Unavailable,
    /// The deadline passed, or the connection broke, after a commit may have reached
    /// the database: the work may or may not have happened.
    #[error("the database did not confirm in time; the outcome is unknown")]
    OutcomeUnknown,
}

/// The error type of database work: built from driver errors and [`Fault`]s, and able
/// to say whether it means the connection was lost (so the answer is unknown if a
/// commit was under way, and the connection is not reused).
pub trait WorkError: From<sqlx::Error> + From<Fault> + Send + 'static {
    fn is_connection_lost(&self) -> bool;
}

/// Whether a driver error means the connection is gone or unusable, rather than an
/// answer from the database.
pub fn is_connection_lost(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// A unit of work: given a connection, the future that does it.
pub type Work<T, E> = Box<dyn for<'c> FnOnce(&'c mut PgConnection) -> WorkFuture<'c, T, E> + Send>;
pub type WorkFuture<'c, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

/// The pool, and the rules every unit of work runs by:
///
/// - **In a task of its own.** The work is spawned and the caller awaits its result,
///   so a caller that goes away (a client hanging up drops the request's future) does
///   not cancel the work halfway through; it completes, or meets its deadline.
/// - **Within a deadline.** When it passes, the connection is closed, never returned
///   to the pool: its session may be mid-transaction or mid-answer.
/// - **Honest about the outcome.** A failure before anything could commit is
///   [`Fault::Unavailable`] (nothing written); a deadline or a lost connection while a
///   commit may be under way is [`Fault::OutcomeUnknown`].
///
/// Returning a connection to the pool inside a transaction is prevented in the
/// driver (see `vendor/README.md`).
#[derive(Clone)]
pub struct Database {
    pool: PgPool,
    deadline: Duration,
    /// Where each acquire's wait is added, when someone watches (the gateway's distress
    /// report, [`crate::distress`]).
    pressure: Option<Arc<PoolPressure>>,
}

#[derive(Clone, Copy)]
enum Commit {
    /// Only reads: nothing can commit.
    Never,
    /// A statement that commits by itself (autocommit) as soon as it runs.
    ByItself,
    /// The work runs in a transaction committed after it returns `Ok`.
    AtTheEnd,
}

impl Database {
    pub fn new(pool: PgPool, deadline: Duration) -> Self {
        Self { pool, deadline, pressure: None }
    }

    /// The same pool, adding how long each unit of work waits for its connection to
    /// `pressure`.
    pub fn with_pressure(self, pressure: Arc<PoolPressure>) -> Self {
        Self { pressure: Some(pressure), ..self }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The same pool with another deadline, for work known to take longer than the
    /// rest (its statements need a matching `SET LOCAL statement_timeout`).
    pub fn with_deadline(&self, deadline: Duration) -> Self {
        Self { pool: self.pool.clone(), deadline, pressure: self.pressure.clone() }
    }

    /// Work that only reads.
    pub async fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: WorkError,
        F: for<'c> FnOnce(&'c mut PgConnection) -> WorkFuture<'c, T, E> + Send + 'static,
    {
        self.run(Commit::Never, Box::new(work)).await
    }

    /// One statement that writes and commits by itself.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: WorkError,
        F: for<'c> FnOnce(&'c mut PgConnection) -> WorkFuture<'c, T, E> + Send + 'static,
    {
        self.run(Commit::ByItself, Box::new(work)).await
    }

    /// Work inside a transaction, committed if it returns `Ok` and rolled back if not.
    pub async fn transaction<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: WorkError,
        F: for<'c> FnOnce(&'c mut PgConnection) -> WorkFuture<'c, T, E> + Send + 'static,
    {
        self.run(Commit::AtTheEnd, Box::new(work)).await
    }

    async fn run<T: Send + 'static, E: WorkError>(&self, commit: Commit, work: Work<T, E>) -> Result<T, E> {
        // In a task of its own, so a caller that goes away cannot cut it short; its logs
        // stay inside the caller's span.
        let pool = (self.pool.clone(), self.pressure.clone());
        let task = tokio::spawn(run_on_pool(pool, self.deadline, commit, work).in_current_span());
        match task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            // Only a runtime shutting down cancels the task.
            Err(_) => Err(E::from(Fault::OutcomeUnknown)),
        }
    }
}

/// Acquires a connection, runs the work on it within `deadline`, and closes the
/// connection instead of returning it when the deadline passed or the connection broke.
async fn run_on_pool<T, E: WorkError>(
    (pool, pressure): (PgPool, Option<Arc<PoolPressure>>),
    deadline: Duration,
    commit: Commit,
    work: Work<T, E>,
) -> Result<T, E> {
    let waiting = Instant::now();
    let acquired = pool.acquire().await;
    if let Some(pressure) = pressure {
        pressure.record(waiting.elapsed());
    }
    let mut conn = acquired.map_err(|e| match is_connection_lost(&e) {
        true => E::from(Fault::Unavailable),
        false => E::from(e),
    })?;
    let may_have_committed = AtomicBool::new(false);
    let outcome = tokio::time::timeout(deadline, attempt(&mut conn, commit, work, &may_have_committed)).await;
    let may_have_committed = may_have_committed.load(Ordering::SeqCst);
    let (result, reusable) = match outcome {
        Ok(Ok(value)) => (Ok(value), true),
        Ok(Err(e)) if e.is_connection_lost() => (Err(unknown_if(may_have_committed)), false),
        Ok(Err(e)) => (Err(e), true),
        Err(_elapsed) => (Err(unknown_if(may_have_committed)), false),
    };
    if !reusable {
        // Detached, the connection is closed when dropped here instead of going back to
        // the pool; the server rolls back whatever it had not committed.
        drop(conn.detach());
    }
    result
}

fn unknown_if<E: From<Fault>>(may_have_committed: bool) -> E {
    E::from(if may_have_committed { Fault::OutcomeUnknown } else { Fault::Unavailable })
}

async fn attempt<T, E: WorkError>(
    conn: &mut PgConnection,
    commit: Commit,
    work: Work<T, E>,
    may_have_committed: &AtomicBool,
) -> Result<T, E> {
    match commit {
        Commit::Never => work(conn).await,
        Commit::ByItself => {
            may_have_committed.store(true, Ordering::SeqCst);
            work(conn).await
        }
        Commit::AtTheEnd => {
            let mut tx = conn.begin().await?;
            let value = work(&mut tx).await?;
            may_have_committed.store(true, Ordering::SeqCst);
            tx.commit().await?;
            Ok(value)
        }
    }
}
