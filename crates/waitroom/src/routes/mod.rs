//! HTTP only: each handler extracts, calls one function, and maps the result.

mod admin;
mod extract;
mod public;
mod queue;

use std::sync::Arc;

use axum::Router;
use service_kit::health::{self, ReadinessCheck};
use service_kit::metrics;

use crate::app::AppState;
use crate::error::Error;
use crate::store::Store;

pub fn router(state: AppState) -> Router {
    let redis = redis_check(state.store.clone());
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

fn redis_check(store: Store) -> ReadinessCheck {
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.ping().await.map_err(|e| format!("{e:?}")) })
    })
}
