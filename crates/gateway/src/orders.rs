//! The fan's use cases: hold, book, confirm, release, cancel, and the fan's reads.
//! Each is one unit of work on [`service_kit::postgres::Database`] — one transaction on
//! one connection, in a task of its own, within a deadline — stitched from
//! [`crate::store`] steps; the routes only call these.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Fan;
use crate::domain::event::SectionKind;
use crate::domain::selection::Selection;
use crate::domain::Invalid;
use crate::error::{Error, Result};
use crate::metrics;
use crate::model::{BookingView, HoldView, OrderSeat};
use crate::store::bookings;
use crate::store::events::EventRules;
use crate::store::holds;
use crate::store::idempotency::{self, Prior, Target};
use crate::store::inventory::{self, LockedSeat, SeatKeys, Written};

/// The body of "hold seats" and "book seats": either chosen seats or a section and a quantity.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeatRequest {
    pub seats: Option<Vec<String>>,
    pub section_id: Option<Uuid>,
    pub quantity: Option<i64>,
}

/// A created hold or booking; `replayed` when it was created by an earlier request
/// with the same `Idempotency-Key`.
pub struct Created {
    pub body: serde_json::Value,
    pub replayed: bool,
}

pub async fn hold(state: &AppState, fan: &Fan, request: &SeatRequest, key: Option<&str>) -> Result<Created> {
    let result = create(state, fan, request, key, Kind::Hold).await;
    metrics::order_outcome("hold", outcome(&result));
    result
}

pub async fn book(state: &AppState, fan: &Fan, request: &SeatRequest, key: Option<&str>) -> Result<Created> {
    let result = create(state, fan, request, key, Kind::Book).await;
    metrics::order_outcome("book", outcome(&result));
    result
}

#[derive(Clone, Copy)]
enum Kind {
    Hold,
    Book,
}

/// One order, with everything its database work needs owned, so that work can run in
/// a task of its own.
struct Order {
    fan: Fan,
    kind: Kind,
    id: Uuid,
    rules: Arc<EventRules>,
    best_available_attempts: usize,
}

async fn create(state: &AppState, fan: &Fan, request: &SeatRequest, key: Option<&str>, kind: Kind) -> Result<Created> {
    let rules = state.event_rules(fan.event_id).await?;
    let selection = Selection::parse(request.seats.clone(), request.section_id, request.quantity, rules.max_per_order)?;
    let order = Order {
        fan: fan.clone(),
        kind,
        id: Uuid::now_v7(),
        rules,
        best_available_attempts: state.best_available_attempts,
    };
    match (selection, key) {
        // The common case: one statement locks, checks and writes, with no transaction
        // around it to pay for.
        (Selection::Chosen(labels), None) => {
            state
                .db
                .write(move |conn| {
                    Box::pin(async move {
                        let body = order.write(conn, SeatKeys::Labels(&labels)).await?;
                        Ok(Created { body, replayed: false })
                    })
                })
                .await
        }
        (selection, key) => {
            let claim = key.map(|key| (key.to_owned(), fingerprint(kind, request)));
            state.db.transaction(move |tx| Box::pin(order.create_in(tx, selection, claim))).await
        }
    }
}

impl Order {
    /// The order inside a transaction: claims the `Idempotency-Key` first, so a retry
    /// answers with what an earlier attempt created, read on this same connection.
    async fn create_in(
        self,
        tx: &mut PgConnection,
        selection: Selection,
        claim: Option<(String, Vec<u8>)>,
    ) -> Result<Created> {
        if let Some((key, request_hash)) = &claim {
            match idempotency::claim(tx, &self.fan, key, request_hash).await? {
                Prior::None => {}
                Prior::Replay(target) => {
                    return Ok(Created { body: replay(tx, &self.fan, &self.rules, target).await?, replayed: true })
                }
                Prior::Mismatch => return Err(Error::IdempotencyKeyReused),
            }
        }
        let body = match &selection {
            Selection::Chosen(labels) => self.write(tx, SeatKeys::Labels(labels)).await?,
            Selection::Section { section_id, quantity } => {
                let ids: Vec<i64> = self.take(tx, *section_id, *quantity).await?.iter().map(|s| s.seat_id).collect();
                self.write(tx, SeatKeys::Ids(&ids)).await?
            }
        };
        if let Some((key, _)) = &claim {
            let target = match self.kind {
                Kind::Hold => Target::Hold(self.id),
                Kind::Book => Target::Booking(self.id),
            };
            idempotency::save(tx, &self.fan, key, target).await?;
        }
        Ok(Created { body, replayed: false })
    }

    /// Writes the hold or booking over `seats` and answers with its view, or with why
    /// the seats could not be taken (nothing is written then).
    async fn write(&self, conn: &mut PgConnection, seats: SeatKeys<'_>) -> Result<serde_json::Value> {
        let (fan, id, rules) = (&self.fan, self.id, &self.rules);
        let written = match self.kind {
            Kind::Hold => holds::write(conn, fan, id, seats, rules.hold_ttl_seconds).await?,
            Kind::Book => bookings::write(conn, fan, id, None, seats).await?,
        };
        let (taken, at) = match written {
            Written::Done { seats, at } => (seats, at),
            Written::Refused(locked) => return Err(refusal(seats, &locked)),
        };
        let total = rules.price(taken.iter().map(|s| s.price_minor).sum());
        let seats = taken.into_iter().map(LockedSeat::into_order_seat).collect();
        Ok(match self.kind {
            Kind::Hold => {
                to_json(&HoldView { id, event_id: fan.event_id, status: "active".into(), expires_at: at, seats, total })
            }
            Kind::Book => to_json(&BookingView {
                id,
                event_id: fan.event_id,
                hold_id: None,
                status: "confirmed".into(),
                created_at: at,
                cancelled_at: None,
                seats,
                total,
            }),
        })
    }

    /// Finds and locks `quantity` free places of a section, inside the caller's transaction.
    async fn take(&self, conn: &mut PgConnection, section_id: Uuid, quantity: u32) -> Result<Vec<OrderSeat>> {
        let section = self
            .rules
            .sections
            .get(&section_id)
            .ok_or_else(|| Invalid::new("unknown_section", format!("this event has no section {section_id}")))?;
        match section.kind {
            SectionKind::GeneralAdmission => inventory::take_next(conn, section_id, quantity).await,
            SectionKind::Reserved => {
                inventory::take_best(conn, section_id, quantity, self.best_available_attempts).await
            }
        }
    }
}

/// Why an order statement refused: a named seat does not exist, or one is taken.
fn refusal(requested: SeatKeys<'_>, locked: &[LockedSeat]) -> Error {
    if let SeatKeys::Labels(labels) = requested {
        if let Some(missing) = labels.iter().find(|l| !locked.iter().any(|s| s.label.as_deref() == Some(l.as_str()))) {
            return Invalid::new("unknown_seat", format!("this event has no seat {missing}")).into();
        }
    }
    let taken = locked.iter().find(|s| !s.takeable).and_then(|s| s.label.clone());
    Error::SeatUnavailable(taken.unwrap_or_else(|| "in this order".into()))
}

/// What an earlier request with the same key created, as it is now.
async fn replay(conn: &mut PgConnection, fan: &Fan, rules: &EventRules, target: Target) -> Result<serde_json::Value> {
    Ok(match target {
        Target::Hold(id) => to_json(&hold_view(conn, fan, rules, id).await?),
        Target::Booking(id) => to_json(&bookings::find(conn, fan, id).await?.ok_or(Error::NotFound("booking"))?),
    })
}

/// Turns an active hold into a booking. Confirming a hold that is already confirmed
/// answers with its booking again (`Ok((false, booking))`).
pub async fn confirm(state: &AppState, fan: &Fan, hold_id: Uuid) -> Result<(bool, BookingView)> {
    let result = confirm_hold(state, fan, hold_id).await;
    metrics::order_outcome("confirm", outcome(&result));
    result
}

async fn confirm_hold(state: &AppState, fan: &Fan, hold_id: Uuid) -> Result<(bool, BookingView)> {
    let (fan, rules) = (fan.clone(), state.event_rules(fan.event_id).await?);
    state
        .db
        .transaction(move |tx| {
            Box::pin(async move {
                let hold = holds::lock(tx, &fan, hold_id).await?.ok_or(Error::NotFound("hold"))?;
                match hold.status.as_str() {
                    "confirmed" => {
                        let booking = bookings::find_by_hold(tx, hold_id).await?.ok_or(Error::NotFound("booking"))?;
                        return Ok((false, booking));
                    }
                    "released" => return Err(Error::HoldNotActive("released")),
                    "expired" => return Err(Error::HoldExpired),
                    _ if hold.expired => return Err(Error::HoldExpired),
                    _ => {}
                }
                let ids: Vec<i64> = holds::seats(tx, hold_id).await?.iter().map(|s| s.seat_id).collect();
                let booking_id = Uuid::now_v7();
                let (seats, created_at) =
                    match bookings::write(tx, &fan, booking_id, Some(hold_id), SeatKeys::Ids(&ids)).await? {
                        Written::Done { seats, at } => (seats, at),
                        Written::Refused(_) => return Err(Error::HoldExpired),
                    };
                holds::end(tx, hold_id, "confirmed").await?;
                Ok((
                    true,
                    BookingView {
                        id: booking_id,
                        event_id: fan.event_id,
                        hold_id: Some(hold_id),
                        status: "confirmed".into(),
                        created_at,
                        cancelled_at: None,
                        seats: seats.into_iter().map(LockedSeat::into_order_seat).collect(),
                        total: rules.price(hold.total_minor),
                    },
                ))
            })
        })
        .await
}

/// Gives a hold's seats back. Releasing a hold that already ended is a no-op.
pub async fn release(state: &AppState, fan: &Fan, hold_id: Uuid) -> Result<HoldView> {
    let (fan, rules) = (fan.clone(), state.event_rules(fan.event_id).await?);
    state
        .db
        .transaction(move |tx| {
            Box::pin(async move {
                let hold = holds::lock(tx, &fan, hold_id).await?.ok_or(Error::NotFound("hold"))?;
                match hold.status.as_str() {
                    "confirmed" => return Err(Error::HoldNotActive("confirmed")),
                    "active" => holds::end(tx, hold_id, if hold.expired { "expired" } else { "released" }).await?,
                    _ => {}
                }
                hold_view(tx, &fan, &rules, hold_id).await
            })
        })
        .await
}

pub async fn get_hold(state: &AppState, fan: &Fan, hold_id: Uuid) -> Result<HoldView> {
    let (fan, rules) = (fan.clone(), state.event_rules(fan.event_id).await?);
    state.db.read(move |conn| Box::pin(async move { hold_view(conn, &fan, &rules, hold_id).await })).await
}

async fn hold_view(conn: &mut PgConnection, fan: &Fan, rules: &EventRules, hold_id: Uuid) -> Result<HoldView> {
    let hold = holds::find(conn, fan, hold_id).await?.ok_or(Error::NotFound("hold"))?;
    let seats = holds::seats(conn, hold_id).await?;
    let status = if hold.status == "active" && hold.expired { "expired".into() } else { hold.status };
    Ok(HoldView {
        id: hold.id,
        event_id: fan.event_id,
        status,
        expires_at: hold.expires_at,
        seats,
        total: rules.price(hold.total_minor),
    })
}

/// Cancels a booking; its seats are on sale again when this returns. Cancelling a
/// cancelled booking is a no-op.
pub async fn cancel(state: &AppState, fan: &Fan, booking_id: Uuid) -> Result<BookingView> {
    let fan = fan.clone();
    state
        .db
        .transaction(move |tx| {
            Box::pin(async move {
                let status = bookings::lock_status(tx, &fan, booking_id).await?.ok_or(Error::NotFound("booking"))?;
                if status != "cancelled" {
                    bookings::cancel(tx, booking_id).await?;
                }
                bookings::find(tx, &fan, booking_id).await?.ok_or(Error::NotFound("booking"))
            })
        })
        .await
}

pub async fn get_booking(state: &AppState, fan: &Fan, booking_id: Uuid) -> Result<BookingView> {
    let fan = fan.clone();
    state
        .db
        .read(move |conn| {
            Box::pin(async move { bookings::find(conn, &fan, booking_id).await?.ok_or(Error::NotFound("booking")) })
        })
        .await
}

pub async fn my_bookings(state: &AppState, fan: &Fan) -> Result<Vec<BookingView>> {
    let fan = fan.clone();
    state.db.read(move |conn| Box::pin(async move { bookings::list_for_fan(conn, &fan).await })).await
}

fn fingerprint(kind: Kind, request: &SeatRequest) -> Vec<u8> {
    let mut hash = Sha256::new();
    hash.update(match kind {
        Kind::Hold => b"hold:".as_slice(),
        Kind::Book => b"book:".as_slice(),
    });
    hash.update(serde_json::to_vec(request).expect("a SeatRequest always serialises"));
    hash.finalize().to_vec()
}

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("views always serialise")
}

fn outcome<T>(result: &Result<T>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(e) => e.code(),
    }
}
