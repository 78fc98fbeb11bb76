//! HTTP only: each handler extracts, calls one function, and maps the result.

pub mod bodies;
mod bookings;
mod checkins;
mod events;
pub mod extract;
mod holds;
mod pages;
mod payments;
mod revocations;
mod seats;
mod tickets;
mod waitlist;
mod webhooks;

use axum::middleware;
use service_kit::health;
use service_kit::openapi::link;
use service_kit::router::{service_router, Routers};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;
use crate::{auth, limits};

/// Every route is declared with its OpenAPI description (`#[utoipa::path]`), which
/// `service_router` serves as `/openapi.json`.
pub fn router(state: AppState) -> Routers {
    let database = health::postgres_check(state.sales.database().pool().clone());
    // Not ready until this replica has read the revoked admissions once: before, it
    // refuses every fan.
    let revocations = state.revocations.readiness_check();
    let mut api = OpenApiRouter::new()
        .merge(events::router())
        .merge(seats::router())
        .merge(holds::router())
        .merge(bookings::router())
        .merge(payments::router())
        .merge(revocations::router())
        .merge(webhooks::router())
        .merge(tickets::router())
        .merge(checkins::router())
        .merge(waitlist::router())
        .merge(pages::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), limits::per_request))
        .with_state(state);
    auth::describe_access_token(api.get_openapi_mut());
    describe_links(api.get_openapi_mut());
    service_router("gateway", api, vec![("postgres", database), ("revocations", revocations)])
}

/// What a fan does next with what an answer names: a hold (confirm it, pay for it, keep
/// it, release it), then the booking (read it, its tickets, cancel it).
fn describe_links(openapi: &mut utoipa::openapi::OpenApi) {
    const EVENT: (&str, &str) = ("event_id", "$request.path.event_id");
    for to in ["show_hold", "confirm", "checkout_hold", "hold_heartbeat", "show_payment", "release"] {
        link(openapi, "create_hold", "201", to, &[EVENT, ("hold_id", "$response.body#/id")]);
    }
    for (from, status) in [("book", "201"), ("confirm", "201"), ("confirm", "200")] {
        for to in ["show_booking", "list_tickets", "cancel", "rotate_booking_link"] {
            link(openapi, from, status, to, &[EVENT, ("booking_id", "$response.body#/id")]);
        }
    }
}
