//! The fan's use cases: join, poll, leave. Each is one Redis script call; admitted
//! fans get a freshly signed access token.

use std::sync::Arc;

use access_token::{AccessClaims, TokenSigner};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::fan::FanId;
use crate::domain::ticket::TicketKey;
use crate::domain::{eta, poll};
use crate::error::{Error, Result};
use crate::model::FanView;
use crate::store::{LocateOutcome, Located, Placement, Store};

#[derive(Clone)]
pub struct Queue {
    store: Store,
    tickets: TicketKey,
    signer: Arc<TokenSigner>,
    /// Bounds the poll interval fans are given, so following it keeps their place.
    abandon_after_secs: u64,
}

impl Queue {
    pub fn new(store: Store, tickets: TicketKey, signer: TokenSigner, abandon_after_secs: u64) -> Self {
        Self { store, tickets, signer: Arc::new(signer), abandon_after_secs }
    }

    /// Puts `fan` in line (or answers where they already are); `true` when this call
    /// created their place.
    pub async fn join(&self, event_id: Uuid, fan: FanId) -> Result<(FanView, bool)> {
        let located = match self.store.locate(event_id, &fan, true).await? {
            Ok(located) => located,
            Err(LocateOutcome::Closed) => return Err(Error::EventClosed),
            Err(LocateOutcome::UnknownEvent | LocateOutcome::NotFound) => return Err(Error::NotFound("event")),
        };
        if located.joined {
            crate::metrics::joined(located.placement == Placement::PreQueue);
        }
        let joined = located.joined;
        let ticket = self.tickets.issue(event_id, &fan);
        Ok((self.view(event_id, &fan, Some(ticket), located), joined))
    }

    pub async fn poll(&self, event_id: Uuid, ticket: &str) -> Result<FanView> {
        let fan = self.tickets.verify(event_id, ticket)?;
        match self.store.locate(event_id, &fan, false).await? {
            Ok(located) => Ok(self.view(event_id, &fan, None, located)),
            Err(LocateOutcome::UnknownEvent) => Err(Error::NotFound("event")),
            Err(LocateOutcome::NotFound | LocateOutcome::Closed) => Err(Error::NotFound("fan")),
        }
    }

    pub async fn leave(&self, event_id: Uuid, ticket: &str) -> Result<()> {
        let fan = self.tickets.verify(event_id, ticket)?;
        match self.store.leave(event_id, &fan).await? {
            None => Err(Error::NotFound("event")),
            Some(false) => Err(Error::NotFound("fan")),
            Some(true) => Ok(()),
        }
    }

    fn view(&self, event_id: Uuid, fan: &FanId, ticket: Option<String>, located: Located) -> FanView {
        let mut view = FanView {
            event_id,
            fan_id: fan.to_string(),
            ticket,
            status: "waiting",
            position: None,
            queue_length: located.queue_length,
            eta_seconds: None,
            poll_after_secs: None,
            event_state: located.state,
            opens_at: located.opens_at,
            access_token: None,
            access_token_expires_at: None,
        };
        match located.placement {
            Placement::PreQueue => {
                view.status = "pre_queue";
                let until_opening = located.opens_at.map(|at| (at - Utc::now()).num_seconds().max(0) as u64);
                view.poll_after_secs = Some(poll::after_secs(until_opening, self.abandon_after_secs));
            }
            Placement::Waiting { position } => {
                view.position = Some(position);
                view.eta_seconds =
                    eta::estimate_secs(position, located.state, located.measured_rate, located.admit_rate);
                view.poll_after_secs = Some(poll::after_secs(view.eta_seconds, self.abandon_after_secs));
            }
            Placement::Admitted { expires_at } => {
                let (token, expires_at) = self.sign(event_id, fan, expires_at);
                view.status = "admitted";
                view.access_token = Some(token);
                view.access_token_expires_at = Some(expires_at);
            }
        }
        view
    }

    /// A token that lasts exactly as long as the admission (whole seconds, at least one).
    fn sign(&self, event_id: Uuid, fan: &FanId, admission_expires_at: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let now = Utc::now().timestamp();
        let lifetime = (admission_expires_at.timestamp() - now).max(1);
        let claims = AccessClaims::new(fan.as_str(), event_id, now, lifetime);
        crate::metrics::token_issued();
        let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(admission_expires_at);
        (self.signer.sign(&claims), expires_at)
    }
}
