//! The organizer revoking an admission: one token (`jti`) or every token a fan holds for
//! the event, refused by every gateway replica within seconds, cached tokens included.

use std::time::Duration;

use access_token::AccessClaims;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::{unix_now, Reply};
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_unable_to_read_revocations, Event, TestApp, ADMIN_KEY, HELD_REVOCATIONS};

/// Far longer than a replica's poll interval (1 s); nothing here times it tightly.
const DEADLINE: Duration = Duration::from_secs(15);

fn my_bookings(app: &TestApp, event: &Event, token: &str) -> impl std::future::Future<Output = Reply> + 'static {
    app.send(Method::GET, &event.path("/bookings"), Some(token), None)
}

fn revoke(app: &TestApp, event: &Event, body: Value) -> impl std::future::Future<Output = Reply> + 'static {
    app.send(Method::POST, &format!("/v1/admin/events/{}/revocations", event.id), Some(ADMIN_KEY), Some(body))
}

/// Polls until `token` is refused as revoked, or panics at the deadline with the last answer.
async fn wait_until_revoked(app: &TestApp, event: &Event, token: &str) {
    let started = tokio::time::Instant::now();
    loop {
        let reply = my_bookings(app, event, token).await;
        if reply.status == StatusCode::UNAUTHORIZED && reply.code() == "token_revoked" {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "still not refused after {DEADLINE:?}: {} {}", reply.status, reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn token_with_id(app: &TestApp, fan: &str, event: &Event) -> (String, Uuid) {
    let claims = AccessClaims::new(fan, event.id, unix_now(), 300);
    (app.keys.signer.sign(&claims), claims.jti)
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_every_replica_even_when_cached_and_other_tokens_still_work() {
    let app = spawn_app().await;
    let replica = app.another_replica().await;
    let event = app.numbered_event(3).await;
    let (revoked, jti) = token_with_id(&app, "fan-1", &event);
    let (kept, _) = token_with_id(&app, "fan-2", &event);
    // Both replicas verify both tokens first: the revoked one is in their verified caches.
    for gateway in [&app, &replica] {
        for token in [&revoked, &kept] {
            assert_eq!(my_bookings(gateway, &event, token).await.status, StatusCode::OK);
        }
    }

    let reply = revoke(&app, &event, json!({ "jti": jti })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["jti"], json!(jti));
    assert_eq!(reply.body["event_id"], json!(event.id));
    // Idempotent: the same revocation again answers the same record.
    let again = revoke(&app, &event, json!({ "jti": jti })).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &reply.body));

    for gateway in [&app, &replica] {
        wait_until_revoked(gateway, &event, &revoked).await;
        let reply = my_bookings(gateway, &event, &kept).await;
        assert_eq!(reply.status, StatusCode::OK, "another fan's token still works: {}", reply.body);
    }
    let booking = app.book(&event, "fan-2", json!({ "seats": ["1"] })).await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
}

#[tokio::test]
async fn revoking_a_fan_refuses_every_token_they_hold_for_that_event_only() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let other_event = app.numbered_event(3).await;
    let first = app.token("fan-1", &event);
    let second = app.token("fan-1", &event);
    let elsewhere = app.token("fan-1", &other_event);
    let neighbour = app.token("fan-2", &event);
    assert_eq!(my_bookings(&app, &event, &first).await.status, StatusCode::OK);

    let reply = revoke(&app, &event, json!({ "fan_id": "fan-1" })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["fan_id"], "fan-1");

    wait_until_revoked(&app, &event, &first).await;
    wait_until_revoked(&app, &event, &second).await;
    assert_eq!(my_bookings(&app, &other_event, &elsewhere).await.status, StatusCode::OK);
    assert_eq!(my_bookings(&app, &event, &neighbour).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_revocation_is_for_the_organizer_and_names_one_token_or_one_fan_of_an_existing_event() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let path = format!("/v1/admin/events/{}/revocations", event.id);
    let cases: Vec<(Option<&str>, Value, StatusCode, &str)> = vec![
        (None, json!({ "fan_id": "fan-1" }), StatusCode::UNAUTHORIZED, "admin_key_required"),
        (Some(ADMIN_KEY), json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_revocation"),
        (
            Some(ADMIN_KEY),
            json!({ "fan_id": "fan-1", "jti": Uuid::new_v4() }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_revocation",
        ),
        (Some(ADMIN_KEY), json!({ "fan_id": "" }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_revocation"),
        (Some(ADMIN_KEY), json!({ "jti": "not-a-uuid" }), StatusCode::BAD_REQUEST, "bad_request"),
    ];
    for (key, body, status, code) in cases {
        let reply = app.send(Method::POST, &path, key, Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{body}: {}", reply.body);
    }
    let unknown = app
        .send(
            Method::POST,
            &format!("/v1/admin/events/{}/revocations", Uuid::new_v4()),
            Some(ADMIN_KEY),
            Some(json!({ "fan_id": "fan-1" })),
        )
        .await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "event_not_found"));
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM token_revocations").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 0);
}

/// A gateway that has not read the revocations cannot tell a revoked token from a good
/// one: it refuses fans (503, Retry-After) and is not ready, then serves as soon as a
/// read succeeds, refusing what was revoked meanwhile.
#[tokio::test]
async fn until_its_first_read_of_the_revocations_a_gateway_refuses_fans_and_is_not_ready() {
    let app = spawn_app_unable_to_read_revocations(|c| c.revocation_poll_interval_ms = 100).await;
    let event = app.ga_event(10).await; // the organizer's routes need no revocations
    let (revoked, good) = (app.token("revoked", &event), app.token("good", &event));

    for token in [&revoked, &good] {
        let refused = my_bookings(&app, &event, token).await;
        assert_eq!((refused.status, refused.code()), (StatusCode::SERVICE_UNAVAILABLE, "revocations_not_loaded"));
        assert_eq!(refused.headers["retry-after"], "1");
    }
    let details = app.send(Method::GET, &event.path(""), None, None).await;
    assert_eq!(details.status, StatusCode::OK, "public reads need no token");
    let ready = Reply::of(app.http.get(app.management_url("/readyz"))).await;
    assert_eq!(
        (ready.status, ready.body),
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "unavailable", "failing": ["revocations"] }))
    );

    // Revoked while the gateway could not read: refused once it can, never served.
    let revoke = format!(
        "INSERT INTO {HELD_REVOCATIONS} (event_id, fan_id, expires_at) VALUES ($1, 'revoked', now() + interval '1 day')"
    );
    sqlx::query(&revoke).bind(event.id).execute(&app.pool).await.unwrap();
    let rename = format!("ALTER TABLE {HELD_REVOCATIONS} RENAME TO token_revocations");
    sqlx::query(&rename).execute(&app.pool).await.unwrap();

    let started = tokio::time::Instant::now();
    let served = loop {
        let reply = my_bookings(&app, &event, &good).await;
        if reply.code() != "revocations_not_loaded" {
            break reply;
        }
        assert!(started.elapsed() < DEADLINE, "still refused after {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(served.status, StatusCode::OK, "{}", served.body);
    let refused = my_bookings(&app, &event, &revoked).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "token_revoked"));
    loop {
        let ready = Reply::of(app.http.get(app.management_url("/readyz"))).await;
        if ready.status == StatusCode::OK {
            assert_eq!(ready.body, json!({ "status": "ready" }));
            break;
        }
        assert!(started.elapsed() < DEADLINE, "still not ready after {DEADLINE:?}: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
