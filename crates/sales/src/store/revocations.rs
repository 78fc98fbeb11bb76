//! Revoked admissions (`token_revocations`): written by the organizer, read by every
//! gateway replica's poll.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::model::Revocation;

/// How long a revocation is kept: past it no token it can match is still valid. An
/// access token lives at most a day (`waitroom_events.token_lifetime_secs`), and a
/// gateway accepts it at most 300 s past its expiry (`gateway.token_leeway_secs`).
pub const LIFETIME: Duration = Duration::from_secs(86_400 + 300);

/// Revokes one token. Revoking it again changes nothing and answers the first
/// revocation: the no-op update locks and returns the existing row, also when two
/// revocations of the token race.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn revoke_token(conn: &mut PgConnection, event_id: Uuid, jti: Uuid) -> Result<Revocation> {
    let revocation = sqlx::query_as(
        "INSERT INTO token_revocations (event_id, jti, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))
         ON CONFLICT (jti) WHERE jti IS NOT NULL DO UPDATE SET jti = EXCLUDED.jti
         RETURNING event_id, jti, fan_id, revoked_at, expires_at",
    )
    .bind(event_id)
    .bind(jti)
    .bind(LIFETIME.as_secs_f64())
    .fetch_one(conn)
    .await?;
    Ok(revocation)
}

/// Revokes every token the fan holds for the event, issued up to now. Revoking the fan
/// again moves the instant forward (the same fan's one row), covering tokens issued
/// since.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn revoke_fan(conn: &mut PgConnection, event_id: Uuid, fan_id: &str) -> Result<Revocation> {
    let revocation = sqlx::query_as(
        "INSERT INTO token_revocations (event_id, fan_id, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3))
         ON CONFLICT (event_id, fan_id) WHERE fan_id IS NOT NULL
             DO UPDATE SET revoked_at = now(), expires_at = EXCLUDED.expires_at
         RETURNING event_id, jti, fan_id, revoked_at, expires_at",
    )
    .bind(event_id)
    .bind(fan_id)
    .bind(LIFETIME.as_secs_f64())
    .fetch_one(conn)
    .await?;
    Ok(revocation)
}

/// The database's clock, which every `revoked_at` is written by.
pub async fn now(conn: &mut PgConnection) -> Result<DateTime<Utc>> {
    let (now,): (DateTime<Utc>,) = sqlx::query_as("SELECT now()").fetch_one(conn).await?;
    Ok(now)
}

/// Unexpired revocations written after `since`; with `None`, every unexpired one.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn since(conn: &mut PgConnection, since: Option<DateTime<Utc>>) -> Result<Vec<Revocation>> {
    let revocations = sqlx::query_as(
        "SELECT event_id, jti, fan_id, revoked_at, expires_at
         FROM token_revocations
         WHERE revoked_at > coalesce($1, now() - make_interval(secs => $2)) AND expires_at > now()",
    )
    .bind(since)
    .bind(LIFETIME.as_secs_f64())
    .fetch_all(conn)
    .await?;
    Ok(revocations)
}

/// Deletes up to `batch` revocations that no longer cover any valid token, returning
/// how many.
///
/// A row's `expires_at` is when the last token it can match stops being accepted (its
/// issue time at the latest `revoked_at`, plus the longest token lifetime and the
/// gateways' leeway: [`LIFETIME`]), and the gateways' poll reads only rows with
/// `expires_at > now()` and forgets the others: from then on the row refuses nothing
/// and nobody reads it. The rows are found through the `revoked_at` index:
/// every row is written with `expires_at = revoked_at + LIFETIME` (both statements
/// above), so only rows revoked more than [`LIFETIME`] ago can have expired, and the
/// `expires_at` test itself decides, so a row written with a longer lifetime is never
/// deleted early. `SKIP LOCKED`: replicas purging at once share the rows; a fan's row
/// being moved forward by a new revocation is left for the next run.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn purge_expired(conn: &mut PgConnection, batch: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM token_revocations WHERE id = ANY (ARRAY(
             SELECT id FROM token_revocations
             WHERE revoked_at < now() - make_interval(secs => $1) AND expires_at <= now()
             ORDER BY revoked_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
    .bind(LIFETIME.as_secs_f64())
    .bind(batch)
    .execute(conn)
    .await?
    .rows_affected())
}
