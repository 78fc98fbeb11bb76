//! HTTP only: each handler extracts, calls one function, and maps the result.

mod admin;
mod extract;
mod public;
mod queue;

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::Request;
use axum::Router;
use service_kit::health::ReadinessCheck;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::error::Error;
use crate::store::Store;

pub fn router(state: AppState) -> Router {
    let redis = redis_check(state.store.clone());
    Router::new()
        .merge(queue::router())
        .merge(admin::router())
        .merge(public::router())
        .with_state(state)
        .merge(service_kit::health::router(vec![("redis", redis)]))
        // Unknown paths answer the same JSON envelope as everything else.
        .fallback(|| async { Error::NotFound("route") })
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let route = request.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
            tracing::info_span!("request", method = %request.method(), route)
        }))
}

fn redis_check(store: Store) -> ReadinessCheck {
    Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.ping().await.map_err(|e| format!("{e:?}")) })
    })
}
