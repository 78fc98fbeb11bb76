//! The outbox's writing side: a message, and one delivery row per subscriber that
//! wants it, in the caller's transaction (see `migrations/*_outbox.sql`).

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::error::Result;
use crate::outbox::{Message, VERSION};

/// The `written` and `deliveries` parts of a statement that writes outbox messages: the
/// messages bound by [`bind_messages`] as `$1`…`$5`, written only when `$when` (SQL, a
/// `WHERE` clause or nothing) holds, and a delivery per subscriber that wants each. A
/// disabled subscriber gets its deliveries too, paused (`next_attempt_at` infinity) until
/// it is enabled again (see `migrations/*_webhook_admin.sql`). A statement that changes
/// state and reports it in one go puts these after its own parts, so the message exists
/// exactly when the change does.
macro_rules! outbox_writes {
    ($when:literal) => {
        concat!(
            "written AS (
             INSERT INTO outbox_messages (message_id, event_id, topic, payload)
             SELECT m.message_id, m.event_id, m.topic,
                    jsonb_build_object('type', m.topic, 'version', $5::int, 'timestamp', now(), 'data', m.data)
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[]) AS m (message_id, event_id, topic, data)
             ",
            $when,
            "
             RETURNING id, event_id, topic
         ), deliveries AS (
             INSERT INTO outbox_deliveries (subscriber_id, message_id, event_id, next_attempt_at)
             SELECT s.id, written.id, written.event_id,
                    CASE WHEN s.active THEN now() ELSE 'infinity'::timestamptz END
             FROM written JOIN outbox_subscribers s
               ON (s.event_id IS NULL OR s.event_id = written.event_id)
              AND (s.topics IS NULL OR written.topic = ANY (s.topics))
         )"
        )
    };
}
pub(crate) use outbox_writes;

/// Binds `messages` as the `$1`…`$5` of [`outbox_writes`].
pub(crate) fn bind_messages<'q>(
    query: Query<'q, Postgres, PgArguments>,
    messages: &[Message],
) -> Query<'q, Postgres, PgArguments> {
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    let events: Vec<Uuid> = messages.iter().map(Message::event_id).collect();
    let topics: Vec<String> = messages.iter().map(|m| m.topic().to_owned()).collect();
    let data: Vec<serde_json::Value> = messages.iter().map(Message::data).collect();
    query.bind(ids).bind(events).bind(topics).bind(data).bind(VERSION)
}

/// Writes `messages` and their deliveries in one statement, inside the caller's
/// transaction: they exist exactly when the change they report commits.
#[tracing::instrument(level = "debug", skip_all, fields(messages = messages.len()))]
pub async fn enqueue(conn: &mut PgConnection, messages: &[Message]) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    const ENQUEUE: &str = concat!("WITH ", outbox_writes!(""), " SELECT count(*) FROM written");
    bind_messages(sqlx::query(ENQUEUE), messages).execute(conn).await?;
    Ok(())
}
