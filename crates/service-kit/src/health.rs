use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// What a check that outlived [`READINESS_DEADLINE`] is logged as.
pub const TIMED_OUT: &str = "timed out";

/// How long one round of checks answers `/readyz`: every probe within it (kubelet,
/// load balancers, a curious client on the management port) shares one round, so
/// probing costs each dependency at most one round trip per second per replica.
pub const READINESS_CACHE: Duration = Duration::from_secs(1);

/// `/healthz` answers while the process runs; `/readyz` runs every named check and
/// answers 503 naming the failing ones (names only: a driver's error text can carry
/// host names and user names, so the reasons go to the log, once per change), so a
/// load balancer stops routing to a replica that cannot reach its database. `/readyz`
/// answers within [`READINESS_DEADLINE`]: a check still running then is dropped and
/// counted as failing ("timed out" in the log). One round of checks answers every
/// probe for [`READINESS_CACHE`]; probes arriving while a round runs wait for it.
pub fn router(checks: Vec<(&'static str, ReadinessCheck)>) -> Router {
    let readiness = Arc::new(Readiness::new(checks));
    liveness_router().route(
        "/readyz",
        get(move || {
            let readiness = readiness.clone();
            async move {
                let failing = readiness.failing().await;
                if failing.is_empty() {
                    (StatusCode::OK, Json(json!({ "status": "ready" })))
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "failing": *failing })))
                }
            }
        }),
    )
}

/// `/healthz` alone: the process runs. Free to answer, so it may face the public.
pub fn liveness_router() -> Router {
    Router::new().route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
}

/// The failing checks of one round, by name.
type FailingNames = Arc<Vec<&'static str>>;

/// The checks and the last round's outcome.
struct Readiness {
    checks: Vec<(&'static str, ReadinessCheck)>,
    /// When the last round started, and the names that failed in it. A tokio mutex:
    /// probes that arrive while a round runs wait for its outcome instead of starting
    /// rounds of their own.
    last: tokio::sync::Mutex<Option<(Instant, FailingNames)>>,
}

impl Readiness {
    fn new(checks: Vec<(&'static str, ReadinessCheck)>) -> Self {
        Self { checks, last: tokio::sync::Mutex::new(None) }
    }

    /// The failing checks' names, sorted, from a round at most [`READINESS_CACHE`] old.
    async fn failing(&self) -> FailingNames {
        let mut last = self.last.lock().await;
        if let Some((at, failing)) = last.as_ref() {
            if at.elapsed() < READINESS_CACHE {
                return failing.clone();
            }
        }
        let started = Instant::now();
        let reasons = failing_checks(&self.checks, READINESS_DEADLINE).await;
        let mut names: Vec<&'static str> = reasons.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let previous = last.as_ref().map(|(_, failing)| failing.clone());
        if previous.as_deref() != Some(&names) {
            if names.is_empty() {
                tracing::info!("ready");
            } else {
                for (name, reason) in &reasons {
                    tracing::warn!(check = name, reason, "not ready");
                }
            }
        }
        let names = Arc::new(names);
        *last = Some((started, names.clone()));
        names
    }
}

/// Runs every check concurrently, each bounded by `deadline` from now; the failing
/// ones by name, with their reasons (for the log).
async fn failing_checks(checks: &[(&'static str, ReadinessCheck)], deadline: Duration) -> Vec<(&'static str, String)> {
    let deadline = tokio::time::Instant::now() + deadline;
    let outcomes = futures::future::join_all(checks.iter().map(|(name, check)| async move {
        let outcome = tokio::time::timeout_at(deadline, check()).await.unwrap_or_else(|_| Err(TIMED_OUT.to_owned()));
        (*name, outcome)
    }))
    .await;
    outcomes.into_iter().filter_map(|(name, outcome)| outcome.err().map(|reason| (name, reason))).collect()
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
        assert_eq!(body, json!({ "status": "unavailable", "failing": ["fails", "hangs"] }));
        assert!(took < Duration::from_secs(2), "answered after {took:?}");
    }

    fn counting(count: &Arc<std::sync::atomic::AtomicUsize>, outcome: Result<(), &'static str>) -> ReadinessCheck {
        let count = count.clone();
        Arc::new(move || {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { outcome.map_err(str::to_owned) })
        })
    }

    #[tokio::test]
    async fn the_body_names_failing_checks_but_never_their_reasons() {
        let (status, body, _) = readyz(vec![
            ("postgres", check(Err("error communicating with database: Connection refused (os error 111)"))),
            ("redis", check(Ok(()))),
        ])
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, json!({ "status": "unavailable", "failing": ["postgres"] }));
    }

    #[tokio::test]
    async fn probes_within_a_second_share_one_check() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let router = router(vec![("postgres", counting(&count, Ok(())))]);
        let probe = || {
            let router = router.clone();
            async move { router.oneshot(Request::get("/readyz").body(Body::empty()).unwrap()).await.unwrap().status() }
        };
        // At once and one after another, within the cache's lifetime: one check.
        let statuses = futures::future::join_all((0..20).map(|_| probe())).await;
        assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
        for _ in 0..20 {
            assert_eq!(probe().await, StatusCode::OK);
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "checks run for 40 probes within 1 s");
        // After the lifetime, the next probe checks again.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(probe().await, StatusCode::OK);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
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
