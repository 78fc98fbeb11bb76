//! After the sale: what the database says was sold and paid, and whether anything was
//! sold twice, sold unpaid, or refunded beyond what was paid. The simulator's own counts
//! are not trusted for this.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sales::states::BookingStatus;
use sales::store::invariants::{self, Violations};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::error::Error;
use crate::fan::ToldBooking;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseCheck {
    /// The event the rehearsal created and sold.
    pub event_id: Uuid,
    pub capacity: i64,
    /// Places in live bookings of the event.
    pub seats_sold: i64,
    /// Confirmed bookings of the event.
    pub bookings: i64,
    /// The oversell watchdog's invariants, all of which must be 0.
    pub violations: Violations,
    pub told: ToldCheck,
    pub payments: PaymentsCheck,
    pub waitlist: WaitlistCheck,
    /// When the last place sold, in Unix seconds (the database's clock): the newest
    /// booking's time, when every seat of the event is booked at the end; None when the
    /// show did not sell out.
    pub sold_out_at_unix: Option<f64>,
}

/// The event's waitlist as the database has it at the end.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WaitlistCheck {
    pub entries: i64,
    /// Entries still waiting at the end.
    pub still_waiting: i64,
    /// Offers (holds made for entries) by what became of them: `taken`, `declined`,
    /// `lapsed` (ended by the sweep, or past their time), `open`.
    pub offers: BTreeMap<String, i64>,
    /// Offers made to an entry while an earlier entry wanting the same (quantity and
    /// sections) was waiting all along: line order broken. Must be 0. The earlier entry
    /// must have joined over a second before the offer, so a join still committing when
    /// the offer was made (it was not in line yet) is not counted.
    pub out_of_order: i64,
    /// Orders by anyone (holds that are no offer, one-step bookings) that took places of
    /// a section while one of its entries waited, from over a second before to over a
    /// second after: places that went back on sale before the line was served. Must be
    /// 0. (A late payment's booking of other free places is not counted.)
    pub sold_past_the_line: i64,
}

/// The event's payments and refunds, as the database has them once the sale settled.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PaymentsCheck {
    /// Payment attempts by status (`succeeded`, `failed`, `pending`, `refunded`, …).
    pub attempts: BTreeMap<String, i64>,
    /// Succeeded payments by what became of them: `booked`, `late_booked` (the hold had
    /// lapsed, its places were taken again) or `refunded` (nothing left to book).
    pub resolutions: BTreeMap<String, i64>,
    /// Attempts still `created` or `pending` at the end: abandoned checkouts, and paid
    /// ones whose verdict the gateway never heard (dropped webhook, fan gone).
    pub pending: i64,
    /// Late payments refunded and flagged for the organizer.
    pub needs_attention: i64,
    /// Refunds by reason (`cancellation`, `late_payment`, `duplicate_payment`, …).
    pub refunds: BTreeMap<String, i64>,
    /// Refunds by state; `pending` ones are still to be confirmed by the provider.
    pub refunds_by_state: BTreeMap<String, i64>,
    /// Payments the payment page told fans had succeeded that the database still had not
    /// booked or refunded after waiting `settle_secs`: money taken for nothing (until the
    /// reconciliation job, if one runs, finds them).
    pub paid_unsettled: i64,
    pub violations: PaymentViolations,
}

/// The checkout's invariants, each of which must be 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct PaymentViolations {
    /// Live bookings of paid places whose payment has not succeeded (or that name none).
    pub paid_bookings_without_payment: i64,
    /// Payments applied to more than one booking, or whose booking names another.
    pub payments_in_two_bookings: i64,
    /// Payments refunded beyond their amount (their own tally, or the sum of refunds).
    pub over_refunded_payments: i64,
    /// Succeeded payments with neither a booking nor a refund.
    pub succeeded_without_booking_or_refund: i64,
}

impl PaymentViolations {
    pub fn total(&self) -> i64 {
        self.paid_bookings_without_payment
            + self.payments_in_two_bookings
            + self.over_refunded_payments
            + self.succeeded_without_booking_or_refund
    }
}

/// Bookings fans were told about (a 2xx with a booking id), looked up in the database.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ToldCheck {
    pub told: usize,
    /// Found, in the state the fan was last told (or either, when a cancel got no answer).
    pub found: usize,
    /// Ids not in the database at all.
    pub missing: Vec<Uuid>,
    /// Ids in the database in another state than the fan was told.
    pub wrong_state: Vec<Uuid>,
}

/// The watchdog's default scope: a rehearsal's event has no start time and was created
/// moments ago, so it is in scope.
const SCOPE: invariants::Scope = invariants::Scope {
    after_start_hours: 24,
    undated_days: 7,
    time_limit: std::time::Duration::from_secs(60),
    payment_window: std::time::Duration::from_secs(330),
};

/// `paid`: how many fans the payment page told their payment succeeded; the check waits
/// up to `settle` for the gateway to book or refund as many (webhooks may be delayed).
pub async fn check(
    database_url: &str,
    event: Uuid,
    told: &[ToldBooking],
    paid: i64,
    settle: Duration,
) -> Result<DatabaseCheck, Error> {
    let pool = PgPoolOptions::new().max_connections(1).connect(database_url).await?;
    let paid_unsettled = settle_payments(&pool, event, paid, settle).await?;
    let (capacity, seats_sold, bookings): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT coalesce(sum(capacity), 0)::bigint FROM sections WHERE event_id = $1),
                (SELECT count(*) FROM booking_seats bs JOIN bookings b ON b.id = bs.booking_id
                 WHERE bs.live AND b.event_id = $1),
                (SELECT count(*) FROM bookings WHERE event_id = $1 AND status = 'confirmed')",
    )
    .bind(event)
    .fetch_one(&pool)
    .await?;
    let sold_out_at_unix: Option<f64> = sqlx::query_scalar(
        "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM seats WHERE event_id = $1 AND state <> 'booked')
                     THEN (SELECT extract(epoch FROM max(created_at))::float8 FROM bookings WHERE event_id = $1)
                END",
    )
    .bind(event)
    .fetch_one(&pool)
    .await?;
    let violations = invariants::check(&mut *pool.begin().await?, SCOPE).await?;
    let ids: Vec<Uuid> = told.iter().map(|t| t.id).collect();
    let rows: Vec<(Uuid, BookingStatus)> =
        sqlx::query_as("SELECT id, status FROM bookings WHERE event_id = $1 AND id = ANY($2)")
            .bind(event)
            .bind(&ids)
            .fetch_all(&pool)
            .await?;
    let payments = PaymentsCheck { paid_unsettled, ..payments(&pool, event).await? };
    let waitlist = waitlist(&pool, event).await?;
    pool.close().await;
    let states: std::collections::HashMap<Uuid, BookingStatus> = rows.into_iter().collect();
    let mut check = ToldCheck { told: told.len(), ..ToldCheck::default() };
    for booking in told {
        match states.get(&booking.id) {
            None => check.missing.push(booking.id),
            Some(_) if booking.cancel_unanswered => check.found += 1,
            Some(BookingStatus::Cancelled) if booking.cancelled => check.found += 1,
            Some(BookingStatus::Confirmed) if !booking.cancelled => check.found += 1,
            Some(_) => check.wrong_state.push(booking.id),
        }
    }
    Ok(DatabaseCheck {
        event_id: event,
        capacity,
        seats_sold,
        bookings,
        violations,
        told: check,
        payments,
        waitlist,
        sold_out_at_unix,
    })
}

async fn waitlist(pool: &sqlx::PgPool, event: Uuid) -> Result<WaitlistCheck, Error> {
    let (entries, still_waiting, out_of_order, sold_past_the_line): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM waitlist_entries WHERE event_id = $1),
                (SELECT count(*) FROM waitlist_entries WHERE event_id = $1 AND status = 'waiting'),
                (SELECT count(*) FROM waitlist_entries later JOIN holds offer ON offer.waitlist_entry_id = later.id
                 WHERE later.event_id = $1 AND EXISTS (
                     SELECT 1 FROM waitlist_entries earlier
                     WHERE earlier.event_id = $1 AND earlier.seq < later.seq AND earlier.status = 'waiting'
                       AND earlier.quantity = later.quantity AND earlier.section_ids = later.section_ids
                       AND earlier.allow_partial = later.allow_partial
                       AND earlier.created_at < offer.created_at - interval '1 second')),
                (SELECT count(*) FROM (
                     SELECT h.created_at, hs.seat_id FROM holds h JOIN hold_seats hs ON hs.hold_id = h.id
                     WHERE h.event_id = $1 AND h.waitlist_entry_id IS NULL
                     UNION ALL
                     SELECT b.created_at, bs.seat_id FROM bookings b JOIN booking_seats bs ON bs.booking_id = b.id
                     WHERE b.event_id = $1 AND b.hold_id IS NULL
                 ) taken JOIN seats s ON s.id = taken.seat_id
                 WHERE EXISTS (
                     SELECT 1 FROM waitlist_entries e
                     WHERE e.event_id = $1 AND s.section_id = ANY (e.section_ids)
                       AND e.created_at < taken.created_at - interval '1 second'
                       AND coalesce(e.ended_at, 'infinity') > taken.created_at + interval '1 second'))",
    )
    .bind(event)
    .fetch_one(pool)
    .await?;
    let offers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT CASE WHEN h.status = 'confirmed' THEN 'taken'
                     WHEN h.status = 'released' THEN 'declined'
                     WHEN h.status = 'expired' OR h.expires_at <= now() THEN 'lapsed'
                     ELSE 'open' END, count(*)
         FROM holds h WHERE h.event_id = $1 AND h.waitlist_entry_id IS NOT NULL GROUP BY 1",
    )
    .bind(event)
    .fetch_all(pool)
    .await?;
    Ok(WaitlistCheck { entries, still_waiting, offers: offers.into_iter().collect(), out_of_order, sold_past_the_line })
}

/// Waits (at most `settle`, reading every 250 ms) until the event has `paid` payments
/// booked or refunded and no refund waiting for the provider; returns how many of the
/// `paid` are still unsettled then.
async fn settle_payments(pool: &sqlx::PgPool, event: Uuid, paid: i64, settle: Duration) -> Result<i64, Error> {
    let until = Instant::now() + settle;
    loop {
        let (settled, refunds_pending): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM payments
                     WHERE event_id = $1 AND succeeded_at IS NOT NULL AND resolution IS NOT NULL),
                    (SELECT count(*) FROM refunds WHERE event_id = $1 AND status = 'pending')",
        )
        .bind(event)
        .fetch_one(pool)
        .await?;
        let unsettled = (paid - settled).max(0);
        if (unsettled == 0 && refunds_pending == 0) || Instant::now() >= until {
            return Ok(unsettled);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The event's payments and refunds by state, and the checkout's invariants.
async fn payments(pool: &sqlx::PgPool, event: Uuid) -> Result<PaymentsCheck, Error> {
    let count_by = |sql: &'static str| async move {
        let rows: Vec<(String, i64)> = sqlx::query_as(sql).bind(event).fetch_all(pool).await?;
        Ok::<_, Error>(rows.into_iter().collect::<BTreeMap<_, _>>())
    };
    let attempts = count_by("SELECT status::text, count(*) FROM payments WHERE event_id = $1 GROUP BY 1").await?;
    let resolutions = count_by(
        "SELECT resolution::text, count(*) FROM payments
         WHERE event_id = $1 AND resolution IS NOT NULL GROUP BY 1",
    )
    .await?;
    let refunds = count_by("SELECT reason::text, count(*) FROM refunds WHERE event_id = $1 GROUP BY 1").await?;
    let refunds_by_state =
        count_by("SELECT status::text, count(*) FROM refunds WHERE event_id = $1 GROUP BY 1").await?;
    let pending = ["created", "pending"].iter().map(|s| attempts.get(*s).copied().unwrap_or(0)).sum();
    let needs_attention: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payments WHERE event_id = $1 AND needs_attention")
            .bind(event)
            .fetch_one(pool)
            .await?;
    let violations: PaymentViolations = sqlx::query_as(PAYMENT_INVARIANTS).bind(event).fetch_one(pool).await?;
    Ok(PaymentsCheck {
        attempts,
        resolutions,
        pending,
        needs_attention,
        refunds,
        refunds_by_state,
        paid_unsettled: 0,
        violations,
    })
}

/// The checkout's invariants for the event `$1`, in one statement (one snapshot). A
/// payment that paid for a booking stays `succeeded`, or becomes `refunded` /
/// `partially_refunded` when that booking is cancelled; failed refunds gave nothing back.
const PAYMENT_INVARIANTS: &str = "SELECT
     (SELECT count(*) FROM bookings b
      WHERE b.event_id = $1 AND b.status = 'confirmed' AND b.total_minor > 0
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = b.payment_id
                        AND p.status IN ('succeeded', 'refunded', 'partially_refunded')))
         AS paid_bookings_without_payment,
     (SELECT count(*) FROM (SELECT payment_id FROM bookings WHERE event_id = $1 AND payment_id IS NOT NULL
                            GROUP BY payment_id HAVING count(*) > 1) twice)
     + (SELECT count(*) FROM bookings b JOIN payments p ON p.id = b.payment_id
        WHERE b.event_id = $1 AND p.booking_id IS DISTINCT FROM b.id)
         AS payments_in_two_bookings,
     (SELECT count(*) FROM payments p WHERE p.event_id = $1 AND (p.refunded_minor > p.amount_minor
          OR (SELECT coalesce(sum(r.amount_minor), 0) FROM refunds r
              WHERE r.payment_id = p.id AND r.status <> 'failed') > p.amount_minor))
         AS over_refunded_payments,
     (SELECT count(*) FROM payments
      WHERE event_id = $1 AND succeeded_at IS NOT NULL AND resolution IS NULL)
         AS succeeded_without_booking_or_refund";
