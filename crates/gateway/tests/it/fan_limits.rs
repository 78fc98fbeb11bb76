//! Purchase limits per fan (`max_per_fan`): enforced by the database under concurrency,
//! counted across the fan's live holds and bookings.

use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::Reply;
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with_pool_size, Event, TestApp, ADMIN_KEY};

/// A free event with a reserved section of seats "1".."seats" and a general-admission
/// floor of `floor` places, at most `max_per_fan` places per fan.
async fn limited_event(app: &TestApp, seats: u32, floor: u32, max_per_fan: u32) -> Event {
    let free = json!({ "amount_minor": 0, "currency": "EUR" });
    let details = app
        .create_event(json!({
            "name": "Limited show",
            "max_per_order": 10,
            "max_per_fan": max_per_fan,
            "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }],
            "sections": [
                { "name": "Hall", "kind": "reserved", "price": free, "seats": seats },
                { "name": "Floor", "kind": "general_admission", "price": free, "capacity": floor }
            ]
        }))
        .await;
    assert_eq!(details["max_per_fan"], max_per_fan);
    Event::from_details(&details)
}

async fn change_limit(app: &TestApp, event: &Event, max_per_fan: Value) -> Reply {
    app.send(
        Method::PATCH,
        &format!("/v1/events/{}", event.id),
        Some(ADMIN_KEY),
        Some(json!({ "max_per_fan": max_per_fan })),
    )
    .await
}

/// The fan's live places in the event, counted in the database: unexpired active holds
/// and confirmed bookings.
async fn live_places(app: &TestApp, event: &Event, fan: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT coalesce(sum(quantity), 0) FROM holds
                  WHERE event_id = $1 AND fan_id = $2 AND status = 'active' AND expires_at > now())
              + (SELECT coalesce(sum(quantity), 0) FROM bookings
                  WHERE event_id = $1 AND fan_id = $2 AND status = 'confirmed')",
    )
    .bind(event.id)
    .bind(fan)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[track_caller]
fn assert_limit_reached(reply: &Reply, max_per_fan: u64, remaining: u64) {
    assert_eq!((reply.status, reply.code()), (StatusCode::CONFLICT, "fan_limit_reached"), "{}", reply.body);
    assert_eq!(
        reply.body["error"]["details"],
        json!({ "max_per_fan": max_per_fan, "remaining": remaining }),
        "{}",
        reply.body
    );
}

/// Sends the order again while it is told `seat_contended` (another order holds a lock
/// it needs right now), as a client of the API should.
async fn retrying_contention<F: Fn() -> BoxFuture<'static, Reply>>(send: F) -> Reply {
    for _ in 0..50 {
        let reply = send().await;
        if reply.code() != "seat_contended" {
            return reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    send().await
}

/// A hold, retried while contended: a refused order's locks last until its rollback
/// reaches the database, which can be a moment after its reply.
async fn hold_as(app: &TestApp, event: &Event, fan: &str, request: Value) -> Reply {
    retrying_contention(|| app.hold(event, fan, request.clone()).boxed()).await
}

/// A one-step booking, retried while contended.
async fn book_as(app: &TestApp, event: &Event, fan: &str, request: Value) -> Reply {
    retrying_contention(|| app.book(event, fan, request.clone()).boxed()).await
}

#[track_caller]
fn id(reply: &Reply) -> String {
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// One fan fires 20 orders at once by every path: chosen-seat holds (one statement),
/// chosen-seat bookings, best-available and general-admission orders (transactions).
/// Each takes one place; exactly the limit's worth commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_orders_by_one_fan_never_take_more_than_max_per_fan() {
    const LIMIT: usize = 5;
    let app = spawn_app_with_pool_size(24).await;
    for round in 0..3 {
        let event = limited_event(&app, 100, 100, LIMIT as u32).await;
        let fan = format!("greedy-{round}");
        let (hall, floor) = (event.sections[0].to_string(), event.sections[1].to_string());
        // Chosen seats from the back, best available from the front. Best-available
        // orders of the fan may still meet each other's seat locks (`seat_contended`):
        // they retry, as clients do.
        let orders = (0..20).map(|i| {
            let (app, event, fan, hall, floor) = (&app, &event, &fan, &hall, &floor);
            retrying_contention(move || match i % 4 {
                0 => app.hold(event, fan, json!({ "seats": [(100 - i).to_string()] })).boxed(),
                1 => app.book(event, fan, json!({ "seats": [(100 - i).to_string()] })).boxed(),
                2 => app.hold(event, fan, json!({ "section_id": hall, "quantity": 1 })).boxed(),
                _ => app.book(event, fan, json!({ "section_id": floor, "quantity": 1 })).boxed(),
            })
        });
        let replies = futures::future::join_all(orders).await;
        let taken = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
        for refused in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
            assert_limit_reached(refused, LIMIT as u64, 0);
        }
        assert_eq!(taken, LIMIT, "round {round}: {taken} orders of one place each were taken");
        assert_eq!(live_places(&app, &event, &fan).await, LIMIT as i64, "round {round}");
        app.assert_inventory_consistent(&event).await;
    }
}

#[tokio::test]
async fn an_order_past_the_limit_is_refused_whole_with_what_the_fan_may_still_take() {
    let app = spawn_app().await;
    let event = limited_event(&app, 20, 10, 4).await;
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["1"] })).await);
    id(&book_as(&app, &event, "fan-1", json!({ "seats": ["2"] })).await);
    let refused = hold_as(&app, &event, "fan-1", json!({ "seats": ["3", "4", "5"] })).await;
    assert_limit_reached(&refused, 4, 2);
    assert!(refused.body["error"]["message"].as_str().unwrap().contains("2 more"), "{}", refused.body);
    let (held,): (i64,) = sqlx::query_as("SELECT count(*) FROM seats WHERE event_id = $1 AND state <> 'available'")
        .bind(event.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(held, 2, "the refused order took nothing");
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["3", "4"] })).await);
    assert_eq!(live_places(&app, &event, "fan-1").await, 4);
}

#[tokio::test]
async fn other_fans_are_unaffected_by_one_fan_at_the_limit() {
    let app = spawn_app().await;
    let event = limited_event(&app, 20, 10, 2).await;
    id(&hold_as(&app, &event, "fan-a", json!({ "seats": ["1", "2"] })).await);
    assert_limit_reached(&hold_as(&app, &event, "fan-a", json!({ "seats": ["3"] })).await, 2, 0);
    id(&hold_as(&app, &event, "fan-b", json!({ "seats": ["3", "4"] })).await);
    id(&book_as(&app, &event, "fan-c", json!({ "section_id": event.sections[1], "quantity": 2 })).await);
    assert_eq!(live_places(&app, &event, "fan-a").await, 2);
    assert_eq!(live_places(&app, &event, "fan-b").await, 2);
    assert_eq!(live_places(&app, &event, "fan-c").await, 2);
}

#[tokio::test]
async fn released_and_expired_holds_and_cancelled_bookings_free_up_the_allowance() {
    let app = spawn_app().await;
    let event = limited_event(&app, 20, 10, 2).await;
    let first = id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["1"] })).await);
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["2"] })).await);
    assert_limit_reached(&hold_as(&app, &event, "fan-1", json!({ "seats": ["3"] })).await, 2, 0);

    // Released: its place counts no more.
    let token = app.token("fan-1", &event);
    let released = app.send(Method::DELETE, &event.path(&format!("/holds/{first}")), Some(&token), None).await;
    assert_eq!(released.status, StatusCode::OK, "{}", released.body);
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["3"] })).await);
    assert_limit_reached(&hold_as(&app, &event, "fan-1", json!({ "seats": ["4"] })).await, 2, 0);

    // Expired by the clock, before any sweep: both count no more at once.
    app.lapse_holds(&event).await;
    let booking = id(&book_as(&app, &event, "fan-1", json!({ "seats": ["4", "5"] })).await);
    assert_limit_reached(
        &book_as(&app, &event, "fan-1", json!({ "section_id": event.sections[1], "quantity": 1 })).await,
        2,
        0,
    );

    // Cancelled: its places count no more.
    let cancelled =
        app.send(Method::POST, &event.path(&format!("/bookings/{booking}/cancel")), Some(&token), None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    id(&book_as(&app, &event, "fan-1", json!({ "section_id": event.sections[1], "quantity": 2 })).await);
    assert_eq!(live_places(&app, &event, "fan-1").await, 2);
}

#[tokio::test]
async fn confirming_a_hold_does_not_count_its_places_twice() {
    let app = spawn_app().await;
    let event = limited_event(&app, 20, 10, 3).await;
    let hold = id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["1", "2"] })).await);
    let token = app.token("fan-1", &event);
    let confirmed = app.send(Method::POST, &event.path(&format!("/holds/{hold}/confirm")), Some(&token), None).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    assert_eq!(live_places(&app, &event, "fan-1").await, 2);
    assert_limit_reached(&hold_as(&app, &event, "fan-1", json!({ "seats": ["3", "4"] })).await, 3, 1);
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["3"] })).await);
}

#[tokio::test]
async fn a_lowered_limit_applies_to_new_orders_while_what_was_taken_stays() {
    let app = spawn_app().await;
    let event = limited_event(&app, 20, 10, 4).await;
    let hold = id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["1", "2", "3"] })).await);

    let lowered = change_limit(&app, &event, json!(2)).await;
    assert_eq!(lowered.status, StatusCode::OK, "{}", lowered.body);
    assert_eq!(lowered.body["max_per_fan"], 2);
    // The next order, on this replica and on another, obeys the new limit at once: the
    // database reads it at each order.
    assert_limit_reached(&hold_as(&app, &event, "fan-1", json!({ "seats": ["4"] })).await, 2, 0);
    let other = app.another_replica().await;
    assert_limit_reached(&hold_as(&other, &event, "fan-1", json!({ "seats": ["4"] })).await, 2, 0);
    id(&hold_as(&app, &event, "fan-2", json!({ "seats": ["5", "6"] })).await);
    assert_limit_reached(&hold_as(&app, &event, "fan-2", json!({ "seats": ["7"] })).await, 2, 0);

    // The hold taken under the old limit stays, and is confirmed.
    let token = app.token("fan-1", &event);
    let confirmed = app.send(Method::POST, &event.path(&format!("/holds/{hold}/confirm")), Some(&token), None).await;
    assert_eq!(confirmed.status, StatusCode::CREATED, "{}", confirmed.body);
    assert_eq!(live_places(&app, &event, "fan-1").await, 3);

    // Raised, and removed.
    assert_eq!(change_limit(&app, &event, json!(4)).await.status, StatusCode::OK);
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["4"] })).await);
    assert_limit_reached(&hold_as(&app, &event, "fan-1", json!({ "seats": ["8"] })).await, 4, 0);
    let removed = change_limit(&app, &event, Value::Null).await;
    assert_eq!(removed.body["max_per_fan"], Value::Null, "{}", removed.body);
    id(&hold_as(&app, &event, "fan-1", json!({ "seats": ["8", "9", "10"] })).await);
    assert_eq!(live_places(&app, &event, "fan-1").await, 7);
}

#[tokio::test]
async fn max_per_fan_out_of_range_is_refused_at_creation_and_change() {
    let app = spawn_app().await;
    for bad in [json!(0), json!(200_001), json!(-1), json!("3")] {
        let reply = app
            .send(
                Method::POST,
                "/v1/events",
                Some(ADMIN_KEY),
                Some(json!({
                    "name": "Bad limit", "max_per_fan": bad,
                    "sections": [{ "name": "Hall", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 3 }]
                })),
            )
            .await;
        assert!(reply.status.is_client_error(), "{bad}: {} {}", reply.status, reply.body);
    }
    let event = app.numbered_event(3).await;
    assert_eq!(app.details(&event).await["max_per_fan"], Value::Null, "no limit unless set");
    let zero = change_limit(&app, &event, json!(0)).await;
    assert_eq!((zero.status, zero.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"), "{}", zero.body);
    let missing = app
        .send(
            Method::PATCH,
            &format!("/v1/events/{}", Uuid::now_v7()),
            Some(ADMIN_KEY),
            Some(json!({ "max_per_fan": 3 })),
        )
        .await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "event_not_found"));
    let unauthorised =
        app.send(Method::PATCH, &format!("/v1/events/{}", event.id), None, Some(json!({ "max_per_fan": 3 }))).await;
    assert_eq!(unauthorised.status, StatusCode::UNAUTHORIZED);
}
