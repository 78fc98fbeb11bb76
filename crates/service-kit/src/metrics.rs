//! Prometheus metrics: one recorder per process, served at `/metrics` by every service,
//! and the metrics every service shares (HTTP latency, database pool, the process).
//!
//! Each service crate names its own metrics in its `metrics.rs`; the README lists them all.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

/// Every HTTP request, by component (`gateway`, `waitroom`), method, route template and
/// status. Not `service` or `job`: Prometheus and its Kubernetes discovery set those.
pub const HTTP_REQUEST_DURATION: &str = "boxoffice_http_request_duration_seconds";
/// Database pool connections, by state (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "boxoffice_db_pool_connections";
/// The database pool's configured size.
pub const DB_POOL_MAX_CONNECTIONS: &str = "boxoffice_db_pool_max_connections";

/// Buckets for every `*_duration_seconds` histogram: sub-millisecond Redis calls up to
/// requests stuck for seconds.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Histogram samples accumulate between scrapes; upkeep folds them into the buckets
/// so memory stays flat even when nothing scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

struct Exporter {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();
/// The process's database pool, read at scrape time by whichever service is scraped.
static POOL: Mutex<Option<PgPool>> = Mutex::new(None);

/// Installs the process-wide recorder. Call it first thing in `main`: anything recorded
/// before it is lost. Later calls (several services in one process, tests) are no-ops.
pub fn install() {
    exporter();
}

fn exporter() -> &'static Exporter {
    EXPORTER.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".to_owned()), LATENCY_BUCKETS)
            .expect("the latency buckets are a non-empty constant")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder was installed first; /metrics shows nothing of ours");
        }
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            })
            .expect("spawning a thread at start-up");
        let process = metrics_process::Collector::default();
        process.describe();
        Exporter { handle, process }
    })
}

/// Reports `pool` as the process's database pool in every `/metrics` answer, whichever
/// service serves it (in `boxoffice all` they share one pool). One pool per process: a
/// later call replaces the earlier pool.
pub fn watch_pool(pool: &PgPool) {
    *POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(pool.clone());
}

/// `GET /metrics` in the Prometheus text format.
pub fn router() -> Router {
    install();
    Router::new()
        .route("/metrics", get(|| async { ([(CONTENT_TYPE, "text/plain; version=0.0.4")], render()).into_response() }))
}

fn render() -> String {
    let exporter = exporter();
    exporter.process.collect();
    let pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    if let Some(pool) = pool {
        let (open, idle) = (pool.size(), pool.num_idle() as u32);
        metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(idle);
        metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(open.saturating_sub(idle));
        metrics::gauge!(DB_POOL_MAX_CONNECTIONS).set(pool.options().get_max_connections());
    }
    exporter.handle.render()
}

/// Wraps every route of `router` in a `request` tracing span and the request-duration
/// histogram. Labels use the route template (`/v1/events/{event_id}`), never the raw
/// path, so ids cannot blow up the number of series.
pub fn instrument(router: Router, component: &'static str) -> Router {
    router
        .layer(middleware::from_fn(move |request: Request, next: Next| record_request(component, request, next)))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &Request| tracing::info_span!("request", method = %request.method(), route = route_of(request)),
        ))
}

async fn record_request(component: &'static str, request: Request, next: Next) -> Response {
    let (method, route) = (request.method().as_str().to_owned(), route_of(&request).to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "component" => component,
        "method" => method,
        "route" => route,
        "status" => response.status().as_str().to_owned()
    )
    .record(started.elapsed());
    response
}

fn route_of(request: &Request) -> &str {
    request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str)
}
