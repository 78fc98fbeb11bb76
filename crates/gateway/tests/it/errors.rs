use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

use crate::helpers::{spawn_app, ADMIN_KEY};

#[tokio::test]
async fn every_bad_request_gets_a_clear_error_and_changes_nothing() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let ga = app.ga_event(2).await;
    app.book(&event, "owner", json!({ "seats": ["5"] })).await;

    let cases = [
        (json!({ "seats": ["6"] }), StatusCode::UNPROCESSABLE_ENTITY, "unknown_seat"),
        (json!({ "seats": ["Z-1"] }), StatusCode::UNPROCESSABLE_ENTITY, "unknown_seat"),
        (json!({ "seats": ["1", "1"] }), StatusCode::UNPROCESSABLE_ENTITY, "duplicate_seat"),
        (json!({ "seats": [] }), StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity"),
        (
            json!({ "section_id": event.sections[0], "quantity": 0 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            json!({ "section_id": event.sections[0], "quantity": -3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_quantity",
        ),
        (
            json!({ "section_id": event.sections[0], "quantity": 11 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "order_limit_exceeded",
        ),
        (json!({ "section_id": ga.sections[0], "quantity": 1 }), StatusCode::UNPROCESSABLE_ENTITY, "unknown_section"),
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "invalid_selection"),
        (json!({ "seats": ["1"], "colour": "red" }), StatusCode::BAD_REQUEST, "bad_request"),
        (json!({ "seats": "1" }), StatusCode::BAD_REQUEST, "bad_request"),
        (json!({ "seats": ["1", "5"] }), StatusCode::CONFLICT, "seat_unavailable"),
    ];
    for (body, status, code) in cases {
        for path in ["/bookings", "/holds"] {
            let token = app.token("fan", &event);
            // The refused booking's locks last until its rollback reaches the database,
            // a moment after its answer: `seat_contended` says retry, as a client would.
            let mut reply = app.send(Method::POST, &event.path(path), Some(&token), Some(body.clone())).await;
            for _ in 0..50 {
                if reply.code() != "seat_contended" {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                reply = app.send(Method::POST, &event.path(path), Some(&token), Some(body.clone())).await;
            }
            assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
            assert_eq!(reply.code(), code, "{path} {body}");
            assert!(reply.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    let token = app.token("fan", &event);
    let malformed = app
        .http
        .post(app.url(&event.path("/bookings")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"seats\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");

    let unknown = uuid::Uuid::new_v4();
    let token = app.keys.token("fan", unknown);
    let missing = app
        .send(Method::POST, &format!("/v1/events/{unknown}/bookings"), Some(&token), Some(json!({ "seats": ["1"] })))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "event_not_found");

    assert_eq!(app.assert_inventory_consistent(&event).await, 1, "only the owner's seat is booked");
    let (holds,): (i64,) = sqlx::query_as("SELECT count(*) FROM holds").fetch_one(&app.pool).await.unwrap();
    assert_eq!(holds, 0);
}

#[tokio::test]
async fn a_sold_out_section_answers_sold_out() {
    let app = spawn_app().await;
    let event = app.ga_event(3).await;
    let section = event.sections[0];
    assert_eq!(
        app.book(&event, "a", json!({ "section_id": section, "quantity": 2 })).await.status,
        StatusCode::CREATED
    );
    let too_many = app.book(&event, "b", json!({ "section_id": section, "quantity": 2 })).await;
    assert_eq!(too_many.status, StatusCode::CONFLICT);
    assert_eq!(too_many.code(), "sold_out");
    let last_place = app.book_retrying_contention(&event, "b", json!({ "section_id": section, "quantity": 1 })).await;
    assert_eq!(last_place.status, StatusCode::CREATED, "{}", last_place.body);
    let none = app.book_retrying_contention(&event, "c", json!({ "section_id": section, "quantity": 1 })).await;
    assert_eq!(none.code(), "sold_out");
    assert_eq!(app.assert_inventory_consistent(&event).await, 3);
}

#[tokio::test]
async fn a_seat_whose_row_is_locked_is_contended_not_taken_and_fails_fast() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let mut other = app.pool.acquire().await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT id FROM seats WHERE label = '2' FOR UPDATE").execute(&mut *tx).await.unwrap();

    let started = std::time::Instant::now();
    let reply = app.book(&event, "fan", json!({ "seats": ["1", "2"] })).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "seat_contended");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "NOWAIT must not wait for the lock");
    tx.rollback().await.unwrap();

    assert_eq!(app.assert_inventory_consistent(&event).await, 0, "seat 1 was not taken either");
    assert_eq!(app.book(&event, "fan", json!({ "seats": ["1", "2"] })).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_the_json_error_envelope() {
    let app = spawn_app().await;
    let unknown = app.send(Method::GET, "/v1/nothing/here", None, None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "not_found"));

    let event = app.ga_event(1).await;
    let wrong_method = app.send(Method::DELETE, &event.path(""), None, None).await;
    assert_eq!((wrong_method.status, wrong_method.code()), (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"));
    assert_eq!(wrong_method.headers["allow"], "GET,HEAD,PATCH");
    assert!(wrong_method.body["error"]["message"].as_str().is_some_and(|m| m.contains("DELETE")));
}

fn event_with(name: &str, section: serde_json::Value) -> serde_json::Value {
    json!({ "name": name, "sections": [section] })
}

fn floor(name: &str, amount_minor: i64) -> serde_json::Value {
    json!({ "name": name, "kind": "general_admission", "price": { "amount_minor": amount_minor, "currency": "EUR" }, "capacity": 10 })
}

#[tokio::test]
async fn control_characters_in_names_and_labels_are_refused_with_422() {
    let app = spawn_app().await;
    let rows = |label: &str| json!({ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 100, "currency": "EUR" }, "rows": [{ "label": label, "seats": 2 }] });
    let cases = [
        event_with("Nul\u{0}show", floor("Floor", 100)),
        event_with("Bell\u{7}show", floor("Floor", 100)),
        event_with("Show", floor("Fl\u{0}or", 100)),
        event_with("Show", floor("Floor\nSecond line", 100)),
        event_with("Show", floor("Floor\u{9b}", 100)),
        event_with("Show", rows("A\u{0}")),
    ];
    for body in cases {
        let reply = app.send(Method::POST, "/v1/events", Some(ADMIN_KEY), Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"), "{body}");
    }
}

#[tokio::test]
async fn prices_past_the_cap_are_refused_with_422() {
    let app = spawn_app().await;
    for amount in [i64::MAX, i64::MAX / 2, 1_000_000_000_001] {
        let reply = app
            .send(Method::POST, "/v1/events", Some(ADMIN_KEY), Some(event_with("Show", floor("Floor", amount))))
            .await;
        assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"), "{amount}");
    }
    let capped = app
        .send(Method::POST, "/v1/events", Some(ADMIN_KEY), Some(event_with("Show", floor("Floor", 1_000_000_000_000))))
        .await;
    assert_eq!(capped.status, StatusCode::CREATED, "the cap itself is a valid price");
}

#[tokio::test]
async fn a_two_seat_total_past_bigint_is_422_not_500() {
    let app = spawn_app().await;

    // The backstop: a price that got into the database anyway makes a two-seat total
    // overflow bigint (SQLSTATE 22003), which is the input's fault, not the server's.
    let event = app.ga_event(10).await;
    sqlx::query("UPDATE sections SET price_minor = $2 WHERE id = $1")
        .bind(event.sections[0])
        .bind(i64::MAX)
        .execute(&app.pool)
        .await
        .unwrap();
    let hold = app.hold(&event, "fan", json!({ "section_id": event.sections[0], "quantity": 2 })).await;
    assert_eq!((hold.status, hold.code()), (StatusCode::UNPROCESSABLE_ENTITY, "value_out_of_range"), "{}", hold.body);
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

#[tokio::test]
async fn a_rejected_value_is_echoed_truncated_not_whole() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let huge = "A".repeat(100_000);
    let token = app.token("fan", &event);
    let replies = [
        app.hold(&event, "fan", json!({ "seats": [huge] })).await,
        app.send(Method::POST, &event.path("/holds"), Some(&token), Some(json!({ "seats": huge }))).await,
        app.send(Method::GET, &format!("/v1/events/{}/bookings", "9".repeat(10_000)), Some(&token), None).await,
        app.send(
            Method::POST,
            "/v1/events",
            Some(ADMIN_KEY),
            Some(json!({ "name": "Show", "sections": [{ "name": huge, "kind": "standing", "price": { "amount_minor": 1, "currency": "EUR" } }] })),
        )
        .await,
        app.send(
            Method::POST,
            "/v1/events",
            Some(ADMIN_KEY),
            Some(json!({ "name": "Show", "sections": [{ "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 1, "currency": huge }, "capacity": 1 }] })),
        )
        .await,
        app.send(
            Method::POST,
            "/v1/events",
            Some(ADMIN_KEY),
            Some(json!({ "name": "Show", "sections": [{ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 1, "currency": "EUR" }, "rows": [{ "label": huge, "seats": 1 }] }] })),
        )
        .await,
    ];
    for reply in replies {
        assert!(reply.status.is_client_error(), "{} {}", reply.status, reply.code());
        let message = reply.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.len() < 400 && message.contains('…'),
            "{} {}: {} bytes: {:.300}",
            reply.status,
            reply.code(),
            message.len(),
            message
        );
    }
}

#[tokio::test]
async fn an_oversized_body_answers_413_in_the_error_envelope() {
    let app = spawn_app().await;
    let event = app.ga_event(10).await;
    let oversized = json!({ "name": "x".repeat(3 * 1024 * 1024), "sections": [] });
    let token = app.token("fan", &event);
    for (path, bearer) in [("/v1/events".to_owned(), ADMIN_KEY.to_owned()), (event.path("/holds"), token)] {
        let reply = app.send(Method::POST, &path, Some(&bearer), Some(oversized.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"), "{path}");
    }
}

/// The backstop for text: a NUL that reaches the database through a path no rule
/// checks (here a token's fan id) is refused as the input's fault.
#[tokio::test]
async fn a_nul_that_reaches_the_database_is_422_not_500() {
    let app = spawn_app().await;
    let event = app.ga_event(10).await;
    let hold = app.hold(&event, "fan\u{0}", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!((hold.status, hold.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_text"), "{}", hold.body);
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}
