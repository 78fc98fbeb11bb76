//! The admitter: a background task on every replica that steps every event's
//! admission script a few times a second.
//!
//! Running it on several replicas at once is safe and intended: each step is one
//! atomic script that owes admissions for the time since the previous step of any
//! replica, so replicas add availability, not admissions.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WaitroomConfig;
use crate::error::Result;
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

    async fn step_all(&self) {
        let events = match self.store.events().await {
            Ok(events) => events,
            Err(e) => {
                crate::metrics::admitter_error();
                tracing::warn!(error = ?e, "admitter cannot list events");
                return;
            }
        };
        futures::stream::iter(events)
            .for_each_concurrent(CONCURRENT_EVENTS, |event_id| async move {
                if let Err(e) = self.step(event_id).await {
                    crate::metrics::admitter_error();
                    tracing::warn!(%event_id, error = ?e, "admission step failed");
                }
            })
            .await;
    }
}

/// Steps every event each tick until `shutdown` is cancelled.
pub async fn run_admitter(admitter: Admitter, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(admitter.tick);
    // After a slow Redis round, carry on at the normal pace rather than catching up
    // with a burst of steps: the script owes admissions by elapsed time anyway.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tracing::info!(tick_ms = admitter.tick.as_millis() as u64, "admitter running");
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => admitter.step_all().await,
        }
    }
    tracing::info!("admitter stopped");
}
