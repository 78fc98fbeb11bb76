//! Slots freed when a fan is done (issue 18, DECISIONS.md D4): an admitted fan counts
//! under the event's `max_active` until their admission expires, but one who has booked
//! or joined the waitlist is done shopping (left counting, waitlisted fans held the
//! room's whole admission budget on a show with a few places left for other sections).
//! Every `booking.confirmed` (a free one-step booking, or a checkout whose payment
//! succeeded) and `waitlist.joined` is delivered to the waiting room as an outbox
//! subscriber of its own (`migrations/*_slot_release.sql`), and each replica drains those deliveries
//! every `waitroom.slot_release.poll_ms` with the sale's consumer ([`sales::consumer`]):
//! claimed in batches with `SKIP LOCKED`, so replicas share the work, and released in
//! Redis by `scripts/release.lua`, which leaves the fan's access token valid (they
//! still need it to see their booking) and leaves alone an admission that began after
//! the booking.
//!
//! At least once, and harmless twice: a release repeated (a replica that died after
//! Redis, before recording it) finds the admission already gone. A release for an
//! event this waiting room does not know (a sale with no waiting room) has nothing to
//! do. After a Redis wipe, the rebuild leaves out the admissions of fans who booked or
//! joined the waitlist since, by the same rule (`crate::ledger::Ledger::begin_rebuild`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sales::consumer::{self, Consumer, Drained, Limits, Outcome};
use sales::states::SubscriberKind;
use sales::store::deliveries::{self, Attempt, Claimed, Subscriber};
use serde::Deserialize;
use service_kit::postgres::Database;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SlotReleaseConfig;
use crate::domain::fan::FanId;
use crate::error::Result;
use crate::store::Store;

/// The one subscriber of kind `slot_release`: every waiting-room replica drains it.
pub const SUBSCRIBER: Subscriber = Subscriber {
    id: Uuid::from_u128(0x0b0c_0f1c_e000_4000_8000_0000_5107_0001),
    kind: SubscriberKind::SlotRelease,
    topics: &["booking.confirmed", "waitlist.joined"],
    ordered: false,
};

/// Releases in flight at once within a claimed batch: each is one short Redis script.
const CONCURRENCY: usize = 16;
/// Batches one run takes on before the next poll.
const MAX_BATCHES_PER_RUN: u32 = 10;
/// Waits after failed attempts 1, 2, …: Redis was unreachable. After the last, the
/// release is given up; by then the admission is near its end anyway.
const RETRY_SCHEDULE: [Duration; 5] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

/// A `booking.confirmed` or `waitlist.joined` message as the release reads it.
#[derive(Deserialize)]
struct Done {
    /// The database's clock when the fan booked or joined the waitlist.
    timestamp: DateTime<Utc>,
    data: DoneFan,
}

/// What both messages' `data` say of the fan.
#[derive(Deserialize)]
struct DoneFan {
    event_id: Uuid,
    fan_id: String,
}

/// Drains the slot release's deliveries. Cheap to clone.
#[derive(Clone)]
pub struct SlotRelease {
    store: Store,
    db: Database,
    config: SlotReleaseConfig,
    /// The subscriber is written (or turned off) once per process.
    subscribed: Arc<AtomicBool>,
}

impl SlotRelease {
    pub fn new(store: Store, db: Database, config: SlotReleaseConfig) -> Self {
        Self { store, db, config, subscribed: Arc::new(AtomicBool::new(false)) }
    }

    /// Makes sure the subscriber is on (or off, with the release disabled), then
    /// releases every booking due; what the run did.
    #[tracing::instrument(skip_all)]
    pub async fn release_due(&self) -> Result<Drained> {
        if !self.subscribed.load(Ordering::Acquire) {
            let on = self.config.enabled;
            self.db.write(move |conn| Box::pin(deliveries::set_subscriber(conn, SUBSCRIBER, on))).await?;
            self.subscribed.store(true, Ordering::Release);
        }
        if !self.config.enabled {
            return Ok(Drained::default());
        }
        Ok(consumer::drain(&self.db, self).await?)
    }

    /// Releases every `poll_ms` until `shutdown` is cancelled; with the release
    /// disabled, only turns the subscriber off. A failed run (PostgreSQL unreachable)
    /// is counted and retried at the next poll; the log says when failing starts and
    /// stops.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(Duration::from_millis(self.config.poll_ms));
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing_since: Option<Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            match (self.release_due().await, failing_since) {
                (Ok(_), None) => {}
                (Ok(_), Some(since)) => {
                    tracing::info!(failing_for_ms = since.elapsed().as_millis() as u64, "slot release recovered");
                    failing_since = None;
                }
                (Err(e), failing) => {
                    crate::metrics::slot_release_failed();
                    if failing.is_none() {
                        tracing::warn!(error = ?e, "slot release failing; retrying every poll");
                        failing_since = Some(Instant::now());
                    }
                }
            }
            if !self.config.enabled && self.subscribed.load(Ordering::Acquire) {
                break;
            }
        }
    }

    async fn release(&self, claimed: &Claimed) -> Outcome {
        let Some((event_id, fan, booked_at)) = read(claimed) else {
            tracing::warn!(message = %claimed.message_id, "a message the slot release cannot read: given up");
            return Outcome::Abandoned { reason: "unreadable" };
        };
        let skew_ms = self.config.clock_skew_ms;
        match self.store.release(event_id, &fan, booked_at.timestamp_millis(), skew_ms).await {
            Ok(released) => {
                if released == Some(true) {
                    crate::metrics::slot_released((Utc::now() - booked_at).to_std().unwrap_or_default());
                }
                Outcome::Delivered
            }
            Err(e) => {
                tracing::debug!(%event_id, error = ?e, "slot release failed; retried");
                Outcome::Failed { retry_after: None, reason: "redis" }
            }
        }
    }
}

/// The booking's event, fan and time; None for a message that is not a booking a
/// waiting-room fan could have made (a fan id outside the waiting room's alphabet).
fn read(claimed: &Claimed) -> Option<(Uuid, FanId, DateTime<Utc>)> {
    let done: Done = serde_json::from_str(&claimed.body).ok()?;
    let fan = FanId::parse(&done.data.fan_id).ok()?;
    Some((done.data.event_id, fan, done.timestamp))
}

impl Consumer for SlotRelease {
    const KIND: SubscriberKind = SubscriberKind::SlotRelease;
    const DELIVERIES: &'static str = crate::metrics::SLOT_RELEASE_DELIVERIES;
    const FAILURES: &'static str = crate::metrics::SLOT_RELEASE_FAILURES;

    fn limits(&self) -> Limits {
        Limits {
            batch: i64::from(self.config.batch),
            lease: Duration::from_millis(self.config.lease_ms),
            concurrency: CONCURRENCY,
            max_batches_per_run: MAX_BATCHES_PER_RUN,
        }
    }

    async fn attempt(&self, claimed: &Claimed) -> (Attempt, Outcome) {
        let started = Instant::now();
        let outcome = self.release(claimed).await;
        let error = match &outcome {
            Outcome::Failed { reason, .. } | Outcome::Abandoned { reason } => Some((*reason).to_owned()),
            Outcome::Delivered | Outcome::Gone => None,
        };
        (Attempt { duration: started.elapsed(), response_status: None, error }, outcome)
    }

    fn retry_delay(&self, attempt: i32, _retry_after: Option<Duration>) -> Option<Duration> {
        consumer::scheduled_retry(&RETRY_SCHEDULE, 1.0, attempt, None, Duration::ZERO)
    }
}
