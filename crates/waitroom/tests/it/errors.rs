//! Requests refused before any handler runs answer in the JSON error envelope too.

use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::Reply;
use uuid::Uuid;

use crate::helpers::{settings, spawn_app, ADMIN_KEY};

#[tokio::test]
async fn an_oversized_body_answers_413_in_the_error_envelope() {
    let app = spawn_app().await;
    let event_id = app.new_event(settings(10.0, 100)).await;
    let oversized = serde_json::to_vec(&json!({ "fan_id": "x".repeat(3 * 1024 * 1024) })).unwrap();
    let join = app.http.post(format!("{}/v1/events/{event_id}/queue", app.base)).body(oversized.clone());
    let settings = app
        .http
        .put(format!("{}/v1/admin/events/{event_id}/waitroom", app.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body(oversized);
    for request in [join, settings] {
        let reply = Reply::of(request).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            "{}",
            reply.body
        );
    }
}

#[tokio::test]
async fn a_method_a_route_does_not_take_answers_405_in_the_error_envelope() {
    let app = spawn_app().await;
    let path = format!("{}/v1/events/{}/waitroom", app.base, Uuid::new_v4());
    let reply = Reply::of(app.http.request(Method::DELETE, path)).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
}
