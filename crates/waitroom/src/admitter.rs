//! The admitter: a background task on every replica that steps every event's
//! admission script a few times a second.
//!
//! Running it on several replicas at once is safe and intended: each step is one
//! atomic script that owes admissions for the time since the previous step of any
//! replica, so replicas add availability, not admissions.

use std::time::{Duration, Instant};

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WaitroomConfig;
use crate::error::{Error, Result};
use crate::store::{Step, StepOutcome, Store};

/// Events stepped at once by one replica; bounds its Redis connections' queue.
const CONCURRENT_EVENTS: usize = 16;

#[derive(Clone)]
pub struct Admitter {
    store: Store,
    abandon_after_ms: u64,
    tick: Duration,
}

impl Admitter {
    pub fn new(redis: ConnectionManager, key_prefix: &str, config: &WaitroomConfig) -> Self {
        Self {
            store: Store::new(redis, key_prefix),
            abandon_after_ms: config.abandon_after_secs * 1000,
            tick: Duration::from_millis(config.admitter_tick_ms),
        }
    }

    /// One admission step for one event; at the opening time it also opens the sale.
    pub async fn step(&self, event_id: Uuid) -> Result<Step> {
        let outcome = self.store.admit_step(event_id, self.abandon_after_ms).await?;
        if let StepOutcome::Stepped(Step { room, .. }) | StepOutcome::Idle(room) = &outcome {
            if room.sale_opened {
                tracing::info!(%event_id, queue_length = room.queue_length, "sale opened");
            }
        }
        match outcome {
            StepOutcome::Stepped(step) => {
                crate::metrics::admission_step(event_id, &step);
                Ok(step)
            }
            StepOutcome::Idle(room) => {
                crate::metrics::room(event_id, &room);
                Ok(Step { room, ..Step::default() })
            }
            StepOutcome::UnknownEvent => Ok(Step::default()),
        }
    }

    /// Steps every event once; the failures, if any, and the first of them.
    async fn step_all(&self) -> Result<(), (u64, Error)> {
        let events = match self.store.events().await {
            Ok(events) => events,
            Err(e) => {
                crate::metrics::admitter_error();
                return Err((1, e));
            }
        };
        let failures = std::sync::Mutex::new((0, None));
        futures::stream::iter(events)
            .for_each_concurrent(CONCURRENT_EVENTS, |event_id| {
                let failures = &failures;
                async move {
                    if let Err(e) = self.step(event_id).await {
                        crate::metrics::admitter_error();
                        tracing::debug!(%event_id, error = ?e, "admission step failed");
                        let mut failures = failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        failures.0 += 1;
                        failures.1.get_or_insert(e);
                    }
                }
            })
            .await;
        match failures.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner()) {
            (count, Some(first)) => Err((count, first)),
            _ => Ok(()),
        }
    }
}

/// How often a failing admitter repeats its warning: it ticks many times a second,
/// and a log line per failed tick would drown everything else while Redis is down.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

/// The admitter's failures as the log tells them: the first one at once, then a
/// summary every [`FAILURE_LOG_EVERY`], and the recovery. Every failure is counted in
/// `boxoffice_waitroom_admitter_errors_total` regardless.
#[derive(Default)]
struct FailureLog {
    /// When the current run of failures began, and when it was last reported.
    failing: Option<(Instant, Instant)>,
    /// Failures since the last report.
    unreported: u64,
}

impl FailureLog {
    fn record(&mut self, outcome: Result<(), (u64, Error)>) {
        let now = Instant::now();
        match (outcome, self.failing) {
            (Ok(()), None) => {}
            (Ok(()), Some((since, _))) => {
                tracing::info!(failing_for_ms = since.elapsed().as_millis() as u64, "admitter recovered");
                *self = Self::default();
            }
            (Err((count, error)), None) => {
                tracing::warn!(error = ?error, "admitter failing; retrying every tick");
                self.failing = Some((now, now));
                self.unreported = count.saturating_sub(1);
            }
            (Err((count, error)), Some((since, reported))) => {
                self.unreported += count;
                if now.duration_since(reported) >= FAILURE_LOG_EVERY {
                    tracing::warn!(
                        error = ?error,
                        failing_for_ms = since.elapsed().as_millis() as u64,
                        failures = self.unreported,
                        "admitter still failing"
                    );
                    self.failing = Some((since, now));
                    self.unreported = 0;
                }
            }
        }
    }
}

/// Steps every event each tick until `shutdown` is cancelled. It keeps ticking while
/// Redis is down (each tick fails fast, within the Redis timeouts) and resumes
/// admitting as soon as Redis answers again.
pub async fn run_admitter(admitter: Admitter, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(admitter.tick);
    // After a slow Redis round, carry on at the normal pace rather than catching up
    // with a burst of steps: the script owes admissions by elapsed time anyway.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(tick_ms = admitter.tick.as_millis() as u64, "admitter running");
    let mut failures = FailureLog::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => failures.record(admitter.step_all().await),
        }
    }
    tracing::info!("admitter stopped");
}
