//! Organizer webhook endpoints (`webhook_endpoints` with their `outbox_subscribers`
//! row) and the delivery log the organizer reads.

use sqlx::PgConnection;
use uuid::Uuid;

use std::time::Duration;

use crate::error::Result;
use crate::webhooks::{DeliveryLogEntry, NewWebhook, Webhook, WebhookSecret};

/// Writes the subscriber and its endpoint in one statement: neither exists alone.
#[tracing::instrument(level = "debug", skip(conn, new, secret))]
pub async fn insert(conn: &mut PgConnection, id: Uuid, new: &NewWebhook, secret: &WebhookSecret) -> Result<Webhook> {
    let webhook = sqlx::query_as(
        "WITH subscriber AS (
             INSERT INTO outbox_subscribers (id, kind, event_id, topics)
             VALUES ($1, 'webhook', $2, $3)
             RETURNING id, event_id, topics, active, created_at
         ), endpoint AS (
             INSERT INTO webhook_endpoints (subscriber_id, url, secret, created_at)
             SELECT id, $4, $5, created_at FROM subscriber
             RETURNING url, disabled_at, disabled_reason
         )
         SELECT s.id, e.url, s.event_id, s.topics, s.active, s.created_at, e.disabled_at, e.disabled_reason
         FROM subscriber s, endpoint e",
    )
    .bind(id)
    .bind(new.event_id)
    .bind(&new.topics)
    .bind(new.url.as_str())
    .bind(secret.expose())
    .fetch_one(conn)
    .await?;
    Ok(webhook)
}

/// Every endpoint, oldest first; never their secrets.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Webhook>> {
    let webhooks = sqlx::query_as(
        "SELECT s.id, e.url, s.event_id, s.topics, s.active, s.created_at, e.disabled_at, e.disabled_reason
         FROM webhook_endpoints e JOIN outbox_subscribers s ON s.id = e.subscriber_id
         WHERE e.deleted_at IS NULL
         ORDER BY s.created_at, s.id",
    )
    .fetch_all(conn)
    .await?;
    Ok(webhooks)
}

/// One endpoint, if it exists; never its secret.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn get(conn: &mut PgConnection, id: Uuid) -> Result<Option<Webhook>> {
    let webhook = sqlx::query_as(
        "SELECT s.id, e.url, s.event_id, s.topics, s.active, s.created_at, e.disabled_at, e.disabled_reason
         FROM webhook_endpoints e JOIN outbox_subscribers s ON s.id = e.subscriber_id
         WHERE e.subscriber_id = $1 AND e.deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(webhook)
}

/// Enables the endpoint: the subscriber is active again, the disabling forgotten, and
/// its paused deliveries due now, so each stream resumes at the message where it
/// stopped (those written while it was disabled included). One statement; `None` if no
/// such endpoint. Enabling an enabled endpoint changes nothing.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn enable(conn: &mut PgConnection, id: Uuid) -> Result<Option<Webhook>> {
    let webhook = sqlx::query_as(
        "WITH subscriber AS (
             UPDATE outbox_subscribers SET active = true
             WHERE id = $1 AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE subscriber_id = $1 AND deleted_at IS NULL)
             RETURNING id, event_id, topics, active, created_at
         ), endpoint AS (
             UPDATE webhook_endpoints SET disabled_at = NULL, disabled_reason = NULL
             WHERE subscriber_id = $1
             RETURNING subscriber_id, url, disabled_at, disabled_reason
         ), resumed AS (
             UPDATE outbox_deliveries SET next_attempt_at = now()
             WHERE subscriber_id = $1 AND status = 'pending' AND next_attempt_at = 'infinity'
         )
         SELECT s.id, e.url, s.event_id, s.topics, s.active, s.created_at, e.disabled_at, e.disabled_reason
         FROM subscriber s JOIN endpoint e ON e.subscriber_id = s.id",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(webhook)
}

/// Disables the endpoint with `reason`: the relay claims nothing of it, and its pending
/// deliveries (and those of messages written while it stays disabled) wait, paused,
/// until it is enabled again. One statement; `None` if no such endpoint. Disabling a
/// disabled endpoint keeps its first time and reason.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn disable(conn: &mut PgConnection, id: Uuid, reason: &str) -> Result<Option<Webhook>> {
    let webhook = sqlx::query_as(
        "WITH subscriber AS (
             UPDATE outbox_subscribers SET active = false
             WHERE id = $1 AND EXISTS (SELECT 1 FROM webhook_endpoints WHERE subscriber_id = $1 AND deleted_at IS NULL)
             RETURNING id, event_id, topics, active, created_at
         ), endpoint AS (
             UPDATE webhook_endpoints
             SET disabled_at = coalesce(disabled_at, now()), disabled_reason = coalesce(disabled_reason, $2)
             WHERE subscriber_id = $1
             RETURNING subscriber_id, url, disabled_at, disabled_reason
         ), paused AS (
             UPDATE outbox_deliveries SET next_attempt_at = 'infinity'
             WHERE subscriber_id = $1 AND status = 'pending'
         )
         SELECT s.id, e.url, s.event_id, s.topics, s.active, s.created_at, e.disabled_at, e.disabled_reason
         FROM subscriber s JOIN endpoint e ON e.subscriber_id = s.id",
    )
    .bind(id)
    .bind(reason)
    .fetch_optional(conn)
    .await?;
    Ok(webhook)
}

/// Replaces the endpoint's secret with `secret`, keeping the one it replaces as the
/// previous secret for `grace` (requests carry both signatures until then). One
/// statement; `None` if no such endpoint.
#[tracing::instrument(level = "debug", skip(conn, secret))]
pub async fn rotate_secret(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &WebhookSecret,
    grace: Duration,
) -> Result<Option<(Webhook, chrono::DateTime<chrono::Utc>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        webhook: Webhook,
        previous_secret_until: chrono::DateTime<chrono::Utc>,
    }
    let row: Option<Row> = sqlx::query_as(
        "WITH endpoint AS (
             UPDATE webhook_endpoints
             SET previous_secret = secret, previous_secret_until = now() + make_interval(secs => $3), secret = $2
             WHERE subscriber_id = $1 AND deleted_at IS NULL
             RETURNING subscriber_id, url, disabled_at, disabled_reason, previous_secret_until
         )
         SELECT s.id, e.url, s.event_id, s.topics, s.active, s.created_at, e.disabled_at, e.disabled_reason,
                e.previous_secret_until
         FROM endpoint e JOIN outbox_subscribers s ON s.id = e.subscriber_id",
    )
    .bind(id)
    .bind(secret.expose())
    .bind(grace.as_secs_f64())
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.webhook, r.previous_secret_until)))
}

pub async fn exists(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let (exists,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE subscriber_id = $1 AND deleted_at IS NULL)",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(exists)
}

/// Deletes the endpoint (see `migrations/*_webhook_deletion.sql`): gone from every read,
/// its subscriber deaf, its pending deliveries abandoned, in one statement. False if no
/// such endpoint, or deleted already.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let deleted: i64 = sqlx::query_scalar(
        "WITH endpoint AS (
             UPDATE webhook_endpoints SET deleted_at = now()
             WHERE subscriber_id = $1 AND deleted_at IS NULL
             RETURNING subscriber_id
         ), subscriber AS (
             UPDATE outbox_subscribers SET active = false, topics = '{}'
             WHERE id IN (SELECT subscriber_id FROM endpoint)
         ), dropped AS (
             UPDATE outbox_deliveries SET status = 'abandoned'
             WHERE subscriber_id IN (SELECT subscriber_id FROM endpoint) AND status = 'pending'
         )
         SELECT count(*) FROM endpoint",
    )
    .bind(id)
    .fetch_one(conn)
    .await?;
    Ok(deleted == 1)
}

/// The endpoint's deliveries, newest message first, each with its latest attempt.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn deliveries(conn: &mut PgConnection, id: Uuid, limit: i64, offset: i64) -> Result<Vec<DeliveryLogEntry>> {
    let entries = sqlx::query_as(
        "SELECT m.message_id, m.event_id, m.topic, d.status, d.attempts, m.created_at,
                nullif(d.next_attempt_at, 'infinity') AS next_attempt_at,
                d.delivered_at, a.attempted_at AS last_attempt_at, a.response_status AS last_response_status,
                a.error AS last_error, a.duration_ms AS last_duration_ms
         FROM outbox_deliveries d
         JOIN outbox_messages m ON m.id = d.message_id
         LEFT JOIN LATERAL (
             SELECT attempted_at, response_status, error, duration_ms
             FROM outbox_delivery_attempts
             WHERE subscriber_id = d.subscriber_id AND message_id = d.message_id
             ORDER BY id DESC
             LIMIT 1
         ) a ON true
         WHERE d.subscriber_id = $1
         ORDER BY d.message_id DESC
         LIMIT $2 OFFSET $3",
    )
    .bind(id)
    .bind(limit)
    .bind(offset)
    .fetch_all(conn)
    .await?;
    Ok(entries)
}
