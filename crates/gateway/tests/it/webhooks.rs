//! The organizer's webhook endpoints: registering (the secret shown once), listing
//! (never the secret), and the delivery log.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sales::outbox::{HoldExpired, Message};
use sales::store::deliveries::{self, Attempt, Next};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp, ADMIN_KEY};

async fn register(app: &TestApp, body: Value) -> test_support::Reply {
    app.send(Method::POST, "/v1/admin/webhooks", Some(ADMIN_KEY), Some(body)).await
}

#[tokio::test]
async fn a_registered_endpoint_shows_its_secret_once_and_is_listed_without_it() {
    let app = spawn_app().await;
    let event = app.ga_event(10).await;

    let all = register(&app, json!({ "url": "https://hooks.example.com/boxoffice" })).await;
    let filtered = register(
        &app,
        json!({ "url": "http://127.0.0.1:9/in", "event_id": event.id, "topics": ["booking.confirmed", "hold.expired"] }),
    )
    .await;

    assert_eq!(all.status, StatusCode::CREATED, "{}", all.body);
    assert_eq!(filtered.status, StatusCode::CREATED, "{}", filtered.body);
    let secret = all.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44, "{secret}");
    assert_ne!(all.body["secret"], filtered.body["secret"]);
    let created_at = all.body["created_at"].clone();
    assert_eq!(
        all.body,
        json!({
            "id": all.body["id"], "url": "https://hooks.example.com/boxoffice", "event_id": null, "topics": null,
            "active": true, "created_at": created_at, "disabled_at": null, "disabled_reason": null, "secret": secret,
        })
    );
    let listed = app.send(Method::GET, "/v1/admin/webhooks", Some(ADMIN_KEY), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let without_secret = |reply: &test_support::Reply| {
        let mut body = reply.body.clone();
        body.as_object_mut().unwrap().remove("secret");
        body
    };
    assert_eq!(listed.body, json!({ "webhooks": [without_secret(&all), without_secret(&filtered)] }));
    assert_eq!(filtered.body["event_id"], json!(event.id));
    assert_eq!(filtered.body["topics"], json!(["booking.confirmed", "hold.expired"]));
    assert!(!listed.body.to_string().contains("whsec_"));
}

#[tokio::test]
async fn bad_endpoints_are_refused_with_422_and_nothing_is_registered() {
    let app = spawn_app().await;
    let cases = [
        (json!({ "url": "not a url" }), "invalid_webhook_url"),
        (json!({ "url": "ftp://example.com/" }), "invalid_webhook_url"),
        (json!({ "url": "https://user:password@example.com/" }), "invalid_webhook_url"),
        (json!({ "url": format!("https://example.com/{}", "a".repeat(3000)) }), "invalid_webhook_url"),
        (json!({ "url": "https://example.com/", "topics": [] }), "invalid_topics"),
        (json!({ "url": "https://example.com/", "topics": ["booking.exploded"] }), "invalid_topics"),
        (json!({ "url": "https://example.com/", "event_id": Uuid::new_v4() }), "unknown_event"),
    ];
    for (body, code) in cases {
        let reply = register(&app, body.clone()).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, code), "{body}: {}", reply.body);
    }
    let reply = register(&app, json!({ "url": "https://example.com/", "extra": 1 })).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let refused = app
        .send(Method::POST, "/v1/admin/webhooks", Some("wrong-key"), Some(json!({ "url": "https://example.com/" })))
        .await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "admin_key_required"));
    let listed = app.send(Method::GET, "/v1/admin/webhooks", Some(ADMIN_KEY), None).await;
    assert_eq!(listed.body, json!({ "webhooks": [] }));
}

#[tokio::test]
async fn the_delivery_log_shows_each_messages_status_attempts_and_last_answer() {
    let app = spawn_app().await;
    let registered = register(&app, json!({ "url": "http://127.0.0.1:9/hook" })).await;
    let id: Uuid = registered.body["id"].as_str().unwrap().parse().unwrap();
    let (event, hold) = (Uuid::new_v4(), Uuid::new_v4());
    let message = |quantity| {
        Message::HoldExpired(HoldExpired { event_id: event, hold_id: hold, fan_id: "fan-1".into(), quantity })
    };
    let mut conn = app.pool.acquire().await.unwrap();
    sales::store::outbox::enqueue(&mut conn, &[message(1), message(2)]).await.unwrap();
    // One attempt at the head, as the relay makes it: answered 500, retried later.
    let claimed = deliveries::claim(&mut conn, 10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1, "only the stream's head");
    let attempt = Attempt {
        duration: Duration::from_millis(12),
        response_status: Some(500),
        error: Some("answered 500 Internal Server Error".into()),
    };
    assert!(deliveries::record(&mut conn, &claimed[0], &attempt, Next::RetryAfter(Duration::from_secs(5)))
        .await
        .unwrap());
    let ids: Vec<(Uuid,)> =
        sqlx::query_as("SELECT message_id FROM outbox_messages ORDER BY id").fetch_all(&app.pool).await.unwrap();

    let log = app.send(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries"), Some(ADMIN_KEY), None).await;

    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let entries = log.body["deliveries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let (newest, head) = (&entries[0], &entries[1]);
    let pick =
        |entry: &Value, keys: &[&str]| -> Value { keys.iter().map(|k| (k.to_string(), entry[k].clone())).collect() };
    let keys = [
        "message_id",
        "event_id",
        "topic",
        "status",
        "attempts",
        "delivered_at",
        "last_response_status",
        "last_error",
        "last_duration_ms",
    ];
    assert_eq!(
        pick(head, &keys),
        json!({
            "message_id": ids[0].0, "event_id": event, "topic": "hold.expired", "status": "pending", "attempts": 1,
            "delivered_at": null, "last_response_status": 500, "last_error": "answered 500 Internal Server Error",
            "last_duration_ms": 12,
        })
    );
    assert_eq!(
        pick(newest, &keys),
        json!({
            "message_id": ids[1].0, "event_id": event, "topic": "hold.expired", "status": "pending", "attempts": 0,
            "delivered_at": null, "last_response_status": null, "last_error": null, "last_duration_ms": null,
        })
    );
    assert!(
        head["last_attempt_at"].is_string() && head["next_attempt_at"].is_string() && head["created_at"].is_string()
    );
    assert_eq!(newest["last_attempt_at"], Value::Null);
    assert_eq!((&log.body["limit"], &log.body["offset"]), (&json!(100), &json!(0)));

    let page = app
        .send(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries?limit=1&offset=1"), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(page.body["deliveries"], json!([head]));
    let bad =
        app.send(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries?limit=0"), Some(ADMIN_KEY), None).await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "bad_request"));
    let missing = app
        .send(Method::GET, &format!("/v1/admin/webhooks/{}/deliveries", Uuid::new_v4()), Some(ADMIN_KEY), None)
        .await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "webhook_not_found"));
}
