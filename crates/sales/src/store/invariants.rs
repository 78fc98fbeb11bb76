//! The invariants that make overselling impossible, re-read from the rows as they are.
//!
//! The schema enforces them on every write the gateway makes; reading them back catches
//! what went around the schema: a hand-run `UPDATE`, a dropped index, a partial restore.
//! Per-order references have no foreign keys (see the migration), so this is also where
//! a dangling one shows up.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;

/// What one check found; every count must be 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct Violations {
    /// Seats of live bookings that the seat row does not record as that booking's: each
    /// is a seat sold twice, or free to be sold again while sold.
    pub oversold_seats: i64,
    /// Seats in more than one live booking.
    pub seats_in_two_bookings: i64,
    /// Sections whose live bookings and unexpired holds claim more places than capacity.
    pub sections_over_capacity: i64,
    /// Seats marked booked without a live booking that claims them (lost to sale).
    pub booked_seats_without_booking: i64,
    /// Seats marked held without an active hold that claims them.
    pub held_seats_without_hold: i64,
    /// Bookings whose quantity differs from their live seats (0 for cancelled ones).
    pub bookings_with_wrong_quantity: i64,
    /// Sections whose seat rows do not number their capacity, so "remaining" is wrong.
    pub sections_with_wrong_seat_count: i64,
    /// Live bookings of paid places without a succeeded payment: seats given away.
    pub paid_bookings_without_payment: i64,
    /// Payments applied to more than one booking, or whose booking names another payment.
    pub payments_applied_twice: i64,
    /// Payments refunded (or being refunded) more than was paid.
    pub payments_over_refunded: i64,
    /// Payments succeeded longer ago than the reconciliation window with neither a
    /// booking nor a refund: money kept for nothing.
    pub payments_unresolved: i64,
    /// Sections whose count of waiting entries (which takes them off sale) differs from
    /// the entries that wait for them: a section kept from sale for nobody, or sold
    /// while someone waits.
    pub waitlist_counts_wrong: i64,
    /// Entries whose offer disagrees with their status: offered without an offer hold,
    /// or with one while still in line or gone.
    pub waitlist_offers_wrong: i64,
}

impl Violations {
    /// Each invariant by its metric label, oversell included.
    pub fn by_invariant(&self) -> [(&'static str, i64); 13] {
        [
            ("oversold_seat", self.oversold_seats),
            ("seat_in_two_bookings", self.seats_in_two_bookings),
            ("section_over_capacity", self.sections_over_capacity),
            ("booked_seat_without_booking", self.booked_seats_without_booking),
            ("held_seat_without_hold", self.held_seats_without_hold),
            ("booking_quantity_mismatch", self.bookings_with_wrong_quantity),
            ("section_seat_count_mismatch", self.sections_with_wrong_seat_count),
            ("paid_booking_without_payment", self.paid_bookings_without_payment),
            ("payment_applied_twice", self.payments_applied_twice),
            ("payment_over_refunded", self.payments_over_refunded),
            ("payment_unresolved", self.payments_unresolved),
            ("waitlist_count_mismatch", self.waitlist_counts_wrong),
            ("waitlist_offer_mismatch", self.waitlist_offers_wrong),
        ]
    }
}

/// Which events a check reads, so its cost follows the events on sale, not the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    /// An event with a start date is checked until this many hours after it starts.
    pub after_start_hours: i32,
    /// An event without a start date has nothing that says its sale is over (the schema
    /// has no sale state yet), so it is checked until this many days after it was created.
    pub undated_days: i32,
    /// How long the check's statements may run: checking a large event during its sale
    /// takes seconds, longer than the service connections' `statement_timeout`.
    pub time_limit: std::time::Duration,
    /// A succeeded payment may wait this long for its booking or refund (the
    /// reconciliation job's window and interval) before it counts as unresolved.
    pub payment_window: std::time::Duration,
}

impl Default for Scope {
    /// The configuration's defaults: a day after the start, a week after creation.
    fn default() -> Self {
        Self {
            after_start_hours: 24,
            undated_days: 7,
            time_limit: std::time::Duration::from_secs(60),
            payment_window: std::time::Duration::from_secs(330),
        }
    }
}

/// The events a check reads: `$1` is [`Scope::after_start_hours`], `$2`
/// [`Scope::undated_days`]. Each half is a range scan of its own index
/// (`events_starting`, `events_undated_by_creation`). Public so tests can `EXPLAIN` it.
pub const SCOPE: &str = "SELECT id FROM events WHERE starts_at > now() - make_interval(hours => $1)
     UNION ALL
     SELECT id FROM events WHERE starts_at IS NULL AND created_at > now() - make_interval(days => $2)";

/// The invariants of the events `$1` (a `uuid[]`), in one statement; `$2` is
/// [`Scope::payment_window`] in seconds. Every table is
/// entered through an index led by `event_id` (seats, sections, bookings, holds) or
/// reached from those rows by key, so rows of other events are never read. Public so
/// tests can `EXPLAIN` it.
pub const STATEMENT: &str = "WITH claims AS (
         SELECT bs.seat_id, bs.booking_id
         FROM bookings b JOIN booking_seats bs ON bs.booking_id = b.id
         WHERE b.event_id = ANY($1) AND bs.live
     ), scoped_seats AS (
         SELECT id, section_id, state, hold_id, booking_id FROM seats WHERE event_id = ANY($1)
     ), taken AS (
         SELECT st.section_id FROM claims c JOIN seats st ON st.id = c.seat_id
         UNION ALL
         SELECT st.section_id
         FROM holds h JOIN hold_seats hs ON hs.hold_id = h.id JOIN seats st ON st.id = hs.seat_id
         WHERE h.status = 'active' AND h.expires_at > now() AND h.event_id = ANY($1)
     )
     SELECT
         (SELECT count(*) FROM claims c LEFT JOIN seats st ON st.id = c.seat_id
          WHERE st.id IS NULL OR st.state <> 'booked' OR st.booking_id <> c.booking_id) AS oversold_seats,
         (SELECT count(*) FROM (SELECT seat_id FROM claims GROUP BY seat_id HAVING count(*) > 1) twice)
             AS seats_in_two_bookings,
         (SELECT count(*) FROM (
              SELECT t.section_id FROM taken t JOIN sections s ON s.id = t.section_id
              GROUP BY t.section_id, s.capacity HAVING count(*) > s.capacity) crowded)
             AS sections_over_capacity,
         (SELECT count(*) FROM scoped_seats st WHERE st.state = 'booked' AND NOT EXISTS (
              SELECT 1 FROM claims c WHERE c.seat_id = st.id AND c.booking_id = st.booking_id))
             AS booked_seats_without_booking,
         (SELECT count(*) FROM scoped_seats st WHERE st.state = 'held' AND NOT EXISTS (
              SELECT 1 FROM holds h JOIN hold_seats hs ON hs.hold_id = h.id
              WHERE h.id = st.hold_id AND hs.seat_id = st.id AND h.status = 'active'))
             AS held_seats_without_hold,
         (SELECT count(*) FROM bookings b WHERE b.event_id = ANY($1)
              AND CASE WHEN b.status = 'confirmed' THEN b.quantity ELSE 0 END
                  <> (SELECT count(*) FROM booking_seats bs WHERE bs.booking_id = b.id AND bs.live))
             AS bookings_with_wrong_quantity,
         (SELECT count(*) FROM sections s
              LEFT JOIN (SELECT section_id, count(*) AS seats FROM scoped_seats GROUP BY section_id) n
                  ON n.section_id = s.id
              WHERE s.event_id = ANY($1) AND s.capacity <> coalesce(n.seats, 0))
             AS sections_with_wrong_seat_count,
         (SELECT count(*) FROM bookings b LEFT JOIN payments p ON p.id = b.payment_id
              WHERE b.event_id = ANY($1) AND b.status = 'confirmed' AND b.total_minor > 0
                AND (p.id IS NULL OR p.succeeded_at IS NULL OR p.event_id <> b.event_id))
             AS paid_bookings_without_payment,
         (SELECT count(*) FROM payments p WHERE p.event_id = ANY($1) AND (
              (SELECT count(*) FROM bookings b WHERE b.payment_id = p.id) > 1
              OR (p.booking_id IS NOT NULL AND NOT EXISTS (
                  SELECT 1 FROM bookings b WHERE b.id = p.booking_id AND b.payment_id = p.id))))
             AS payments_applied_twice,
         (SELECT count(*) FROM payments p WHERE p.event_id = ANY($1) AND (
              p.refunded_minor > p.amount_minor
              OR (SELECT coalesce(sum(r.amount_minor), 0) FROM refunds r WHERE r.payment_id = p.id) > p.amount_minor
              OR (SELECT coalesce(sum(r.amount_minor), 0) FROM refunds r WHERE r.payment_id = p.id) <> p.refunded_minor))
             AS payments_over_refunded,
         (SELECT count(*) FROM payments p WHERE p.event_id = ANY($1) AND p.succeeded_at IS NOT NULL
              AND p.succeeded_at < now() - make_interval(secs => $2)
              AND (p.resolution IS NULL
                   OR (p.booking_id IS NULL AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.payment_id = p.id))))
             AS payments_unresolved,
         (SELECT count(*) FROM sections s WHERE s.event_id = ANY($1) AND s.waitlist_waiting <> (
              SELECT count(*) FROM waitlist_entries w
              WHERE w.event_id = s.event_id AND w.status = 'waiting' AND s.id = ANY (w.section_ids)))
             AS waitlist_counts_wrong,
         (SELECT count(*) FROM waitlist_entries w WHERE w.event_id = ANY($1)
              AND (w.status = 'offered') <> EXISTS (SELECT 1 FROM holds h WHERE h.waitlist_entry_id = w.id))
             AS waitlist_offers_wrong";

/// How the money of the events checked stands: payments by status, succeeded payments
/// by resolution (`booked`, `late_booked`, `refunded`, or `unresolved`), refunds by
/// status. Exported beside the violations, so a dashboard sees declines, late payments
/// and refunds pending without a counter that restarts with each process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MoneyCounts {
    pub payments: Vec<(String, i64)>,
    pub resolutions: Vec<(String, i64)>,
    pub refunds: Vec<(String, i64)>,
}

/// The money counts of the events `$1`, one statement per table, each entered by event.
pub const MONEY: &str = "SELECT 'payment' AS kind, status::text AS label, count(*) AS n
     FROM payments WHERE event_id = ANY($1) GROUP BY status
     UNION ALL
     SELECT 'resolution', coalesce(resolution::text, 'unresolved'), count(*)
     FROM payments WHERE event_id = ANY($1) AND succeeded_at IS NOT NULL GROUP BY resolution
     UNION ALL
     SELECT 'refund', status::text, count(*) FROM refunds WHERE event_id = ANY($1) GROUP BY status";

/// Checks every event in `scope`: one statement reads which events are in scope, one
/// more reads their invariants. That second statement is one snapshot, so an order
/// committing meanwhile is seen either whole or not at all.
///
/// The events are passed as values, not joined in SQL: the planner then sees which
/// events it reads (their row estimates, not the table's average), and the statement
/// is planned for them each time (not cached), so a run costs what the events in scope
/// hold, whatever the history holds. An event created between the two statements is
/// checked at the next run.
pub async fn check(tx: &mut PgConnection, scope: Scope) -> Result<Violations> {
    crate::store::events::allow_statements_to_run(&mut *tx, scope.time_limit).await?;
    let events: Vec<Uuid> =
        sqlx::query_scalar(SCOPE).bind(scope.after_start_hours).bind(scope.undated_days).fetch_all(&mut *tx).await?;
    if events.is_empty() {
        return Ok(Violations::default());
    }
    Ok(sqlx::query_as(STATEMENT)
        .bind(&events)
        .bind(scope.payment_window.as_secs_f64())
        .persistent(false)
        .fetch_one(&mut *tx)
        .await?)
}

/// The money counts ([`MoneyCounts`]) of the events in `scope`.
pub async fn money(tx: &mut PgConnection, scope: Scope) -> Result<MoneyCounts> {
    let events: Vec<Uuid> =
        sqlx::query_scalar(SCOPE).bind(scope.after_start_hours).bind(scope.undated_days).fetch_all(&mut *tx).await?;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as(MONEY).bind(&events).persistent(false).fetch_all(&mut *tx).await?;
    let mut money = MoneyCounts::default();
    for (kind, label, n) in rows {
        match kind.as_str() {
            "payment" => money.payments.push((label, n)),
            "resolution" => money.resolutions.push((label, n)),
            _ => money.refunds.push((label, n)),
        }
    }
    Ok(money)
}
