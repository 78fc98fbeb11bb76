//! The fan's use cases: hold, book, confirm, release, cancel, and the fan's reads.
//! Each is one unit of work on [`service_kit::postgres::Database`] — one transaction on
//! one connection, in a task of its own, within a deadline — stitched from
//! [`crate::store`] steps, and touches only the rows of the caller's [`FanScope`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::contact_email::ContactEmail;
use crate::domain::refund_policy::refund_amount;
use crate::domain::selection::Selection;
use crate::domain::Invalid;
use crate::error::{Error, Result, What};
use crate::model::Price;
use crate::model::{BookingView, HoldHeartbeat, HoldView, OrderSeat};
use crate::outbox::{self as messages, CancelledBy, Message};
use crate::scope::FanScope;
use crate::states::{BookingStatus, HoldStatus, RefundReason, SectionKind};
use crate::store::bookings::{self, BookingKey, Cancellable};
use crate::store::events;
use crate::store::events::EventRules;
use crate::store::holds;
use crate::store::idempotency::{self, Prior, Target};
use crate::store::inventory::{self, LockedSeat, SeatKeys, Taker, Written};
use crate::store::outbox;
use crate::store::refunds;
use crate::tickets::BookingAccess;
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
    /// Where to send the confirmation and tickets (optional); given with a hold, it
    /// carries over to the booking the hold becomes.
    pub email: Option<String>,
}

impl SeatRequest {
    /// The seats asked for, and where to write: refused when they cannot make an order
    /// of at most `max_per_order` places, before anything is read.
    pub fn parse(&self, max_per_order: u32) -> Result<(Selection, Option<ContactEmail>), Invalid> {
        let selection = Selection::parse(self.seats.clone(), self.section_id, self.quantity, max_per_order)?;
        let contact_email = self.email.as_deref().map(ContactEmail::parse).transpose()?;
        Ok((selection, contact_email))
    }
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

/// What cancelling an event did (this call; earlier calls' work is not counted again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EventCancellation {
    pub bookings_cancelled: u64,
    pub refunds_started: u64,
    pub holds_released: u64,
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
    contact_email: Option<ContactEmail>,
    /// A hold's first time: the event's, cut to the longest a hold may live.
    hold_seconds: i32,
}

impl Sales {
    /// Holds seats for the fan until the event's hold lifetime passes.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "hold"))]
    pub async fn hold(&self, scope: &FanScope, request: &SeatRequest, key: Option<&str>) -> Result<Created> {
        self.create(scope, request, key, Kind::Hold).await
    }

    /// Books free places at once; paid places are refused (`PaymentRequired`): they are
    /// held, checked out and paid.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "book"))]
    pub async fn book(&self, scope: &FanScope, request: &SeatRequest, key: Option<&str>) -> Result<Created> {
        self.create(scope, request, key, Kind::Book).await
    }

    async fn create(&self, scope: &FanScope, request: &SeatRequest, key: Option<&str>, kind: Kind) -> Result<Created> {
        let rules = self.event_rules(scope.event_id).await?;
        if rules.cancelled {
            return Err(Error::EventCancelled);
        }
        let (selection, contact_email) = request.parse(rules.max_per_order)?;
        // Paid places are sold through checkout. Chosen seats' prices are known only once
        // they are read: the database refuses those (bookings_paid_name_a_payment).
        if let (Kind::Book, Selection::Section { section_id, .. }) = (kind, &selection) {
            if rules.sections.get(section_id).is_some_and(|section| section.price_minor > 0) {
                return Err(Error::PaymentRequired);
            }
        }
        let starts_at = rules.starts_at;
        let work = OrderWork {
            scope: scope.clone(),
            kind,
            id: Uuid::now_v7(),
            hold_seconds: rules.hold_ttl_seconds.min(self.hold_max_lifetime_secs()),
            rules,
            best_available_attempts: self.settings.best_available_attempts,
            contact_email,
        };
        let mut created = match (selection, key) {
            // The common case: one statement locks, checks and writes (a booking its
            // tickets and outbox message too), with no transaction around it to pay for.
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
        }?;
        if let Order::Booking(booking) = &mut created.order {
            self.add_link(booking, starts_at);
        }
        Ok(created)
    }

    /// Puts the booking's capability link on a view the fan gets (nothing without
    /// ticket keys).
    fn add_link(&self, booking: &mut BookingView, starts_at: Option<chrono::DateTime<chrono::Utc>>) {
        booking.link = self.booking_link(booking.event_id, booking.id, booking.link_generation, starts_at);
    }

    /// Turns an active free hold into a booking. A paid hold is booked by its payment
    /// (see [`crate::checkout`]), so confirming one first asks the provider about its
    /// pending attempts and answers with the booking they made, or `PaymentRequired`.
    /// Confirming a hold that is already confirmed answers with its booking again.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "confirm", %hold_id))]
    pub async fn confirm(&self, scope: &FanScope, hold_id: Uuid) -> Result<Confirmation> {
        let mut confirmation = match self.confirm_unpaid(scope, hold_id).await {
            Err(Error::PaymentRequired) => {
                self.sync_payments(scope, hold_id).await?;
                self.confirm_unpaid(scope, hold_id).await
            }
            outcome => outcome,
        }?;
        let starts_at = self.event_rules(scope.event_id).await?.starts_at;
        match &mut confirmation {
            Confirmation::Booked(booking) | Confirmation::AlreadyBooked(booking) => self.add_link(booking, starts_at),
        }
        Ok(confirmation)
    }

    async fn confirm_unpaid(&self, scope: &FanScope, hold_id: Uuid) -> Result<Confirmation> {
        let (scope, rules) = (scope.clone(), self.event_rules(scope.event_id).await?);
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    let locked =
                        holds::lock_with_seats(tx, &scope, hold_id).await?.ok_or(Error::NotFound(What::Hold))?;
                    let hold = locked.hold;
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
                    // Read under the hold's lock: a cancellation that has not released
                    // this hold yet (its pass skips holds locked at that moment) still
                    // stops it becoming a booking.
                    if locked.event_cancelled {
                        return Err(Error::EventCancelled);
                    }
                    // Only a payment books a paid hold (crate::checkout).
                    if hold.total_minor > 0 {
                        return Err(Error::PaymentRequired);
                    }
                    let booking_id = Uuid::now_v7();
                    let written = bookings::write_held(tx, &scope, booking_id, hold_id, &locked.seat_ids, None).await?;
                    let (seats, created_at) = match written {
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
                        payment_id: None,
                        refund: None,
                        link: None,
                        link_generation: 1,
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
                    // Places freed in a section with a waitlist go to it, now.
                    crate::waitlist::offer_kept_places(tx, scope.event_id).await?;
                    hold_view(tx, &scope, &rules, hold_id).await
                })
            })
            .await
    }

    /// Keeps the hold of an open page: it lasts the event's hold time from now, never
    /// past its creation plus the longest a hold may live; waitlist offers are not
    /// extended. One statement.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "heartbeat", %hold_id))]
    pub async fn heartbeat(&self, scope: &FanScope, hold_id: Uuid) -> Result<HoldHeartbeat> {
        let rules = self.event_rules(scope.event_id).await?;
        let (scope, ttl, cap) = (scope.clone(), rules.hold_ttl_seconds, self.hold_max_lifetime_secs());
        let beat = self
            .db
            .write(move |conn| {
                Box::pin(async move {
                    holds::heartbeat(conn, &scope, hold_id, ttl, cap).await?.ok_or(Error::NotFound(What::Hold))
                })
            })
            .await?;
        match beat.status {
            HoldStatus::Confirmed | HoldStatus::Released => Err(Error::HoldNotActive(beat.status)),
            HoldStatus::Expired => Err(Error::HoldExpired),
            HoldStatus::Active if beat.expired => Err(Error::HoldExpired),
            HoldStatus::Active => Ok(HoldHeartbeat {
                hold_id,
                expires_at: beat.expires_at,
                latest_expires_at: beat.latest_expiry,
                extended: beat.extended_to.is_some(),
            }),
        }
    }

    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "get_hold", %hold_id))]
    pub async fn get_hold(&self, scope: &FanScope, hold_id: Uuid) -> Result<HoldView> {
        let (scope, rules) = (scope.clone(), self.event_rules(scope.event_id).await?);
        self.db.read(move |conn| Box::pin(async move { hold_view(conn, &scope, &rules, hold_id).await })).await
    }

    /// Cancels the fan's booking by the event's refund policy in force now: its seats are
    /// on sale again when this returns, and a paid booking's refund is started (and
    /// retried until the provider confirms it). An event without a policy does not let
    /// fans cancel. Cancelling a cancelled booking is a no-op. By the fan's access token,
    /// or through the booking's link (D7: long after the token expired), the same rules.
    #[tracing::instrument(skip_all, fields(%event_id, kind = "cancel", %booking_id))]
    pub async fn cancel(&self, access: &BookingAccess, event_id: Uuid, booking_id: Uuid) -> Result<BookingView> {
        let key = self.booking_key(access, event_id, booking_id)?;
        self.cancel_booking(key, CancelledBy::Fan).await
    }

    /// Cancels a booking as the organizer, whatever the policy says, refunding it in full.
    #[tracing::instrument(skip(self))]
    pub async fn cancel_as_organizer(&self, event_id: Uuid, booking_id: Uuid) -> Result<BookingView> {
        self.cancel_booking(BookingKey::any(event_id, booking_id), CancelledBy::Organizer).await
    }

    /// Cancels the whole event as the organizer: nothing more is sold (within the rules
    /// cache's bound on every replica), every live booking is cancelled and refunded in
    /// full, every active hold released. Safe to repeat; the reconciliation pass
    /// finishes what an order racing the cancellation left.
    #[tracing::instrument(skip(self))]
    pub async fn cancel_event(&self, event_id: Uuid) -> Result<EventCancellation> {
        let found = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let found = events::mark_cancelled(tx, event_id).await?;
                    crate::store::waitlist::close(tx, event_id).await?;
                    Ok::<_, Error>(found)
                })
            })
            .await?;
        if !found {
            return Err(Error::NotFound(What::Event));
        }
        self.wind_down(event_id).await
    }

    /// Cancels the live bookings and releases the active holds of a cancelled event, a
    /// batch per transaction, and starts each refund.
    pub(crate) async fn wind_down(&self, event_id: Uuid) -> Result<EventCancellation> {
        const BATCH: i64 = 100;
        let mut done = EventCancellation::default();
        loop {
            let refunds = self
                .db
                .transaction(move |tx| {
                    Box::pin(async move {
                        let mut refunds = Vec::new();
                        let live = bookings::lock_live_of_event(tx, event_id, BATCH).await?;
                        for booking in &live {
                            refunds.push(cancel_locked(tx, booking, CancelledBy::EventCancelled).await?);
                        }
                        Ok::<_, Error>((live.len() as u64, refunds))
                    })
                })
                .await?;
            let (cancelled, refunds) = refunds;
            done.bookings_cancelled += cancelled;
            for refund_id in refunds.into_iter().flatten() {
                done.refunds_started += 1;
                if let Err(e) = self.execute_refund(refund_id).await {
                    tracing::warn!(error = %e, %refund_id, "refund not executed yet; the reconciliation job retries it");
                }
            }
            if cancelled < BATCH as u64 {
                break;
            }
        }
        loop {
            let released = self
                .db
                .write(move |conn| Box::pin(async move { holds::release_all_of_event(conn, event_id, BATCH).await }))
                .await?;
            done.holds_released += released;
            if released < BATCH as u64 {
                break;
            }
        }
        Ok(done)
    }

    /// Cancels the booking `key` names, if it is found and locked (the key's conditions,
    /// a link's generation among them, are the locking statement's own).
    async fn cancel_booking(&self, key: BookingKey, by: CancelledBy) -> Result<BookingView> {
        let found = BookingKey::any(key.event_id, key.booking_id);
        let read_again = found.clone();
        let (view, refund) = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let booking = bookings::lock_for_cancel(tx, &key).await?.ok_or(Error::NotFound(What::Booking))?;
                    let refund = match booking.status {
                        BookingStatus::Confirmed => cancel_locked(tx, &booking, by).await?,
                        BookingStatus::Cancelled => None,
                    };
                    let view = bookings::find(tx, &found).await?.ok_or(Error::NotFound(What::Booking))?;
                    Ok::<_, Error>((view, refund))
                })
            })
            .await?;
        match refund {
            Some(refund_id) => {
                if let Err(e) = self.execute_refund(refund_id).await {
                    tracing::warn!(error = %e, %refund_id, "refund not executed yet; the reconciliation job retries it");
                }
                self.db
                    .read(move |conn| Box::pin(async move { bookings::find(conn, &read_again).await }))
                    .await?
                    .ok_or(Error::NotFound(What::Booking))
            }
            None => Ok(view),
        }
    }

    /// The booking, for its fan (access token) or through its link, with its current link.
    #[tracing::instrument(skip_all, fields(%event_id, kind = "get_booking", %booking_id))]
    pub async fn get_booking(&self, access: &BookingAccess, event_id: Uuid, booking_id: Uuid) -> Result<BookingView> {
        let key = self.booking_key(access, event_id, booking_id)?;
        let starts_at = self.event_rules(event_id).await?.starts_at;
        let mut booking = self
            .db
            .read(move |conn| {
                Box::pin(async move { bookings::find(conn, &key).await?.ok_or(Error::NotFound(What::Booking)) })
            })
            .await?;
        self.add_link(&mut booking, starts_at);
        Ok(booking)
    }

    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "my_bookings"))]
    pub async fn my_bookings(&self, scope: &FanScope) -> Result<Vec<BookingView>> {
        let starts_at = self.event_rules(scope.event_id).await?.starts_at;
        let scope = scope.clone();
        let mut bookings =
            self.db.read(move |conn| Box::pin(async move { bookings::list_for_fan(conn, &scope).await })).await?;
        for booking in &mut bookings {
            self.add_link(booking, starts_at);
        }
        Ok(bookings)
    }
}

impl Sales {
    /// [`crate::Settings::hold_max_lifetime`] as a statement's seconds.
    pub(crate) fn hold_max_lifetime_secs(&self) -> i32 {
        self.settings.hold_max_lifetime.as_secs().min(i32::MAX as u64) as i32
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
        let contact_email = self.contact_email.as_ref().map(ContactEmail::as_str);
        let written = match self.kind {
            Kind::Hold => holds::write(conn, scope, id, seats, self.hold_seconds, contact_email).await?,
            Kind::Book => bookings::write(conn, scope, id, seats, contact_email).await?,
        };
        let (taken, at) = match written {
            Written::Done { seats, at } => (seats, at),
            Written::Refused(locked) => return Err(refusal(seats, &locked)),
        };
        let total = rules.price(taken.iter().map(|s| s.price_minor).sum());
        let seats = taken;
        Ok(match self.kind {
            Kind::Hold => Order::Hold(HoldView {
                id,
                event_id: scope.event_id,
                status: HoldStatus::Active,
                expires_at: at,
                seats: seats.into_iter().map(LockedSeat::into_order_seat).collect(),
                total,
            }),
            Kind::Book => Order::Booking(BookingView {
                id,
                event_id: scope.event_id,
                hold_id: None,
                status: BookingStatus::Confirmed,
                created_at: at,
                cancelled_at: None,
                seats: seats.into_iter().map(LockedSeat::into_order_seat).collect(),
                total,
                payment_id: None,
                refund: None,
                link: None,
                link_generation: 1,
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
            SectionKind::GeneralAdmission => inventory::take_next(conn, section_id, quantity, Taker::Order).await,
            SectionKind::Reserved => {
                inventory::take_best(conn, section_id, quantity, self.best_available_attempts, Taker::Order).await
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

/// Cancels a confirmed, locked booking: frees its seats, starts its refund (by the
/// policy for a fan, in full for the organizer) and tells the outbox. Returns the refund
/// to execute after the commit.
async fn cancel_locked(tx: &mut PgConnection, booking: &Cancellable, by: CancelledBy) -> Result<Option<Uuid>> {
    let percent = match (by, &booking.refund_policy) {
        (CancelledBy::Fan, None) => {
            return Err(Error::CancellationNotAllowed(
                "this event's bookings cannot be cancelled by fans; ask the organizer".into(),
            ))
        }
        (CancelledBy::Fan, Some(policy)) => policy.refund_percent(booking.hours_before_start),
        (CancelledBy::Organizer | CancelledBy::EventCancelled, _) => 100,
    };
    bookings::cancel(tx, booking.id).await?;
    let amount = refund_amount(booking.total_minor, percent);
    let refund_id = match booking.payment_id {
        Some(payment_id) if amount > 0 => {
            let reason = match by {
                CancelledBy::EventCancelled => RefundReason::EventCancelled,
                CancelledBy::Fan | CancelledBy::Organizer => RefundReason::Cancellation,
            };
            refunds::create(tx, Uuid::now_v7(), payment_id, Some(booking.id), reason, amount).await?
        }
        _ => None,
    };
    outbox::enqueue(
        tx,
        &[Message::BookingCancelled(messages::BookingCancelled {
            event_id: booking.event_id,
            booking_id: booking.id,
            fan_id: booking.fan_id.clone(),
            cancelled_by: by,
            refund_id,
            refund: refund_id.map(|_| Price { amount_minor: amount, currency: booking.currency.clone() }),
        })],
    )
    .await?;
    // Places freed in a section with a waitlist go to it, now.
    crate::waitlist::offer_kept_places(tx, booking.event_id).await?;
    Ok(refund_id)
}

/// What an earlier request with the same key created, as it is now.
async fn replay(conn: &mut PgConnection, scope: &FanScope, rules: &EventRules, target: Target) -> Result<Order> {
    Ok(match target {
        Target::Hold(id) => Order::Hold(hold_view(conn, scope, rules, id).await?),
        Target::Booking(id) => {
            let key = BookingKey::of_fan(scope, id);
            Order::Booking(bookings::find(conn, &key).await?.ok_or(Error::NotFound(What::Booking))?)
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
