//! The outbox's writing side: a message, and one delivery row per subscriber that
//! wants it, in the caller's transaction (see `migrations/*_outbox.sql`).

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::outbox::{Message, VERSION};

/// Writes `messages` and their deliveries in one statement, inside the caller's
/// transaction: they exist exactly when the change they report commits. A disabled
/// subscriber gets its deliveries too, paused (`next_attempt_at` infinity) until it is
/// enabled again (see `migrations/*_webhook_admin.sql`).
#[tracing::instrument(level = "debug", skip_all, fields(messages = messages.len()))]
pub async fn enqueue(conn: &mut PgConnection, messages: &[Message]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    let events: Vec<Uuid> = messages.iter().map(Message::event_id).collect();
    let topics: Vec<&str> = messages.iter().map(Message::topic).collect();
    let data: Vec<serde_json::Value> = messages.iter().map(Message::data).collect();
    sqlx::query(
        "WITH written AS (
             INSERT INTO outbox_messages (message_id, event_id, topic, payload)
             SELECT m.message_id, m.event_id, m.topic,
                    jsonb_build_object('type', m.topic, 'version', $5::int, 'timestamp', now(), 'data', m.data)
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[]) AS m (message_id, event_id, topic, data)
             RETURNING id, event_id, topic
         )
         INSERT INTO outbox_deliveries (subscriber_id, message_id, event_id, next_attempt_at)
         SELECT s.id, written.id, written.event_id,
                CASE WHEN s.active THEN now() ELSE 'infinity'::timestamptz END
         FROM written JOIN outbox_subscribers s
           ON (s.event_id IS NULL OR s.event_id = written.event_id)
          AND (s.topics IS NULL OR written.topic = ANY (s.topics))",
    )
    .bind(&ids)
    .bind(&events)
    .bind(&topics)
    .bind(&data)
    .bind(VERSION)
    .execute(conn)
    .await?;
    Ok(())
}
