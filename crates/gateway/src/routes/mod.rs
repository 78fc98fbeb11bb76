//! HTTP only: each handler extracts, calls one function, and maps the result.

mod bookings;
mod events;
mod extract;
mod holds;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use service_kit::{health, metrics};

use crate::error::Error;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(events::router())
        .merge(holds::router())
        .merge(bookings::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .with_state(state.clone())
        .merge(health::router(vec![("postgres", health::postgres_check(state.sales.database().pool().clone()))]))
        .merge(metrics::router());
    metrics::instrument(api, "gateway")
}

/// Refuses a request over the replica's or the client's limit before it is routed.
async fn rate_limit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    state.limits.check_request(peer.ip())?;
    Ok(next.run(request).await)
}
