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
    let claimed = deliveries::claim(&mut conn, sales::states::SubscriberKind::Webhook, 10, Duration::from_secs(30))
        .await
        .unwrap();
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

async fn patch(app: &TestApp, id: &str, body: Value) -> test_support::Reply {
    app.send(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some(ADMIN_KEY), Some(body)).await
}

#[tokio::test]
async fn an_endpoint_is_turned_off_and_on_again_and_its_paused_deliveries_resume() {
    let app = spawn_app().await;
    let registered = register(&app, json!({ "url": "https://hooks.example.com/in" })).await;
    let id = registered.body["id"].as_str().unwrap().to_owned();
    let message = |quantity| {
        Message::HoldExpired(HoldExpired {
            event_id: Uuid::nil(),
            hold_id: Uuid::new_v4(),
            fan_id: "fan-1".into(),
            quantity,
        })
    };
    let mut conn = app.pool.acquire().await.unwrap();
    sales::store::outbox::enqueue(&mut conn, &[message(1)]).await.unwrap();

    let off = patch(&app, &id, json!({ "enabled": false })).await;

    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(
        (&off.body["active"], &off.body["disabled_reason"]),
        (&json!(false), &json!("disabled by the organizer"))
    );
    assert!(off.body["disabled_at"].is_string());
    // While off: nothing is claimed, and a message written meanwhile waits too.
    sales::store::outbox::enqueue(&mut conn, &[message(2)]).await.unwrap();
    assert!(deliveries::claim(&mut conn, sales::states::SubscriberKind::Webhook, 10, Duration::from_secs(30))
        .await
        .unwrap()
        .is_empty());
    let again = patch(&app, &id, json!({ "enabled": false })).await;
    assert_eq!(again.body["disabled_at"], off.body["disabled_at"], "turning it off again changes nothing");
    // The log says the paused deliveries are tried at no time (found by schemathesis:
    // their time, PostgreSQL's 'infinity', once ended the answer without a word).
    let log = app.send(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries"), Some(ADMIN_KEY), None).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let pending: Vec<(&Value, &Value)> =
        log.body["deliveries"].as_array().unwrap().iter().map(|d| (&d["status"], &d["next_attempt_at"])).collect();
    assert_eq!(pending, [(&json!("pending"), &Value::Null), (&json!("pending"), &Value::Null)]);

    let on = patch(&app, &id, json!({ "enabled": true })).await;

    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    let mut expected = registered.body.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(on.body, expected, "as registered: active, no disabling");
    let claimed = deliveries::claim(&mut conn, sales::states::SubscriberKind::Webhook, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the stream's head, due again");
    assert!(claimed[0].body.contains("\"quantity\": 1"), "{}", claimed[0].body);

    let missing = patch(&app, &Uuid::new_v4().to_string(), json!({ "enabled": true })).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "webhook_not_found"));
    let bad = patch(&app, &id, json!({ "enabled": "yes" })).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown_field = patch(&app, &id, json!({ "enabled": true, "url": "https://elsewhere.example/" })).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    let refused = app
        .send(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some("wrong-key"), Some(json!({ "enabled": false })))
        .await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "admin_key_required"));
}

#[tokio::test]
async fn rotating_a_secret_answers_the_new_one_once_and_keeps_the_old_for_the_configured_grace() {
    let app = crate::helpers::spawn_app_with(5, |c| c.webhooks.secret_rotation_grace_ms = 90_000).await;
    let registered = register(&app, json!({ "url": "https://hooks.example.com/in" })).await;
    let id = registered.body["id"].as_str().unwrap().to_owned();
    let old = registered.body["secret"].as_str().unwrap().to_owned();

    let rotated =
        app.send(Method::POST, &format!("/v1/admin/webhooks/{id}/rotate-secret"), Some(ADMIN_KEY), None).await;

    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new.len() == 6 + 44 && new != old, "{new}");
    let (stored_secret, stored_previous, grace_secs): (String, String, f64) = sqlx::query_as(
        "SELECT secret, previous_secret, extract(epoch FROM previous_secret_until - now())::float8
         FROM webhook_endpoints",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((stored_secret.as_str(), stored_previous.as_str()), (new.as_str(), old.as_str()));
    assert!((80.0..=90.0).contains(&grace_secs), "the old secret signs for {grace_secs} s more");
    let expires: chrono::DateTime<chrono::Utc> =
        rotated.body["previous_secret_expires_at"].as_str().unwrap().parse().unwrap();
    let until: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT previous_secret_until FROM webhook_endpoints").fetch_one(&app.pool).await.unwrap();
    assert_eq!(expires, until);
    assert_eq!(rotated.body["id"], registered.body["id"]);
    let listed = app.send(Method::GET, "/v1/admin/webhooks", Some(ADMIN_KEY), None).await;
    assert!(!listed.body.to_string().contains("whsec_"), "never listed");

    let missing = app
        .send(Method::POST, &format!("/v1/admin/webhooks/{}/rotate-secret", Uuid::new_v4()), Some(ADMIN_KEY), None)
        .await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "webhook_not_found"));
    let refused =
        app.send(Method::POST, &format!("/v1/admin/webhooks/{id}/rotate-secret"), Some("wrong-key"), None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn private_urls_are_refused_at_registering_and_at_enabling_unless_allowed() {
    let app = crate::helpers::spawn_app_with(5, |c| c.webhooks.allow_private_urls = false).await;
    for url in [
        "http://localhost:8080/hook",
        "http://127.0.0.1:9/hook",
        "http://10.0.0.7/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00::1]/hook",
    ] {
        let reply = register(&app, json!({ "url": url })).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url"),
            "{url}: {}",
            reply.body
        );
    }
    let public = register(&app, json!({ "url": "https://hooks.example.com/in" })).await;
    assert_eq!(public.status, StatusCode::CREATED, "{}", public.body);
    // An endpoint registered where private URLs were allowed, then turned off: turning
    // it on again here checks its URL again.
    let loopback = sales::webhooks::NewWebhook::new("http://127.0.0.1:9/hook", None, None).unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let id = Uuid::now_v7();
    sales::store::webhooks::insert(&mut conn, id, &loopback, &sales::webhooks::WebhookSecret::generate())
        .await
        .unwrap();
    let off = patch(&app, &id.to_string(), json!({ "enabled": false })).await;
    assert_eq!(off.status, StatusCode::OK, "turning it off needs no check");

    let on = patch(&app, &id.to_string(), json!({ "enabled": true })).await;

    assert_eq!((on.status, on.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_webhook_url"), "{}", on.body);
    let active: bool = sqlx::query_scalar("SELECT active FROM outbox_subscribers WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!active);
    let listed = app.send(Method::GET, "/v1/admin/webhooks", Some(ADMIN_KEY), None).await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_deleted_endpoint_is_gone_its_pending_deliveries_dropped_and_it_hears_nothing_more() {
    let app = spawn_app().await;
    let kept = register(&app, json!({ "url": "https://kept.example.com/in" })).await;
    let deleted = register(&app, json!({ "url": "https://deleted.example.com/in" })).await;
    let id = deleted.body["id"].as_str().unwrap().to_owned();
    let event = Uuid::new_v4();
    let message = |quantity| {
        Message::HoldExpired(HoldExpired { event_id: event, hold_id: Uuid::new_v4(), fan_id: "fan-1".into(), quantity })
    };
    let mut conn = app.pool.acquire().await.unwrap();
    sales::store::outbox::enqueue(&mut conn, &[message(1)]).await.unwrap();

    let reply = app.send(Method::DELETE, &format!("/v1/admin/webhooks/{id}"), Some(ADMIN_KEY), None).await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    sales::store::outbox::enqueue(&mut conn, &[message(2)]).await.unwrap();
    let listed = app.send(Method::GET, "/v1/admin/webhooks", Some(ADMIN_KEY), None).await;
    assert_eq!(listed.body["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["webhooks"][0]["id"], kept.body["id"]);
    let gone = [
        app.send(Method::DELETE, &format!("/v1/admin/webhooks/{id}"), Some(ADMIN_KEY), None).await,
        app.send(Method::PATCH, &format!("/v1/admin/webhooks/{id}"), Some(ADMIN_KEY), Some(json!({ "enabled": true })))
            .await,
        app.send(Method::POST, &format!("/v1/admin/webhooks/{id}/rotate-secret"), Some(ADMIN_KEY), None).await,
        app.send(Method::GET, &format!("/v1/admin/webhooks/{id}/deliveries"), Some(ADMIN_KEY), None).await,
    ];
    for reply in &gone {
        assert_eq!((reply.status, reply.code()), (StatusCode::NOT_FOUND, "webhook_not_found"), "{}", reply.body);
    }
    let statuses = |subscriber: &str| {
        let subscriber: Uuid = subscriber.parse().unwrap();
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT status::text FROM outbox_deliveries WHERE subscriber_id = $1 ORDER BY message_id",
            )
            .bind(subscriber)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(statuses(&id).await, ["abandoned"], "dropped, and nothing written after");
    assert_eq!(statuses(kept.body["id"].as_str().unwrap()).await, ["pending", "pending"]);
    assert!(deliveries::claim(&mut conn, sales::states::SubscriberKind::Webhook, 10, Duration::from_secs(30))
        .await
        .unwrap()
        .iter()
        .all(|claimed| claimed.subscriber_id.to_string() != id));
}
