//! Refunds: money going back, recorded before the provider is asked, so that a refund
//! the provider never confirmed is retried until it is (see `migrations/*_checkout.sql`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::states::{RefundReason, RefundStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefundRow {
    pub id: Uuid,
    pub payment_id: Uuid,
    pub event_id: Uuid,
    pub booking_id: Option<Uuid>,
    pub reason: RefundReason,
    pub amount_minor: i64,
    pub status: RefundStatus,
    pub provider_refund_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
    /// The payment's intent, which the provider refunds.
    pub intent_id: Option<String>,
    pub currency: String,
}

const COLUMNS: &str = "r.id, r.payment_id, r.event_id, r.booking_id, r.reason, r.amount_minor, r.status,
     r.provider_refund_id, r.attempts, r.last_error, r.created_at, r.succeeded_at, p.intent_id,
     p.currency::text AS currency";

/// Records a refund of `amount_minor` of the payment, adding it to what the payment has
/// refunded in the same statement: `payments_refunds_within_amount` refuses a refund
/// that would pass what was paid, and the unique indexes a second refund of one
/// booking or of one unbooked payment. Returns None when that refund exists already.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn create(
    conn: &mut PgConnection,
    id: Uuid,
    payment_id: Uuid,
    booking_id: Option<Uuid>,
    reason: RefundReason,
    amount_minor: i64,
) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "WITH refund AS (
             INSERT INTO refunds (id, payment_id, event_id, booking_id, reason, amount_minor)
             SELECT $1, p.id, p.event_id, $3, $4, $5 FROM payments p WHERE p.id = $2
             ON CONFLICT DO NOTHING
             RETURNING id, amount_minor
         ), counted AS (
             UPDATE payments SET refunded_minor = refunded_minor + refund.amount_minor, updated_at = now()
             FROM refund WHERE payments.id = $2
         )
         SELECT id FROM refund",
    )
    .bind(id)
    .bind(payment_id)
    .bind(booking_id)
    .bind(reason)
    .bind(amount_minor)
    .fetch_optional(conn)
    .await?)
}

#[tracing::instrument(level = "debug", skip(conn))]
pub async fn find(conn: &mut PgConnection, refund_id: Uuid) -> Result<Option<RefundRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.id = $1"
    ))
    .bind(refund_id)
    .fetch_optional(conn)
    .await?)
}

/// The refund, locked: by our id (the provider's refund carries it in its metadata), or
/// else by the provider's refund id.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn lock(
    conn: &mut PgConnection,
    refund_id: Option<Uuid>,
    provider_refund_id: &str,
) -> Result<Option<RefundRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM refunds r JOIN payments p ON p.id = r.payment_id
         WHERE r.id = $1 OR ($1 IS NULL AND r.provider_refund_id = $2) FOR UPDATE OF r"
    ))
    .bind(refund_id)
    .bind(provider_refund_id)
    .fetch_optional(conn)
    .await?)
}

/// The refunds of a booking (at most one) or of a payment.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn for_booking(conn: &mut PgConnection, booking_id: Uuid) -> Result<Option<RefundRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.booking_id = $1"
    ))
    .bind(booking_id)
    .fetch_optional(conn)
    .await?)
}

/// The provider confirmed the refund. Returns false when it had been confirmed before.
/// The payment reads as refunded once everything it could refund has been.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_succeeded(conn: &mut PgConnection, refund_id: Uuid, provider_refund_id: &str) -> Result<bool> {
    let done: Option<Uuid> = sqlx::query_scalar(
        "WITH refund AS (
             UPDATE refunds SET status = 'succeeded', succeeded_at = now(),
                    provider_refund_id = coalesce(provider_refund_id, $2), last_error = NULL
             WHERE id = $1 AND status <> 'succeeded'
             RETURNING payment_id
         ), refunded AS (
             SELECT p.id, p.amount_minor,
                    (SELECT coalesce(sum(amount_minor), 0) FROM refunds
                     WHERE payment_id = p.id AND (status = 'succeeded' OR id = $1)) AS refunded
             FROM payments p WHERE p.id IN (SELECT payment_id FROM refund)
         )
         UPDATE payments SET updated_at = now(),
                status = CASE WHEN refunded.refunded >= refunded.amount_minor THEN 'refunded'::payment_status
                              ELSE 'partially_refunded'::payment_status END
         FROM refunded WHERE payments.id = refunded.id
         RETURNING payments.id",
    )
    .bind(refund_id)
    .bind(provider_refund_id)
    .fetch_optional(conn)
    .await?;
    Ok(done.is_some())
}

/// The provider gave the refund up (`failed` or `canceled`), perhaps after confirming
/// it: the refund is `failed` for good with the provider's `failure` as its last error,
/// its payment counts only the refunds that did succeed, and is listed for the organizer
/// (`needs_attention`), who must return the money another way. Its amount stays in
/// `payments.refunded_minor`, so nothing refunds that payment again behind the
/// organizer's back. Returns false when it had failed before.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_failed(
    conn: &mut PgConnection,
    refund_id: Uuid,
    provider_refund_id: &str,
    failure: &str,
) -> Result<bool> {
    let done: Option<Uuid> = sqlx::query_scalar(
        "WITH refund AS (
             UPDATE refunds SET status = 'failed', succeeded_at = NULL,
                    provider_refund_id = coalesce(provider_refund_id, $2), last_error = left($3, 500)
             WHERE id = $1 AND status <> 'failed'
             RETURNING payment_id
         ), refunded AS (
             SELECT p.id, p.amount_minor,
                    (SELECT coalesce(sum(amount_minor), 0) FROM refunds
                     WHERE payment_id = p.id AND status = 'succeeded' AND id <> $1) AS refunded
             FROM payments p WHERE p.id IN (SELECT payment_id FROM refund)
         )
         UPDATE payments SET needs_attention = true, updated_at = now(),
                status = CASE WHEN payments.status NOT IN ('refunded', 'partially_refunded') THEN payments.status
                              WHEN refunded.refunded = 0 THEN 'succeeded'::payment_status
                              WHEN refunded.refunded >= refunded.amount_minor THEN 'refunded'::payment_status
                              ELSE 'partially_refunded'::payment_status END
         FROM refunded WHERE payments.id = refunded.id
         RETURNING payments.id",
    )
    .bind(refund_id)
    .bind(provider_refund_id)
    .bind(failure)
    .fetch_optional(conn)
    .await?;
    Ok(done.is_some())
}

/// The provider has the refund but has not settled it yet.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn record_provider_id(conn: &mut PgConnection, refund_id: Uuid, provider_refund_id: &str) -> Result<()> {
    sqlx::query("UPDATE refunds SET provider_refund_id = coalesce(provider_refund_id, $2) WHERE id = $1")
        .bind(refund_id)
        .bind(provider_refund_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The provider could not be asked, or refused: try again after `retry_in_secs`.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn retry_later(conn: &mut PgConnection, refund_id: Uuid, error: &str, retry_in_secs: f64) -> Result<()> {
    sqlx::query(
        "UPDATE refunds SET attempts = attempts + 1, last_error = left($2, 500),
                next_attempt_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(refund_id)
    .bind(error)
    .bind(retry_in_secs)
    .execute(conn)
    .await?;
    Ok(())
}

/// Pending refunds whose next attempt is due, claimed for `lease_secs` so another
/// replica leaves them alone while this one asks the provider.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn claim_due(conn: &mut PgConnection, limit: i64, lease_secs: f64) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "WITH due AS (
             SELECT id FROM refunds WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED
         )
         UPDATE refunds SET next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM due) RETURNING id",
    )
    .bind(limit)
    .bind(lease_secs)
    .fetch_all(conn)
    .await?)
}
