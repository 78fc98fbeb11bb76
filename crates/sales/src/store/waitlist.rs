//! Waitlist entries: fans waiting, in the order they joined, for places that come back
//! (`migrations/*_waitlist.sql`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result, LOCK_NOT_AVAILABLE};
use crate::model::Price;
use crate::scope::FanScope;
use crate::states::{HoldStatus, SectionKind, WaitlistEntryStatus};

/// A waitlist entry as every read selects it, with its offer's hold if it got one.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: Uuid,
    pub seq: i64,
    pub event_id: Uuid,
    pub fan_id: String,
    pub quantity: i32,
    pub section_ids: Vec<Uuid>,
    pub allow_partial: bool,
    pub contact_email: Option<String>,
    pub status: WaitlistEntryStatus,
    pub created_at: DateTime<Utc>,
    pub offer_hold_id: Option<Uuid>,
    pub offer_status: Option<HoldStatus>,
    pub offer_expires_at: Option<DateTime<Utc>>,
    /// The offer's hold is active but past its time (by the database clock).
    pub offer_lapsed: Option<bool>,
}

/// A fan's request to wait.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub id: Uuid,
    pub quantity: i32,
    pub section_ids: &'a [Uuid],
    pub allow_partial: bool,
    pub contact_email: Option<&'a str>,
}

/// What joining needs to know about the event, read in the joining transaction.
#[derive(Debug, sqlx::FromRow)]
pub struct EventWaitlist {
    pub waitlist_enabled: bool,
    pub cancelled: bool,
    pub started: bool,
    pub offer_ttl_seconds: i32,
}

/// The event's waitlist settings and whether it still sells; None for an unknown event.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn event_settings(conn: &mut PgConnection, event_id: Uuid) -> Result<Option<EventWaitlist>> {
    Ok(sqlx::query_as(
        "SELECT waitlist_enabled, cancelled_at IS NOT NULL AS cancelled,
                coalesce(starts_at <= now(), false) AS started, waitlist_offer_ttl_seconds AS offer_ttl_seconds
         FROM events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(conn)
    .await?)
}

/// Of the event's sections `section_ids`, those that exist, each with how many of its
/// places an ordinary order could take now (0 when the waitlist waits for it).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn for_sale(conn: &mut PgConnection, event_id: Uuid, section_ids: &[Uuid]) -> Result<HashMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT sec.id, (SELECT count(*) FROM seats s
                         WHERE s.section_id = sec.id AND seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting))
         FROM sections sec WHERE sec.event_id = $1 AND sec.id = ANY($2)",
    )
    .bind(event_id)
    .bind(section_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Waits for the event's line to be ours until the transaction ends: every transaction
/// that changes who waits (joining, leaving, closing, making offers) takes this first,
/// before the entries' trigger locks any section's count. Without it two of them lock
/// the same sections in different orders — a fan joining (the insert counts them) and
/// the sweep making offers (each offer uncounts its entry's) — and deadlock.
///
/// A transaction-scoped advisory lock, like the fan's (`*_fan_limits.sql`): it writes
/// nothing, and ends with the transaction however it ends. Its single key, hashed from
/// a prefix of its own, keeps it apart from the fans' two-key locks; the wait is bounded
/// by `lock_timeout`, past which the caller is told to try again (`Unavailable`): a
/// busy line is no seat another fan is taking. Taking it again in the same transaction
/// is free.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn take_turn(conn: &mut PgConnection, event_id: Uuid) -> Result<()> {
    let taken = sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('waitlist line ' || $1::text, 0))")
        .bind(event_id)
        .execute(conn)
        .await;
    match taken {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => Err(Error::Unavailable),
        Err(e) => Err(e.into()),
    }
}

/// Puts the fan in line, on the line's turn ([`take_turn`]); false if they already wait
/// (one waiting entry per fan per event). The entry's trigger counts it in its
/// sections, taking them off sale.
#[tracing::instrument(level = "debug", skip(conn, scope, entry), fields(entry_id = %entry.id))]
pub async fn insert(conn: &mut PgConnection, scope: &FanScope, entry: &NewEntry<'_>) -> Result<bool> {
    take_turn(&mut *conn, scope.event_id).await?;
    let inserted = sqlx::query(
        "INSERT INTO waitlist_entries (id, event_id, fan_id, quantity, section_ids, allow_partial, contact_email)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (event_id, fan_id) WHERE status = 'waiting' DO NOTHING",
    )
    .bind(entry.id)
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .bind(entry.quantity)
    .bind(entry.section_ids)
    .bind(entry.allow_partial)
    .bind(entry.contact_email)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The fan's latest entry in the event, with its offer.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn latest_of_fan(conn: &mut PgConnection, scope: &FanScope) -> Result<Option<EntryRow>> {
    Ok(sqlx::query_as(
        "SELECT w.id, w.seq, w.event_id, w.fan_id, w.quantity, w.section_ids, w.allow_partial,
                w.contact_email, w.status, w.created_at, h.id AS offer_hold_id, h.status AS offer_status,
                h.expires_at AS offer_expires_at, h.status = 'active' AND h.expires_at <= now() AS offer_lapsed
         FROM waitlist_entries w LEFT JOIN holds h ON h.waitlist_entry_id = w.id
         WHERE w.event_id = $1 AND w.fan_id = $2 ORDER BY w.seq DESC LIMIT 1",
    )
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .fetch_optional(conn)
    .await?)
}

/// The fan of the event's hold `hold_id` if it was made as a waitlist offer: whom its
/// offer link acts for.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn offer_fan(conn: &mut PgConnection, event_id: Uuid, hold_id: Uuid) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT fan_id FROM holds WHERE id = $1 AND event_id = $2 AND waitlist_entry_id IS NOT NULL")
        .bind(hold_id)
        .bind(event_id)
        .fetch_optional(conn)
        .await?)
}

/// Where a waiting entry stands: 1 + the waiting entries ahead of it that want any of
/// its sections.
#[tracing::instrument(level = "debug", skip(conn, entry), fields(entry_id = %entry.id))]
pub async fn position(conn: &mut PgConnection, entry: &EntryRow) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT 1 + count(*) FROM waitlist_entries
         WHERE event_id = $1 AND status = 'waiting' AND seq < $2 AND section_ids && $3",
    )
    .bind(entry.event_id)
    .bind(entry.seq)
    .bind(&entry.section_ids)
    .fetch_one(conn)
    .await?)
}

/// Takes the fan's waiting entry out of the line, on the line's turn ([`take_turn`]);
/// false if none waits.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn leave(conn: &mut PgConnection, scope: &FanScope) -> Result<bool> {
    take_turn(&mut *conn, scope.event_id).await?;
    let left = sqlx::query(
        "UPDATE waitlist_entries SET status = 'left', ended_at = now()
         WHERE event_id = $1 AND fan_id = $2 AND status = 'waiting'",
    )
    .bind(scope.event_id)
    .bind(&scope.fan_id)
    .execute(conn)
    .await?;
    Ok(left.rows_affected() > 0)
}

/// Ends every waiting entry of the event (the organizer turned its waitlist off), on
/// the line's turn ([`take_turn`]).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn close(conn: &mut PgConnection, event_id: Uuid) -> Result<u64> {
    take_turn(&mut *conn, event_id).await?;
    let closed = sqlx::query(
        "UPDATE waitlist_entries SET status = 'left', ended_at = now() WHERE event_id = $1 AND status = 'waiting'",
    )
    .bind(event_id)
    .execute(conn)
    .await?;
    Ok(closed.rows_affected())
}

/// The next `limit` waiting entries of the event after `after_seq`, in line order,
/// locked until the transaction ends. Call it on the line's turn ([`take_turn`]).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn lock_line(conn: &mut PgConnection, event_id: Uuid, after_seq: i64, limit: i64) -> Result<Vec<EntryRow>> {
    Ok(sqlx::query_as(
        "WITH line AS (
             SELECT id FROM waitlist_entries
             WHERE event_id = $1 AND status = 'waiting' AND seq > $2
             ORDER BY seq LIMIT $3 FOR UPDATE
         )
         SELECT w.id, w.seq, w.event_id, w.fan_id, w.quantity, w.section_ids, w.allow_partial,
                w.contact_email, w.status, w.created_at, h.id AS offer_hold_id, h.status AS offer_status,
                h.expires_at AS offer_expires_at, h.status = 'active' AND h.expires_at <= now() AS offer_lapsed
         FROM waitlist_entries w LEFT JOIN holds h ON h.waitlist_entry_id = w.id
         WHERE w.id IN (SELECT id FROM line) AND w.status = 'waiting' ORDER BY w.seq",
    )
    .bind(event_id)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// A section's places kept for its waitlist.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeptPlaces {
    pub kind: SectionKind,
    pub free: i64,
    pub currency: String,
}

impl KeptPlaces {
    pub fn price(&self, amount_minor: i64) -> Price {
        Price { amount_minor, currency: self.currency.clone() }
    }
}

/// The places free in each section of the event that the waitlist waits for: available,
/// or held by a hold past its time. Only the waitlist may take them.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn kept_places(conn: &mut PgConnection, event_id: Uuid) -> Result<HashMap<Uuid, KeptPlaces>> {
    let rows: Vec<(Uuid, SectionKind, i64, String)> = sqlx::query_as(
        "SELECT sec.id, sec.kind, count(s.id), e.currency::text
         FROM sections sec JOIN events e ON e.id = sec.event_id JOIN seats s ON s.section_id = sec.id
         WHERE sec.event_id = $1 AND sec.waitlist_waiting > 0 AND seat_is_takeable(s.state, s.held_until)
         GROUP BY sec.id, sec.kind, e.currency",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id, kind, free, currency)| (id, KeptPlaces { kind, free, currency })).collect())
}

/// Marks a locked waiting entry as offered: it leaves the line.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_offered(conn: &mut PgConnection, entry_id: Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE waitlist_entries SET status = 'offered', ended_at = now() WHERE id = $1 AND status = 'waiting'",
    )
    .bind(entry_id)
    .execute(conn)
    .await?;
    Ok(())
}
