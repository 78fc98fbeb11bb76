//! The one skeleton every service's routers are built on: on the public listener its
//! API, `/healthz` and `/openapi.json`; on the management listener `/healthz`, `/readyz`
//! and `/metrics`; on both the JSON envelope for unknown routes and methods, and the
//! request span and latency histogram around all of it.
//!
//! `/metrics` (it names events) and `/readyz` (a dependency round trip per round)
//! are not public: the management listener is on loopback by default and, in
//! Kubernetes, reached by the kubelet and Prometheus on the pod's own port, never
//! through the public Service or an Ingress. `/healthz` stays on the public listener
//! too: it costs nothing and tells nothing, and load balancers that only reach the
//! public port (a cloud load balancer's health check, an Ingress controller's) need
//! something there to ask.
//!
//! A handler that panics is answered `500 internal` in the envelope, and the panic
//! logged, rather than the connection ending without an answer (a client could not
//! tell that from a network fault, and would retry into the same bug).
//!
//! Public answers are gzip-compressed when the client accepts it and they are large
//! (see [`crate::compression`]).
//!
//! A service declares its API as a [`OpenApiRouter`] of handlers each described by
//! `#[utoipa::path(…)]` (method, path, parameters, body, every status it answers), so
//! its OpenAPI description is written beside the code and cannot leave a route out;
//! `/openapi.json` serves it.

use std::future::ready;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::health::{self, ReadinessCheck};
use crate::{error_response, metrics, openapi};

/// A service's two routers: one per listener.
pub struct Routers {
    /// The API, `/healthz` and `/openapi.json`.
    pub public: Router,
    /// `/healthz`, `/readyz` (the `readiness` checks) and `/metrics`.
    pub management: Router,
}

/// `api` (with its state applied) as service `component` serves it.
pub fn service_router(
    component: &'static str,
    api: OpenApiRouter,
    readiness: Vec<(&'static str, ReadinessCheck)>,
) -> Routers {
    Routers { public: public_router(component, api), management: management_router(component, readiness) }
}

/// The management listener's routes, for a service with no API (the scheduler).
pub fn management_router(component: &'static str, readiness: Vec<(&'static str, ReadinessCheck)>) -> Router {
    let router = health::router(readiness)
        .merge(metrics::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    metrics::instrument(router, component)
}

fn public_router(component: &'static str, api: OpenApiRouter) -> Router {
    let (api, mut description) = api.split_for_parts();
    openapi::describe(&mut description, component);
    // Written once: the description cannot change while the service runs.
    let description = Bytes::from(openapi::to_json(&description));
    let router = api
        .route("/openapi.json", get(move || ready(([(CONTENT_TYPE, "application/json")], description.clone()))))
        .merge(health::liveness_router())
        .fallback(not_found)
        // After every route is in place: it applies to the routes already added.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(answer_panic))
        .layer(crate::compression::layer());
    metrics::instrument(router, component)
}

fn answer_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a handler panicked");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "route not found")
}

/// axum adds the `Allow` header listing the methods the route takes.
async fn method_not_allowed(method: Method) -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this route does not take {method}; the Allow header lists the methods it takes"),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::{header, Request};
    use serde_json::{json, Value};
    use tower::ServiceExt;
    use utoipa_axum::routes;

    use super::*;

    /// A route declared as the services declare theirs.
    #[utoipa::path(get, path = "/things", responses((status = 200, description = "the things")))]
    async fn things() -> &'static str {
        "things"
    }

    #[utoipa::path(get, path = "/broken", responses((status = 500, description = "a bug")))]
    async fn broken() -> &'static str {
        panic!("a bug")
    }

    async fn call(method: Method, path: &str) -> (StatusCode, Option<String>, Value) {
        let api = OpenApiRouter::new().routes(routes!(things)).routes(routes!(broken));
        let routers = service_router("test", api, Vec::new());
        let router = if path.starts_with("/management") { routers.management } else { routers.public };
        let path = path.strip_prefix("/management").unwrap_or(path);
        let request = Request::builder().method(method).uri(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let allow = response.headers().get(header::ALLOW).map(|v| v.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), 64 * 1024).await.expect("an in-memory body");
        (status, allow, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_get_the_error_envelope() {
        let (status, _, body) = call(Method::GET, "/nothing/here").await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

        let (status, allow, body) = call(Method::DELETE, "/things").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
        );
        assert_eq!(allow.as_deref(), Some("GET,HEAD"));

        let (status, allow, body) = call(Method::POST, "/healthz").await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
        );
        assert_eq!(allow.as_deref(), Some("GET,HEAD"));
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_in_the_envelope() {
        let (status, _, body) = call(Method::GET, "/broken").await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::INTERNAL_SERVER_ERROR, Some("internal")));
    }

    #[tokio::test]
    async fn known_routes_answer_as_before() {
        assert_eq!(call(Method::GET, "/things").await.0, StatusCode::OK);
        assert_eq!(call(Method::GET, "/healthz").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn probes_and_metrics_answer_on_the_management_router_only() {
        for path in ["/metrics", "/readyz"] {
            let (status, _, body) = call(Method::GET, path).await;
            assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{path}");
            assert_eq!(call(Method::GET, &format!("/management{path}")).await.0, StatusCode::OK, "{path}");
        }
        assert_eq!(call(Method::GET, "/management/healthz").await.0, StatusCode::OK);
        let (status, _, body) = call(Method::GET, "/management/things").await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    }

    #[tokio::test]
    async fn openapi_json_describes_the_api_under_the_service_name() {
        let (status, _, description) = call(Method::GET, "/openapi.json").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(description["openapi"], "3.1.0");
        assert_eq!(description["info"], json!({ "title": "boxoffice test", "version": env!("CARGO_PKG_VERSION") }));
        // The API only: probes, metrics and the description itself are not part of it.
        let paths: Vec<&String> = description["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths, ["/broken", "/things"]);
        assert_eq!(
            description["components"]["schemas"]["ErrorBody"]["properties"]["error"]["required"],
            json!(["code", "message"])
        );
        assert_eq!(description["components"]["securitySchemes"][openapi::ADMIN_KEY]["scheme"], "bearer");
    }
}
