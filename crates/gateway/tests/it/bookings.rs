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

/// The `booking.confirmed` outbox message of the booking `id`, with a delivery for
/// every subscriber that wants it.
async fn booking_confirmed_message(app: &crate::helpers::TestApp, id: &str) -> (serde_json::Value, i64) {
    let id: uuid::Uuid = id.parse().unwrap();
    let (payload, deliveries): (serde_json::Value, i64) = sqlx::query_as(
        "SELECT m.payload, (SELECT count(*) FROM outbox_deliveries d WHERE d.message_id = m.id)
         FROM outbox_messages m WHERE m.topic = 'booking.confirmed' AND m.payload->'data'->>'booking_id' = $1::text",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    (payload, deliveries)
}

#[tokio::test]
async fn every_booking_path_writes_one_booking_confirmed_message_of_the_same_shape() {
    let app = spawn_app().await;
    let event = app.numbered_event(6).await;
    let ga = app.ga_event(5).await;
    let hook = json!({ "url": "https://hooks.example.com/in", "event_id": event.id, "topics": ["booking.confirmed"] });
    let registered = app.send(Method::POST, "/v1/admin/webhooks", Some(crate::helpers::ADMIN_KEY), Some(hook)).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    let token = app.token("fan-2", &event);

    let chosen = app.book(&event, "fan-1", json!({ "seats": ["2", "1"], "email": " fan1@example.com " })).await;
    let by_section = app.book(&ga, "fan-1", json!({ "section_id": ga.sections[0], "quantity": 2 })).await;
    let hold = app.hold(&event, "fan-2", json!({ "seats": ["5"], "email": "fan2@example.com" })).await;
    let hold_id = hold.body["id"].as_str().unwrap().to_owned();
    let confirmed = app.send(Method::POST, &event.path(&format!("/holds/{hold_id}/confirm")), Some(&token), None).await;

    for reply in [&chosen, &by_section, &hold, &confirmed] {
        assert!(reply.status.is_success(), "{}", reply.body);
    }
    let expected = |reply: &test_support::Reply, event: &crate::helpers::Event, fan: &str, hold, email| {
        let seats: Vec<_> = reply.body["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| json!({ "seat_id": s["seat_id"], "section_id": event.sections[0], "label": s["label"] }))
            .collect();
        json!({
            "event_id": event.id, "booking_id": reply.body["id"], "fan_id": fan, "hold_id": hold,
            "payment_id": null, "email": email, "seats": seats,
            "total": { "amount_minor": 0, "currency": "EUR" },
        })
    };
    let cases = [
        (&chosen, &event, "fan-1", json!(null), json!("fan1@example.com"), 1),
        (&by_section, &ga, "fan-1", json!(null), json!(null), 0),
        (&confirmed, &event, "fan-2", json!(hold_id), json!("fan2@example.com"), 1),
    ];
    for (reply, event, fan, hold, email, deliveries) in cases {
        let (payload, written) = booking_confirmed_message(&app, reply.body["id"].as_str().unwrap()).await;
        assert_eq!(payload["type"], "booking.confirmed");
        assert_eq!(payload["version"], sales::outbox::VERSION);
        assert!(payload["timestamp"].as_str().is_some_and(|t| t.parse::<chrono::DateTime<chrono::Utc>>().is_ok()));
        assert_eq!(payload["data"], expected(reply, event, fan, hold, email), "{}", reply.body);
        serde_json::from_value::<sales::outbox::BookingConfirmed>(payload["data"].clone()).unwrap();
        assert_eq!(written, deliveries, "a delivery for the webhook of `event` only");
    }
    let seat_ids: Vec<i64> =
        chosen.body["seats"].as_array().unwrap().iter().map(|s| s["seat_id"].as_i64().unwrap()).collect();
    let (payload, _) = booking_confirmed_message(&app, chosen.body["id"].as_str().unwrap()).await;
    let in_message: Vec<i64> =
        payload["data"]["seats"].as_array().unwrap().iter().map(|s| s["seat_id"].as_i64().unwrap()).collect();
    assert_eq!(
        in_message,
        {
            let mut sorted = seat_ids;
            sorted.sort();
            sorted
        },
        "seats in seat id order"
    );
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_messages WHERE topic = 'booking.confirmed'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(messages, 3);
}

#[tokio::test]
async fn a_refused_booking_writes_no_message_and_a_bad_email_is_refused_with_422() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let first = app.book(&event, "fan-1", json!({ "seats": ["1"] })).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    let taken = app.book(&event, "fan-2", json!({ "seats": ["1", "2"], "email": "fan2@example.com" })).await;
    let bad = app.book(&event, "fan-2", json!({ "seats": ["2"], "email": "not an address" })).await;
    let bad_hold = app.hold(&event, "fan-2", json!({ "seats": ["2"], "email": "a@b@c" })).await;

    assert_eq!(taken.code(), "seat_unavailable");
    for reply in [&bad, &bad_hold] {
        assert_eq!((reply.status, reply.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"), "{}", reply.body);
    }
    let messages: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_messages").fetch_one(&app.pool).await.unwrap();
    assert_eq!(messages, 1);
    assert_eq!(app.assert_inventory_consistent(&event).await, 1);
}

#[tokio::test]
async fn the_booking_link_cancels_without_an_access_token_and_another_bookings_link_changes_nothing() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    let mine = crate::tickets::book(&app, &event, "fan", json!({ "seats": ["1", "2"] })).await;
    let theirs = crate::tickets::book(&app, &event, "other", json!({ "seats": ["3"] })).await;
    let (link, their_link) = (mine["link"].as_str().unwrap(), theirs["link"].as_str().unwrap());
    let cancel = |booking: &serde_json::Value, link: &str| {
        app.send(
            Method::POST,
            &event.path(&format!("/bookings/{}/cancel?link={link}", booking["id"].as_str().unwrap())),
            None,
            None,
        )
    };

    // A link opens its own booking only: not another booking, whichever way round.
    for (booking, link) in [(&theirs, link), (&mine, their_link)] {
        let refused = cancel(booking, link).await;
        assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "invalid_link"), "{}", refused.body);
    }
    let untouched = crate::tickets::tickets(&app, &event, "other", &theirs).await;
    assert!(untouched.iter().all(|t| t["status"] == "valid"), "{untouched:?}");

    let cancelled = cancel(&mine, link).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = cancel(&mine, link).await;
    assert_eq!((again.status, &again.body["status"]), (StatusCode::OK, &json!("cancelled")), "{}", again.body);
    // The same link shows the tickets revoked, and reads the booking.
    let by_link = app
        .send(Method::GET, &format!("{}?link={link}", crate::tickets::tickets_path(&event, &mine)), None, None)
        .await;
    let tickets = by_link.body["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 2);
    assert!(tickets.iter().all(|t| t["status"] == "revoked" && t["secret"].is_null()), "{tickets:?}");
    let shown = app
        .send(Method::GET, &event.path(&format!("/bookings/{}?link={link}", mine["id"].as_str().unwrap())), None, None)
        .await;
    assert_eq!((shown.status, &shown.body["status"]), (StatusCode::OK, &json!("cancelled")), "{}", shown.body);

    assert_eq!(app.book(&event, "third", json!({ "seats": ["1"] })).await.status, StatusCode::CREATED);
    assert_eq!(crate::tickets::tickets(&app, &event, "other", &theirs).await[0]["status"], "valid");
    assert_eq!(app.assert_inventory_consistent(&event).await, 2);
}
