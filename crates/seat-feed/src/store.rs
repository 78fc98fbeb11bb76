//! The feed's SQL (`migrations/*_seat_changes.sql`): reading changes by the watermark,
//! snapshots that join the feed, and pruning.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::counts::{EventCounts, Position, SeatMove, SeatState, SeatStatus, SectionChange};
use crate::live::{SeatNow, SeatsRead};

/// What a reader at a position finds.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// Every change from the position up to `watermark` (exclusive), where the reader
    /// moves next.
    Changes { changes: Vec<SectionChange>, watermark: Position },
    /// Rows the reader needs were pruned, or there are more than it asked for: it
    /// takes a snapshot instead.
    Behind,
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    section_id: Uuid,
    seat_ids: Vec<i64>,
    old_states: Vec<String>,
    old_held_until: Vec<Option<DateTime<Utc>>>,
    new_states: Vec<String>,
    new_held_until: Vec<Option<DateTime<Utc>>>,
}

/// A row of [`changes_since`]: the watermark and horizon, and a change if there is one
/// (a position with nothing new gives one row without).
#[derive(sqlx::FromRow)]
struct FeedRow {
    watermark: i64,
    pruned_through: Option<i64>,
    section_id: Option<Uuid>,
    seat_ids: Option<Vec<i64>>,
    old_states: Option<Vec<String>>,
    old_held_until: Option<Vec<Option<DateTime<Utc>>>>,
    new_states: Option<Vec<String>>,
    new_held_until: Option<Vec<Option<DateTime<Utc>>>>,
}

impl FeedRow {
    fn change(self) -> Option<ChangeRow> {
        Some(ChangeRow {
            section_id: self.section_id?,
            seat_ids: self.seat_ids?,
            old_states: self.old_states?,
            old_held_until: self.old_held_until?,
            new_states: self.new_states?,
            new_held_until: self.new_held_until?,
        })
    }
}

impl ChangeRow {
    fn into_change(self) -> Result<SectionChange, sqlx::Error> {
        let status = |state: &str, held_until| {
            SeatState::parse(state)
                .map(|state| SeatStatus { state, held_until })
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown seat state {state:?}").into()))
        };
        let seats = (self.seat_ids.iter().enumerate())
            .map(|(i, &seat_id)| {
                Ok(SeatMove {
                    seat_id,
                    before: status(&self.old_states[i], self.old_held_until[i])?,
                    after: status(&self.new_states[i], self.new_held_until[i])?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(SectionChange { section_id: self.section_id, seats })
    }
}

/// The event's changes from `since` up to the watermark, at most `limit` rows, in one
/// statement: its snapshot gives the watermark, the rows and the pruning horizon
/// together, so a pruning that commits meanwhile is seen whole or not at all.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn changes_since(conn: &mut PgConnection, event_id: Uuid, since: Position, limit: i64) -> sqlx::Result<Read> {
    // `c.xid`, the column: the index is on it.
    let rows: Vec<FeedRow> = sqlx::query_as(
        "WITH mark AS (
             SELECT pg_snapshot_xmin(pg_current_snapshot()) AS watermark,
                    (SELECT pruned_through FROM seat_change_horizons WHERE event_id = $1) AS pruned_through
         )
         SELECT m.watermark::text::bigint AS watermark, m.pruned_through::text::bigint AS pruned_through,
                c.section_id, c.seat_ids, c.old_states::text[] AS old_states, c.old_held_until,
                c.new_states::text[] AS new_states, c.new_held_until
         FROM mark m
         LEFT JOIN LATERAL (
             SELECT * FROM seat_changes c
             WHERE c.event_id = $1 AND c.xid >= $2::text::xid8 AND c.xid < m.watermark
             ORDER BY c.xid
             LIMIT $3 + 1
         ) c ON true",
    )
    .bind(event_id)
    .bind(since.to_string())
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let Some(&FeedRow { watermark, pruned_through, .. }) = rows.first() else {
        return Err(sqlx::Error::RowNotFound);
    };
    if pruned_through.is_some_and(|through| since <= through) || rows.len() as i64 > limit {
        return Ok(Read::Behind);
    }
    let changes = rows.into_iter().filter_map(FeedRow::change).map(ChangeRow::into_change).collect::<Result<_, _>>()?;
    Ok(Read::Changes { changes, watermark })
}

/// The event's counts now and the position to read the feed from, so that reading it
/// on counts every later change once: the changes this snapshot already saw at or past
/// that position are taken back (the feed gives them again). The first statements of
/// a transaction of their own: it must be REPEATABLE READ, which this sets, so all
/// three reads see one snapshot.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn snapshot(conn: &mut PgConnection, event_id: Uuid) -> sqlx::Result<(EventCounts, Position)> {
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *conn).await?;
    let watermark: i64 = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        .fetch_one(&mut *conn)
        .await?;
    let groups: Vec<(Uuid, String, Option<DateTime<Utc>>, i64)> = sqlx::query_as(
        "SELECT section_id, state::text, held_until, count(*)
         FROM seats WHERE event_id = $1
         GROUP BY section_id, state, held_until",
    )
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut counts = EventCounts::default();
    for (section_id, state, held_until, n) in groups {
        let state = SeatState::parse(&state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown seat state {state:?}").into()))?;
        counts.sections.entry(section_id).or_default().add(SeatStatus { state, held_until }, n);
    }
    let seen: Vec<ChangeRow> = sqlx::query_as(
        "SELECT section_id, seat_ids, old_states::text[] AS old_states, old_held_until,
                new_states::text[] AS new_states, new_held_until
         FROM seat_changes c WHERE c.event_id = $1 AND c.xid >= $2::text::xid8",
    )
    .bind(event_id)
    .bind(watermark.to_string())
    .fetch_all(&mut *conn)
    .await?;
    for row in seen {
        counts.undo(&row.into_change()?);
    }
    Ok((counts, watermark))
}

/// An event's waitlist, as what it sells depends on it (DECISIONS.md D2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventWaitlist {
    /// Fans may join it (the organizer's `waitlist_enabled`).
    pub enabled: bool,
    /// Sections with somebody on the waitlist: they sell nothing to others.
    pub kept_for_waitlist: HashSet<Uuid>,
}

/// The event's waitlist setting and the sections kept for it; the default for an
/// event the sale does not know.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn waitlist(conn: &mut PgConnection, event_id: Uuid) -> sqlx::Result<EventWaitlist> {
    let row: Option<(bool, Vec<Uuid>)> = sqlx::query_as(
        "SELECT e.waitlist_enabled,
                ARRAY(SELECT s.id FROM sections s WHERE s.event_id = e.id AND s.waitlist_waiting > 0)
         FROM events e WHERE e.id = $1",
    )
    .bind(event_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map_or_else(EventWaitlist::default, |(enabled, kept)| EventWaitlist {
        enabled,
        kept_for_waitlist: kept.into_iter().collect(),
    }))
}

/// Deletes up to `batch` change rows older than `retention_secs` and moves each
/// event's horizon past them, in one statement; how many rows it deleted.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn prune(conn: &mut PgConnection, retention_secs: f64, batch: i64) -> sqlx::Result<u64> {
    let deleted: i64 = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM seat_changes
             WHERE ctid = ANY (ARRAY(SELECT ctid FROM seat_changes
                                     WHERE changed_at < now() - make_interval(secs => $1) LIMIT $2))
             RETURNING event_id, xid
         ), horizon AS (
             INSERT INTO seat_change_horizons AS h (event_id, pruned_through)
             SELECT event_id, max(xid) FROM gone GROUP BY event_id
             ON CONFLICT (event_id) DO UPDATE SET pruned_through = greatest(h.pruned_through, excluded.pruned_through)
         )
         SELECT count(*) FROM gone",
    )
    .bind(retention_secs)
    .bind(batch)
    .fetch_one(conn)
    .await?;
    Ok(deleted as u64)
}

#[derive(sqlx::FromRow)]
struct LiveRow {
    watermark: i64,
    pruned_through: Option<i64>,
    change_rows: i64,
    kept_for_waitlist: Vec<Uuid>,
    seat_id: Option<i64>,
    state: Option<String>,
    held_until: Option<DateTime<Utc>>,
}

impl LiveRow {
    fn seat(&self) -> sqlx::Result<Option<SeatNow>> {
        let (Some(seat_id), Some(state)) = (self.seat_id, &self.state) else {
            return Ok(None);
        };
        let state = SeatState::parse(state)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown seat state {state:?}").into()))?;
        Ok(Some(SeatNow { seat_id, status: SeatStatus { state, held_until: self.held_until } }))
    }
}

/// Every reserved seat of the event as it is now, the sections kept for the waitlist,
/// and the position to read the live map's feed from ([`seats_since`]), in one
/// statement (one snapshot).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn live_snapshot(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> sqlx::Result<(Vec<SeatNow>, Vec<Uuid>, Position)> {
    let rows: Vec<LiveRow> = sqlx::query_as(
        "WITH mark AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS watermark)
         SELECT m.watermark::text::bigint AS watermark, NULL::bigint AS pruned_through, 0::bigint AS change_rows,
                ARRAY(SELECT id FROM sections WHERE event_id = $1 AND waitlist_waiting > 0) AS kept_for_waitlist,
                s.id AS seat_id, s.state::text AS state, s.held_until
         FROM mark m
         LEFT JOIN seats s ON s.event_id = $1 AND s.label IS NOT NULL",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Err(sqlx::Error::RowNotFound);
    };
    let (kept, watermark) = (first.kept_for_waitlist.clone(), first.watermark);
    let seats = rows.iter().filter_map(|row| row.seat().transpose()).collect::<sqlx::Result<_>>()?;
    Ok((seats, kept, watermark))
}

/// The live map's read: every reserved seat named by the event's change rows from
/// `since` up to the watermark, *as it is now* (see [`crate::live`] for why not as the
/// rows say), at most `limit` rows, and the sections kept for the waitlist, in one
/// statement.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn seats_since(
    conn: &mut PgConnection,
    event_id: Uuid,
    since: Position,
    limit: i64,
) -> sqlx::Result<SeatsRead> {
    let rows: Vec<LiveRow> = sqlx::query_as(
        "WITH mark AS (
             SELECT pg_snapshot_xmin(pg_current_snapshot()) AS watermark,
                    (SELECT pruned_through FROM seat_change_horizons WHERE event_id = $1) AS pruned_through
         ), changed AS (
             SELECT c.seat_ids FROM seat_changes c, mark m
             WHERE c.event_id = $1 AND c.xid >= $2::text::xid8 AND c.xid < m.watermark
             LIMIT $3 + 1
         ), seat_ids AS (
             SELECT DISTINCT unnest(seat_ids) AS id FROM changed
         )
         SELECT m.watermark::text::bigint AS watermark, m.pruned_through::text::bigint AS pruned_through,
                (SELECT count(*) FROM changed) AS change_rows,
                ARRAY(SELECT id FROM sections WHERE event_id = $1 AND waitlist_waiting > 0) AS kept_for_waitlist,
                s.id AS seat_id, s.state::text AS state, s.held_until
         FROM mark m
         LEFT JOIN (seat_ids JOIN seats s ON s.id = seat_ids.id AND s.label IS NOT NULL) ON true",
    )
    .bind(event_id)
    .bind(since.to_string())
    .bind(limit)
    .fetch_all(conn)
    .await?;
    let Some(first) = rows.first() else {
        return Err(sqlx::Error::RowNotFound);
    };
    if first.pruned_through.is_some_and(|through| since <= through) || first.change_rows > limit {
        return Ok(SeatsRead::Behind);
    }
    let (kept_for_waitlist, watermark) = (first.kept_for_waitlist.clone(), first.watermark);
    let seats = rows.iter().filter_map(|row| row.seat().transpose()).collect::<sqlx::Result<_>>()?;
    Ok(SeatsRead::Changed { seats, kept_for_waitlist, watermark })
}
