//! The scheduler: timed work on the booking database, run by tokio-cron-scheduler.
//!
//! - [`jobs`]: what each job does, one function each (callable from tests).
//! - [`Scheduler`]: registers the jobs at their configured intervals and stops them on
//!   shutdown.
//!
//! Every job is written to run on several replicas at once: work is claimed row by row
//! with `FOR UPDATE SKIP LOCKED`, so replicas share it instead of repeating it or
//! waiting for each other. Waiting-room admissions need no job here: each admission
//! step drops admissions past their lifetime in the same atomic script that counts the
//! room under `max_active`.

pub mod config;
pub mod jobs;
pub mod metrics;

use std::net::SocketAddr;
use std::time::Duration;

use service_kit::health;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

pub use config::SchedulerConfig;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("scheduler: {0}")]
    Jobs(#[from] JobSchedulerError),
    #[error("scheduler health endpoint: {0}")]
    Listen(#[from] std::io::Error),
}

/// The running jobs, and the health endpoints of the process that runs them.
pub struct Scheduler {
    jobs: JobScheduler,
    health: TcpListener,
    pool: PgPool,
}

impl Scheduler {
    /// Registers every job and starts them.
    pub async fn start(config: &SchedulerConfig, pool: PgPool) -> Result<Self, Error> {
        let health = TcpListener::bind(config.listen).await?;
        let jobs = JobScheduler::new().await?;
        let batch = config.release_batch;
        let holds_pool = pool.clone();
        jobs.add(Job::new_repeated_async(
            Duration::from_secs(config.release_expired_holds_every_secs),
            move |_, _| {
                let pool = holds_pool.clone();
                Box::pin(
                    async move { jobs::log("release_expired_holds", jobs::release_expired_holds(&pool, batch).await) },
                )
            },
        )?)
        .await?;
        let retention = config.idempotency_key_retention_hours;
        let keys_pool = pool.clone();
        jobs.add(Job::new_repeated_async(
            Duration::from_secs(config.purge_idempotency_keys_every_secs),
            move |_, _| {
                let pool = keys_pool.clone();
                Box::pin(async move {
                    jobs::log("purge_idempotency_keys", jobs::purge_idempotency_keys(&pool, retention).await)
                })
            },
        )?)
        .await?;
        jobs.start().await?;
        Ok(Self { jobs, health, pool })
    }

    pub fn health_addr(&self) -> std::io::Result<SocketAddr> {
        self.health.local_addr()
    }

    /// Runs until `shutdown` is cancelled, then stops the jobs.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        let probes = health::router(vec![("postgres", health::postgres_check(self.pool.clone()))]);
        service_kit::serve("scheduler", self.health, probes, shutdown, Duration::from_secs(1)).await?;
        self.jobs.shutdown().await?;
        Ok(())
    }
}
