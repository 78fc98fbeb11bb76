//! The fan's use cases: hold, book, confirm, release, cancel, and the fan's reads.
//! Each is one unit of work on [`service_kit::postgres::Database`] — one transaction on
//! one connection, in a task of its own, within a deadline — stitched from
//! [`crate::store`] steps, and touches only the rows of the caller's [`FanScope`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::selection::Selection;
use crate::domain::Invalid;
use crate::error::{Error, Result, What};
use crate::model::{BookingView, HoldView, OrderSeat};
use crate::scope::FanScope;
use crate::states::{BookingStatus, HoldStatus, SectionKind};
use crate::store::bookings;
use crate::store::events::EventRules;
use crate::store::holds;
use crate::store::idempotency::{self, Prior, Target};
use crate::store::inventory::{self, LockedSeat, SeatKeys, Written};
use crate::Sales;

/// The body of "hold seats" and "book seats": either chosen seats or a section and a quantity.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeatRequest {
    /// Seat labels, as the seat map names them.
    pub seats: Option<Vec<String>>,
    /// With `quantity`: the best available seats of this section.
    pub section_id: Option<Uuid>,
    pub quantity: Option<i64>,
}

/// What an order created: a hold, or a booking.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Order {
    Hold(HoldView),
    Booking(BookingView),
}

/// A created hold or booking; `replayed` when it was created by an earlier request
/// with the same `Idempotency-Key`.
#[derive(Debug, Clone)]
pub struct Created {
    pub order: Order,
    pub replayed: bool,
}

/// How confirming a hold ended.
#[derive(Debug, Clone)]
pub enum Confirmation {
    /// The hold became this booking now.
    Booked(BookingView),
    /// The hold had been confirmed before, as this booking.
    AlreadyBooked(BookingView),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Hold,
    Book,
}

/// One order, with everything its database work needs owned, so that work can run in
/// a task of its own.
struct OrderWork {
    scope: FanScope,
    kind: Kind,
    id: Uuid,
    rules: Arc<EventRules>,
    best_available_attempts: usize,
}

impl Sales {
    /// Holds seats for the fan until the event's hold lifetime passes.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "hold"))]
    pub async fn hold(&self, scope: &FanScope, request: &SeatRequest, key: Option<&str>) -> Result<Created> {
        self.create(scope, request, key, Kind::Hold).await
    }

    /// Books seats at once, for events without a checkout step.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "book"))]
    pub async fn book(&self, scope: &FanScope, request: &SeatRequest, key: Option<&str>) -> Result<Created> {
        self.create(scope, request, key, Kind::Book).await
    }

    async fn create(&self, scope: &FanScope, request: &SeatRequest, key: Option<&str>, kind: Kind) -> Result<Created> {
        let rules = self.event_rules(scope.event_id).await?;
        let selection =
            Selection::parse(request.seats.clone(), request.section_id, request.quantity, rules.max_per_order)?;
        let work = OrderWork {
            scope: scope.clone(),
            kind,
            id: Uuid::now_v7(),
            rules,
            best_available_attempts: self.settings.best_available_attempts,
        };
        match (selection, key) {
            // The common case: one statement locks, checks and writes, with no transaction
            // around it to pay for.
            (Selection::Chosen(labels), None) => {
                self.db
                    .write(move |conn| {
                        Box::pin(async move {
                            let order = work.write(conn, SeatKeys::Labels(&labels)).await?;
                            Ok(Created { order, replayed: false })
                        })
                    })
                    .await
            }
            (selection, key) => {
                let claim = key.map(|key| (key.to_owned(), fingerprint(kind, request)));
                self.db.transaction(move |tx| Box::pin(work.create_in(tx, selection, claim))).await
            }
        }
    }

    /// Turns an active hold into a booking. Confirming a hold that is already confirmed
    /// answers with its booking again.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "confirm", %hold_id))]
    pub async fn confirm(&self, scope: &FanScope, hold_id: Uuid) -> Result<Confirmation> {
        let (scope, rules) = (scope.clone(), self.event_rules(scope.event_id).await?);
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let hold = holds::lock(tx, &scope, hold_id).await?.ok_or(Error::NotFound(What::Hold))?;
                    match hold.status {
                        HoldStatus::Confirmed => {
                            let booking = bookings::find_by_hold(tx, &scope, hold_id)
                                .await?
                                .ok_or(Error::NotFound(What::Booking))?;
                            return Ok(Confirmation::AlreadyBooked(booking));
                        }
                        HoldStatus::Released => return Err(Error::HoldNotActive(HoldStatus::Released)),
                        HoldStatus::Expired => return Err(Error::HoldExpired),
                        HoldStatus::Active if hold.expired => return Err(Error::HoldExpired),
                        HoldStatus::Active => {}
                    }
                    let ids: Vec<i64> = holds::seats(tx, hold_id).await?.iter().map(|s| s.seat_id).collect();
                    let booking_id = Uuid::now_v7();
                    let (seats, created_at) = match bookings::write_held(tx, &scope, booking_id, hold_id, &ids).await? {
                        Written::Done { seats, at } => (seats, at),
                        Written::Refused(_) => return Err(Error::HoldExpired),
                    };
                    holds::end(tx, hold_id, HoldStatus::Confirmed).await?;
                    Ok(Confirmation::Booked(BookingView {
                        id: booking_id,
                        event_id: scope.event_id,
                        hold_id: Some(hold_id),
                        status: BookingStatus::Confirmed,
                        created_at,
                        cancelled_at: None,
                        seats: seats.into_iter().map(LockedSeat::into_order_seat).collect(),
                        total: rules.price(hold.total_minor),
                    }))
                })
            })
            .await
    }

    /// Gives a hold's seats back. Releasing a hold that already ended is a no-op.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "release", %hold_id))]
    pub async fn release(&self, scope: &FanScope, hold_id: Uuid) -> Result<HoldView> {
        let (scope, rules) = (scope.clone(), self.event_rules(scope.event_id).await?);
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let hold = holds::lock(tx, &scope, hold_id).await?.ok_or(Error::NotFound(What::Hold))?;
                    match hold.status {
                        HoldStatus::Confirmed => return Err(Error::HoldNotActive(HoldStatus::Confirmed)),
                        HoldStatus::Active if hold.expired => holds::end(tx, hold_id, HoldStatus::Expired).await?,
                        HoldStatus::Active => holds::end(tx, hold_id, HoldStatus::Released).await?,
                        HoldStatus::Released | HoldStatus::Expired => {}
                    }
                    hold_view(tx, &scope, &rules, hold_id).await
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "get_hold", %hold_id))]
    pub async fn get_hold(&self, scope: &FanScope, hold_id: Uuid) -> Result<HoldView> {
        let (scope, rules) = (scope.clone(), self.event_rules(scope.event_id).await?);
        self.db.read(move |conn| Box::pin(async move { hold_view(conn, &scope, &rules, hold_id).await })).await
    }

    /// Cancels a booking; its seats are on sale again when this returns. Cancelling a
    /// cancelled booking is a no-op.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "cancel", %booking_id))]
    pub async fn cancel(&self, scope: &FanScope, booking_id: Uuid) -> Result<BookingView> {
        let scope = scope.clone();
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let status =
                        bookings::lock_status(tx, &scope, booking_id).await?.ok_or(Error::NotFound(What::Booking))?;
                    if status == BookingStatus::Confirmed {
                        bookings::cancel(tx, booking_id).await?;
                    }
                    bookings::find(tx, &scope, booking_id).await?.ok_or(Error::NotFound(What::Booking))
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "get_booking", %booking_id))]
    pub async fn get_booking(&self, scope: &FanScope, booking_id: Uuid) -> Result<BookingView> {
        let scope = scope.clone();
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    bookings::find(conn, &scope, booking_id).await?.ok_or(Error::NotFound(What::Booking))
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "my_bookings"))]
    pub async fn my_bookings(&self, scope: &FanScope) -> Result<Vec<BookingView>> {
        let scope = scope.clone();
        self.db.read(move |conn| Box::pin(async move { bookings::list_for_fan(conn, &scope).await })).await
    }
}

impl OrderWork {
    /// The order inside a transaction: claims the `Idempotency-Key` first, so a retry
    /// answers with what an earlier attempt created, read on this same connection.
    async fn create_in(
        self,
        tx: &mut PgConnection,
        selection: Selection,
        claim: Option<(String, Vec<u8>)>,
    ) -> Result<Created> {
        if let Some((key, request_hash)) = &claim {
            match idempotency::claim(tx, &self.scope, key, request_hash).await? {
                Prior::None => {}
                Prior::Replay(target) => {
                    let order = replay(tx, &self.scope, &self.rules, target).await?;
                    return Ok(Created { order, replayed: true });
                }
                Prior::Mismatch => return Err(Error::IdempotencyKeyReused),
            }
        }
        let order = match &selection {
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
            idempotency::save(tx, &self.scope, key, target).await?;
        }
        Ok(Created { order, replayed: false })
    }

    /// Writes the hold or booking over `seats` and answers with its view, or with why
    /// the seats could not be taken (nothing is written then).
    async fn write(&self, conn: &mut PgConnection, seats: SeatKeys<'_>) -> Result<Order> {
        let (scope, id, rules) = (&self.scope, self.id, &self.rules);
        let written = match self.kind {
            Kind::Hold => holds::write(conn, scope, id, seats, rules.hold_ttl_seconds).await?,
            Kind::Book => bookings::write(conn, scope, id, seats).await?,
        };
        let (taken, at) = match written {
            Written::Done { seats, at } => (seats, at),
            Written::Refused(locked) => return Err(refusal(seats, &locked)),
        };
        let total = rules.price(taken.iter().map(|s| s.price_minor).sum());
        let seats = taken.into_iter().map(LockedSeat::into_order_seat).collect();
        Ok(match self.kind {
            Kind::Hold => Order::Hold(HoldView {
                id,
                event_id: scope.event_id,
                status: HoldStatus::Active,
                expires_at: at,
                seats,
                total,
            }),
            Kind::Book => Order::Booking(BookingView {
                id,
                event_id: scope.event_id,
                hold_id: None,
                status: BookingStatus::Confirmed,
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
async fn replay(conn: &mut PgConnection, scope: &FanScope, rules: &EventRules, target: Target) -> Result<Order> {
    Ok(match target {
        Target::Hold(id) => Order::Hold(hold_view(conn, scope, rules, id).await?),
        Target::Booking(id) => {
            Order::Booking(bookings::find(conn, scope, id).await?.ok_or(Error::NotFound(What::Booking))?)
        }
    })
}

async fn hold_view(conn: &mut PgConnection, scope: &FanScope, rules: &EventRules, hold_id: Uuid) -> Result<HoldView> {
    let hold = holds::find(conn, scope, hold_id).await?.ok_or(Error::NotFound(What::Hold))?;
    let seats = holds::seats(conn, hold_id).await?;
    // A hold past its time reads as expired before the sweep records it.
    let status = match hold.status {
        HoldStatus::Active if hold.expired => HoldStatus::Expired,
        status => status,
    };
    Ok(HoldView {
        id: hold.id,
        event_id: scope.event_id,
        status,
        expires_at: hold.expires_at,
        seats,
        total: rules.price(hold.total_minor),
    })
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
