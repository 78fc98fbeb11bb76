//! HTTP only: each handler extracts, calls one function, and maps the result.

mod bookings;
mod events;
mod extract;
mod holds;

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(events::router())
        .merge(holds::router())
        .merge(bookings::router())
        .with_state(state.clone())
        .merge(service_kit::health::router(vec![("postgres", service_kit::health::postgres_check(state.pool))]))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            tracing::info_span!("request", method = %request.method(), route)
        }))
}
