//! The admitter: a background task on every replica that steps every event's
//! admission script a few times a second.
//!
//! Running it on several replicas at once is safe and intended: each step is one
//! atomic script that owes admissions for the time since the previous step of any
//! replica, so replicas add availability, not admissions.
//!
//! It walks the events PostgreSQL knows as well as Redis' own index, so it notices an
//! event Redis lost (index and all) and rebuilds it ([`crate::restore`]), in the
//! background: no tick waits on PostgreSQL. Closed events are not walked: closing
//! takes an event out of the index (and starts its keys' retention, see
//! `waitroom.closed_retention_secs`), and an event the index still lists that
//! PostgreSQL has closed (a close whose index update failed) is taken out here.
//!
//! Nor are events retired for idleness: a step that finds an open event with nobody in
//! line and nobody admitted for `waitroom.idle_retention_secs` retires it in Redis
//! (`scripts/admit.lua` has the rule and why it is safe); the admitter then takes it
//! out of the index and records the retirement in PostgreSQL (`retired_at`), so the
//! walk of PostgreSQL's events leaves it out too. A join brings it back into the index
//! (`scripts/locate.lua`); the admitter, stepping it again, tells PostgreSQL. Redis
//! decides, PostgreSQL follows: whenever a step and PostgreSQL's record disagree, the
//! record is corrected in the background.
//!
//! Every admission is handed to the [`Recorder`](crate::recorder::Recorder), which
//! writes them to PostgreSQL on its own task; and fans who booked stop counting
//! under `max_active` ([`crate::release`]), on another.
//!
//! Each step also caps the room by what the sale has left ([`Inventory`], issue 18):
//! no more fans shopping at once than the remaining places can use, none at all once
//! the show is sold out; and slows down while the gateways report distress
//! ([`Backpressure`]). Both are refreshed in the background; a step never waits for
//! them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::backpressure::Backpressure;
use crate::config::WaitroomConfig;
use crate::domain::poll;
use crate::domain::settings::EventState;
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::ledger::{Admission, Listing, Record, Skip};
use crate::release::SlotRelease;
use crate::restore::Restorer;
use crate::store::{Step, StepOutcome, Store};

/// Events stepped at once by one replica; bounds its Redis connections' queue.
const CONCURRENT_EVENTS: usize = 16;

#[derive(Clone)]
pub struct Admitter {
    store: Store,
    restorer: Arc<Restorer>,
    inventory: Inventory,
    backpressure: Backpressure,
    slot_release: SlotRelease,
    abandon_after_ms: u64,
    pause_after_restore_ms: u64,
    tick: Duration,
}

impl Admitter {
    pub fn new(
        store: Store,
        restorer: Arc<Restorer>,
        inventory: Inventory,
        backpressure: Backpressure,
        slot_release: SlotRelease,
        config: &WaitroomConfig,
    ) -> Self {
        Self {
            store,
            restorer,
            inventory,
            backpressure,
            slot_release,
            abandon_after_ms: config.abandon_after_secs * 1000,
            pause_after_restore_ms: poll::restore_pause_ms(config.abandon_after_secs),
            tick: Duration::from_millis(config.admitter_tick_ms),
        }
    }

    /// Writes the admissions not yet recorded in PostgreSQL now (the admitter's own
    /// task does this by itself, see [`run_admitter`]); how many it wrote.
    pub async fn record_admissions(&self) -> Result<usize> {
        self.restorer.recorder().flush().await
    }

    /// Admissions not yet recorded in PostgreSQL.
    pub fn unrecorded_admissions(&self) -> usize {
        self.restorer.recorder().pending()
    }

    /// Frees the admissions of fans who booked now (the admitter's own task does this
    /// by itself, see [`run_admitter`]); what the run did.
    pub async fn release_slots(&self) -> Result<sales::consumer::Drained> {
        self.slot_release.release_due().await
    }

    /// One admission step for one event; at the opening time it also opens the sale.
    /// The admitted fans are queued for recording in PostgreSQL.
    pub async fn step(&self, event_id: Uuid) -> Result<Step> {
        self.inventory.refresh_in_background(event_id);
        let budget = self.inventory.budget(event_id);
        crate::metrics::budget(event_id, budget.as_ref(), self.inventory.stale(event_id));
        let cap = budget.map(|b| b.shopper_cap);
        self.backpressure.refresh_in_background();
        let share = self.backpressure.view().rate_share;
        let (abandon, pause) = (self.abandon_after_ms, self.pause_after_restore_ms);
        let outcome = self.store.admit_step(event_id, abandon, pause, cap, share).await?;
        let listed = || self.restorer.directory_now().and_then(|events| events.get(&event_id).copied());
        if matches!(outcome, StepOutcome::Stepped(_) | StepOutcome::Idle(_)) && listed().is_some_and(|l| l.retired) {
            // A join brought the event back (the index lists it, or it would not be
            // stepped): PostgreSQL's walk is to list it again.
            self.restorer.record_retirement_in_background(event_id, false);
        }
        if let StepOutcome::Stepped(Step { room, .. }) | StepOutcome::Idle(room) = &outcome {
            if room.sale_opened {
                tracing::info!(%event_id, queue_length = room.queue_length, "sale opened");
            }
        }
        match outcome {
            StepOutcome::Stepped(step) => {
                crate::metrics::admission_step(event_id, &step, budget.as_ref(), share);
                let admitted = step.admitted.iter().zip(&step.scores).map(|(fan, &score)| {
                    Record::Admitted(Admission {
                        event_id,
                        fan_id: fan.clone(),
                        score,
                        admitted_at_ms: step.admitted_at_ms,
                        expires_at_ms: step.expires_at_ms,
                    })
                });
                let skipped = step.skipped.iter().map(|(fan, score)| {
                    Record::Skipped(Skip {
                        event_id,
                        fan_id: fan.clone(),
                        score: *score,
                        skipped_at_ms: step.admitted_at_ms,
                    })
                });
                self.restorer.recorder().push(admitted.chain(skipped));
                Ok(step)
            }
            StepOutcome::Idle(room) => {
                crate::metrics::room(event_id, &room, budget.as_ref(), share);
                Ok(Step { room, ..Step::default() })
            }
            StepOutcome::Retired => {
                // Out of the index unless a join brought it back meanwhile; then out of
                // PostgreSQL's walk (this step repeats until PostgreSQL has it).
                if self.store.unindex_retired(event_id).await? && !listed().is_some_and(|l| l.retired) {
                    self.restorer.record_retirement_in_background(event_id, true);
                }
                Ok(Step::default())
            }
            StepOutcome::UnknownEvent => {
                // Redis lost the event (or never had it: PostgreSQL recorded settings
                // whose Redis write failed). Rebuilt in the background; admission
                // resumes on a later tick, after the pause.
                // A closed or retired event is rebuilt only when a request needs its
                // answer.
                match listed() {
                    Some(Listing { state: EventState::Closed, .. } | Listing { retired: true, .. }) => {
                        self.store.unindex(event_id).await?
                    }
                    Some(_) => self.restorer.rebuild_in_background(event_id),
                    None => {}
                }
                Ok(Step::default())
            }
        }
    }

    /// The events to step, with PostgreSQL's list as last read: a tick never waits on
    /// PostgreSQL.
    async fn events(&self) -> Result<Vec<Uuid>> {
        self.walk(self.restorer.directory_now()).await
    }

    /// The events the next tick steps, with PostgreSQL's list read now.
    pub async fn walked_events(&self) -> Result<Vec<Uuid>> {
        let directory = self.restorer.directory_fresh().await?;
        self.walk(Some(directory)).await
    }

    /// Redis' index, and every event PostgreSQL knows that is neither closed nor retired
    /// for idleness, less those PostgreSQL has closed (taken out of the index too). An
    /// event the index lists is stepped even if PostgreSQL has it retired: a join
    /// brought it back, and its step tells PostgreSQL.
    async fn walk(&self, directory: Option<Arc<HashMap<Uuid, Listing>>>) -> Result<Vec<Uuid>> {
        let mut events: HashSet<Uuid> = self.store.events().await?.into_iter().collect();
        if let Some(known) = directory {
            let closed = |id: &Uuid| known.get(id).is_some_and(|listing| listing.state == EventState::Closed);
            for event_id in events.iter().filter(|id| closed(id)) {
                self.store.unindex(*event_id).await?;
            }
            events.retain(|id| !closed(id));
            let walked = |listing: &Listing| listing.state != EventState::Closed && !listing.retired;
            events.extend(known.iter().filter(|(_, listing)| walked(listing)).map(|(&id, _)| id));
        }
        Ok(events.into_iter().collect())
    }

    /// Steps every event once; the failures, if any, and the first of them.
    async fn step_all(&self) -> Result<(), (u64, Error)> {
        let events = match self.events().await {
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

/// Steps every event each tick until `shutdown` is cancelled, records the admissions
/// in PostgreSQL on a task of its own, and frees the slots of fans who booked on
/// another ([`crate::release`]). It keeps ticking while Redis is down
/// (each tick fails fast, within the Redis timeouts) and resumes admitting as soon as
/// Redis answers again; it keeps admitting while PostgreSQL is down, and records the
/// admissions once PostgreSQL is back.
pub async fn run_admitter(admitter: Admitter, shutdown: CancellationToken) {
    let recorder = admitter.restorer.recorder().clone();
    let recording = tokio::spawn({
        let (tick, shutdown) = (admitter.tick, shutdown.clone());
        async move { recorder.run(tick, shutdown).await }
    });
    let releasing = tokio::spawn(admitter.slot_release.clone().run(shutdown.clone()));
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
    if let Err(e) = recording.await {
        tracing::error!(error = %e, "the admission recorder panicked");
    }
    if let Err(e) = releasing.await {
        tracing::error!(error = %e, "the slot release panicked");
    }
    tracing::info!("admitter stopped");
}
