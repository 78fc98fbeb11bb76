use reqwest::{Method, StatusCode};
use serde_json::json;
use test_support::TestKeys;

use crate::helpers::spawn_app;

#[tokio::test]
async fn booking_without_a_valid_token_for_this_event_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let other = app.numbered_event(3).await;
    let stranger = TestKeys::new();
    let cases: Vec<(Option<String>, StatusCode, &str)> = vec![
        (None, StatusCode::UNAUTHORIZED, "missing_token"),
        (Some("not-a-jwt".into()), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(app.keys.expired_token("fan", event.id)), StatusCode::UNAUTHORIZED, "token_expired"),
        (Some(stranger.token("fan", event.id)), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(app.keys.token("fan", other.id)), StatusCode::FORBIDDEN, "token_for_other_event"),
    ];
    for (token, status, code) in cases {
        let reply =
            app.send(Method::POST, &event.path("/bookings"), token.as_deref(), Some(json!({ "seats": ["1"] }))).await;
        assert_eq!(reply.status, status, "{code}: {}", reply.body);
        assert_eq!(reply.code(), code);
    }
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

#[tokio::test]
async fn a_valid_token_books() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let reply = app.book(&event, "fan-1", json!({ "seats": ["2"] })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["seats"][0]["label"], "2");
    assert_eq!(reply.body["total"], json!({ "amount_minor": 2500, "currency": "EUR" }));
}
