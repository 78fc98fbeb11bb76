//! Payment attempts: one row per attempt to pay for a hold, append-only in the sense
//! that an attempt is never reused for another intent (see `migrations/*_checkout.sql`).
//! Every status change is a conditional update that names the statuses it may leave,
//! so webhooks arriving twice or out of order cannot move a payment backwards.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use crate::error::Result;
use crate::outbox::Message;
use crate::scope::FanScope;
use crate::states::{HoldStatus, PaymentResolution, PaymentStatus};
use crate::store::outbox::{bind_messages, outbox_writes};

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

impl PaymentRow {
    /// Created or pending: the provider has not settled it.
    pub fn is_live(&self) -> bool {
        matches!(self.status, PaymentStatus::Created | PaymentStatus::Pending)
    }
}

const COLUMNS: &str = "id, event_id, hold_id, fan_id, amount_minor, currency::text AS currency, status, intent_id,
     client_secret, failure_code, booking_id, resolution, needs_attention, refunded_minor, created_at, updated_at,
     succeeded_at";

/// What [`start_checkout`] found and did.
#[derive(Debug)]
pub struct Checkout {
    /// The fan's hold as it stood once locked.
    pub hold: HoldState,
    /// The attempt that paid for the hold if one did; else the live attempt, new or not.
    /// None when the hold may not be paid, or when another checkout of the hold started
    /// its attempt after this statement began (it is live: read it again).
    pub payment: Option<PaymentRow>,
}

/// A hold's state, as a payment sees it.
#[derive(Debug, sqlx::FromRow)]
pub struct HoldState {
    #[sqlx(rename = "hold_status")]
    pub status: HoldStatus,
    /// Until when the hold keeps its seats (extended by this checkout if it was the first).
    #[sqlx(rename = "hold_expires_at")]
    pub expires_at: DateTime<Utc>,
    /// Decided by the database clock, the same clock that decides seat expiry.
    #[sqlx(rename = "hold_expired")]
    pub expired: bool,
    #[sqlx(rename = "hold_total_minor")]
    pub total_minor: i64,
}

/// An attempt to write, with the intent the provider made for it.
#[derive(Debug)]
pub struct NewAttempt<'a> {
    pub id: Uuid,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub intent_id: &'a str,
    pub client_secret: Option<&'a str>,
}

/// Starts paying for the fan's hold `$1` with the attempt `$4` and its intent, in one
/// statement: the hold is locked (so a confirm, release or sweep waits, or is waited
/// for), and if it is active, not lapsed, costs the attempt's amount and no payment has
/// succeeded for it, the attempt is written pending unless one is live already (the
/// partial unique index `payments_one_live_attempt_per_hold` makes two checkouts at once
/// start one). The first checkout of a hold gives the fan time to pay: the hold and its
/// seats last until `now() + $7` seconds if that is later, but a fan's hold never past
/// `$8` seconds from its creation (a waitlist offer is the organizer's to time); later
/// checkouts do not extend it, so checking out again and again cannot keep seats off
/// sale. None when the fan has no such hold.
#[tracing::instrument(level = "debug", skip(conn, scope, attempt), fields(payment_id = %attempt.id))]
pub async fn start_checkout(
    conn: &mut PgConnection,
    scope: &FanScope,
    hold_id: Uuid,
    attempt: NewAttempt<'_>,
    extension_secs: f64,
    max_lifetime_secs: i32,
) -> Result<Option<Checkout>> {
    let row = sqlx::query(&format!(
        "WITH hold AS (
             SELECT id, status, expires_at, expires_at <= now() AS expired, total_minor, checkout_started_at
             FROM holds WHERE id = $1 AND event_id = $2 AND fan_id = $3 FOR UPDATE
         ), paid AS (
             SELECT {COLUMNS} FROM payments WHERE hold_id = $1 AND succeeded_at IS NOT NULL
         ), payable AS (
             SELECT * FROM hold
             WHERE status = 'active' AND NOT expired AND total_minor = $5 AND NOT EXISTS (SELECT 1 FROM paid)
         ), started AS (
             INSERT INTO payments (id, event_id, hold_id, fan_id, amount_minor, currency, status, intent_id,
                                   client_secret)
             SELECT $4, $2, $1, $3, $5, $6, 'pending', $9, $10 FROM payable
             ON CONFLICT (hold_id) WHERE status IN ('created', 'pending') DO NOTHING
             RETURNING {COLUMNS}
         ), live AS (
             SELECT {COLUMNS} FROM payments
             WHERE hold_id = $1 AND status IN ('created', 'pending') AND EXISTS (SELECT 1 FROM payable)
         ), extended AS (
             UPDATE holds SET checkout_started_at = now(),
                    expires_at = greatest(holds.expires_at, CASE
                        WHEN holds.waitlist_entry_id IS NULL
                        THEN least(now() + make_interval(secs => $7), holds.created_at + make_interval(secs => $8))
                        ELSE now() + make_interval(secs => $7) END)
             FROM payable WHERE holds.id = payable.id AND payable.checkout_started_at IS NULL
             RETURNING holds.expires_at
         ), seats_extended AS (
             UPDATE seats SET held_until = extended.expires_at
             FROM extended WHERE seats.hold_id = $1 AND seats.state = 'held'
               AND seats.id IN (SELECT seat_id FROM hold_seats WHERE hold_id = $1)
         )
         SELECT hold.status AS hold_status, hold.expired AS hold_expired, hold.total_minor AS hold_total_minor,
                coalesce((SELECT expires_at FROM extended), hold.expires_at) AS hold_expires_at, attempt.*
         FROM hold LEFT JOIN LATERAL (
             SELECT 1 AS rank, * FROM paid UNION ALL SELECT 2, * FROM started UNION ALL SELECT 3, * FROM live
             ORDER BY rank, id DESC LIMIT 1
         ) attempt ON true"
    ))
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .bind(attempt.id)
    .bind(attempt.amount_minor)
    .bind(attempt.currency)
    .bind(extension_secs)
    .bind(max_lifetime_secs)
    .bind(attempt.intent_id)
    .bind(attempt.client_secret)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Checkout { hold: HoldState::from_row(&row)?, payment: payment_in(&row)? }))
}

/// The payment a row joined to one carries, if it does.
fn payment_in(row: &PgRow) -> Result<Option<PaymentRow>> {
    Ok(match row.try_get::<Option<Uuid>, _>("id")? {
        Some(_) => Some(PaymentRow::from_row(row)?),
        None => None,
    })
}

/// The fan's hold and its payment attempts, newest first, in one read. None when the
/// fan has no such hold.
#[tracing::instrument(level = "debug", skip(conn, scope))]
pub async fn of_hold(
    conn: &mut PgConnection,
    scope: &FanScope,
    hold_id: Uuid,
) -> Result<Option<(HoldState, Vec<PaymentRow>)>> {
    let rows = sqlx::query(&format!(
        "SELECT h.status AS hold_status, h.expires_at AS hold_expires_at, h.expires_at <= now() AS hold_expired,
                h.total_minor AS hold_total_minor, attempt.*
         FROM holds h LEFT JOIN LATERAL (SELECT {COLUMNS} FROM payments WHERE hold_id = h.id) attempt ON true
         WHERE h.id = $1 AND h.event_id = $2 AND h.fan_id = $3
         ORDER BY attempt.id DESC"
    ))
    .bind(hold_id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let hold = HoldState::from_row(first)?;
    let attempts = rows.iter().map(payment_in).filter_map(Result::transpose).collect::<Result<_>>()?;
    Ok(Some((hold, attempts)))
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

/// A provider event about an intent, claimed (recorded as applied: false when it was
/// applied before) and its payment locked until the transaction ends, in one statement.
/// The payment is found by our id (the intent's metadata carries it) or else by the
/// provider's intent id; None when it is not ours, or when the event was applied before.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn claim_intent_event(
    conn: &mut PgConnection,
    event_id: &str,
    payment_id: Option<Uuid>,
    intent_id: &str,
) -> Result<(bool, Option<PaymentRow>)> {
    let row = sqlx::query(&format!(
        "WITH claimed AS (
             INSERT INTO payment_provider_events (id, type, payment_id) VALUES ($1, 'payment_intent', $2)
             ON CONFLICT (id) DO NOTHING
             RETURNING id
         ), payment AS (
             SELECT {COLUMNS} FROM payments
             WHERE (id = $2 OR ($2 IS NULL AND intent_id = $3)) AND EXISTS (SELECT 1 FROM claimed)
             FOR UPDATE
         )
         SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, payment.* FROM (SELECT) AS one LEFT JOIN payment ON true"
    ))
    .bind(event_id)
    .bind(payment_id)
    .bind(intent_id)
    .fetch_one(conn)
    .await?;
    Ok((row.try_get("claimed")?, payment_in(&row)?))
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

/// The provider says the intent succeeded: the payment is marked so, and `message`
/// (its `payment.succeeded`) written to the outbox, in one statement; nothing is written
/// when the payment had already succeeded.
#[tracing::instrument(level = "debug", skip(conn, message))]
pub async fn mark_succeeded(
    conn: &mut PgConnection,
    payment_id: Uuid,
    intent_id: &str,
    message: Message,
) -> Result<()> {
    const MARK: &str = concat!(
        "WITH marked AS (
             UPDATE payments
             SET status = 'succeeded', intent_id = coalesce(intent_id, $7), succeeded_at = now(), updated_at = now(),
                 failure_code = NULL
             WHERE id = $6 AND status IN ('created', 'pending', 'failed', 'canceled')
             RETURNING id
         ), ",
        outbox_writes!("WHERE EXISTS (SELECT 1 FROM marked)"),
        " SELECT count(*) FROM marked"
    );
    bind_messages(sqlx::query(MARK), &[message]).bind(payment_id).bind(intent_id).execute(conn).await?;
    Ok(())
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

/// A succeeded payment's hold became its booking, in one statement: the hold ends
/// confirmed (its seats are the booking's now; any it still held, as when a late payment
/// booked other places of the section, go back on sale), and the payment names the
/// booking.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn resolve_booked(
    conn: &mut PgConnection,
    payment_id: Uuid,
    hold_id: Uuid,
    resolution: PaymentResolution,
    booking_id: Uuid,
) -> Result<()> {
    sqlx::query(
        "WITH freed AS (
             UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL
             WHERE id IN (SELECT seat_id FROM hold_seats WHERE hold_id = $2) AND hold_id = $2
         ), ended AS (
             UPDATE holds SET status = 'confirmed', ended_at = now() WHERE id = $2
         )
         UPDATE payments SET resolution = $3, booking_id = $4, needs_attention = false, updated_at = now()
         WHERE id = $1 AND resolution IS NULL",
    )
    .bind(payment_id)
    .bind(hold_id)
    .bind(resolution)
    .bind(booking_id)
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
