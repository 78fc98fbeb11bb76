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

use std::time::Duration;

use sqlx::PgPool;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

pub use config::SchedulerConfig;

#[derive(Debug, thiserror::Error)]
#[error("scheduler: {0}")]
pub struct Error(#[from] JobSchedulerError);

/// The running jobs.
pub struct Scheduler {
    jobs: JobScheduler,
}

impl Scheduler {
    /// Registers every job and starts them.
    pub async fn start(config: &SchedulerConfig, pool: PgPool) -> Result<Self, Error> {
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
        jobs.add(Job::new_repeated_async(
            Duration::from_secs(config.purge_idempotency_keys_every_secs),
            move |_, _| {
                let pool = pool.clone();
                Box::pin(async move {
                    jobs::log("purge_idempotency_keys", jobs::purge_idempotency_keys(&pool, retention).await)
                })
            },
        )?)
        .await?;
        jobs.start().await?;
        Ok(Self { jobs })
    }

    /// Runs until `shutdown` is cancelled, then stops the jobs.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        tracing::info!("scheduler running");
        shutdown.cancelled().await;
        self.jobs.shutdown().await?;
        Ok(())
    }
}
