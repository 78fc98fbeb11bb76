use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;

use crate::helpers::spawn_app;

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
            let reply = app.send(Method::POST, &event.path(path), Some(&token), Some(body.clone())).await;
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
    assert_eq!(wrong_method.headers["allow"], "GET,HEAD");
    assert!(wrong_method.body["error"]["message"].as_str().is_some_and(|m| m.contains("DELETE")));
}
