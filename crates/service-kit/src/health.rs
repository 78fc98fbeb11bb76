use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// A dependency check for `/readyz`: `Ok` when reachable, else a short reason.
pub type ReadinessCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `/healthz` answers while the process runs; `/readyz` runs every named check and
/// answers 503 with the failing ones, so a load balancer stops routing to a replica
/// that cannot reach its database.
pub fn router(checks: Vec<(&'static str, ReadinessCheck)>) -> Router {
    let checks = Arc::new(checks);
    Router::new().route("/healthz", get(|| async { Json(json!({ "status": "ok" })) })).route(
        "/readyz",
        get(move || {
            let checks = checks.clone();
            async move {
                let mut failing = serde_json::Map::new();
                for (name, check) in checks.iter() {
                    if let Err(reason) = check().await {
                        failing.insert((*name).to_owned(), reason.into());
                    }
                }
                if failing.is_empty() {
                    (StatusCode::OK, Json(json!({ "status": "ready" })))
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "failing": failing })))
                }
            }
        }),
    )
}

pub fn postgres_check(pool: sqlx::PgPool) -> ReadinessCheck {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()) })
    })
}
