//! HTTP only: each handler extracts, calls one function, and maps the result.

mod admin;
pub mod bodies;
mod public;
mod queue;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Method};
use service_kit::health::{self, ReadinessCheck};
use service_kit::router::{service_router, Routers};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// Every route is declared with its OpenAPI description (`#[utoipa::path]`), which
/// `service_router` serves as `/openapi.json`.
pub fn router(state: AppState, page_origins_allowed: &[String]) -> Routers {
    let redis = health::redis_check(state.store.connection());
    let postgres = postgres_reached(state.restorer.ledger().database().pool().clone());
    let mut api =
        OpenApiRouter::new().merge(queue::router()).merge(admin::router()).merge(public::router()).with_state(state);
    describe_links(api.get_openapi_mut());
    let mut routers = service_router("waitroom", api, vec![("redis", redis), ("postgres", postgres)]);
    routers.public = routers.public.layer(page_origins(page_origins_allowed));
    routers
}

/// The fans' and the organizer's pages are served by the gateway (README "Origins"):
/// their browsers may call this API from those origins only, without cookies (the
/// organizer's page sends the admin key as a bearer header).
fn page_origins(origins: &[String]) -> CorsLayer {
    let origins = origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok());
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([CONTENT_TYPE, AUTHORIZATION])
        .expose_headers([RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(3600))
}

/// A join's ticket is what the fan polls, streams, leaves and gets a receipt with.
fn describe_links(openapi: &mut utoipa::openapi::OpenApi) {
    for status in ["200", "201"] {
        for to in ["poll", "stream", "leave", "receipt"] {
            let parameters = [("event_id", "$request.path.event_id"), ("ticket", "$response.body#/ticket")];
            service_kit::openapi::link(openapi, "join", status, to, &parameters);
        }
    }
}

/// Ready once PostgreSQL has answered with every migration this binary knows applied,
/// and from then on whatever PostgreSQL does. A replica that never reached its database
/// is misconfigured (or its migrations have not run) and should not take fans; one whose
/// migrations are still running in the background (`database.migrate_on_start`) is not
/// ready either: the tables exist from an early migration on, and the organizer's writes
/// met a column a later one adds (a `500`, seen on a fresh database). But fans' joins and polls
/// never need PostgreSQL, and admissions wait in a buffer while it is away: were every
/// replica to turn unready during a database outage, the load balancer would take the
/// whole waiting room offline for what is only a pause in the organizer's writes.
fn postgres_reached(pool: sqlx::PgPool) -> ReadinessCheck {
    let reached = Arc::new(AtomicBool::new(false));
    Arc::new(move || {
        let (pool, reached) = (pool.clone(), reached.clone());
        Box::pin(async move {
            if reached.load(Ordering::Relaxed) {
                return Ok(());
            }
            let latest = schema::MIGRATOR.iter().map(|migration| migration.version).max().unwrap_or_default();
            sqlx::query("SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND success")
                .bind(latest)
                .fetch_one(&pool)
                .await
                .map_err(|e| format!("migration {latest} not applied: {e}"))?;
            reached.store(true, Ordering::Relaxed);
            Ok(())
        })
    })
}
