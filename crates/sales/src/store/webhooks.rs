//! Organizer webhook endpoints (`webhook_endpoints` with their `outbox_subscribers`
//! row) and the delivery log the organizer reads.

use sqlx::PgConnection;
use uuid::Uuid;

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
         ORDER BY s.created_at, s.id",
    )
    .fetch_all(conn)
    .await?;
    Ok(webhooks)
}

pub async fn exists(conn: &mut PgConnection, id: Uuid) -> Result<bool> {
    let (exists,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE subscriber_id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(exists)
}

/// The endpoint's deliveries, newest message first, each with its latest attempt.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn deliveries(conn: &mut PgConnection, id: Uuid, limit: i64, offset: i64) -> Result<Vec<DeliveryLogEntry>> {
    let entries = sqlx::query_as(
        "SELECT m.message_id, m.event_id, m.topic, d.status, d.attempts, m.created_at, d.next_attempt_at,
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
