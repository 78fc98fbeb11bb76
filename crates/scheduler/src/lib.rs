//! The scheduler: timed work on the booking database, run by tokio-cron-scheduler.
//!
//! - [`jobs`]: what each job does, one function each (callable from tests).
//! - [`relay`]: the outbox relay, delivering outbox messages to the organizers'
//!   webhook endpoints (Standard Webhooks), at least once, in order per stream.
//! - [`emails`]: the confirmation emails' sender, the outbox's second consumer: each
//!   `booking.confirmed` by SMTP to the fan, with [`mail`] making the email (templates,
//!   a QR code per ticket).
//!
//! Both drain their deliveries with [`sales::consumer`], which the waiting room's slot
//! release shares.
//! - [`Scheduler`]: registers the jobs at their configured intervals and stops them on
//!   shutdown.
//!
//! Every job is written to run on several replicas at once: work is claimed row by row
//! with `FOR UPDATE SKIP LOCKED`, so replicas share it instead of repeating it or
//! waiting for each other (the watchdog only reads, so every replica runs it). Within a
//! replica, each job runs once at a time ([`jobs::Exclusive`]): a tick that finds the
//! previous run still going is skipped. Each run is bounded: sweeps and purges work in
//! batches of one statement each, the watchdog reads only the events on sale, and every
//! statement runs through [`service_kit::postgres::Database`] within a client-side
//! deadline, so a partition from PostgreSQL fails a run in seconds instead of hanging it.
//!
//! Waiting-room admissions need no job here: each admission step drops admissions past
//! their lifetime in the same atomic script that counts the room under `max_active`.

pub mod config;
pub mod emails;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod relay;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sales::tickets::{TicketKeyring, TicketKeys};
use sales::Sales;
use service_kit::health;
use service_kit::postgres::Database;
use service_kit::serve::HttpConfig;
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
    #[error("outbox relay's HTTP client: {0}")]
    Relay(#[from] reqwest::Error),
    #[error("outbox relay's v1a key (scheduler.outbox_relay.v1a_key_file): {0}")]
    RelayKey(#[from] access_token::KeyError),
    #[error("confirmation emails: {0}")]
    Emails(#[from] emails::SenderError),
    #[error(
        "confirmation emails (scheduler.smtp.url is set) need the ticket signing key to sign the tickets they \
         carry: put tickets.signing_kid's private key in tickets.keys_dir, or unset scheduler.smtp.url"
    )]
    EmailsWithoutTicketKey,
}

/// The running jobs, and the health endpoints of the process that runs them.
pub struct Scheduler {
    jobs: JobScheduler,
    health: TcpListener,
    db: Database,
    http: HttpConfig,
    /// The ticket keys the emails sign with, and where to read them again, if emails are on.
    ticket_keys: Option<(TicketKeyring, Duration)>,
    ticket_key_files: Option<(PathBuf, String)>,
}

/// Registers jobs that run every so often on the database, one run at a time, logging
/// each run's outcome.
struct RepeatedJob<'a> {
    jobs: &'a JobScheduler,
    db: &'a Database,
}

impl RepeatedJob<'_> {
    async fn add<F, Fut>(&self, name: &'static str, every: Duration, run: F) -> Result<(), JobSchedulerError>
    where
        F: Fn(Database) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<u64, sales::Error>> + Send + 'static,
    {
        let db = self.db.clone();
        let exclusive = jobs::Exclusive::new(name);
        let job = Job::new_repeated_async(every, move |_, _| {
            let (db, run, exclusive) = (db.clone(), run.clone(), exclusive.clone());
            Box::pin(async move {
                if let jobs::Run::Ran(outcome) = exclusive.run(|| run(db)).await {
                    jobs::log(name, outcome);
                }
            })
        })?;
        self.jobs.add(job).await.map(drop)
    }
}

impl Scheduler {
    /// Registers every job and starts them. `payments`, the sale with its payment
    /// provider, runs the checkout's reconciliation; without it (tests of other jobs)
    /// that job is not registered. `tickets`, the ticket keys with their private key,
    /// sign the tickets confirmation emails carry: required when `scheduler.smtp.url` is
    /// set (keys without their private half will do: emails wait until it is read, see
    /// [`Scheduler::reload_ticket_keys_from`]).
    pub async fn start(
        config: &SchedulerConfig,
        db: Database,
        payments: Option<Sales>,
        tickets: Option<Arc<TicketKeys>>,
    ) -> Result<Self, Error> {
        let health = TcpListener::bind(config.listen).await?;
        service_kit::metrics::watch_pool(db.pool());
        // The recorder first (a no-op if `main` installed it), or the counters created
        // at 0 below would be lost.
        service_kit::metrics::install();
        metrics::register();
        let jobs = JobScheduler::new().await?;
        let (batch, retention, purge_batch, scope) = (
            config.release_batch,
            config.idempotency_key_retention_hours,
            config.purge_batch,
            config.invariant_scope(),
        );
        let every = Duration::from_secs;
        let repeat = RepeatedJob { jobs: &jobs, db: &db };
        repeat
            .add("release_expired_holds", every(config.release_expired_holds_every_secs), move |db| async move {
                jobs::release_expired_holds(&db, batch).await
            })
            .await?;
        repeat
            .add("purge_idempotency_keys", every(config.purge_idempotency_keys_every_secs), move |db| async move {
                jobs::purge_idempotency_keys(&db, retention, purge_batch).await.map(|done| done.rows)
            })
            .await?;
        repeat
            .add("purge_token_revocations", every(config.purge_token_revocations_every_secs), move |db| async move {
                jobs::purge_token_revocations(&db, purge_batch).await.map(|done| done.rows)
            })
            .await?;
        let seat_change_retention = config.seat_change_retention_secs;
        repeat
            .add("prune_seat_changes", every(config.prune_seat_changes_every_secs), move |db| async move {
                jobs::prune_seat_changes(&db, seat_change_retention, purge_batch).await.map(|done| done.rows)
            })
            .await?;
        repeat
            .add("check_invariants", every(config.check_invariants_every_secs), move |db| async move {
                jobs::check_invariants(&db, scope).await
            })
            .await?;
        if let Some(sales) = payments {
            let (after, batch) = (Duration::from_secs(config.reconcile_unsettled_after_secs), config.reconcile_batch);
            repeat
                .add("reconcile_payments", every(config.reconcile_payments_every_secs), move |_| {
                    let sales = sales.clone();
                    async move { jobs::reconcile_payments(&sales, after, batch).await }
                })
                .await?;
        }
        let v1a_key =
            config.outbox_relay.v1a_key_file.as_deref().map(access_token::KeyPair::read_private).transpose()?;
        let relay = relay::Relay::new(config.outbox_relay.clone(), v1a_key)?;
        repeat
            .add("relay_outbox", every(config.outbox_relay.every_secs), move |db| {
                let relay = relay.clone();
                async move { jobs::relay_outbox(&db, &relay).await }
            })
            .await?;
        let mut ticket_keys = None;
        let sender = match config.smtp.url() {
            Some(url) => {
                let keys = TicketKeyring::new(Some(tickets.ok_or(Error::EmailsWithoutTicketKey)?));
                ticket_keys = Some((keys.clone(), Duration::from_secs(config.key_reload_interval_secs)));
                let sender =
                    emails::Sender::new(url, &config.smtp, config.confirmation_emails.clone(), keys, db.clone())?;
                repeat
                    .add("send_confirmation_emails", every(config.confirmation_emails.every_secs), move |_| {
                        let sender = sender.clone();
                        async move { sender.run().await.map(|run| run.delivered) }
                    })
                    .await?;
                true
            }
            None => false,
        };
        tokio::spawn(jobs::set_email_subscriber(db.clone(), sender));
        jobs.start().await?;
        Ok(Self { jobs, health, db, http: config.http, ticket_keys, ticket_key_files: None })
    }

    /// Reads the ticket keys again from `dir` (`<signing_kid>.private.pem` and the public
    /// keys) every `scheduler.key_reload_interval_secs` while running, when emails are
    /// on: a key rotated, or a signing key mounted after the start, is used without a
    /// restart (as the gateways do).
    pub fn reload_ticket_keys_from(mut self, dir: PathBuf, signing_kid: String) -> Self {
        self.ticket_key_files = Some((dir, signing_kid));
        self
    }

    pub fn health_addr(&self) -> std::io::Result<SocketAddr> {
        self.health.local_addr()
    }

    /// Runs until `shutdown` is cancelled, then stops the jobs.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), Error> {
        if let (Some((keys, every)), Some((dir, kid))) = (&self.ticket_keys, self.ticket_key_files.take()) {
            keys.spawn_reloader(dir, kid, *every, shutdown.clone());
        }
        let probes = service_kit::router::management_router(
            "scheduler",
            vec![("postgres", health::postgres_check(self.db.pool().clone()))],
        );
        service_kit::serve("scheduler", self.health, probes, shutdown, Duration::from_secs(1), &self.http).await?;
        self.jobs.shutdown().await?;
        Ok(())
    }
}
