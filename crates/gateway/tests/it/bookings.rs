use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn general_admission_books_by_quantity_and_counts_down() {
    let app = spawn_app().await;
    let event = app.ga_event(10).await;
    let reply = app.book(&event, "fan", json!({ "section_id": event.sections[0], "quantity": 3 })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["seats"].as_array().unwrap().len(), 3);
    assert_eq!(reply.body["total"]["amount_minor"], 0);
    assert_eq!(app.details(&event).await["sections"][0]["remaining"], 7);
    assert_eq!(app.assert_inventory_consistent(&event).await, 3);
}

#[tokio::test]
async fn cancelling_a_booking_puts_its_seats_on_sale_at_once() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let booking = app.book(&event, "fan", json!({ "seats": ["1", "2"] })).await;
    assert_eq!(app.book(&event, "other", json!({ "seats": ["1"] })).await.code(), "seat_unavailable");

    let token = app.token("fan", &event);
    let path = event.path(&format!("/bookings/{}", booking.body["id"].as_str().unwrap()));
    let cancelled = app.send(Method::POST, &format!("{path}/cancel"), Some(&token), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = app.send(Method::POST, &format!("{path}/cancel"), Some(&token), None).await;
    assert_eq!(again.body["status"], "cancelled", "cancelling twice is harmless");

    assert_eq!(app.book(&event, "other", json!({ "seats": ["1"] })).await.status, StatusCode::CREATED);
    let shown = app.send(Method::GET, &path, Some(&token), None).await;
    assert_eq!(shown.body["status"], "cancelled");
    assert_eq!(app.assert_inventory_consistent(&event).await, 1);
}

#[tokio::test]
async fn a_fan_sees_only_their_own_bookings() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    let mine = app.book(&event, "me", json!({ "seats": ["1"] })).await;
    let theirs = app.book(&event, "them", json!({ "seats": ["2"] })).await;
    let token = app.token("me", &event);
    let list = app.send(Method::GET, &event.path("/bookings"), Some(&token), None).await;
    let ids: Vec<_> = list.body["bookings"].as_array().unwrap().iter().map(|b| b["id"].clone()).collect();
    assert_eq!(ids, [mine.body["id"].clone()]);
    let path = event.path(&format!("/bookings/{}", theirs.body["id"].as_str().unwrap()));
    assert_eq!(app.send(Method::GET, &path, Some(&token), None).await.status, StatusCode::NOT_FOUND);
    let cancel = app.send(Method::POST, &format!("{path}/cancel"), Some(&token), None).await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND);
    assert_eq!(app.assert_inventory_consistent(&event).await, 2);
}

/// Counters are shared by every test in this process, so this checks what only grows.
#[tokio::test]
async fn metrics_count_order_outcomes_and_label_requests_by_route_template() {
    let app = spawn_app().await;
    let event = app.numbered_event(1).await;
    assert_eq!(app.book(&event, "fan", json!({ "seats": ["1"] })).await.status, StatusCode::CREATED);
    assert_eq!(app.book(&event, "other", json!({ "seats": ["1"] })).await.code(), "seat_unavailable");

    let text = app.http.get(app.management_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |series: &str| {
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse::<f64>().ok()).unwrap_or(0.0)
    };
    assert!(value(r#"boxoffice_gateway_orders_total{kind="book",outcome="success"}"#) >= 1.0, "{text}");
    assert!(value(r#"boxoffice_gateway_orders_total{kind="book",outcome="seat_unavailable"}"#) >= 1.0);
    assert!(text.contains(
        r#"boxoffice_http_request_duration_seconds_count{component="gateway",method="POST",route="/v1/events/{event_id}/bookings",status="409"}"#
    ));
    assert!(!text.contains(&format!("route=\"{}", event.path(""))), "no raw paths as labels");
    assert!(value(r#"boxoffice_db_pool_max_connections"#) >= 1.0);
    assert!(text.contains(r#"boxoffice_db_pool_connections{state="in_use"}"#));
}
