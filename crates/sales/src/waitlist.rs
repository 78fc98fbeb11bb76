//! The waitlist (DECISIONS.md D2): fans who found a section sold out wait in line, and
//! places that come back become **offers** for them in line order before anyone else
//! may buy them (`migrations/*_waitlist.sql` has the rules the database keeps).
//!
//! - Joining, looking and leaving are the fan's use cases here.
//! - [`offer_kept_places`] turns the places a section keeps for its waitlist into offers,
//!   inside the transaction that freed them: a release, a cancellation, the hold sweep
//!   ([`release_expired_holds`]), a fan joining (who may fit places nobody ahead could
//!   take).
//! - An offer is a hold for the entry's fan that lasts the event's offer lifetime; the
//!   fan takes it by checking it out (or confirming a free one) as any hold. Releasing
//!   it declines it, and its places go to the next entry in the same transaction.
//!
//! Line order is kept entry by entry: each entry, in order, gets the first of its
//! sections (in the order the fan listed them) with enough places kept, or fewer if the
//! fan allowed a partial offer. An entry that no section can serve yet keeps its place
//! and the next one is tried: places never wait for an entry that cannot use them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::contact_email::ContactEmail;
use crate::domain::Invalid;
use crate::error::{Error, Result, What};
use crate::model::{WaitlistEntryView, WaitlistOffer};
use crate::outbox::{Message, MessageSeat, WaitlistJoined, WaitlistOfferMade};
use crate::scope::FanScope;
use crate::states::{HoldStatus, SectionKind, WaitlistEntryStatus, WaitlistState};
use crate::store::inventory::{self, Taker, Written};
use crate::store::waitlist::{self, EntryRow, NewEntry};
use crate::store::{events, holds, outbox};
use crate::Sales;

/// How many disjoint best-available choices an offer in a reserved section tries.
const OFFER_ATTEMPTS: usize = 8;
/// Entries read (and locked) at a time while making offers.
const LINE_BATCH: i64 = 100;

/// The body of "join the waitlist".
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistRequest {
    /// Places wanted, 1 to the event's `max_per_order`.
    pub quantity: i64,
    /// The sections the fan accepts, the preferred first; each must be sold out.
    pub section_ids: Vec<Uuid>,
    /// Whether an offer of fewer places than `quantity` is welcome (default false).
    #[serde(default)]
    pub allow_partial: bool,
    /// Where to tell the fan about their offer (optional).
    pub email: Option<String>,
}

impl WaitlistRequest {
    /// Where to write to the fan: refused when the request cannot be one of at most
    /// `max_per_order` places in sections named once each, before anything is read.
    pub fn parse(&self, max_per_order: u32) -> Result<Option<ContactEmail>, Invalid> {
        if !(1..=i64::from(max_per_order)).contains(&self.quantity) {
            return Err(Invalid::new("invalid_quantity", format!("quantity must be between 1 and {max_per_order}")));
        }
        let sections = &self.section_ids;
        if sections.is_empty() || sections.iter().enumerate().any(|(i, s)| sections[..i].contains(s)) {
            return Err(Invalid::new("invalid_selection", "section_ids must list each section once, at least one"));
        }
        self.email.as_deref().map(ContactEmail::parse).transpose()
    }
}

impl Sales {
    /// Puts the fan in the event's waitlist. Every section they list must have nothing
    /// for sale (buy those places instead); one waiting entry per fan per event.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "join_waitlist"))]
    pub async fn join_waitlist(&self, scope: &FanScope, request: &WaitlistRequest) -> Result<WaitlistEntryView> {
        let rules = self.event_rules(scope.event_id).await?;
        let contact_email = request.parse(rules.max_per_order)?;
        if let Some(unknown) = request.section_ids.iter().find(|s| !rules.sections.contains_key(s)) {
            return Err(Invalid::new("unknown_section", format!("this event has no section {unknown}")).into());
        }
        let (scope, request) = (scope.clone(), request.clone());
        let view = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    let settings =
                        waitlist::event_settings(tx, scope.event_id).await?.ok_or(Error::NotFound(What::Event))?;
                    if !settings.waitlist_enabled || settings.cancelled || settings.started {
                        return Err(Error::WaitlistClosed);
                    }
                    let for_sale = waitlist::for_sale(tx, scope.event_id, &request.section_ids).await?;
                    if let Some((section, places)) = for_sale.iter().find(|(_, n)| **n > 0) {
                        return Err(Error::NotSoldOut(format!(
                            "section {section} has {places} places for sale: book them instead"
                        )));
                    }
                    if let Some(entry) = waitlist::latest_of_fan(tx, &scope).await? {
                        if live_offer(&entry) {
                            return Err(Error::AlreadyWaitlisted(
                                "you have an offer waiting: take or release it".into(),
                            ));
                        }
                    }
                    let entry = NewEntry {
                        id: Uuid::now_v7(),
                        quantity: request.quantity as i32,
                        section_ids: &request.section_ids,
                        allow_partial: request.allow_partial,
                        contact_email: contact_email.as_ref().map(ContactEmail::as_str),
                    };
                    if !waitlist::insert(tx, &scope, &entry).await? {
                        return Err(Error::AlreadyWaitlisted("you are already on this event's waitlist".into()));
                    }
                    let joined = WaitlistJoined {
                        event_id: scope.event_id,
                        entry_id: entry.id,
                        fan_id: scope.fan_id.clone(),
                        quantity: request.quantity,
                        section_ids: request.section_ids.clone(),
                        allow_partial: request.allow_partial,
                    };
                    outbox::enqueue(tx, &[Message::WaitlistJoined(joined)]).await?;
                    offer_kept_places(tx, scope.event_id).await?;
                    entry_view(tx, &scope).await
                })
            })
            .await?;
        Ok(self.with_offer_link(view, rules.starts_at))
    }

    /// The fan's latest waitlist entry in the event: where it stands, or its offer.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "waitlist_entry"))]
    pub async fn waitlist_entry(&self, scope: &FanScope) -> Result<WaitlistEntryView> {
        let rules = self.event_rules(scope.event_id).await?;
        let scope = scope.clone();
        let view = self.db.read(move |conn| Box::pin(async move { entry_view(conn, &scope).await })).await?;
        Ok(self.with_offer_link(view, rules.starts_at))
    }

    /// Takes the fan out of the line; an offer they hold is declined (its places go to
    /// the next entry at once). Leaving twice answers with the entry as it is.
    #[tracing::instrument(skip_all, fields(event_id = %scope.event_id, kind = "leave_waitlist"))]
    pub async fn leave_waitlist(&self, scope: &FanScope) -> Result<WaitlistEntryView> {
        let rules = self.event_rules(scope.event_id).await?;
        let scope = scope.clone();
        let view = self
            .db
            .transaction(move |tx| {
                Box::pin(async move {
                    if !waitlist::leave(tx, &scope).await? {
                        let entry =
                            waitlist::latest_of_fan(tx, &scope).await?.ok_or(Error::NotFound(What::WaitlistEntry))?;
                        if let (true, Some(hold_id)) = (live_offer(&entry), entry.offer_hold_id) {
                            if holds::lock(tx, &scope, hold_id).await?.is_some_and(|h| h.status == HoldStatus::Active) {
                                holds::end(tx, hold_id, HoldStatus::Released).await?;
                            }
                        }
                    }
                    offer_kept_places(tx, scope.event_id).await?;
                    entry_view(tx, &scope).await
                })
            })
            .await?;
        Ok(self.with_offer_link(view, rules.starts_at))
    }

    /// The capability link of a waitlist offer (D7), valid until a day after the event
    /// starts; None without the ticket signing key.
    pub fn offer_link(&self, event_id: Uuid, hold_id: Uuid, starts_at: Option<DateTime<Utc>>) -> Option<String> {
        Some(self.signer().ok()?.offer_link(event_id, hold_id, starts_at))
    }

    /// The fan an offer link acts for, on the hold in the request's path: the link must
    /// be ours, in time, name this event and hold, and the hold must be an offer (a
    /// link never reaches a hold the fan made themselves). `InvalidLink` otherwise.
    #[tracing::instrument(skip_all, fields(%event_id, %hold_id))]
    pub async fn offer_holder(&self, link: &str, event_id: Uuid, hold_id: Uuid) -> Result<FanScope> {
        self.signer()?
            .open_offer_link(link)
            .filter(|l| l.event_id == event_id && l.hold_id == hold_id)
            .ok_or(Error::InvalidLink)?;
        let fan_id = self
            .db
            .read(move |conn| Box::pin(async move { waitlist::offer_fan(conn, event_id, hold_id).await }))
            .await?
            .ok_or(Error::InvalidLink)?;
        Ok(FanScope { event_id, fan_id })
    }

    fn with_offer_link(&self, mut view: WaitlistEntryView, starts_at: Option<DateTime<Utc>>) -> WaitlistEntryView {
        if let Some(offer) = view.offer.as_mut() {
            offer.link = self.offer_link(view.event_id, offer.hold_id, starts_at);
        }
        view
    }
}

/// The entry's offer is a hold still active and in its time.
fn live_offer(entry: &EntryRow) -> bool {
    entry.offer_status == Some(HoldStatus::Active) && entry.offer_lapsed == Some(false)
}

/// What the fan sees of their latest entry.
async fn entry_view(conn: &mut PgConnection, scope: &FanScope) -> Result<WaitlistEntryView> {
    let entry = waitlist::latest_of_fan(conn, scope).await?.ok_or(Error::NotFound(What::WaitlistEntry))?;
    let position = match entry.status {
        WaitlistEntryStatus::Waiting => Some(waitlist::position(conn, &entry).await?),
        _ => None,
    };
    let state = match (entry.status, entry.offer_status, entry.offer_lapsed) {
        (WaitlistEntryStatus::Waiting, ..) => WaitlistState::Waiting,
        (WaitlistEntryStatus::Left, ..) => WaitlistState::Left,
        (WaitlistEntryStatus::Offered, Some(HoldStatus::Active), Some(false)) => WaitlistState::Offered,
        (WaitlistEntryStatus::Offered, Some(HoldStatus::Confirmed), _) => WaitlistState::Accepted,
        (WaitlistEntryStatus::Offered, Some(HoldStatus::Released), _) => WaitlistState::Declined,
        (WaitlistEntryStatus::Offered, ..) => WaitlistState::Expired,
    };
    let offer = match (entry.offer_hold_id, entry.offer_expires_at) {
        (Some(hold_id), Some(expires_at)) => Some(WaitlistOffer { hold_id, expires_at, link: None }),
        _ => None,
    };
    Ok(WaitlistEntryView {
        id: entry.id,
        event_id: entry.event_id,
        status: state,
        quantity: entry.quantity,
        section_ids: entry.section_ids,
        allow_partial: entry.allow_partial,
        position,
        created_at: entry.created_at,
        offer,
    })
}

/// Ends up to `batch` expired holds and turns the places they free in sections with a
/// waitlist into offers, in one transaction (the hold sweep). Returns how many holds
/// it ended.
#[tracing::instrument(level = "debug", skip(tx))]
pub async fn release_expired_holds(tx: &mut PgConnection, batch: i64) -> Result<u64> {
    let released = holds::release_expired(tx, batch).await?;
    for event_id in &released.events {
        offer_kept_places(tx, *event_id).await?;
    }
    Ok(released.holds)
}

/// Turns the places the event's sections keep for their waitlists into offers, entry by
/// entry in line order, inside the caller's transaction. Returns how many offers it made.
/// Nothing is offered once the event has started or was cancelled.
#[tracing::instrument(level = "debug", skip(tx))]
pub(crate) async fn offer_kept_places(tx: &mut PgConnection, event_id: Uuid) -> Result<u64> {
    // A first look without the line's turn: most releases free places nobody waits for.
    let kept = waitlist::kept_places(tx, event_id).await?;
    if kept.values().all(|place| place.free == 0) {
        return Ok(0);
    }
    let Some(settings) = waitlist::event_settings(tx, event_id).await? else { return Ok(0) };
    if settings.cancelled || settings.started {
        return Ok(0);
    }
    waitlist::take_turn(tx, event_id).await?;
    // Again on our turn: the offers of whoever had it before are committed now.
    let mut kept = waitlist::kept_places(tx, event_id).await?;
    let (mut offers, mut after) = (0, 0);
    loop {
        let line = waitlist::lock_line(tx, event_id, after, LINE_BATCH).await?;
        for entry in &line {
            if kept.values().all(|place| place.free == 0) {
                return Ok(offers);
            }
            if offer(tx, entry, &mut kept, settings.offer_ttl_seconds).await? {
                offers += 1;
            }
        }
        match line.last() {
            Some(last) if line.len() as i64 == LINE_BATCH => after = last.seq,
            _ => return Ok(offers),
        }
    }
}

/// Offers places to one locked waiting entry, from the first of its sections that has
/// enough kept; false when none can serve it now (it keeps its place in line).
async fn offer(
    tx: &mut PgConnection,
    entry: &EntryRow,
    kept: &mut HashMap<Uuid, waitlist::KeptPlaces>,
    ttl_seconds: i32,
) -> Result<bool> {
    let wanted = entry.quantity as i64;
    for section_id in &entry.section_ids {
        let Some(place) = kept.get_mut(section_id) else { continue };
        let quantity = match place.free {
            free if free >= wanted => wanted,
            free if free > 0 && entry.allow_partial => free,
            _ => continue,
        } as u32;
        let taken = match place.kind {
            SectionKind::GeneralAdmission => inventory::take_next(tx, *section_id, quantity, Taker::Waitlist).await,
            SectionKind::Reserved => {
                inventory::take_best(tx, *section_id, quantity, OFFER_ATTEMPTS, Taker::Waitlist).await
            }
        };
        let seats = match taken {
            Ok(seats) => seats,
            // Another transaction holds them (an offer being made elsewhere): not ours.
            Err(Error::SoldOut(_) | Error::SeatContended) => continue,
            Err(e) => return Err(e),
        };
        // The fan's limit counts offers too: over it, this entry waits for a smaller
        // need or a cancellation of their own. (After the seats: every order locks
        // its seats before the fan.)
        let allowance = events::fan_allowance(tx, entry.event_id, &entry.fan_id).await?;
        if allowance.is_some_and(|remaining| remaining < quantity) {
            continue;
        }
        let scope = FanScope { event_id: entry.event_id, fan_id: entry.fan_id.clone() };
        let ids: Vec<i64> = seats.iter().map(|s| s.seat_id).collect();
        let hold_id = Uuid::now_v7();
        let written = holds::write_offer(tx, &scope, hold_id, &ids, ttl_seconds, entry).await?;
        let (seats, expires_at) = match written {
            Written::Done { seats, at } => (seats, at),
            Written::Refused(_) => continue,
        };
        waitlist::mark_offered(tx, entry.id).await?;
        place.free -= seats.len() as i64;
        let total = seats.iter().map(|s| s.price_minor).sum();
        outbox::enqueue(
            tx,
            &[Message::WaitlistOfferMade(WaitlistOfferMade {
                event_id: entry.event_id,
                entry_id: entry.id,
                fan_id: entry.fan_id.clone(),
                hold_id,
                email: entry.contact_email.clone(),
                seats: seats
                    .into_iter()
                    .map(|s| MessageSeat { seat_id: s.seat_id, section_id: s.section_id, label: s.label })
                    .collect(),
                total: place.price(total),
                expires_at,
            })],
        )
        .await?;
        return Ok(true);
    }
    Ok(false)
}
