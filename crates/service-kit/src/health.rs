use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use redis::aio::ConnectionManager;
use serde_json::json;

/// A dependency check for `/readyz`: `Ok` when reachable, else a short reason.
pub type ReadinessCheck = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// How long `/readyz` waits for all its checks, which run at once. Shorter than a
/// Kubernetes probe's default `timeoutSeconds` (1 s), so the probe receives our answer
/// naming the slow dependency rather than giving up on its own; and a partition (no
/// bytes flow, nothing fails) gives a prompt 503 instead of a hanging probe.
pub const READINESS_DEADLINE: Duration = Duration::from_millis(800);

/// What a check that outlived [`READINESS_DEADLINE`] is reported as.
pub const TIMED_OUT: &str = "timed out";

/// `/healthz` answers while the process runs; `/readyz` runs every named check and
/// answers 503 with the failing ones, so a load balancer stops routing to a replica
/// that cannot reach its database. `/readyz` answers within [`READINESS_DEADLINE`]:
/// a check still running then is dropped (as it was before whenever the prober hung
/// up) and named `"timed out"`.
pub fn router(checks: Vec<(&'static str, ReadinessCheck)>) -> Router {
    let checks = Arc::new(checks);
    Router::new().route("/healthz", get(|| async { Json(json!({ "status": "ok" })) })).route(
        "/readyz",
        get(move || {
            let checks = checks.clone();
            async move {
                let failing = failing_checks(&checks, READINESS_DEADLINE).await;
                if failing.is_empty() {
                    (StatusCode::OK, Json(json!({ "status": "ready" })))
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "failing": failing })))
                }
            }
        }),
    )
}

/// Runs every check concurrently, each bounded by `deadline` from now; the failing
/// ones by name, with their reasons.
async fn failing_checks(
    checks: &[(&'static str, ReadinessCheck)],
    deadline: Duration,
) -> serde_json::Map<String, serde_json::Value> {
    let deadline = tokio::time::Instant::now() + deadline;
    let outcomes = futures::future::join_all(checks.iter().map(|(name, check)| async move {
        let outcome = tokio::time::timeout_at(deadline, check()).await.unwrap_or_else(|_| Err(TIMED_OUT.to_owned()));
        (*name, outcome)
    }))
    .await;
    outcomes
        .into_iter()
        .filter_map(|(name, outcome)| outcome.err().map(|reason| (name.to_owned(), reason.into())))
        .collect()
}

pub fn postgres_check(pool: sqlx::PgPool) -> ReadinessCheck {
    Arc::new(move || {
        let pool = pool.clone();
        Box::pin(async move { sqlx::query("SELECT 1").execute(&pool).await.map(|_| ()).map_err(|e| e.to_string()) })
    })
}

/// `PING` through the service's own connection manager, so "ready" means the very
/// connection requests use works (or, while Redis is down, that it reconnected).
pub fn redis_check(conn: ConnectionManager) -> ReadinessCheck {
    Arc::new(move || {
        let mut conn = conn.clone();
        Box::pin(async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string())
        })
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn check(outcome: Result<(), &'static str>) -> ReadinessCheck {
        Arc::new(move || Box::pin(async move { outcome.map_err(str::to_owned) }))
    }

    fn hanging() -> ReadinessCheck {
        Arc::new(|| Box::pin(std::future::pending()))
    }

    async fn readyz(checks: Vec<(&'static str, ReadinessCheck)>) -> (StatusCode, Value, Duration) {
        let started = Instant::now();
        let response = router(checks).oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap(), started.elapsed())
    }

    #[tokio::test]
    async fn ready_when_every_check_passes() {
        let (status, body, _) = readyz(vec![("a", check(Ok(()))), ("b", check(Ok(())))]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({ "status": "ready" }));
    }

    #[tokio::test]
    async fn a_hanging_check_is_named_timed_out_and_does_not_hold_the_answer() {
        let (status, body, took) =
            readyz(vec![("hangs", hanging()), ("fails", check(Err("refused"))), ("passes", check(Ok(())))]).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({ "status": "unavailable", "failing": { "hangs": "timed out", "fails": "refused" } }));
        assert!(took < Duration::from_secs(2), "answered after {took:?}");
    }

    #[tokio::test]
    async fn checks_run_concurrently() {
        // Each check waits until all three have started: run one after another, the
        // first would wait forever and time out.
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let meet = || -> ReadinessCheck {
            let barrier = barrier.clone();
            Arc::new(move || {
                let barrier = barrier.clone();
                Box::pin(async move {
                    barrier.wait().await;
                    Ok(())
                })
            })
        };
        let (status, body, _) = readyz(vec![("a", meet()), ("b", meet()), ("c", meet())]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
