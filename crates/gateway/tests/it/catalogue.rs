//! The public catalogue: what organizers published, on sale or coming up, with what
//! each section has for sale and the state of the event's waiting room.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, Event, TestApp, ADMIN_KEY};

fn show(name: &str, starts_at: Option<&str>, published: bool, sections: Value) -> Value {
    json!({ "name": name, "starts_at": starts_at, "published": published, "sections": sections })
}

fn floor(capacity: u32, amount_minor: i64) -> Value {
    json!({ "name": "Floor", "kind": "general_admission", "price": { "amount_minor": amount_minor, "currency": "EUR" }, "capacity": capacity })
}

async fn catalogue(app: &TestApp) -> Vec<Value> {
    let reply = app.send(Method::GET, "/v1/events", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["events"].as_array().unwrap().clone()
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["name"].as_str().unwrap()).collect()
}

async fn patch(app: &TestApp, event: &Event, body: Value) -> Value {
    let reply = app.send(Method::PATCH, &event.path(""), Some(ADMIN_KEY), Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

/// The waiting room's own record of its settings, as its `PUT` writes it.
async fn set_waiting_room(app: &TestApp, event: &Event, state: &str) {
    sqlx::query(
        "INSERT INTO waitroom_events (event_id, state, admit_rate, max_active, token_lifetime_secs, seed, seed_sha256)
         VALUES ($1, $2::waitroom_state, 10, 100, 600, repeat('a', 64), encode(sha256(convert_to(repeat('a', 64), 'UTF8')), 'hex'))",
    )
    .bind(event.id)
    .bind(state)
    .execute(&app.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_catalogue_lists_published_events_on_sale_or_coming_up_soonest_first() {
    // No copy kept: each read below sees the sale as it is.
    let app = spawn_app_with(4, |c| c.seat_map_max_age_ms = 0).await;
    let stalls = json!({ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 5000, "currency": "EUR" }, "seats": 5 });
    let concert = Event::from_details(
        &app.create_event(show("Concert", Some("2027-06-01T19:30:00Z"), true, json!([stalls, floor(100, 3000)]))).await,
    );
    let club = Event::from_details(
        &app.create_event(show("Club night", Some("2027-07-01T22:00:00Z"), true, json!([floor(1, 0)]))).await,
    );
    let unlisted = Event::from_details(
        &app.create_event(show("Rehearsal", Some("2027-05-01T10:00:00Z"), false, json!([floor(5, 0)]))).await,
    );
    let undated = Event::from_details(&app.create_event(show("Someday", None, false, json!([floor(5, 0)]))).await);
    let cancelled = Event::from_details(
        &app.create_event(show("Called off", Some("2027-05-02T10:00:00Z"), true, json!([floor(5, 0)]))).await,
    );
    let over = Event::from_details(
        &app.create_event(show("Last year", Some("2027-05-03T10:00:00Z"), true, json!([floor(5, 0)]))).await,
    );
    assert_eq!(
        app.send(Method::POST, &format!("/v1/admin/events/{}/cancel", cancelled.id), Some(ADMIN_KEY), None)
            .await
            .status,
        StatusCode::OK
    );
    sqlx::query("UPDATE events SET starts_at = now() - interval '1 hour' WHERE id = $1")
        .bind(over.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert!(patch(&app, &undated, json!({ "published": true })).await["published_at"].is_string());
    set_waiting_room(&app, &concert, "running").await;

    let listed = catalogue(&app).await;
    assert_eq!(names(&listed), ["Concert", "Club night", "Someday"]);
    assert_eq!(
        listed[0],
        json!({
            "id": concert.id, "name": "Concert", "starts_at": "2027-06-01T19:30:00Z", "currency": "EUR",
            "price_from": { "amount_minor": 3000, "currency": "EUR" },
            "price_to": { "amount_minor": 5000, "currency": "EUR" },
            "sale_state": "on_sale",
            "sections": [
                { "id": concert.sections[0], "name": "Stalls", "kind": "reserved", "price_minor": 5000, "remaining": 5 },
                { "id": concert.sections[1], "name": "Floor", "kind": "general_admission", "price_minor": 3000, "remaining": 100 }
            ],
            "waitlist_enabled": false,
            "waiting_room": { "state": "running", "opens_at": null, "open": true }
        })
    );
    assert_eq!(listed[1]["waiting_room"], Value::Null);
    assert!(!listed.iter().any(|e| e["id"] == json!(unlisted.id)));

    // The club's one place: held, then booked.
    let fan = app.token("fan-1", &club);
    let hold = app
        .send(
            Method::POST,
            &club.path("/holds"),
            Some(&fan),
            Some(json!({ "section_id": club.sections[0], "quantity": 1 })),
        )
        .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.body);
    assert_eq!(
        (&catalogue(&app).await[1]["sale_state"], &catalogue(&app).await[1]["sections"][0]["remaining"]),
        (&json!("all_held"), &json!(0))
    );
    let hold_id: Uuid = serde_json::from_value(hold.body["id"].clone()).unwrap();
    let confirmed = app.send(Method::POST, &club.path(&format!("/holds/{hold_id}/confirm")), Some(&fan), None).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    assert_eq!(catalogue(&app).await[1]["sale_state"], "sold_out");

    // Publishing a listed event again changes nothing; taken out and put back, it is
    // published anew.
    let first_published = patch(&app, &concert, json!({})).await["published_at"].clone();
    assert_eq!(patch(&app, &concert, json!({ "published": true })).await["published_at"], first_published);
    assert_eq!(patch(&app, &concert, json!({ "published": false })).await["published_at"], Value::Null);
    assert_eq!(names(&catalogue(&app).await), ["Club night", "Someday"]);
    let again = patch(&app, &concert, json!({ "published": true })).await;
    assert!(again["published_at"].is_string() && again["published_at"] != first_published, "{again}");
    assert_eq!(names(&catalogue(&app).await), ["Concert", "Club night", "Someday"]);
}

#[tokio::test]
async fn a_paused_or_not_yet_open_waiting_room_is_listed_as_not_open() {
    let app = spawn_app_with(2, |c| c.seat_map_max_age_ms = 0).await;
    let paused = Event::from_details(
        &app.create_event(show("Paused", Some("2027-06-01T19:30:00Z"), true, json!([floor(5, 0)]))).await,
    );
    let later = Event::from_details(
        &app.create_event(show("Later", Some("2027-06-02T19:30:00Z"), true, json!([floor(5, 0)]))).await,
    );
    set_waiting_room(&app, &paused, "paused").await;
    set_waiting_room(&app, &later, "running").await;
    sqlx::query("UPDATE waitroom_events SET opens_at = '2027-01-01T12:00:00Z' WHERE event_id = $1")
        .bind(later.id)
        .execute(&app.pool)
        .await
        .unwrap();

    let listed = catalogue(&app).await;
    assert_eq!(listed[0]["waiting_room"], json!({ "state": "paused", "opens_at": null, "open": false }));
    assert_eq!(
        listed[1]["waiting_room"],
        json!({ "state": "running", "opens_at": "2027-01-01T12:00:00Z", "open": false })
    );
}
