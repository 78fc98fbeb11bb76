//! Payment attempts: one row per attempt to pay for a hold, append-only in the sense
//! that an attempt is never reused for another intent (see `migrations/*_checkout.sql`).
//! Every status change is a conditional update that names the statuses it may leave,
//! so webhooks arriving twice or out of order cannot move a payment backwards.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::states::{PaymentResolution, PaymentStatus};

/// A payment attempt as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PaymentRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub hold_id: Uuid,
    pub fan_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub status: PaymentStatus,
    pub intent_id: Option<String>,
    pub client_secret: Option<String>,
    pub failure_code: Option<String>,
    pub booking_id: Option<Uuid>,
    pub resolution: Option<PaymentResolution>,
    pub needs_attention: bool,
    pub refunded_minor: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub succeeded_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, event_id, hold_id, fan_id, amount_minor, currency::text AS currency, status, intent_id,
     client_secret, failure_code, booking_id, resolution, needs_attention, refunded_minor, created_at, updated_at,
     succeeded_at";

/// Starts an attempt for the hold, unless one is live already (created or pending):
/// the partial unique index `payments_one_live_attempt_per_hold` makes two checkouts
/// at once start one. Returns the live attempt, new or not.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn start_attempt(
    conn: &mut PgConnection,
    id: Uuid,
    event_id: Uuid,
    hold_id: Uuid,
    fan_id: &str,
    amount_minor: i64,
    currency: &str,
) -> Result<PaymentRow> {
    sqlx::query(
        "INSERT INTO payments (id, event_id, hold_id, fan_id, amount_minor, currency)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (hold_id) WHERE status IN ('created', 'pending') DO NOTHING",
    )
    .bind(id)
    .bind(event_id)
    .bind(hold_id)
    .bind(fan_id)
    .bind(amount_minor)
    .bind(currency)
    .execute(&mut *conn)
    .await?;
    let live: PaymentRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE hold_id = $1 AND status IN ('created', 'pending') FOR UPDATE"
    ))
    .bind(hold_id)
    .fetch_one(conn)
    .await?;
    Ok(live)
}

/// The provider has the attempt's intent: the fan may pay it.
#[tracing::instrument(level = "debug", skip(conn, client_secret))]
pub async fn record_intent(
    conn: &mut PgConnection,
    payment_id: Uuid,
    intent_id: &str,
    client_secret: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'pending', intent_id = $2, client_secret = $3, updated_at = now()
         WHERE id = $1 AND status = 'created'",
    )
    .bind(payment_id)
    .bind(intent_id)
    .bind(client_secret)
    .execute(conn)
    .await?;
    Ok(())
}

/// The payment, locked until the transaction ends: by our id (the intent's metadata
/// carries it) or else by the provider's intent id.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn lock(conn: &mut PgConnection, payment_id: Option<Uuid>, intent_id: &str) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE id = $1 OR ($1 IS NULL AND intent_id = $2) FOR UPDATE"
    ))
    .bind(payment_id)
    .bind(intent_id)
    .fetch_optional(conn)
    .await?)
}

/// The payment attempts of a hold, newest first.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn for_hold(conn: &mut PgConnection, hold_id: Uuid) -> Result<Vec<PaymentRow>> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE hold_id = $1 ORDER BY id DESC"))
        .bind(hold_id)
        .fetch_all(conn)
        .await?)
}

/// The provider says the intent succeeded. Returns false when the payment had already
/// succeeded (a redelivery): nothing more to do.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_succeeded(conn: &mut PgConnection, payment_id: Uuid, intent_id: &str) -> Result<bool> {
    let changed = sqlx::query(
        "UPDATE payments
         SET status = 'succeeded', intent_id = coalesce(intent_id, $2), succeeded_at = now(), updated_at = now(),
             failure_code = NULL
         WHERE id = $1 AND status IN ('created', 'pending', 'failed', 'canceled')",
    )
    .bind(payment_id)
    .bind(intent_id)
    .execute(conn)
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// The provider declined the attempt (it may still be paid later: `failed` is not final).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_failed(conn: &mut PgConnection, payment_id: Uuid, failure_code: Option<&str>) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'failed', failure_code = $2, updated_at = now()
         WHERE id = $1 AND status IN ('created', 'pending')",
    )
    .bind(payment_id)
    .bind(failure_code)
    .execute(conn)
    .await?;
    Ok(())
}

#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_canceled(conn: &mut PgConnection, payment_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET status = 'canceled', updated_at = now()
         WHERE id = $1 AND status IN ('created', 'pending', 'failed')",
    )
    .bind(payment_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what became of a succeeded payment: the booking it paid for, or none (then
/// a refund was started, and `needs_attention` tells the organizer when it was late).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn resolve(
    conn: &mut PgConnection,
    payment_id: Uuid,
    resolution: PaymentResolution,
    booking_id: Option<Uuid>,
    needs_attention: bool,
) -> Result<()> {
    sqlx::query(
        "UPDATE payments SET resolution = $2, booking_id = $3, needs_attention = $4, updated_at = now()
         WHERE id = $1 AND resolution IS NULL",
    )
    .bind(payment_id)
    .bind(resolution)
    .bind(booking_id)
    .bind(needs_attention)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a provider event as applied. False: it was applied before.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn claim_provider_event(
    conn: &mut PgConnection,
    event_id: &str,
    kind: &str,
    payment_id: Option<Uuid>,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO payment_provider_events (id, type, payment_id) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event_id)
    .bind(kind)
    .bind(payment_id)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A payment the organizer should look at, with why its refund failed if it did.
#[derive(Debug, sqlx::FromRow)]
pub struct AttentionRow {
    #[sqlx(flatten)]
    pub payment: PaymentRow,
    pub refund_failure: Option<String>,
}

/// Payments the organizer should look at: late payments refunded because their seats
/// were gone, and payments whose refund the provider gave up.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn needing_attention(
    conn: &mut PgConnection,
    event_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AttentionRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS},
                (SELECT r.last_error FROM refunds r WHERE r.payment_id = payments.id AND r.status = 'failed'
                 ORDER BY r.created_at DESC LIMIT 1) AS refund_failure
         FROM payments WHERE needs_attention AND ($1::uuid IS NULL OR event_id = $1)
         ORDER BY created_at DESC LIMIT $2"
    ))
    .bind(event_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Claims attempts the provider has not settled for `older_than_secs`, for
/// reconciliation: `created` ones (the intent may never have been created) and
/// `pending` ones (a webhook may be lost), oldest first. Claiming moves `updated_at` to
/// now, so no other replica takes them for another `older_than_secs`; rows another
/// replica is claiming right now are skipped.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn claim_unsettled(conn: &mut PgConnection, older_than_secs: f64, limit: i64) -> Result<Vec<PaymentRow>> {
    Ok(sqlx::query_as(&format!(
        "WITH due AS (
             SELECT id FROM payments
             WHERE status IN ('created', 'pending') AND updated_at <= now() - make_interval(secs => $1)
             ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE payments SET updated_at = now() WHERE id IN (SELECT id FROM due) RETURNING *
         )
         SELECT {COLUMNS} FROM claimed"
    ))
    .bind(older_than_secs)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// One succeeded payment not yet applied to a booking or a refund, locked; None when
/// there is none that another replica is not already resolving.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn lock_unresolved(conn: &mut PgConnection) -> Result<Option<PaymentRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM payments WHERE succeeded_at IS NOT NULL AND resolution IS NULL
         ORDER BY succeeded_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    ))
    .fetch_optional(conn)
    .await?)
}
