use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::Service;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::error_body;

/// The most a request's headers may weigh (names, values and separators): past it, the
/// request is refused `431 headers_too_large` in the error envelope before any route
/// runs. hyper refuses by itself, with an empty `431` and the connection closed, only
/// headers past its read buffer (about 400 KB) or more than 100 of them.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How long a client may take: every listener closes slow clients instead of keeping
/// a connection (and its memory) for as long as they like.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct HttpConfig {
    /// A request's headers must arrive within this; it is also how long an idle
    /// keep-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive within this.
    pub body_read_timeout_ms: u64,
    /// A request is answered within this, or `503`: `outcome_unknown` for requests that
    /// may change something, `unavailable` for the others. Longer than any database or
    /// Redis work the service bounds itself, so that answer is a last resort.
    pub request_timeout_ms: u64,
}

impl HttpConfig {
    /// `section` names the configuration section in messages.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        for (name, value) in [
            ("header_read_timeout_ms", self.header_read_timeout_ms),
            ("body_read_timeout_ms", self.body_read_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if value == 0 {
                return Err(format!("{section}.http.{name} must be at least 1"));
            }
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting
/// and gives in-flight requests up to `grace` to finish. Handlers can extract the
/// peer's `ConnectInfo<SocketAddr>` (per-address rate limits need it).
///
/// hyper is driven directly rather than through `axum::serve`, which sets no header
/// read timeout: a client trickling its headers kept a connection open for 75 s.
pub async fn serve(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    http: &HttpConfig,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(service = name, %addr, "listening");
    let request_timeout = http.request_timeout();
    let router = router
        .layer(RequestBodyTimeoutLayer::new(Duration::from_millis(http.body_read_timeout_ms)))
        .layer(middleware::from_fn(move |request: Request, next: Next| answer_within(request_timeout, request, next)))
        .layer(middleware::from_fn(refuse_oversized_headers));
    let mut connections = auto::Builder::new(TokioExecutor::new());
    connections
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
    connections.http2().timer(TokioTimer::new());
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    let open = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors or similar: pause instead of spinning.
                Err(e) => {
                    tracing::warn!(service = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = unwrap_infallible(make_service.call(peer).await);
        let connection = connections
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = open.watch(connection);
        tokio::spawn(async move {
            // Clients that hang up or time out end here; nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, open.shutdown()).await.is_err() {
        tracing::warn!(service = name, grace_secs = grace.as_secs(), "in-flight requests did not finish in time");
    }
    Ok(())
}

/// Serves a service's public `router` on `listener` and its management router (probes
/// and metrics, see [`crate::router::Routers`]) on `management`, both as [`serve`] does,
/// until `shutdown`; returns once both have drained.
pub async fn serve_with_management(
    name: &'static str,
    (listener, router): (TcpListener, Router),
    (management, management_router): (TcpListener, Router),
    shutdown: CancellationToken,
    grace: Duration,
    http: &HttpConfig,
) -> std::io::Result<()> {
    let public = serve(name, listener, router, shutdown.clone(), grace, http);
    let management = serve(name, management, management_router, shutdown, grace, http);
    tokio::try_join!(public, management).map(drop)
}

async fn refuse_oversized_headers(request: Request, next: Next) -> Response {
    let weight: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if weight > MAX_HEADER_BYTES {
        return error_body::error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's headers weigh more than {} KiB", MAX_HEADER_BYTES / 1024),
        );
    }
    next.run(request).await
}

/// The last-resort request timeout. Database and Redis work answers within its own
/// deadlines first; this bounds everything else a handler might wait on.
async fn answer_within(limit: Duration, request: Request, next: Next) -> Response {
    let changes_something = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) if changes_something => error_body::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "outcome_unknown",
            "the request was not answered in time: it may or may not have taken effect; retry with the same \
             Idempotency-Key to learn which",
        ),
        Err(_) => error_body::error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the request was not answered in time; try again shortly",
        ),
    }
}

fn unwrap_infallible<T>(result: Result<T, Infallible>) -> T {
    match result {
        Ok(value) => value,
        Err(never) => match never {},
    }
}
