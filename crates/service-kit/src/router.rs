//! The one skeleton every service's router is built on: its API, then `/healthz`,
//! `/readyz` and `/metrics`, the JSON envelope for unknown routes and methods, and the
//! request span and latency histogram around all of it.

use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::Router;

use crate::health::{self, ReadinessCheck};
use crate::{error_response, metrics};

/// `api` (with its state applied) as service `component` serves it.
pub fn service_router(component: &'static str, api: Router, readiness: Vec<(&'static str, ReadinessCheck)>) -> Router {
    let router = api
        .merge(health::router(readiness))
        .merge(metrics::router())
        .fallback(not_found)
        // After every route is in place: it applies to the routes already added.
        .method_not_allowed_fallback(method_not_allowed);
    metrics::instrument(router, component)
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
    use axum::routing::get;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    async fn call(method: Method, path: &str) -> (StatusCode, Option<String>, Value) {
        let api = Router::new().route("/things", get(|| async { "things" }));
        let router = service_router("test", api, Vec::new());
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
    async fn known_routes_answer_as_before() {
        assert_eq!(call(Method::GET, "/things").await.0, StatusCode::OK);
        assert_eq!(call(Method::GET, "/healthz").await.0, StatusCode::OK);
    }
}
