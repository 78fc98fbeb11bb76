//! The fan's use cases: join, poll, leave. Each is one Redis script call; every answer
//! carries a fresh queue ticket, and admitted fans get their admission's access token.
//!
//! After Redis lost an event (a wipe), the first request that meets it rebuilds it from
//! PostgreSQL ([`Restorer`]), and each fan's next poll puts them back at the place
//! their ticket names: see [`Queue::poll`].

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::budget::SaleState;
use crate::domain::fan::FanId;
use crate::domain::ticket::{Issued, Place, Ticket, TicketKey};
use crate::domain::{eta, poll};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::ledger::{Departure, Record};
use crate::model::FanView;
use crate::pow::{Challenge, Door};
use crate::restore::Restorer;
use crate::store::{Arrival, LocateMode, Located, Location, Placement, RestorePlace, Store};
use crate::tokens::AdmissionTokens;

#[derive(Clone)]
pub struct Queue {
    store: Store,
    restorer: Arc<Restorer>,
    tickets: TicketKey,
    tokens: Arc<AdmissionTokens>,
    inventory: Inventory,
    door: Door,
    /// Bounds the poll interval fans are given, so following it keeps their place.
    abandon_after_secs: u64,
}

impl Queue {
    pub fn new(
        store: Store,
        restorer: Arc<Restorer>,
        tickets: TicketKey,
        tokens: AdmissionTokens,
        inventory: Inventory,
        door: Door,
        abandon_after_secs: u64,
    ) -> Self {
        Self { store, restorer, tickets, tokens: Arc::new(tokens), inventory, door, abandon_after_secs }
    }

    /// Puts `fan` in line (or answers where they already are, [`Arrival::AlreadyThere`]),
    /// once their proof of work is checked if the event asks for one.
    pub async fn join(&self, event_id: Uuid, fan: FanId, proof: Option<&str>) -> Result<(FanView, Arrival)> {
        self.door.check(event_id, &fan, proof).await?;
        let located = match self.locate(event_id, &fan, LocateMode::Join).await? {
            Location::Found(located) => located,
            Location::Closed => return Err(Error::EventClosed),
            Location::UnknownEvent | Location::NotFound { .. } => return Err(Error::NotFound("event")),
        };
        if located.arrival == Arrival::Joined {
            crate::metrics::joined(located.placement == Placement::PreQueue);
        }
        let arrival = located.arrival;
        Ok((self.view(event_id, &fan, located), arrival))
    }

    /// Where the ticket's fan stands. If Redis lost the event's queue and the fan with
    /// it, a ticket issued before the rebuild puts them back at the place it names —
    /// unless that place was already used (an admission recorded since the ticket was
    /// issued) or the fan stayed away longer than the abandonment timeout after the
    /// rebuild. A ticket that cannot restore is answered `409 queue_reset`.
    pub async fn poll(&self, event_id: Uuid, ticket: Ticket) -> Result<FanView> {
        match self.locate(event_id, &ticket.fan, LocateMode::Poll).await? {
            Location::Found(located) => Ok(self.view(event_id, &ticket.fan, located)),
            Location::UnknownEvent => Err(Error::NotFound("event")),
            Location::NotFound { restored_at_ms: Some(restored_at_ms), now_ms } => {
                self.restore_place(event_id, ticket, restored_at_ms, now_ms).await
            }
            Location::NotFound { restored_at_ms: None, .. } | Location::Closed => Err(Error::NotFound("fan")),
        }
    }

    async fn restore_place(&self, event_id: Uuid, ticket: Ticket, restored_at_ms: i64, now_ms: i64) -> Result<FanView> {
        let window_ms = self.restore_window_ms();
        let issued = ticket.issued;
        let place = match issued.place {
            Place::Score(score) => Some(RestorePlace::Score(score)),
            Place::PreQueue => Some(RestorePlace::PreQueue),
            Place::None => None,
        };
        let in_time = issued.at_ms < restored_at_ms && now_ms <= restored_at_ms + window_ms as i64;
        let restorable = place.filter(|_| in_time).map(|place| (place, issued.at_ms));
        let Some((place, issued_at_ms)) = restorable else {
            crate::metrics::queue_reset();
            return Err(Error::QueueReset);
        };
        if self.restorer.ledger().admitted_since(event_id, &ticket.fan, issued_at_ms).await? {
            // The place this ticket names was used: the fan's admission is over.
            return Err(Error::NotFound("fan"));
        }
        let mode = LocateMode::Restore { place, issued_at_ms, window_ms };
        match self.store.locate(event_id, &ticket.fan, mode).await? {
            Location::Found(located) => {
                if located.arrival == Arrival::Restored {
                    crate::metrics::place_restored();
                }
                Ok(self.view(event_id, &ticket.fan, located))
            }
            Location::UnknownEvent => Err(Error::NotFound("event")),
            Location::Closed | Location::NotFound { .. } => {
                crate::metrics::queue_reset();
                Err(Error::QueueReset)
            }
        }
    }

    /// A fresh proof-of-work challenge for a join to the event.
    pub async fn challenge(&self, event_id: Uuid) -> Result<Challenge> {
        self.door.challenge(event_id).await
    }

    /// Takes the fan out of line, or ends their admission. An ended admission is
    /// recorded (in the background, with the admissions), so that a rebuild after a
    /// wipe does not count the fan again.
    pub async fn leave(&self, event_id: Uuid, ticket: Ticket) -> Result<()> {
        let fan = ticket.fan;
        let mut left = self.store.leave(event_id, &fan).await?;
        if left.is_none() && self.restorer.rebuild_if_known(event_id).await? {
            left = self.store.leave(event_id, &fan).await?;
        }
        let left = left.ok_or(Error::NotFound("event"))?;
        if let Some(expires_at_ms) = left.admission_expiring_ms {
            self.restorer.recorder().push([Record::Left(Departure {
                event_id,
                fan_id: fan.as_str().to_owned(),
                expires_at_ms,
                left_at_ms: left.at_ms,
            })]);
        }
        if left.removed {
            Ok(())
        } else {
            Err(Error::NotFound("fan"))
        }
    }

    /// The ticket's fan and place, if we issued it for this event and it has not
    /// expired: what [`Queue::poll`] and [`Queue::leave`] take. Its issue time is
    /// Redis' clock; replicas' clocks are close enough to it for a lifetime of minutes.
    pub fn verify(&self, event_id: Uuid, ticket: &str) -> Result<Ticket> {
        Ok(self.tickets.verify(event_id, ticket, Utc::now().timestamp_millis())?)
    }

    /// Locates the fan; if Redis does not know the event but PostgreSQL does, rebuilds
    /// the event and tries again.
    async fn locate(&self, event_id: Uuid, fan: &FanId, mode: LocateMode) -> Result<Location> {
        match self.store.locate(event_id, fan, mode).await? {
            Location::UnknownEvent if self.restorer.rebuild_if_known(event_id).await? => {
                self.store.locate(event_id, fan, mode).await
            }
            location => Ok(location),
        }
    }

    /// How long after a rebuild a ticket may still restore its fan's place: as long
    /// as a fan may stay silent without being skipped as gone, and never shorter than
    /// the admission pause.
    fn restore_window_ms(&self) -> u64 {
        (self.abandon_after_secs * 1000).max(poll::restore_pause_ms(self.abandon_after_secs))
    }

    fn view(&self, event_id: Uuid, fan: &FanId, located: Located) -> FanView {
        let place = match located.placement {
            Placement::PreQueue => Place::PreQueue,
            Placement::Waiting { .. } => located.score.map_or(Place::None, Place::Score),
            Placement::Admitted { .. } => Place::None,
        };
        let issued = Issued { place, epoch: located.epoch, at_ms: located.now_ms };
        let sale_state = self.inventory.sale_state(event_id);
        let mut view = FanView {
            event_id,
            fan_id: fan.to_string(),
            ticket: self.tickets.issue(event_id, fan, issued),
            status: "waiting",
            position: None,
            queue_length: located.queue_length,
            eta_seconds: None,
            poll_after_secs: None,
            event_state: located.state,
            sale_state,
            opens_at: located.opens_at,
            waitlist_token: None,
            waitlist_token_expires_at: None,
            access_token: None,
            access_token_expires_at: None,
        };
        let sold_out_with_waitlist =
            sale_state == Some(SaleState::SoldOut) && self.inventory.waitlist_enabled(event_id);
        if sold_out_with_waitlist && !matches!(located.placement, Placement::Admitted { .. }) {
            let (token, expires_at) = self.tokens.waitlist_token(event_id, fan, located.now_ms);
            view.waitlist_token = Some(token);
            view.waitlist_token_expires_at = Some(expires_at);
        }
        match located.placement {
            Placement::PreQueue => {
                view.status = "pre_queue";
                let until_opening = located.opens_at.map(|at| (at - Utc::now()).num_seconds().max(0) as u64);
                view.poll_after_secs = Some(poll::after_secs(until_opening, self.abandon_after_secs));
            }
            Placement::Waiting { position } => {
                view.position = Some(position);
                // Admission pauses after a rebuild; the wait includes what is left of it.
                let paused_ms = located.restored_at_ms.map_or(0, |at| {
                    (at + poll::restore_pause_ms(self.abandon_after_secs) as i64 - located.now_ms).max(0) as u64
                });
                // Sold out: nobody more will be let in, so there is no wait to tell.
                view.eta_seconds =
                    eta::estimate_secs(position, located.state, located.measured_rate, located.admit_rate)
                        .filter(|_| sale_state != Some(SaleState::SoldOut))
                        .map(|secs| secs + paused_ms.div_ceil(1000));
                view.poll_after_secs = Some(poll::after_secs(view.eta_seconds, self.abandon_after_secs));
            }
            Placement::Admitted { admitted_at_ms, expires_at_ms } => {
                let (token, expires_at) = self.tokens.token(event_id, fan, admitted_at_ms, expires_at_ms);
                view.status = "admitted";
                view.access_token = Some(token);
                view.access_token_expires_at = Some(expires_at);
            }
        }
        view
    }
}
