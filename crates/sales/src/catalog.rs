//! The organizer's and the public's use cases: creating and listing events, an event's
//! live counts and seat map, every booking. Each is one unit of work on
//! [`service_kit::postgres::Database`], like the fan's orders.

use uuid::Uuid;

use crate::domain::event::NewEvent;
use crate::domain::refund_policy::RefundPolicy;
use crate::domain::Invalid;
use crate::error::{Error, Result, What};
use seat_feed::live::{SeatNow, SeatsRead};
use seat_feed::store as feed;
use seat_feed::Position;

use crate::model::{AdminBookingView, CatalogueEvent, EventDetails, EventSummary, SeatLayout, SeatView};
use crate::store::{bookings, events};
use crate::Sales;

/// What the organizer changes in an event (D8); `None` leaves a field as it is,
/// `Some(None)` removes it.
#[derive(Debug, Clone, Default)]
pub struct EventChanges {
    /// None inside: fans may not cancel.
    pub refund_policy: Option<Option<RefundPolicy>>,
    /// None inside: no limit.
    pub max_per_fan: Option<Option<u32>>,
    /// Off ends every waiting entry (their sections go back on sale).
    pub waitlist_enabled: Option<bool>,
    pub waitlist_offer_ttl_seconds: Option<u32>,
    /// Lists the event in the public catalogue, or takes it out.
    pub published: Option<bool>,
}

impl EventChanges {
    /// Checks each change against the rules an event is created with.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(Some(policy)) = &self.refund_policy {
            policy.validate()?;
        }
        if let Some(max_per_fan) = self.max_per_fan {
            crate::domain::event::check_max_per_fan(max_per_fan)?;
        }
        if let Some(seconds) = self.waitlist_offer_ttl_seconds {
            crate::domain::event::check_offer_ttl(seconds)?;
        }
        Ok(())
    }
}

impl Sales {
    /// Writes the event, its sections and every seat in one transaction, and answers
    /// with its details as committed. A large event takes seconds: it gets a deadline
    /// and a statement timeout of its own.
    #[tracing::instrument(skip_all, fields(kind = "create_event"))]
    pub async fn create_event(&self, event: NewEvent) -> Result<EventDetails> {
        let timeout = self.settings.create_event_timeout;
        self.db
            .with_deadline(timeout)
            .transaction(move |tx| {
                Box::pin(async move {
                    events::allow_statements_to_run(tx, timeout).await?;
                    let id = events::insert(tx, &event).await?;
                    events::details(tx, id).await?.ok_or(Error::NotFound(What::Event))
                })
            })
            .await
    }

    /// Changes what may change after creation (D8): the refund policy, the limit of
    /// places per fan, the waitlist and whether the catalogue lists it, in one
    /// transaction. None is cached: the refund
    /// policy is read at each cancellation, the limit by the database at each order and
    /// the waitlist settings when a fan joins and an offer is made, so a change applies
    /// to the next one on every replica.
    #[tracing::instrument(skip(self, changes), fields(kind = "change_event"))]
    pub async fn change_event(&self, event_id: Uuid, changes: EventChanges) -> Result<EventDetails> {
        self.db
            .transaction(move |tx| {
                Box::pin(async move {
                    if let Some(policy) = &changes.refund_policy {
                        events::set_refund_policy(tx, event_id, policy.as_ref()).await?;
                    }
                    if let Some(max_per_fan) = changes.max_per_fan {
                        events::set_max_per_fan(tx, event_id, max_per_fan).await?;
                    }
                    if changes.waitlist_enabled.is_some() || changes.waitlist_offer_ttl_seconds.is_some() {
                        let (enabled, ttl) = (changes.waitlist_enabled, changes.waitlist_offer_ttl_seconds);
                        events::set_waitlist(tx, event_id, enabled, ttl).await?;
                    }
                    if let Some(published) = changes.published {
                        events::set_published(tx, event_id, published).await?;
                    }
                    events::details(tx, event_id).await?.ok_or(Error::NotFound(What::Event))
                })
            })
            .await
    }

    #[tracing::instrument(skip_all, fields(kind = "list_events"))]
    pub async fn list_events(&self) -> Result<Vec<EventSummary>> {
        self.db.read(|conn| Box::pin(events::list(conn))).await
    }

    /// The public catalogue: published events on sale or coming up, soonest first.
    #[tracing::instrument(skip_all, fields(kind = "catalogue"))]
    pub async fn catalogue(&self) -> Result<Vec<CatalogueEvent>> {
        self.db.read(|conn| Box::pin(events::catalogue(conn))).await
    }

    #[tracing::instrument(skip(self), fields(kind = "event_details"))]
    pub async fn event_details(&self, event_id: Uuid) -> Result<EventDetails> {
        self.db
            .read(move |conn| {
                Box::pin(async move { events::details(conn, event_id).await?.ok_or(Error::NotFound(What::Event)) })
            })
            .await
    }

    /// Every reserved seat of the event with its live status.
    #[tracing::instrument(skip(self), fields(kind = "seat_map"))]
    pub async fn seat_map(&self, event_id: Uuid) -> Result<Vec<SeatView>> {
        self.event_rules(event_id).await?;
        self.db.read(move |conn| Box::pin(events::seat_map(conn, event_id))).await
    }

    /// The event's venue for the live seat map: what never changes after creation.
    #[tracing::instrument(skip(self), fields(kind = "seat_layout"))]
    pub async fn seat_layout(&self, event_id: Uuid) -> Result<SeatLayout> {
        self.db
            .read(move |conn| {
                Box::pin(async move { events::seat_layout(conn, event_id).await?.ok_or(Error::NotFound(What::Event)) })
            })
            .await
    }

    /// Every reserved seat of the event as it is now, the sections kept for the
    /// waitlist, and where the live map reads the change feed on from
    /// (`seat_feed::live`).
    #[tracing::instrument(skip(self), fields(kind = "live_seat_snapshot"))]
    pub async fn live_seat_snapshot(&self, event_id: Uuid) -> Result<(Vec<SeatNow>, Vec<Uuid>, Position)> {
        self.event_rules(event_id).await?;
        self.db.read(move |conn| Box::pin(async move { Ok(feed::live_snapshot(conn, event_id).await?) })).await
    }

    /// The seats changed since `since` as they are now, for the live map; at most
    /// `limit` change rows, or `Behind`.
    #[tracing::instrument(skip(self), fields(kind = "live_seats_since"))]
    pub async fn live_seats_since(&self, event_id: Uuid, since: Position, limit: i64) -> Result<SeatsRead> {
        self.db
            .read(move |conn| Box::pin(async move { Ok(feed::seats_since(conn, event_id, since, limit).await?) }))
            .await
    }

    /// Every booking (optionally of one event), newest first.
    #[tracing::instrument(skip(self), fields(kind = "all_bookings"))]
    pub async fn all_bookings(&self, event_id: Option<Uuid>, limit: i64, offset: i64) -> Result<Vec<AdminBookingView>> {
        self.db.read(move |conn| Box::pin(bookings::list_all(conn, event_id, limit, offset))).await
    }
}
