//! Tickets, their revocations, scanner keys and check-ins. Tickets are written by the
//! booking statements themselves (see [`crate::store::bookings`]) and revoked by the
//! cancellation statement; what is here reads them, reissues one, and records scans.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::states::SectionKind;
use crate::store::bookings::BookingKey;

/// A ticket with what its secret and its view need.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TicketRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub booking_id: Uuid,
    pub issue: i32,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub seat_label: Option<String>,
    pub seat_number: i32,
    pub section_id: Uuid,
    pub section_name: String,
    pub section_kind: SectionKind,
    pub event_name: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub checked_in_at: Option<DateTime<Utc>>,
    pub gate: Option<String>,
}

/// Every ticket of the booking `key` names, best seat first; empty when the key names
/// no booking (another fan's, another event's, a revoked link's).
#[tracing::instrument(level = "debug", skip_all, fields(booking_id = %key.booking_id))]
pub async fn of_booking(conn: &mut PgConnection, key: &BookingKey) -> Result<Vec<TicketRow>> {
    Ok(sqlx::query_as(
        "SELECT t.id, t.event_id, t.booking_id, t.issue, t.created_at, t.revoked_at,
                s.label AS seat_label, s.seat_number, sec.id AS section_id, sec.name AS section_name,
                sec.kind AS section_kind, e.name AS event_name, e.starts_at,
                c.scanned_at AS checked_in_at, c.gate
         FROM bookings b
         JOIN tickets t ON t.booking_id = b.id
         JOIN seats s ON s.id = t.seat_id
         JOIN sections sec ON sec.id = s.section_id
         JOIN events e ON e.id = b.event_id
         LEFT JOIN checkins c ON c.ticket_id = t.id
         WHERE b.id = $1 AND b.event_id = $2 AND ($3::text IS NULL OR b.fan_id = $3)
           AND ($4::integer IS NULL OR b.link_generation = $4)
         ORDER BY s.sort_key",
    )
    .bind(key.booking_id)
    .bind(key.event_id)
    .bind(key.fan_id.as_deref())
    .bind(key.link_generation)
    .fetch_all(conn)
    .await?)
}

/// Locks one ticket of the booking `key` names, for a reissue.
#[tracing::instrument(level = "debug", skip(conn, key))]
pub async fn lock(conn: &mut PgConnection, key: &BookingKey, ticket_id: Uuid) -> Result<Option<(i32, bool)>> {
    Ok(sqlx::query_as(
        "SELECT t.issue, t.revoked_at IS NOT NULL AS revoked
         FROM tickets t JOIN bookings b ON b.id = t.booking_id
         WHERE t.id = $1 AND b.id = $2 AND b.event_id = $3 AND ($4::text IS NULL OR b.fan_id = $4)
           AND ($5::integer IS NULL OR b.link_generation = $5)
         FOR UPDATE OF t",
    )
    .bind(ticket_id)
    .bind(key.booking_id)
    .bind(key.event_id)
    .bind(key.fan_id.as_deref())
    .bind(key.link_generation)
    .fetch_optional(conn)
    .await?)
}

/// Gives a locked, live ticket a new secret: first revokes the current one (a row the
/// revocation feed carries), then moves the issue on. The database refuses the second
/// statement's change without the first's row (`tickets_revoked_with_record`).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn reissue(conn: &mut PgConnection, ticket_id: Uuid, issue: i32) -> Result<()> {
    sqlx::query(
        "INSERT INTO ticket_revocations (event_id, ticket_id, issue, reason)
         SELECT event_id, id, issue, 'reissued' FROM tickets WHERE id = $1 AND issue = $2",
    )
    .bind(ticket_id)
    .bind(issue)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE tickets SET issue = issue + 1 WHERE id = $1 AND issue = $2")
        .bind(ticket_id)
        .bind(issue)
        .execute(conn)
        .await?;
    Ok(())
}

/// A revocation as the feed carries it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevocationRow {
    pub ticket_id: Uuid,
    pub issue: i32,
    pub reason: String,
    pub revoked_at: DateTime<Utc>,
    pub xid: i64,
}

/// A page of an event's revocations: whole transactions only.
#[derive(Debug, Clone)]
pub struct RevocationPage {
    pub rows: Vec<RevocationRow>,
    /// More rows follow the page's last transaction (below the watermark, now).
    pub more: bool,
}

/// The event's revocations from position `since` on, up to the transaction-id watermark
/// (DECISIONS.md D3): only rows of transactions that have all finished, so none that
/// commits later can land behind a position a scanner has passed. About `limit` rows,
/// whole transactions only: a scanner moves on to just past the page's last
/// transaction, so a transaction split across two pages would lose its rest (see
/// [`page_end`]). None when there is no such event.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn revocations_since(
    conn: &mut PgConnection,
    event_id: Uuid,
    since: u64,
    limit: u32,
) -> Result<Option<RevocationPage>> {
    let exists: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM events WHERE id = $1").bind(event_id).fetch_optional(&mut *conn).await?;
    if exists.is_none() {
        return Ok(None);
    }
    // One row past the limit tells whether the page's last transaction goes on. Ordered
    // by `r.xid`, the column (a bare `xid` would be the bigint output column): the index
    // gives that order, so a page reads about `limit` rows, not all since `since`.
    let mut rows: Vec<RevocationRow> = sqlx::query_as(
        "SELECT r.ticket_id, r.issue, r.reason::text AS reason, r.revoked_at, r.xid::text::bigint AS xid
         FROM ticket_revocations r
         WHERE r.event_id = $1 AND r.xid >= $2::text::xid8 AND r.xid < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY r.xid, r.ticket_id, r.issue
         LIMIT $3",
    )
    .bind(event_id)
    .bind(since.to_string())
    .bind(i64::from(limit) + 1)
    .fetch_all(&mut *conn)
    .await?;
    let xids: Vec<i64> = rows.iter().map(|r| r.xid).collect();
    let page = match page_end(&xids, limit as usize) {
        PageEnd::Whole => RevocationPage { rows, more: false },
        PageEnd::Before(len) => {
            rows.truncate(len);
            RevocationPage { rows, more: true }
        }
        PageEnd::OneTransaction(xid) => one_transaction(conn, event_id, xid).await?,
    };
    Ok(Some(page))
}

/// Every revocation of the one transaction `xid` (a cancellation of more tickets than a
/// page holds), and whether any follows it.
async fn one_transaction(conn: &mut PgConnection, event_id: Uuid, xid: i64) -> Result<RevocationPage> {
    // The transaction's rows, then the first row after it if there is one. `xid` is
    // below the watermark already: its transaction has ended and all its rows show.
    let mut rows: Vec<RevocationRow> = sqlx::query_as(
        "(SELECT ticket_id, issue, reason::text AS reason, revoked_at, xid::text::bigint AS xid
          FROM ticket_revocations
          WHERE event_id = $1 AND xid = $2::text::xid8)
         UNION ALL
         (SELECT r.ticket_id, r.issue, r.reason::text AS reason, r.revoked_at, r.xid::text::bigint AS xid
          FROM ticket_revocations r
          WHERE r.event_id = $1 AND r.xid > $2::text::xid8 AND r.xid < pg_snapshot_xmin(pg_current_snapshot())
          ORDER BY r.xid, r.ticket_id, r.issue
          LIMIT 1)
         ORDER BY xid, ticket_id, issue",
    )
    .bind(event_id)
    .bind(xid.to_string())
    .fetch_all(conn)
    .await?;
    let more = rows.last().is_some_and(|r| r.xid != xid);
    if more {
        rows.pop();
    }
    Ok(RevocationPage { rows, more })
}

/// Where a page of at most `limit` rows ends, given the transaction ids of up to
/// `limit + 1` rows read in order.
#[derive(Debug, PartialEq, Eq)]
pub enum PageEnd {
    /// Everything read fits: this is the last page.
    Whole,
    /// The page is the first this many rows: whole transactions, more after them.
    Before(usize),
    /// One transaction alone fills the page: the page is all of its rows, however many.
    OneTransaction(i64),
}

/// The page ends before the transaction of the first row past `limit`, which may go on
/// beyond what was read; if that is the page's only transaction, the page is all of it.
pub fn page_end(xids: &[i64], limit: usize) -> PageEnd {
    let Some(&first_left_out) = xids.get(limit) else {
        return PageEnd::Whole;
    };
    match xids.iter().position(|&xid| xid == first_left_out) {
        Some(0) => PageEnd::OneTransaction(first_left_out),
        Some(len) => PageEnd::Before(len),
        None => unreachable!("the row at `limit` is among the rows"),
    }
}

/// Stores a scanner key's hash for the event. False when there is no such event.
#[tracing::instrument(level = "debug", skip(conn, key_sha256))]
pub async fn create_scanner_key(
    conn: &mut PgConnection,
    id: Uuid,
    event_id: Uuid,
    name: &str,
    key_sha256: &[u8],
) -> Result<Option<DateTime<Utc>>> {
    let created: Option<(DateTime<Utc>,)> = sqlx::query_as(
        "INSERT INTO scanner_keys (id, event_id, name, key_sha256)
         SELECT $1, id, $3, $4 FROM events WHERE id = $2
         RETURNING created_at",
    )
    .bind(id)
    .bind(event_id)
    .bind(name)
    .bind(key_sha256)
    .fetch_optional(conn)
    .await?;
    Ok(created.map(|(at,)| at))
}

/// The event a live scanner key is for.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn scanner_key_event(conn: &mut PgConnection, key_sha256: &[u8]) -> Result<Option<Uuid>> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT event_id FROM scanner_keys WHERE key_sha256 = $1 AND revoked_at IS NULL")
            .bind(key_sha256)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(event,)| event))
}

/// What a check-in statement found and did.
#[derive(Debug, sqlx::FromRow)]
pub struct Scan {
    /// The ticket's current issue; None: no such ticket of this event.
    pub current_issue: Option<i32>,
    pub revoked: Option<bool>,
    /// When this scan was recorded as the ticket's check-in; None: it was not (another
    /// scan was first, or the ticket is not live).
    pub recorded_at: Option<DateTime<Utc>>,
}

/// Records a scan of the ticket's issue `issue` at `gate` as the ticket's check-in, in
/// one statement, exactly once by `checkins`' primary key: a rival scan's insert makes
/// this one wait for its commit, then do nothing. An online scan (`scanned_at` None: the
/// database's clock) never replaces a recorded one; an offline scan made at
/// `scanned_at` takes the place of a later one (the earliest scan wins). The ticket row
/// is share-locked so a cancellation cannot commit between the check and the insert.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn check_in(
    conn: &mut PgConnection,
    event_id: Uuid,
    ticket_id: Uuid,
    issue: i32,
    gate: &str,
    scanned_at: Option<DateTime<Utc>>,
) -> Result<Scan> {
    Ok(sqlx::query_as(
        "WITH ticket AS (
             SELECT id, issue, revoked_at FROM tickets WHERE id = $1 AND event_id = $2 FOR SHARE
         ), recorded AS (
             INSERT INTO checkins (ticket_id, event_id, issue, gate, scanned_at, offline)
             SELECT id, $2, $3, $4, coalesce($5, now()), $5 IS NOT NULL
             FROM ticket WHERE revoked_at IS NULL AND issue = $3
             ON CONFLICT (ticket_id) DO UPDATE
                 SET issue = EXCLUDED.issue, gate = EXCLUDED.gate, scanned_at = EXCLUDED.scanned_at,
                     recorded_at = now(), offline = true
                 WHERE EXCLUDED.offline AND EXCLUDED.scanned_at < checkins.scanned_at
             RETURNING scanned_at
         )
         SELECT (SELECT issue FROM ticket) AS current_issue,
                (SELECT revoked_at IS NOT NULL FROM ticket) AS revoked,
                (SELECT scanned_at FROM recorded) AS recorded_at",
    )
    .bind(ticket_id)
    .bind(event_id)
    .bind(issue)
    .bind(gate)
    .bind(scanned_at)
    .fetch_one(conn)
    .await?)
}

/// The ticket's recorded check-in: when and at which gate.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn checkin_of(conn: &mut PgConnection, ticket_id: Uuid) -> Result<Option<(DateTime<Utc>, String)>> {
    Ok(sqlx::query_as("SELECT scanned_at, gate FROM checkins WHERE ticket_id = $1")
        .bind(ticket_id)
        .fetch_optional(conn)
        .await?)
}

/// Per section: live tickets and those of them checked in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SectionCount {
    pub section_id: Uuid,
    pub name: String,
    pub sold: i64,
    pub checked_in: i64,
}

/// The event's counts by section, in the sections' order; None when there is no such
/// event.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn counts(conn: &mut PgConnection, event_id: Uuid) -> Result<Vec<SectionCount>> {
    Ok(sqlx::query_as(
        "SELECT sec.id AS section_id, sec.name,
                count(t.id) AS sold, count(c.ticket_id) AS checked_in
         FROM sections sec
         LEFT JOIN seats s ON s.section_id = sec.id AND s.state = 'booked'
         LEFT JOIN tickets t ON t.seat_id = s.id AND t.revoked_at IS NULL
         LEFT JOIN checkins c ON c.ticket_id = t.id
         WHERE sec.event_id = $1
         GROUP BY sec.id, sec.name, sec.position
         ORDER BY sec.position",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_that_fits_what_was_read_is_the_last() {
        assert_eq!(page_end(&[], 3), PageEnd::Whole);
        assert_eq!(page_end(&[5, 5, 6], 3), PageEnd::Whole);
    }

    #[test]
    fn a_full_page_ends_before_the_transaction_that_goes_past_it() {
        // Row 4 (index 3) is left out and its transaction 7 starts inside the page.
        assert_eq!(page_end(&[5, 6, 7, 7], 3), PageEnd::Before(2));
        // Row 4 starts a new transaction: the page is exactly the limit.
        assert_eq!(page_end(&[5, 6, 7, 8], 3), PageEnd::Before(3));
        assert_eq!(page_end(&[5, 5, 5, 8], 3), PageEnd::Before(3));
    }

    #[test]
    fn one_transaction_larger_than_a_page_comes_whole() {
        assert_eq!(page_end(&[5, 5, 5, 5], 3), PageEnd::OneTransaction(5));
        assert_eq!(page_end(&[5, 5], 1), PageEnd::OneTransaction(5));
    }
}
