//! Events, their sections and seats: written once at creation, then read.

use std::collections::HashMap;

use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::event::NewEvent;
use crate::domain::refund_policy::RefundPolicy;
use crate::domain::sale_state::SaleState;
use crate::error::Result;
use crate::model::{
    CatalogueEvent, CatalogueSection, EventDetails, EventSummary, LayoutRow, LayoutSection, Price, SeatLayout,
    SeatView, SectionView, WaitingRoomStatus,
};
use crate::states::SectionKind;

/// The most events the public catalogue lists.
pub const CATALOGUE_LIMIT: i64 = 200;

/// The parts of an event every order needs, cached per replica (see [`crate::rules`]).
#[derive(Debug, Clone)]
pub struct EventRules {
    pub id: Uuid,
    pub currency: String,
    pub max_per_order: u32,
    pub hold_ttl_seconds: i32,
    pub sections: HashMap<Uuid, SectionRules>,
    /// The organizer cancelled the event: nothing more is sold.
    pub cancelled: bool,
    /// When it starts (tickets and booking links are valid until a day after).
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Copy)]
pub struct SectionRules {
    pub kind: SectionKind,
    pub price_minor: i64,
}

impl EventRules {
    pub fn price(&self, amount_minor: i64) -> Price {
        Price { amount_minor, currency: self.currency.clone() }
    }
}

/// Lets this transaction's statements run up to `limit` instead of the connection's
/// `statement_timeout`.
pub async fn allow_statements_to_run(conn: &mut PgConnection, limit: std::time::Duration) -> Result<()> {
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(format!("{}ms", limit.as_millis()))
        .execute(conn)
        .await?;
    Ok(())
}

/// Writes the event, its sections and every seat row, inside the caller's transaction.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, event: &NewEvent) -> Result<Uuid> {
    let event_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (id, name, starts_at, currency, max_per_order, hold_ttl_seconds, refund_policy, max_per_fan,
                             waitlist_enabled, waitlist_offer_ttl_seconds, published_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $11 THEN now() END)",
    )
    .bind(event_id)
    .bind(&event.name)
    .bind(event.starts_at)
    .bind(&event.currency)
    .bind(event.max_per_order as i32)
    .bind(event.hold_ttl_seconds as i32)
    .bind(event.refund_policy.as_ref().map(sqlx::types::Json))
    .bind(event.max_per_fan.map(|n| n as i32))
    .bind(event.waitlist.enabled)
    .bind(event.waitlist.offer_ttl_seconds as i32)
    .bind(event.published)
    .execute(&mut *conn)
    .await?;
    for (position, section) in event.sections.iter().enumerate() {
        let section_id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO sections (id, event_id, position, name, kind, price_minor, capacity)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(section_id)
        .bind(event_id)
        .bind(position as i32)
        .bind(&section.name)
        .bind(section.kind())
        .bind(section.price_minor)
        .bind(section.capacity() as i32)
        .execute(&mut *conn)
        .await?;
        let seats = section.seats();
        sqlx::query(
            "INSERT INTO seats (event_id, section_id, label, row_label, row_rank, seat_number, sort_key)
             SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::int[], $6::int[], $7::int[])",
        )
        .bind(event_id)
        .bind(section_id)
        .bind(seats.iter().map(|s| s.label.clone()).collect::<Vec<_>>())
        .bind(seats.iter().map(|s| s.row_label.clone()).collect::<Vec<_>>())
        .bind(seats.iter().map(|s| s.row_rank).collect::<Vec<_>>())
        .bind(seats.iter().map(|s| s.seat_number).collect::<Vec<_>>())
        .bind(seats.iter().map(|s| s.sort_key).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
    }
    Ok(event_id)
}

#[tracing::instrument(level = "debug", skip_all)]
pub async fn list(conn: &mut PgConnection) -> Result<Vec<EventSummary>> {
    Ok(sqlx::query_as(
        "SELECT e.id, e.name, e.starts_at, e.currency, e.created_at, e.published_at,
                (SELECT coalesce(sum(capacity), 0)::bigint FROM sections s WHERE s.event_id = e.id) AS capacity
         FROM events e ORDER BY e.created_at DESC LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?)
}

#[tracing::instrument(level = "debug", skip(conn))]
pub async fn rules(conn: &mut PgConnection, event_id: Uuid) -> Result<Option<EventRules>> {
    let Some(event) = sqlx::query(
        "SELECT currency, max_per_order, hold_ttl_seconds, cancelled_at IS NOT NULL AS cancelled, starts_at
         FROM events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let sections =
        sqlx::query_as::<_, (Uuid, SectionKind, i64)>("SELECT id, kind, price_minor FROM sections WHERE event_id = $1")
            .bind(event_id)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .map(|(id, kind, price_minor)| (id, SectionRules { kind, price_minor }))
            .collect();
    Ok(Some(EventRules {
        id: event_id,
        currency: event.get::<String, _>("currency"),
        max_per_order: event.get::<i32, _>("max_per_order") as u32,
        hold_ttl_seconds: event.get("hold_ttl_seconds"),
        sections,
        cancelled: event.get("cancelled"),
        starts_at: event.get("starts_at"),
    }))
}

/// Marks the event cancelled (once: cancelling again keeps the first time). False when
/// there is no such event.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn mark_cancelled(conn: &mut PgConnection, event_id: Uuid) -> Result<bool> {
    let marked = sqlx::query("UPDATE events SET cancelled_at = coalesce(cancelled_at, now()) WHERE id = $1")
        .bind(event_id)
        .execute(conn)
        .await?;
    Ok(marked.rows_affected() == 1)
}

/// Cancelled events that still have live bookings or active holds (orders that raced
/// the cancellation), at most `limit`.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn cancelled_with_sales_left(conn: &mut PgConnection, limit: i64) -> Result<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT e.id FROM events e WHERE e.cancelled_at IS NOT NULL
           AND (EXISTS (SELECT 1 FROM bookings b WHERE b.event_id = e.id AND b.status = 'confirmed')
                OR EXISTS (SELECT 1 FROM holds h WHERE h.event_id = e.id AND h.status = 'active'))
         ORDER BY e.cancelled_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Replaces the event's refund policy (None: fans may not cancel).
#[tracing::instrument(level = "debug", skip(conn, policy))]
pub async fn set_refund_policy(conn: &mut PgConnection, event_id: Uuid, policy: Option<&RefundPolicy>) -> Result<()> {
    sqlx::query("UPDATE events SET refund_policy = $2 WHERE id = $1")
        .bind(event_id)
        .bind(policy.map(sqlx::types::Json))
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces the event's limit of places per fan (None: no limit). The database reads it
/// at every order (migrations/*_fan_limits.sql), so the next order on any replica obeys
/// it; orders already made stay.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn set_max_per_fan(conn: &mut PgConnection, event_id: Uuid, max_per_fan: Option<u32>) -> Result<()> {
    sqlx::query("UPDATE events SET max_per_fan = $2 WHERE id = $1")
        .bind(event_id)
        .bind(max_per_fan.map(|n| n as i32))
        .execute(conn)
        .await?;
    Ok(())
}

/// Turns the event's waitlist on or off, and sets how long its offers last (from the
/// next offer on). Turning it off ends every waiting entry: their sections go back on
/// sale at once; offers already made stay.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn set_waitlist(
    conn: &mut PgConnection,
    event_id: Uuid,
    enabled: Option<bool>,
    offer_ttl_seconds: Option<u32>,
) -> Result<()> {
    sqlx::query(
        "UPDATE events SET waitlist_enabled = coalesce($2, waitlist_enabled),
                waitlist_offer_ttl_seconds = coalesce($3, waitlist_offer_ttl_seconds)
         WHERE id = $1",
    )
    .bind(event_id)
    .bind(enabled)
    .bind(offer_ttl_seconds.map(|n| n as i32))
    .execute(&mut *conn)
    .await?;
    if enabled == Some(false) {
        crate::store::waitlist::close(conn, event_id).await?;
    }
    Ok(())
}

/// How many more places the fan may take now (None: the event has no limit), holding
/// the fan's lock until the transaction ends, so an order written next in it is sure of
/// the answer. Lock the order's seats first: every order statement takes this lock after
/// its seats (migrations/*_fan_limits.sql).
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn fan_allowance(conn: &mut PgConnection, event_id: Uuid, fan_id: &str) -> Result<Option<u32>> {
    let remaining: Option<i32> =
        sqlx::query_scalar("SELECT fan_allowance($1, $2)").bind(event_id).bind(fan_id).fetch_one(conn).await?;
    Ok(remaining.map(|n| n.max(0) as u32))
}

/// The event with each section's live counts, counted from the seat rows.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn details(conn: &mut PgConnection, event_id: Uuid) -> Result<Option<EventDetails>> {
    let Some(event) = sqlx::query(
        "SELECT name, starts_at, currency, max_per_order, max_per_fan, hold_ttl_seconds, refund_policy, cancelled_at,
                waitlist_enabled, waitlist_offer_ttl_seconds, published_at
         FROM events WHERE id = $1",
    )
    .bind(event_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let currency: String = event.get("currency");
    let sections = sqlx::query(
        "SELECT s.id, s.name, s.kind, s.price_minor, a.capacity::bigint AS capacity,
                a.remaining, a.held, a.booked, a.kept_for_waitlist
         FROM sections s JOIN section_availability a ON a.section_id = s.id
         WHERE s.event_id = $1 ORDER BY s.position",
    )
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| SectionView {
        id: row.get("id"),
        name: row.get("name"),
        kind: row.get("kind"),
        price: Price { amount_minor: row.get("price_minor"), currency: currency.clone() },
        capacity: row.get("capacity"),
        remaining: row.get("remaining"),
        held: row.get("held"),
        booked: row.get("booked"),
        kept_for_waitlist: row.get("kept_for_waitlist"),
    })
    .collect();
    Ok(Some(EventDetails {
        id: event_id,
        name: event.get("name"),
        starts_at: event.get("starts_at"),
        max_per_order: event.get("max_per_order"),
        max_per_fan: event.get("max_per_fan"),
        hold_ttl_seconds: event.get("hold_ttl_seconds"),
        sections,
        refund_policy: event.get::<Option<sqlx::types::Json<RefundPolicy>>, _>("refund_policy").map(|p| p.0),
        cancelled_at: event.get("cancelled_at"),
        waitlist_enabled: event.get("waitlist_enabled"),
        waitlist_offer_ttl_secs: event.get("waitlist_offer_ttl_seconds"),
        published_at: event.get("published_at"),
    }))
}

/// Lists the event in the catalogue (one listed already keeps its `published_at`), or
/// takes it out.
#[tracing::instrument(level = "debug", skip(conn))]
pub async fn set_published(conn: &mut PgConnection, event_id: Uuid, published: bool) -> Result<()> {
    sqlx::query("UPDATE events SET published_at = CASE WHEN $2 THEN coalesce(published_at, now()) END WHERE id = $1")
        .bind(event_id)
        .bind(published)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The public catalogue's events: published, neither cancelled nor started, soonest
/// first (those without a date last), at most [`CATALOGUE_LIMIT`]; each with its
/// waiting room's state when one is set (the waiting room's own record, in the same
/// database).
#[tracing::instrument(level = "debug", skip_all)]
pub async fn catalogue(conn: &mut PgConnection) -> Result<Vec<CatalogueEvent>> {
    let events = sqlx::query(
        "SELECT e.id, e.name, e.starts_at, e.currency, e.waitlist_enabled,
                w.state::text AS waiting_room_state, w.opens_at AS waiting_room_opens_at,
                coalesce(w.state = 'running' AND (w.opens_at IS NULL OR w.opens_at <= now()), false)
                    AS waiting_room_open
         FROM events e LEFT JOIN waitroom_events w ON w.event_id = e.id
         WHERE e.published_at IS NOT NULL AND e.cancelled_at IS NULL AND (e.starts_at IS NULL OR e.starts_at > now())
         ORDER BY e.starts_at NULLS LAST, e.published_at, e.id
         LIMIT $1",
    )
    .bind(CATALOGUE_LIMIT)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = events.iter().map(|row| row.get("id")).collect();
    // Each event's sections, and how many of its places are held.
    let mut sections: HashMap<Uuid, (Vec<CatalogueSection>, i64)> = HashMap::new();
    for row in sqlx::query(
        "SELECT s.event_id, s.id, s.name, s.kind, s.price_minor, a.remaining, a.held
         FROM sections s JOIN section_availability a ON a.section_id = s.id
         WHERE s.event_id = ANY($1) ORDER BY s.event_id, s.position",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    {
        let (listed, held) = sections.entry(row.get("event_id")).or_default();
        *held += row.get::<i64, _>("held");
        listed.push(CatalogueSection {
            id: row.get("id"),
            name: row.get("name"),
            kind: row.get("kind"),
            price_minor: row.get("price_minor"),
            remaining: row.get("remaining"),
        });
    }
    Ok(events
        .into_iter()
        .map(|row| {
            let waiting_room = row.get::<Option<String>, _>("waiting_room_state").map(|state| WaitingRoomStatus {
                state,
                opens_at: row.get("waiting_room_opens_at"),
                open: row.get("waiting_room_open"),
            });
            let id: Uuid = row.get("id");
            let (sections, held) = sections.remove(&id).unwrap_or_default();
            let remaining = sections.iter().map(|s| s.remaining).sum();
            let prices = sections.iter().map(|s| s.price_minor);
            let currency: String = row.get("currency");
            CatalogueEvent {
                id,
                name: row.get("name"),
                starts_at: row.get("starts_at"),
                price_from: Price { amount_minor: prices.clone().min().unwrap_or(0), currency: currency.clone() },
                price_to: Price { amount_minor: prices.max().unwrap_or(0), currency: currency.clone() },
                currency,
                sale_state: SaleState::of(remaining, held),
                sections,
                waitlist_enabled: row.get("waitlist_enabled"),
                waiting_room,
            }
        })
        .collect())
}

/// Every reserved seat of the event with its live status: a seat whose hold has lapsed
/// shows available, as the next order may take it, and a free seat kept for its
/// section's waitlist shows held, as no order may.
#[tracing::instrument(level = "debug", skip(conn))]
/// The event's venue: sections in order, their rows best first and each row's seats
/// by number; None for an unknown event.
pub async fn seat_layout(conn: &mut PgConnection, event_id: Uuid) -> Result<Option<SeatLayout>> {
    let sections: Vec<(Uuid, String, SectionKind, i64, String, i32)> = sqlx::query_as(
        "SELECT s.id, s.name, s.kind, s.price_minor, e.currency, s.capacity
         FROM sections s JOIN events e ON e.id = s.event_id
         WHERE s.event_id = $1 ORDER BY s.position",
    )
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await?;
    if sections.is_empty() {
        return Ok(None);
    }
    let seats: Vec<(Uuid, Option<String>, i64, i32, String)> = sqlx::query_as(
        "SELECT section_id, row_label, id, seat_number, label
         FROM seats WHERE event_id = $1 AND label IS NOT NULL
         ORDER BY section_id, row_rank, seat_number",
    )
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut rows: HashMap<Uuid, Vec<LayoutRow>> = HashMap::new();
    for (section_id, row_label, id, number, label) in seats {
        let section_rows = rows.entry(section_id).or_default();
        match section_rows.last_mut() {
            Some(row) if row.label == row_label => row.seats.push((id, number, label)),
            _ => section_rows.push(LayoutRow { label: row_label, seats: vec![(id, number, label)] }),
        }
    }
    let sections = sections
        .into_iter()
        .map(|(id, name, kind, price_minor, currency, capacity)| LayoutSection {
            id,
            name,
            kind,
            price: Price { amount_minor: price_minor, currency },
            capacity: capacity.into(),
            rows: rows.remove(&id).unwrap_or_default(),
        })
        .collect();
    Ok(Some(SeatLayout { event_id, sections }))
}

pub async fn seat_map(conn: &mut PgConnection, event_id: Uuid) -> Result<Vec<SeatView>> {
    Ok(sqlx::query_as(
        "SELECT s.id, s.label, s.section_id, s.row_label AS row, s.seat_number AS number,
                CASE WHEN seat_is_for_sale(s.state, s.held_until, sec.waitlist_waiting) THEN 'available'::seat_state
                     WHEN seat_is_takeable(s.state, s.held_until) THEN 'held'::seat_state
                     ELSE s.state END AS status
         FROM seats s JOIN sections sec ON sec.id = s.section_id
         WHERE s.event_id = $1 AND s.label IS NOT NULL ORDER BY s.section_id, s.sort_key",
    )
    .bind(event_id)
    .fetch_all(&mut *conn)
    .await?)
}
