use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_same_booking_and_books_once() {
    let app = spawn_app().await;
    let event = app.ga_event(10).await;
    let token = app.token("fan", &event);
    let body = json!({ "section_id": event.sections[0], "quantity": 2 });
    let send = || {
        app.send_with(
            Method::POST,
            &event.path("/bookings"),
            Some(&token),
            Some(body.clone()),
            &[("Idempotency-Key", "order-42")],
        )
    };
    let first = send().await;
    let retry = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(first.body, retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(app.assert_inventory_consistent(&event).await, 2);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_book_once() {
    let app = spawn_app().await;
    let event = app.ga_event(50).await;
    let token = app.token("fan", &event);
    let body = json!({ "section_id": event.sections[0], "quantity": 1 });
    let replies = attempts_with_one_key(&app, &event, "/holds", &token, &body, 10).await;
    let ids = created_ids(&replies);
    assert_eq!(ids.len(), 1);
    let (holds,): (i64,) = sqlx::query_as("SELECT count(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_refused() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let token = app.token("fan", &event);
    let key = [("Idempotency-Key", "same")];
    let path = event.path("/bookings");
    let first = app.send_with(Method::POST, &path, Some(&token), Some(json!({ "seats": ["1"] })), &key).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let other = app.send_with(Method::POST, &path, Some(&token), Some(json!({ "seats": ["2"] })), &key).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other.code(), "idempotency_key_reused");
    let as_hold =
        app.send_with(Method::POST, &event.path("/holds"), Some(&token), Some(json!({ "seats": ["1"] })), &key).await;
    assert_eq!(as_hold.code(), "idempotency_key_reused", "a key belongs to one kind of request");
    assert_eq!(app.assert_inventory_consistent(&event).await, 1);
}

#[tokio::test]
async fn a_failed_attempt_leaves_the_key_free_for_a_retry() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let blocker = app.hold(&event, "blocker", json!({ "seats": ["1"] })).await;
    let token = app.token("fan", &event);
    let key = [("Idempotency-Key", "try-again")];
    let path = event.path("/bookings");
    let failed = app.send_with(Method::POST, &path, Some(&token), Some(json!({ "seats": ["1"] })), &key).await;
    assert_eq!(failed.code(), "seat_unavailable");

    let blocker_token = app.token("blocker", &event);
    let hold_path = event.path(&format!("/holds/{}", blocker.body["id"].as_str().unwrap()));
    app.send(Method::DELETE, &hold_path, Some(&blocker_token), None).await;
    let retried = app.send_with(Method::POST, &path, Some(&token), Some(json!({ "seats": ["1"] })), &key).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);
}

#[tokio::test]
async fn a_malformed_key_is_400() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let token = app.token("fan", &event);
    let long = "k".repeat(300);
    let reply = app
        .send_with(
            Method::POST,
            &event.path("/bookings"),
            Some(&token),
            Some(json!({ "seats": ["1"] })),
            &[("Idempotency-Key", &long)],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

/// A retry storm from one fan: every attempt with the key holds one connection at most
/// (the replay is read through the claim's own transaction), so 50 of them on a pool of
/// 4 all answer, none with 503, and one order is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_attempts_with_one_key_on_a_pool_of_four_make_one_order_and_no_503() {
    let app = crate::helpers::spawn_app_with_pool_size(4).await;
    let event = app.ga_event(100).await;
    let token = app.token("fan", &event);
    let body = json!({ "section_id": event.sections[0], "quantity": 2 });
    let replies = attempts_with_one_key(&app, &event, "/bookings", &token, &body, 50).await;
    let ids = created_ids(&replies);
    assert_eq!(ids.len(), 1);
    let replayed = replies.iter().filter(|r| r.headers.get("idempotent-replayed").is_some()).count();
    assert_eq!(replayed, 49);
    assert_eq!(app.assert_inventory_consistent(&event).await, 2);
}

/// `n` concurrent attempts of the same request with one `Idempotency-Key`.
async fn attempts_with_one_key(
    app: &crate::helpers::TestApp,
    event: &crate::helpers::Event,
    path: &str,
    token: &str,
    body: &serde_json::Value,
    n: usize,
) -> Vec<test_support::Reply> {
    let attempt =
        || app.send_with(Method::POST, &event.path(path), Some(token), Some(body.clone()), &[("Idempotency-Key", "k")]);
    futures::future::join_all((0..n).map(|_| attempt())).await
}

/// The ids of what the replies created; every reply must be `201`.
fn created_ids(replies: &[test_support::Reply]) -> std::collections::HashSet<serde_json::Value> {
    replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.body["id"].clone()
        })
        .collect()
}
