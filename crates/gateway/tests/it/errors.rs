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
    assert_eq!(
        app.book(&event, "b", json!({ "section_id": section, "quantity": 1 })).await.status,
        StatusCode::CREATED
    );
    let none = app.book(&event, "c", json!({ "section_id": section, "quantity": 1 })).await;
    assert_eq!(none.code(), "sold_out");
    assert_eq!(app.assert_inventory_consistent(&event).await, 3);
}

#[tokio::test]
async fn a_refused_order_frees_its_locks_before_it_answers() {
    // The refused order locks the last place, finds too few and gives up; the retry
    // straight after must find that place free, whichever pooled connection it gets.
    let app = spawn_app().await;
    let event = app.ga_event(1).await;
    let section = event.sections[0];
    for attempt in 0..40 {
        let refused = app.hold(&event, "greedy", json!({ "section_id": section, "quantity": 2 })).await;
        assert_eq!(refused.code(), "sold_out", "attempt {attempt}");
        let hold = app.hold(&event, "modest", json!({ "section_id": section, "quantity": 1 })).await;
        assert_eq!(hold.status, StatusCode::CREATED, "attempt {attempt}: {}", hold.body);
        let hold_path = event.path(&format!("/holds/{}", hold.body["id"].as_str().unwrap()));
        let released = app.send(Method::DELETE, &hold_path, Some(&app.token("modest", &event)), None).await;
        assert_eq!(released.status, StatusCode::OK, "attempt {attempt}: {}", released.body);
    }
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

#[tokio::test]
async fn a_failed_transaction_has_released_its_row_locks_when_it_returns() {
    let app = spawn_app().await;
    app.ga_event(1).await;
    let failed = gateway::store::in_transaction(&app.pool, async |tx| {
        sqlx::query("SELECT id FROM seats FOR UPDATE").execute(&mut *tx).await?;
        Err::<(), _>(gateway::error::Error::SeatContended)
    })
    .await;
    assert!(matches!(failed, Err(gateway::error::Error::SeatContended)), "the work's own error comes back");
    // Checked from another thread while this one blocks, so nothing left for this
    // test's runtime to do (such as finishing a dropped transaction) can help.
    let options = app.pool.connect_options().as_ref().clone();
    let locked = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let mut conn = sqlx::PgConnection::connect_with(&options).await?;
            sqlx::query("SELECT id FROM seats FOR UPDATE NOWAIT").execute(&mut conn).await.map(drop)
        })
    })
    .join()
    .unwrap();
    assert!(locked.is_ok(), "the seat row is still locked: {locked:?}");
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
