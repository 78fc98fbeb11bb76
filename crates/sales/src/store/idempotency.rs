//! Idempotency keys: a retried order answers with what its first attempt created.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result, LOCK_NOT_AVAILABLE};
use crate::scope::FanScope;

/// What a request with an `Idempotency-Key` created.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Hold(Uuid),
    Booking(Uuid),
}

/// What an earlier request with the same key left behind.
pub enum Prior {
    /// No earlier request: this one now owns the key until its transaction ends.
    None,
    /// The same request succeeded before: answer with what it created.
    Replay(Target),
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` for this request inside the caller's transaction.
///
/// The insert takes the key's unique-index entry: a concurrent retry with the same key
/// waits here until this transaction ends (at most `lock_timeout`, then
/// `request_in_progress`), then sees either what it created or, if it rolled back, a
/// free key. Only successful requests commit, so a failed attempt
/// leaves the key free for a retry.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn claim(conn: &mut PgConnection, scope: &FanScope, key: &str, request_hash: &[u8]) -> Result<Prior> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (event_id, fan_id, key, request_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *conn)
    .await
    .map_err(|e| match e {
        // lock_timeout passed while an earlier attempt with this key was still running.
        sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => Error::RequestInProgress,
        e => e.into(),
    })?
    .rows_affected();
    if inserted == 1 {
        return Ok(Prior::None);
    }
    let (stored_hash, hold_id, booking_id): (Vec<u8>, Option<Uuid>, Option<Uuid>) = sqlx::query_as(
        "SELECT request_hash, hold_id, booking_id FROM idempotency_keys WHERE event_id = $1 AND fan_id = $2 AND key = $3",
    )
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(match (hold_id, booking_id) {
        _ if stored_hash != request_hash => Prior::Mismatch,
        (Some(hold), _) => Prior::Replay(Target::Hold(hold)),
        (None, Some(booking)) => Prior::Replay(Target::Booking(booking)),
        (None, None) => Prior::Mismatch,
    })
}

/// Records what the request that claimed `key` created.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn save(conn: &mut PgConnection, scope: &FanScope, key: &str, target: Target) -> Result<()> {
    let (hold_id, booking_id) = match target {
        Target::Hold(id) => (Some(id), None),
        Target::Booking(id) => (None, Some(id)),
    };
    sqlx::query(
        "UPDATE idempotency_keys SET hold_id = $4, booking_id = $5 WHERE event_id = $1 AND fan_id = $2 AND key = $3",
    )
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .bind(key)
    .bind(hold_id)
    .bind(booking_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes at most `batch` keys older than `retention_hours`, oldest first, in one
/// statement; returns how many. Retries come within minutes, not days. The caller loops
/// until a batch comes back short, so no single statement locks or writes more than
/// `batch` rows however many keys have piled up. Keys another purge has locked are
/// skipped, so replicas share the work instead of queueing on each other's rows.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn purge_older_than(conn: &mut PgConnection, retention_hours: i32, batch: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
             SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)
             ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED))",
    )
    .bind(retention_hours)
    .bind(batch)
    .execute(conn)
    .await?
    .rows_affected())
}
