//! The organizer's and the public's use cases: creating and listing events, an event's
//! live counts, every booking. Each is one unit of work on
//! [`service_kit::postgres::Database`], like the fan's orders.

use uuid::Uuid;

use crate::app::AppState;
use crate::domain::event::NewEvent;
use crate::error::{Error, Result};
use crate::model::{AdminBookingView, EventDetails, EventSummary};
use crate::store::{bookings, events};

/// Writes the event, its sections and every seat in one transaction, and answers with
/// its details as committed. A large event takes seconds: it gets a deadline and a
/// statement timeout of its own.
pub async fn create_event(state: &AppState, event: NewEvent) -> Result<EventDetails> {
    let timeout = state.create_event_timeout;
    state
        .db
        .with_deadline(timeout)
        .transaction(move |tx| {
            Box::pin(async move {
                events::allow_statements_to_run(tx, timeout).await?;
                let id = events::insert(tx, &event).await?;
                events::details(tx, id).await?.ok_or(Error::NotFound("event"))
            })
        })
        .await
}

pub async fn list_events(state: &AppState) -> Result<Vec<EventSummary>> {
    state.db.read(|conn| Box::pin(events::list(conn))).await
}

pub async fn event_details(state: &AppState, event_id: Uuid) -> Result<EventDetails> {
    state
        .db
        .read(move |conn| {
            Box::pin(async move { events::details(conn, event_id).await?.ok_or(Error::NotFound("event")) })
        })
        .await
}

/// Every booking (optionally of one event), newest first.
pub async fn all_bookings(
    state: &AppState,
    event_id: Option<Uuid>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AdminBookingView>> {
    state.db.read(move |conn| Box::pin(bookings::list_all(conn, event_id, limit, offset))).await
}
