//! HTTP only: each handler extracts, calls one function, and maps the result.

mod admin;
mod public;
mod queue;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use service_kit::health::{self, ReadinessCheck};
use service_kit::router::{service_router, Routers};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// Every route is declared with its OpenAPI description (`#[utoipa::path]`), which
/// `service_router` serves as `/openapi.json`.
pub fn router(state: AppState) -> Routers {
    let redis = health::redis_check(state.store.connection());
    let postgres = postgres_reached(state.restorer.ledger().database().pool().clone());
    let api =
        OpenApiRouter::new().merge(queue::router()).merge(admin::router()).merge(public::router()).with_state(state);
    service_router("waitroom", api, vec![("redis", redis), ("postgres", postgres)])
}

/// Ready once PostgreSQL has answered with the waiting room's tables, and from then on
/// whatever PostgreSQL does. A replica that never reached its database is misconfigured
/// (or its migrations have not run) and should not take fans. But fans' joins and polls
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
            sqlx::query("SELECT 1 FROM waitroom_events LIMIT 1").execute(&pool).await.map_err(|e| e.to_string())?;
            reached.store(true, Ordering::Relaxed);
            Ok(())
        })
    })
}
