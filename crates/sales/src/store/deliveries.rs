//! The consumers' side of the outbox (`migrations/*_outbox.sql`,
//! `*_webhook_endpoints.sql`, `*_confirmation_emails.sql`, `*_slot_release.sql`):
//! writing the subscribers the services keep themselves, claiming due deliveries of one
//! kind of subscriber, recording what came of each attempt, disabling an endpoint that
//! is gone, resuming the paused deliveries of one enabled again. The webhook relay, the
//! confirmation emails' sender and the waiting room's slot release share them
//! ([`crate::consumer`]), so all keep the same claim, lease and retry rules. Each function is one statement that commits by itself: no
//! transaction stays open while a consumer talks to a receiver.

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::states::SubscriberKind;
use crate::webhooks::DeliveryStatus;

/// A delivery a consumer claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub subscriber_id: Uuid,
    /// `outbox_messages.id`: the delivery's key with `subscriber_id`.
    pub message_seq: i64,
    /// The attempt this claim is (1 for the first): the outcome is recorded only while
    /// the delivery's count still says so (see [`record`]).
    pub attempt: i32,
    /// `outbox_messages.message_id`, sent as `webhook-id`.
    pub message_id: Uuid,
    pub event_id: Uuid,
    pub topic: String,
    /// The message's JSON document (a webhook's request body as it is sent and signed).
    pub body: String,
    /// Where a webhook goes; None for the other kinds of subscriber.
    pub endpoint: Option<Endpoint>,
}

/// A webhook endpoint, as the relay sends to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: String,
    pub secret: String,
    /// The secret a rotation replaced, while its grace window lasts: requests are
    /// signed with both, so receivers can switch without refusing a message.
    pub previous_secret: Option<String>,
}

/// A claimed row as the statement returns it: the endpoint's columns are NULL for a
/// subscriber that is not a webhook.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    subscriber_id: Uuid,
    message_seq: i64,
    attempt: i32,
    message_id: Uuid,
    event_id: Uuid,
    topic: String,
    body: String,
    url: Option<String>,
    secret: Option<String>,
    previous_secret: Option<String>,
}

impl From<ClaimedRow> for Claimed {
    fn from(row: ClaimedRow) -> Self {
        let endpoint = match (row.url, row.secret) {
            (Some(url), Some(secret)) => Some(Endpoint { url, secret, previous_secret: row.previous_secret }),
            _ => None,
        };
        Self {
            subscriber_id: row.subscriber_id,
            message_seq: row.message_seq,
            attempt: row.attempt,
            message_id: row.message_id,
            event_id: row.event_id,
            topic: row.topic,
            body: row.body,
            endpoint,
        }
    }
}

/// Claims up to `limit` due deliveries to active subscribers of `kind`, each the head
/// of its (subscriber, event) stream, and leases them for `lease`: the claim counts the
/// attempt and pushes `next_attempt_at` past the lease, so no other relay takes them
/// while this one sends, and a relay that dies mid-send leaves them due again when the
/// lease ends (at least once).
///
/// For an ordered subscriber (all but the slot release, see
/// `migrations/*_slot_release.sql`), a delivery is claimed only at the head of its stream.
/// A head is a pending delivery with no earlier pending delivery of its stream: while
/// a head waits for its retry, the messages after it wait too, and the other streams
/// go on. A disabled endpoint's deliveries (an inactive subscriber's) are not claimed:
/// they wait, paused, until it is enabled again. A webhook subscriber is claimed for
/// only with its endpoint row, which the relay needs to send. SKIP LOCKED leaves rows another relay is claiming right now to it; that
/// relay's head still counts as pending here (its row is pending in this statement's
/// snapshot), so nothing behind it is taken early.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn claim(conn: &mut PgConnection, kind: SubscriberKind, limit: i64, lease: Duration) -> Result<Vec<Claimed>> {
    let claimed: Vec<ClaimedRow> = sqlx::query_as(
        "WITH due AS (
             SELECT d.subscriber_id, d.message_id
             FROM outbox_deliveries d
             JOIN outbox_subscribers s ON s.id = d.subscriber_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= now()
               AND s.active AND s.kind = $3
               AND (s.kind <> 'webhook'
                    OR EXISTS (SELECT 1 FROM webhook_endpoints w WHERE w.subscriber_id = s.id))
               AND (NOT s.ordered OR NOT EXISTS (
                   SELECT 1 FROM outbox_deliveries earlier
                   WHERE earlier.subscriber_id = d.subscriber_id AND earlier.event_id = d.event_id
                     AND earlier.status = 'pending' AND earlier.message_id < d.message_id
               ))
             ORDER BY d.next_attempt_at, d.message_id
             LIMIT $1
             FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE outbox_deliveries d
         SET attempts = d.attempts + 1, next_attempt_at = now() + make_interval(secs => $2)
         FROM due JOIN outbox_messages m ON m.id = due.message_id
              LEFT JOIN webhook_endpoints w ON w.subscriber_id = due.subscriber_id
         WHERE d.subscriber_id = due.subscriber_id AND d.message_id = due.message_id
         RETURNING d.subscriber_id, d.message_id AS message_seq, d.attempts AS attempt,
                   m.message_id, m.event_id, m.topic, m.payload::text AS body, w.url, w.secret,
                   CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END AS previous_secret",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .bind(kind)
    .fetch_all(conn)
    .await?;
    Ok(claimed.into_iter().map(Claimed::from).collect())
}

/// A subscriber of one of the kinds the services write themselves (not a webhook
/// endpoint, which the organizer adds): who it is, which topics it hears from every
/// event, and whether its deliveries keep per-event order.
#[derive(Debug, Clone, Copy)]
pub struct Subscriber {
    pub id: Uuid,
    pub kind: SubscriberKind,
    pub topics: &'static [&'static str],
    pub ordered: bool,
}

/// Turns `subscriber` on, writing it if it is missing: active, hearing every event's
/// `topics` (an older row's topics and order are brought up to date), and the
/// deliveries written while it was paused due now; or off: inactive and hearing
/// nothing, so no delivery piles up while its consumer is off (a missing subscriber
/// stays missing). One statement; doing it again changes nothing.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn set_subscriber(conn: &mut PgConnection, subscriber: Subscriber, on: bool) -> Result<()> {
    sqlx::query(
        "WITH turned_on AS (
             INSERT INTO outbox_subscribers (id, kind, event_id, topics, ordered, active)
             SELECT $1, $3, NULL, $4, $5, true
             WHERE $2
             ON CONFLICT (id) DO UPDATE SET active = true, topics = excluded.topics, ordered = excluded.ordered
         ), turned_off AS (
             UPDATE outbox_subscribers SET active = false, topics = '{}'
             WHERE id = $1 AND NOT $2
         )
         UPDATE outbox_deliveries SET next_attempt_at = now()
         WHERE $2 AND subscriber_id = $1 AND status = 'pending' AND next_attempt_at = 'infinity'",
    )
    .bind(subscriber.id)
    .bind(on)
    .bind(subscriber.kind)
    .bind(subscriber.topics)
    .bind(subscriber.ordered)
    .execute(conn)
    .await?;
    Ok(())
}

/// What one attempt found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How long the request took (0 for a delivery given up unsent).
    pub duration: Duration,
    /// The receiver's status code, if it answered.
    pub response_status: Option<u16>,
    /// Why it did not answer, or why the answer counts as a failure when it did. With
    /// neither this nor a status, the attempt is not logged.
    pub error: Option<String>,
}

/// What becomes of the delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Pending, due again after this long.
    RetryAfter(Duration),
    Abandoned,
}

/// Logs the attempt (unless it has nothing to log: no receiver's answer and no error,
/// as a slot release that succeeded) and moves the delivery on, in one statement. Returns false when
/// the claim was lost (the lease ended and another relay claimed it again): the
/// attempt is logged and the delivery left as the newer claim put it. An endpoint
/// disabled while this attempt was in flight does not take the claim away: the outcome
/// is recorded, and a delivery still pending is not claimed until the endpoint is
/// enabled again.
#[tracing::instrument(level = "debug", skip(conn, claimed), fields(message = %claimed.message_id))]
pub async fn record(conn: &mut PgConnection, claimed: &Claimed, attempt: &Attempt, next: Next) -> Result<bool> {
    let (status, delay) = match next {
        Next::Delivered => (DeliveryStatus::Delivered, None),
        Next::RetryAfter(delay) => (DeliveryStatus::Pending, Some(delay.as_secs_f64())),
        Next::Abandoned => (DeliveryStatus::Abandoned, None),
    };
    let updated = sqlx::query(
        "WITH attempt AS (
             INSERT INTO outbox_delivery_attempts
                 (subscriber_id, message_id, attempt, attempted_at, duration_ms, response_status, error)
             SELECT $1, $2, $3, now() - make_interval(secs => $4 / 1000.0), $4, $5, $6
             WHERE $5 IS NOT NULL OR $6 IS NOT NULL
         )
         UPDATE outbox_deliveries
         SET status = $7,
             delivered_at = CASE WHEN $7 = 'delivered'::outbox_delivery_status THEN now() END,
             next_attempt_at = coalesce(now() + make_interval(secs => $8), next_attempt_at)
         WHERE subscriber_id = $1 AND message_id = $2 AND attempts = $3 AND status = 'pending'",
    )
    .bind(claimed.subscriber_id)
    .bind(claimed.message_seq)
    .bind(claimed.attempt)
    .bind(duration_ms(attempt.duration))
    .bind(attempt.response_status.map(|s| s as i16))
    .bind(&attempt.error)
    .bind(status)
    .bind(delay)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// The endpoint answered `410 Gone`: logs the attempt, turns the subscriber off, marks
/// the endpoint disabled with `reason`, and pauses every pending delivery to it (the
/// one that got the 410 included, first in its stream again), in one statement: they
/// are sent, in order, once the organizer enables the endpoint again. Returns how many
/// deliveries were paused.
#[tracing::instrument(level = "debug", skip(conn, claimed), fields(subscriber = %claimed.subscriber_id))]
pub async fn disable_gone(conn: &mut PgConnection, claimed: &Claimed, attempt: &Attempt, reason: &str) -> Result<u64> {
    let abandoned = sqlx::query(
        "WITH attempt AS (
             INSERT INTO outbox_delivery_attempts
                 (subscriber_id, message_id, attempt, attempted_at, duration_ms, response_status, error)
             VALUES ($1, $2, $3, now() - make_interval(secs => $4 / 1000.0), $4, $5, $6)
         ), subscriber AS (
             UPDATE outbox_subscribers SET active = false WHERE id = $1
         ), endpoint AS (
             UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $7
             WHERE subscriber_id = $1 AND disabled_at IS NULL
         )
         UPDATE outbox_deliveries SET next_attempt_at = 'infinity'
         WHERE subscriber_id = $1 AND status = 'pending'",
    )
    .bind(claimed.subscriber_id)
    .bind(claimed.message_seq)
    .bind(claimed.attempt)
    .bind(duration_ms(attempt.duration))
    .bind(attempt.response_status.map(|s| s as i16))
    .bind(&attempt.error)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(abandoned.rows_affected())
}

/// Makes due the paused deliveries of every enabled endpoint: those an endpoint had
/// when it was enabled again are made due by the enabling itself
/// ([`crate::store::webhooks::set_enabled`]); this catches a delivery written paused by
/// a transaction that read the endpoint as disabled but committed after it was enabled.
/// One index probe per enabled subscriber (`outbox_deliveries_paused`). Returns how many
/// deliveries it resumed.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn resume(conn: &mut PgConnection) -> Result<u64> {
    let resumed = sqlx::query(
        "UPDATE outbox_deliveries d SET next_attempt_at = now()
         FROM outbox_subscribers s
         WHERE s.active AND d.subscriber_id = s.id
           AND d.status = 'pending' AND d.next_attempt_at = 'infinity'",
    )
    .execute(conn)
    .await?;
    Ok(resumed.rows_affected())
}

/// The outbox's lag: how long the oldest pending delivery that is due now has waited
/// since its message was written, in seconds; 0 when none is due. Deliveries waiting
/// for a later retry, leased to a relay sending them, or paused with their disabled
/// endpoint, are not due.
pub async fn lag(conn: &mut PgConnection) -> Result<f64> {
    let (lag,): (f64,) = sqlx::query_as(
        "SELECT coalesce(extract(epoch FROM now() - min(m.created_at)), 0)::float8
         FROM outbox_deliveries d
         JOIN outbox_messages m ON m.id = d.message_id
         JOIN outbox_subscribers s ON s.id = d.subscriber_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.active",
    )
    .fetch_one(conn)
    .await?;
    Ok(lag)
}

fn duration_ms(duration: Duration) -> i32 {
    duration.as_millis().min(i32::MAX as u128) as i32
}
