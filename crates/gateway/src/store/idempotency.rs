use sqlx::PgConnection;

use crate::auth::Fan;
use crate::error::Result;

/// What an earlier request with the same key left behind.
pub enum Prior {
    /// No earlier request: this one now owns the key until its transaction ends.
    None,
    /// The same request succeeded before: answer with its response again.
    Replay(serde_json::Value),
    /// The key was used for a different request.
    Mismatch,
}

/// Claims `key` for this request inside the caller's transaction.
///
/// The insert takes the key's unique-index entry: a concurrent retry with the same key
/// waits here until this transaction ends, then sees either its committed response
/// or, if it rolled back, a free key. Only successful responses are ever committed,
/// so a failed attempt leaves the key free for a retry.
pub async fn claim(conn: &mut PgConnection, fan: &Fan, key: &str, request_hash: &[u8]) -> Result<Prior> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (event_id, fan_id, key, request_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .bind(key)
    .bind(request_hash)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Prior::None);
    }
    let (stored_hash, body): (Vec<u8>, Option<serde_json::Value>) = sqlx::query_as(
        "SELECT request_hash, response_body FROM idempotency_keys WHERE event_id = $1 AND fan_id = $2 AND key = $3",
    )
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(match body {
        _ if stored_hash != request_hash => Prior::Mismatch,
        Some(body) => Prior::Replay(body),
        None => Prior::Mismatch,
    })
}

/// Records the response of the request that claimed `key`.
pub async fn save(conn: &mut PgConnection, fan: &Fan, key: &str, status: u16, body: &serde_json::Value) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response_code = $4, response_body = $5
         WHERE event_id = $1 AND fan_id = $2 AND key = $3",
    )
    .bind(fan.event_id)
    .bind(&fan.fan_id)
    .bind(key)
    .bind(status as i16)
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}
