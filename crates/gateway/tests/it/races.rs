//! Many fans at once: the database must sell every seat exactly once.

use std::collections::HashMap;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use sales::store::invariants::Violations;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_pool_size, Event, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_fans_racing_for_five_places_leaves_exactly_five_bookings() {
    let app = spawn_app().await;
    let event = app.ga_event(5).await;
    let replies = futures::future::join_all(
        (0..10)
            .map(|i| app.book(&event, &format!("fan-{i}"), json!({ "section_id": event.sections[0], "quantity": 1 }))),
    )
    .await;
    let won = replies.iter().filter(|r| r.status == StatusCode::CREATED).count();
    let lost: Vec<_> = replies.iter().filter(|r| r.status != StatusCode::CREATED).collect();
    assert_eq!(won, 5);
    for reply in lost {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert!(["sold_out", "seat_contended"].contains(&reply.code()), "{}", reply.body);
    }
    assert_eq!(app.details(&event).await["sections"][0]["remaining"], 0);
    assert_eq!(app.assert_inventory_consistent(&event).await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_fans_choosing_the_same_seat_at_once_get_one_booking() {
    let app = spawn_app().await;
    for round in 0..20 {
        let event = app.numbered_event(1).await;
        let (a, b) = tokio::join!(
            app.book(&event, &format!("a-{round}"), json!({ "seats": ["1"] })),
            app.book(&event, &format!("b-{round}"), json!({ "seats": ["1"] })),
        );
        let winners = [&a, &b].iter().filter(|r| r.status == StatusCode::CREATED).count();
        assert_eq!(winners, 1, "exactly one fan gets seat 1");
        for loser in [&a, &b].iter().filter(|r| r.status != StatusCode::CREATED) {
            assert!(["seat_unavailable", "seat_contended"].contains(&loser.code()), "{}", loser.body);
        }
        let (rows,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id WHERE s.event_id = $1",
        )
        .bind(event.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(rows, winners as i64);
        app.assert_inventory_consistent(&event).await;
    }
}

/// 200 clients make 5,000 attempts on 500 places, mixing chosen seats, best available
/// and general admission, holds and direct bookings.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_mixed_orders_sells_every_place_exactly_once() {
    const CLIENTS: usize = 200;
    const ATTEMPTS: usize = 5_000;
    let app = Arc::new(spawn_app_with_pool_size(20).await);
    let rows: Vec<Value> = "ABCDEFGHIJ".chars().map(|r| json!({ "label": r.to_string(), "seats": 20 })).collect();
    let circle: Vec<Value> = "KLMNO".chars().map(|r| json!({ "label": r.to_string(), "seats": 20 })).collect();
    let details = app
        .create_event(json!({
            "name": "Storm",
            "max_per_order": 4,
            "sections": [
                { "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "rows": rows },
                { "name": "Circle", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "rows": circle },
                { "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 0, "currency": "EUR" }, "capacity": 200 }
            ]
        }))
        .await;
    let event = Event::from_details(&details);

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (app, event, next) = (app.clone(), event.clone(), next.clone());
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(client as u64);
                let mut outcomes: HashMap<String, usize> = HashMap::new();
                let mut seats_won = 0;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < ATTEMPTS {
                    let (won, outcome) = attempt(&app, &event, &format!("fan-{client}"), &mut rng).await;
                    seats_won += won;
                    *outcomes.entry(outcome).or_default() += 1;
                }
                (seats_won, outcomes)
            })
        })
        .collect();
    let mut seats_won = 0;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        let (won, o) = task.await.unwrap();
        seats_won += won;
        for (k, v) in o {
            *outcomes.entry(k).or_default() += v;
        }
    }
    let unexpected: Vec<_> = outcomes
        .keys()
        .filter(|k| !["created", "seat_unavailable", "seat_contended", "sold_out"].contains(&k.as_str()))
        .collect();
    assert!(unexpected.is_empty(), "unexpected outcomes: {outcomes:?}");

    // Whatever the storm left unsold, sell one place at a time: a 501st must be impossible.
    for section in &event.sections {
        loop {
            let reply = app.book(&event, "sweeper", json!({ "section_id": section, "quantity": 1 })).await;
            match reply.status {
                StatusCode::CREATED => seats_won += 1,
                _ => {
                    assert_eq!(reply.code(), "sold_out", "{}", reply.body);
                    break;
                }
            }
        }
    }
    assert_eq!(seats_won, 500, "every success is a sold place: {outcomes:?}");
    assert_eq!(app.assert_inventory_consistent(&event).await, 500);
    let (distinct,): (i64,) = sqlx::query_as("SELECT count(DISTINCT seat_id) FROM booking_seats WHERE live")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(distinct, 500);
    let violations =
        sales::store::invariants::check(&mut app.pool.begin().await.unwrap(), Default::default()).await.unwrap();
    assert_eq!(violations, Violations::default(), "the oversell watchdog disagrees with the checks above");
}

/// One random order; returns the places it won and its outcome.
async fn attempt(app: &TestApp, event: &Event, fan: &str, rng: &mut impl Rng) -> (usize, String) {
    let quantity = rng.gen_range(1..=3);
    let request = match rng.gen_range(0..3) {
        0 => {
            let row = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"][rng.gen_range(0..10)];
            let first = rng.gen_range(1..=20 - quantity + 1);
            json!({ "seats": (first..first + quantity).map(|n| format!("{row}-{n}")).collect::<Vec<_>>() })
        }
        1 => json!({ "section_id": event.sections[rng.gen_range(0..2)], "quantity": quantity }),
        _ => json!({ "section_id": event.sections[2], "quantity": quantity }),
    };
    let via_hold = rng.gen_bool(0.3);
    let reply = if via_hold { app.hold(event, fan, request).await } else { app.book(event, fan, request).await };
    if reply.status != StatusCode::CREATED {
        return (0, reply.code().to_owned());
    }
    let won = reply.body["seats"].as_array().map_or(0, Vec::len);
    if via_hold {
        let token = app.token(fan, event);
        let path = event.path(&format!("/holds/{}/confirm", reply.body["id"].as_str().unwrap()));
        let confirmed = app.send(reqwest::Method::POST, &path, Some(&token), None).await;
        assert_eq!(confirmed.status, StatusCode::CREATED, "confirming a fresh hold: {}", confirmed.body);
    }
    (won, "created".into())
}
