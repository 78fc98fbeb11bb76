use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_hold_reserves_seats_and_confirming_it_books_them() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["2", "3"] })).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(hold.body["status"], "active");
    assert_eq!(app.details(&event).await["sections"][0]["held"], 2);

    let token = app.token("fan-1", &event);
    let hold_path = event.path(&format!("/holds/{}", hold.body["id"].as_str().unwrap()));
    let booking = app.send(Method::POST, &format!("{hold_path}/confirm"), Some(&token), None).await;
    assert_eq!(booking.status, StatusCode::CREATED, "{}", booking.body);
    assert_eq!(booking.body["status"], "confirmed");
    assert_eq!(booking.body["hold_id"], hold.body["id"]);
    assert_eq!(booking.body["total"]["amount_minor"], 0);

    let mine = app.send(Method::GET, &event.path("/bookings"), Some(&token), None).await;
    assert_eq!(mine.body["bookings"][0]["id"], booking.body["id"]);
    let shown = app.send(Method::GET, &hold_path, Some(&token), None).await;
    assert_eq!(shown.body["status"], "confirmed");
    assert_eq!(app.assert_inventory_consistent(&event).await, 2);
}

#[tokio::test]
async fn confirming_twice_answers_with_the_same_booking() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["1"] })).await;
    let token = app.token("fan-1", &event);
    let path = event.path(&format!("/holds/{}/confirm", hold.body["id"].as_str().unwrap()));
    let first = app.send(Method::POST, &path, Some(&token), None).await;
    let second = app.send(Method::POST, &path, Some(&token), None).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.body["id"], second.body["id"]);
    assert_eq!(app.assert_inventory_consistent(&event).await, 1);
}

#[tokio::test]
async fn releasing_a_hold_puts_its_seats_back_on_sale() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["1"] })).await;
    let taken = app.hold(&event, "fan-2", json!({ "seats": ["1"] })).await;
    assert_eq!(taken.code(), "seat_unavailable");

    let token = app.token("fan-1", &event);
    let path = event.path(&format!("/holds/{}", hold.body["id"].as_str().unwrap()));
    let released = app.send(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(released.body["status"], "released");
    let again = app.send(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(again.body["status"], "released", "releasing twice is harmless");

    let retaken = app.hold(&event, "fan-2", json!({ "seats": ["1"] })).await;
    assert_eq!(retaken.status, StatusCode::CREATED);
    let confirm = app.send(Method::POST, &format!("{path}/confirm"), Some(&token), None).await;
    assert_eq!(confirm.status, StatusCode::CONFLICT);
    assert_eq!(confirm.code(), "hold_not_active");
}

#[tokio::test]
async fn an_expired_hold_frees_its_seat_for_the_next_fan_before_any_sweep() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({
            "name": "Lapsing holds",
            "sections": [{ "name": "Hall", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 2 }]
        }))
        .await;
    let event = crate::helpers::Event::from_details(&event);
    let hold = app.hold(&event, "slow-fan", json!({ "seats": ["1"] })).await;
    assert_eq!(hold.status, StatusCode::CREATED);
    app.lapse_holds(&event).await;

    assert_eq!(app.details(&event).await["sections"][0]["remaining"], 2, "an expired hold counts as remaining");
    let next = app.book(&event, "quick-fan", json!({ "seats": ["1"] })).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);

    let token = app.token("slow-fan", &event);
    let path = event.path(&format!("/holds/{}/confirm", hold.body["id"].as_str().unwrap()));
    let late = app.send(Method::POST, &path, Some(&token), None).await;
    assert_eq!(late.status, StatusCode::GONE);
    assert_eq!(late.code(), "hold_expired");
    assert_eq!(app.assert_inventory_consistent(&event).await, 1);
}

/// An event's cancellation releases its active holds in passes that skip holds locked
/// at that moment; a confirm reads the cancellation under the hold's lock, so a hold the
/// pass has not released yet is not booked.
#[tokio::test]
async fn confirming_a_hold_of_an_event_cancelled_meanwhile_is_409_and_books_nothing() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let hold = app.hold(&event, "fan", json!({ "seats": ["1"] })).await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    // Cancelled, its holds not released yet.
    sqlx::query("UPDATE events SET cancelled_at = now() WHERE id = $1")
        .bind(event.id)
        .execute(&app.pool)
        .await
        .unwrap();

    let token = app.token("fan", &event);
    let path = event.path(&format!("/holds/{}/confirm", hold.body["id"].as_str().unwrap()));
    let refused = app.send(Method::POST, &path, Some(&token), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "event_cancelled"), "{}", refused.body);
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

#[tokio::test]
async fn confirming_an_expired_hold_is_410_and_books_nothing() {
    let app = spawn_app().await;
    let event = app
        .create_event(json!({
            "name": "Lapsing holds",
            "sections": [{ "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 0, "currency": "EUR" }, "capacity": 5 }]
        }))
        .await;
    let event = crate::helpers::Event::from_details(&event);
    let hold = app.hold(&event, "fan", json!({ "section_id": event.sections[0], "quantity": 2 })).await;
    app.lapse_holds(&event).await;
    let token = app.token("fan", &event);
    let path = event.path(&format!("/holds/{}/confirm", hold.body["id"].as_str().unwrap()));
    let late = app.send(Method::POST, &path, Some(&token), None).await;
    assert_eq!(late.status, StatusCode::GONE);
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);

    let released = sales::store::holds::release_expired(&mut app.pool.acquire().await.unwrap(), 100).await.unwrap();
    assert_eq!((released.holds, released.events), (1, vec![event.id]));
    assert_eq!(
        sales::store::holds::release_expired(&mut app.pool.acquire().await.unwrap(), 100).await.unwrap().holds,
        0,
        "released once only"
    );
    let (available,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM seats WHERE state = 'available'").fetch_one(&app.pool).await.unwrap();
    assert_eq!(available, 5);
    let after_sweep = app.book(&event, "next-fan", json!({ "section_id": event.sections[0], "quantity": 5 })).await;
    assert_eq!(after_sweep.status, StatusCode::CREATED, "seats freed by the sweep sell at once");
}

#[tokio::test]
async fn a_fan_cannot_see_or_touch_another_fans_hold() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let hold = app.hold(&event, "owner", json!({ "seats": ["1"] })).await;
    let intruder = app.token("intruder", &event);
    let path = event.path(&format!("/holds/{}", hold.body["id"].as_str().unwrap()));
    for (method, suffix) in [(Method::GET, ""), (Method::DELETE, ""), (Method::POST, "/confirm")] {
        let reply = app.send(method, &format!("{path}{suffix}"), Some(&intruder), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.code(), "hold_not_found");
    }
    assert_eq!(app.details(&event).await["sections"][0]["held"], 1);
}

#[tokio::test]
async fn best_available_takes_adjacent_seats_in_the_best_row_that_has_them() {
    let app = spawn_app().await;
    let details = app
        .create_event(json!({
            "name": "Rows",
            "sections": [{ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" },
                           "rows": [{ "label": "A", "seats": 4 }, { "label": "B", "seats": 4 }] }]
        }))
        .await;
    let event = crate::helpers::Event::from_details(&details);
    // Row A keeps only free, not together.
    assert_eq!(app.book(&event, "x", json!({ "seats": ["A-2", "A-3"] })).await.status, StatusCode::CREATED);
    let pair = app.book(&event, "fan", json!({ "section_id": event.sections[0], "quantity": 2 })).await;
    assert_eq!(pair.status, StatusCode::CREATED, "{}", pair.body);
    let labels: Vec<_> = pair.body["seats"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["B-1", "B-2"]);
    // One seat: A-1 is the best; taking it strands nobody.
    let single = app.book(&event, "solo", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(single.body["seats"][0]["label"], "A-1");
}
