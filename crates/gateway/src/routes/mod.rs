//! HTTP only: each handler extracts, calls one function, and maps the result.

mod bookings;
mod events;
mod extract;
mod holds;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::error::Error;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::router())
        .merge(holds::router())
        .merge(bookings::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        .with_state(state.clone())
        .merge(service_kit::health::router(vec![("postgres", service_kit::health::postgres_check(state.pool))]))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            tracing::info_span!("request", method = %request.method(), route)
        }))
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
