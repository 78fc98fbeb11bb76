//! HTTP only: each handler extracts, calls one function, and maps the result.

mod bookings;
mod events;
mod extract;
mod holds;

use axum::middleware;
use axum::Router;
use service_kit::health;
use service_kit::router::service_router;

use crate::limits;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let database = health::postgres_check(state.sales.database().pool().clone());
    let api = Router::new()
        .merge(events::router())
        .merge(holds::router())
        .merge(bookings::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), limits::per_request))
        .with_state(state);
    service_router("gateway", api, vec![("postgres", database)])
}
