//! The management listener: `/metrics` and `/readyz` answer there, never on the public
//! port, and `/readyz` names a failing dependency without its error text.

use reqwest::StatusCode;
use serde_json::json;
use test_support::Reply;

use crate::helpers::{spawn_app, spawn_app_with_unreachable_database};

#[tokio::test]
async fn metrics_and_readyz_are_not_found_on_the_public_port() {
    let app = spawn_app().await;
    for path in ["/metrics", "/readyz"] {
        let reply = Reply::of(app.http.get(app.url(path))).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "public {path}: {}", reply.body);
    }
    // Load balancers in front of the public port may still ask whether the process runs.
    let reply = Reply::of(app.http.get(app.url("/healthz"))).await;
    assert_eq!(reply.status, StatusCode::OK, "public /healthz");
}

#[tokio::test]
async fn the_management_port_serves_probes_and_metrics() {
    let app = spawn_app().await;
    assert_ne!(app.management_url(""), app.url(""), "a listener of its own");
    for path in ["/healthz", "/readyz"] {
        let reply = Reply::of(app.http.get(app.management_url(path))).await;
        assert_eq!(reply.status, StatusCode::OK, "management {path}: {}", reply.body);
    }
    let metrics = app.http.get(app.management_url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.text().await.unwrap().contains("# TYPE boxoffice_"), "Prometheus text");
    // The API is not served there.
    let reply = Reply::of(app.http.get(app.management_url("/v1/events"))).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "not_found"), "{}", reply.body);
}

#[tokio::test]
async fn readyz_names_an_unreachable_database_without_the_driver_error() {
    let app = spawn_app_with_unreachable_database().await;
    let reply = Reply::of(app.http.get(app.management_url("/readyz"))).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // Nor could it read the revocations: it refuses fans until it does.
    assert_eq!(reply.body, json!({ "status": "unavailable", "failing": ["postgres", "revocations"] }));
}
