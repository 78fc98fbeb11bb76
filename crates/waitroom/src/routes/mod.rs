//! HTTP only: each handler extracts, calls one function, and maps the result.

mod admin;
mod extract;
mod public;
mod queue;

use axum::Router;
use service_kit::health;
use service_kit::metrics;

use crate::app::AppState;
use crate::error::Error;

pub fn router(state: AppState) -> Router {
    let redis = health::redis_check(state.store.connection());
    let api = Router::new()
        .merge(queue::router())
        .merge(admin::router())
        .merge(public::router())
        .with_state(state)
        .merge(health::router(vec![("redis", redis)]))
        .merge(metrics::router())
        // Unknown paths answer the same JSON envelope as everything else.
        .fallback(|| async { Error::NotFound("route") });
    metrics::instrument(api, "waitroom")
}
