//! What every outbox consumer shares (DECISIONS.md D4): the scheduler's webhook relay
//! and confirmation emails' sender, and the waiting room's slot release, each drain the
//! deliveries of their own kind of subscriber with the same discipline, written once
//! here.
//!
//! A run claims a batch of due deliveries (`crate::store::deliveries::claim`: one
//! short statement that leases them), attempts them with no transaction open, at most
//! `concurrency` at once, then records each outcome in a statement of its own, and
//! repeats until nothing is due or `max_batches_per_run` batches ran. A failed attempt
//! is retried after the consumer's [`Consumer::retry_delay`], and given up when that
//! says no more. Dropping a run's future (a crash, a shutdown) leaves its claimed
//! deliveries leased; they are due again once the lease ends (at least once).

use std::future::Future;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use service_kit::postgres::Database;

use crate::states::SubscriberKind;
use crate::store::deliveries::{self, Attempt, Claimed, Next};

/// Why a webhook endpoint was disabled when it answered `410 Gone`.
pub const GONE_REASON: &str = "the endpoint answered 410 Gone";

/// What an attempt means for the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Retry, not before this long if the receiver said so; `reason` labels the
    /// consumer's failure counter.
    Failed {
        retry_after: Option<Duration>,
        reason: &'static str,
    },
    /// The receiver refused it for good (an SMTP `5xx`, an address that is not one): given
    /// up now, as no retry can help; `reason` labels the failure counter.
    Abandoned {
        reason: &'static str,
    },
    /// The receiver is gone for good (a webhook's `410`): the subscriber is turned off
    /// and its deliveries wait, paused, until it is turned on again.
    Gone,
}

/// How much one run takes on.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deliveries claimed per statement.
    pub batch: i64,
    /// How long a claim keeps a delivery from other consumers of its kind.
    pub lease: Duration,
    /// Attempts in flight at once within a batch.
    pub concurrency: usize,
    pub max_batches_per_run: u32,
}

/// One kind of outbox consumer.
pub trait Consumer: Sync {
    /// Whose deliveries it drains.
    const KIND: SubscriberKind;
    /// Its counter of deliveries by `outcome`: `delivered`, `retried`, `abandoned`,
    /// `disabled` or `superseded`.
    const DELIVERIES: &'static str;
    /// Its counter of failed attempts by `reason`.
    const FAILURES: &'static str;

    fn limits(&self) -> Limits;

    /// Sends one claimed delivery: what happened, and what it means.
    fn attempt(&self, claimed: &Claimed) -> impl Future<Output = (Attempt, Outcome)> + Send;

    /// How long after failed attempt number `attempt` (1 for the first) the next one
    /// comes, or `None` when it was the last.
    fn retry_delay(&self, attempt: i32, retry_after: Option<Duration>) -> Option<Duration>;
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Attempts made (each claimed delivery once).
    pub attempts: u64,
    pub delivered: u64,
    pub batches: u32,
}

/// Drains `consumer`'s due deliveries (see the module's description).
#[tracing::instrument(skip_all, fields(kind = ?C::KIND))]
pub async fn drain<C: Consumer>(db: &Database, consumer: &C) -> Result<Drained, crate::Error> {
    let mut run = Drained::default();
    let limits = consumer.limits();
    while run.batches < limits.max_batches_per_run {
        let claimed =
            db.write(move |conn| Box::pin(deliveries::claim(conn, C::KIND, limits.batch, limits.lease))).await?;
        if claimed.is_empty() {
            break;
        }
        run.batches += 1;
        run.attempts += claimed.len() as u64;
        let outcomes: Vec<Result<bool, crate::Error>> = stream::iter(claimed)
            .map(|claimed| deliver(db, consumer, claimed))
            .buffer_unordered(limits.concurrency)
            .collect()
            .await;
        for outcome in outcomes {
            run.delivered += u64::from(outcome?);
        }
    }
    Ok(run)
}

/// Attempts one claimed delivery and records what came of it. True if delivered.
async fn deliver<C: Consumer>(db: &Database, consumer: &C, claimed: Claimed) -> Result<bool, crate::Error> {
    let (attempt, outcome) = consumer.attempt(&claimed).await;
    match outcome {
        Outcome::Delivered => {
            record::<C>(db, claimed, attempt, Next::Delivered, "delivered").await?;
            Ok(true)
        }
        Outcome::Gone => {
            ::metrics::counter!(C::FAILURES, "reason" => "gone").increment(1);
            let subscriber = claimed.subscriber_id;
            let paused = db
                .write(move |conn| {
                    Box::pin(async move { deliveries::disable_gone(conn, &claimed, &attempt, GONE_REASON).await })
                })
                .await?;
            ::metrics::counter!(C::DELIVERIES, "outcome" => "disabled").increment(1);
            tracing::warn!(%subscriber, paused, "the receiver answered 410 Gone: disabled");
            Ok(false)
        }
        Outcome::Abandoned { reason } => {
            ::metrics::counter!(C::FAILURES, "reason" => reason).increment(1);
            record::<C>(db, claimed, attempt, Next::Abandoned, "abandoned").await?;
            Ok(false)
        }
        Outcome::Failed { retry_after, reason } => {
            ::metrics::counter!(C::FAILURES, "reason" => reason).increment(1);
            match consumer.retry_delay(claimed.attempt, retry_after) {
                Some(delay) => record::<C>(db, claimed, attempt, Next::RetryAfter(delay), "retried").await?,
                None => record::<C>(db, claimed, attempt, Next::Abandoned, "abandoned").await?,
            }
            Ok(false)
        }
    }
}

async fn record<C: Consumer>(
    db: &Database,
    claimed: Claimed,
    attempt: Attempt,
    next: Next,
    outcome: &'static str,
) -> Result<(), crate::Error> {
    let message = claimed.message_id;
    let held =
        db.write(move |conn| Box::pin(async move { deliveries::record(conn, &claimed, &attempt, next).await })).await?;
    let outcome = if held { outcome } else { "superseded" };
    ::metrics::counter!(C::DELIVERIES, "outcome" => outcome).increment(1);
    if !held {
        // Our lease ended before the outcome was recorded (a stall past it): the newer
        // claim stands.
        tracing::warn!(%message, kind = ?C::KIND, "a delivery's claim was lost before its outcome was recorded");
    }
    Ok(())
}

/// The wait after failed attempt number `attempt` (1 for the first) on `schedule`, times
/// `scale`, or the receiver's `retry_after` (up to `max_retry_after`) when that is longer;
/// `None` after the schedule's last wait.
pub fn scheduled_retry(
    schedule: &[Duration],
    scale: f64,
    attempt: i32,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
) -> Option<Duration> {
    let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
    let scheduled = schedule.get(index)?.mul_f64(scale);
    Some(scheduled.max(retry_after.unwrap_or_default().min(max_retry_after)))
}
