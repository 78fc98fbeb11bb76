//! An open page's hold (issue 17): heartbeats extend it up to one hard cap on its whole
//! life, and a page closing releases it with the token in the body, as
//! `navigator.sendBeacon` sends it.

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, Event, TestApp};

const CAP_SECS: i64 = 600;

async fn app() -> TestApp {
    spawn_app_with(4, |config| config.hold_max_lifetime_secs = CAP_SECS as u64).await
}

async fn event(app: &TestApp, hold_ttl_seconds: u32) -> Event {
    let body = app
        .create_event(json!({
            "name": "Heartbeats", "hold_ttl_seconds": hold_ttl_seconds,
            "sections": [{ "name": "Hall", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 4 }]
        }))
        .await;
    Event::from_details(&body)
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// The hold's creation, expiry and its seats' hold ends, as the database has them.
async fn stored(app: &TestApp, hold: Uuid) -> (DateTime<Utc>, DateTime<Utc>, Vec<DateTime<Utc>>) {
    let (created, expires): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT created_at, expires_at FROM holds WHERE id = $1")
            .bind(hold)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let seats: Vec<DateTime<Utc>> = sqlx::query_scalar("SELECT held_until FROM seats WHERE hold_id = $1")
        .bind(hold)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    (created, expires, seats)
}

fn heartbeat(
    app: &TestApp,
    event: &Event,
    fan: &str,
    hold: Uuid,
) -> impl std::future::Future<Output = test_support::Reply> {
    let token = app.token(fan, event);
    app.send(Method::POST, &event.path(&format!("/holds/{hold}/heartbeat")), Some(&token), None)
}

#[tokio::test]
async fn heartbeats_extend_an_open_pages_hold_and_its_seats_but_never_past_the_cap() {
    let app = app().await;
    let event = event(&app, 60).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["1", "2"] })).await;
    let hold_id: Uuid = hold.body["id"].as_str().unwrap().parse().unwrap();

    // Nine minutes and fifty seconds old, five seconds left: a heartbeat would give a
    // minute, the cap allows ten seconds more.
    sqlx::query(
        "WITH aged AS (UPDATE holds SET created_at = now() - interval '590 seconds', expires_at = now() + interval '5 seconds'
                       WHERE id = $1 RETURNING expires_at)
         UPDATE seats SET held_until = aged.expires_at FROM aged WHERE seats.hold_id = $1",
    )
    .bind(hold_id)
    .execute(&app.pool)
    .await
    .unwrap();
    let beat = heartbeat(&app, &event, "fan-1", hold_id).await;
    assert_eq!(beat.status, StatusCode::OK, "{}", beat.body);
    let (created, expires, seats) = stored(&app, hold_id).await;
    let cap = created + chrono::Duration::seconds(CAP_SECS);
    assert_eq!((at(&beat.body["expires_at"]), at(&beat.body["latest_expires_at"])), (cap, cap));
    assert_eq!((expires, beat.body["extended"].as_bool()), (cap, Some(true)), "extended to the cap, not a minute");
    assert_eq!(seats, [cap, cap], "the seats are held as long as the hold");

    let again = heartbeat(&app, &event, "fan-1", hold_id).await;
    assert_eq!((at(&again.body["expires_at"]), again.body["extended"].as_bool()), (cap, Some(false)));
    let other = heartbeat(&app, &event, "fan-2", hold_id).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "hold_not_found"), "another fan's hold");
}

#[tokio::test]
async fn an_ordinary_heartbeat_gives_the_events_hold_time_from_now() {
    let app = app().await;
    let event = event(&app, 60).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["1"] })).await;
    let hold_id: Uuid = hold.body["id"].as_str().unwrap().parse().unwrap();
    sqlx::query("UPDATE holds SET expires_at = now() + interval '5 seconds' WHERE id = $1")
        .bind(hold_id)
        .execute(&app.pool)
        .await
        .unwrap();

    let beat = heartbeat(&app, &event, "fan-1", hold_id).await;
    let database_now: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&app.pool).await.unwrap();
    let left = at(&beat.body["expires_at"]) - database_now;
    assert!((55..=60).contains(&left.num_seconds()), "about the event's minute from now: {left}");
    assert_eq!(beat.body["extended"], true);
}

#[tokio::test]
async fn a_hold_time_longer_than_the_cap_is_cut_to_it() {
    let app = app().await;
    let event = event(&app, 3600).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["1"] })).await;
    let (created, expires, _) = stored(&app, hold.body["id"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!(expires - created, chrono::Duration::seconds(CAP_SECS));
}

#[tokio::test]
async fn an_ended_hold_is_not_kept_alive() {
    let app = app().await;
    let event = event(&app, 60).await;
    let lapsing = app.hold(&event, "fan-1", json!({ "seats": ["1"] })).await;
    let released = app.hold(&event, "fan-2", json!({ "seats": ["2"] })).await;
    let released_id: Uuid = released.body["id"].as_str().unwrap().parse().unwrap();
    let token = app.token("fan-2", &event);
    app.send(Method::DELETE, &event.path(&format!("/holds/{released_id}")), Some(&token), None).await;
    app.lapse_holds(&event).await;

    let lapsed = heartbeat(&app, &event, "fan-1", lapsing.body["id"].as_str().unwrap().parse().unwrap()).await;
    assert_eq!((lapsed.status, lapsed.code()), (StatusCode::GONE, "hold_expired"));
    let gone = heartbeat(&app, &event, "fan-2", released_id).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::CONFLICT, "hold_not_active"));
}

#[tokio::test]
async fn a_closing_page_releases_its_hold_with_the_token_in_a_text_body() {
    let app = app().await;
    let event = event(&app, 60).await;
    let hold = app.hold(&event, "fan-1", json!({ "seats": ["1", "2"] })).await;
    let hold_id = hold.body["id"].as_str().unwrap();
    let url = app.url(&event.path(&format!("/holds/{hold_id}/release")));
    let beacon = |body: String| {
        let request = app.http.post(&url).header("content-type", "text/plain;charset=UTF-8").body(body);
        test_support::Reply::of(request)
    };

    let garbage = beacon("not json".into()).await;
    assert_eq!((garbage.status, garbage.code()), (StatusCode::BAD_REQUEST, "bad_request"));
    let forged = beacon(json!({ "access_token": "forged" }).to_string()).await;
    assert_eq!((forged.status, forged.code()), (StatusCode::UNAUTHORIZED, "invalid_token"));
    let other = beacon(json!({ "access_token": app.token("fan-2", &event) }).to_string()).await;
    assert_eq!((other.status, other.code()), (StatusCode::NOT_FOUND, "hold_not_found"));
    assert_eq!(app.details(&event).await["sections"][0]["held"], 2, "nothing changed by the refusals");

    let released = beacon(json!({ "access_token": app.token("fan-1", &event) }).to_string()).await;
    assert_eq!((released.status, released.body["status"].as_str()), (StatusCode::OK, Some("released")));
    assert_eq!(app.details(&event).await["sections"][0]["remaining"], 4);
}
