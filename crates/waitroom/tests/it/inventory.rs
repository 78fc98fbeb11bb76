//! Admission that knows the inventory (issue 18): the sale's seats, changed as the
//! gateway changes them, cap how many fans are let in; a sold-out show admits nobody
//! and says so; places that come back let the next fans in, in line order; a feed that
//! cannot be read leaves admission to the organizer's rate.

use std::time::{Duration, Instant};

use access_token::{TokenScope, TokenVerifier};
use serde_json::{json, Value};
use sqlx::PgPool;
use test_support::RedisKeys;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waitroom::domain::budget::SaleState;

use crate::helpers::{database_behind_proxy, settings, spawn_app_with, spawn_app_with_database, TestApp};

/// Changes `count` of the event's seats in state `from` as the gateway would: holds
/// them for a minute, books them, or frees them.
async fn move_seats(db: &PgPool, event: Uuid, from: &str, to: &str, count: i64) {
    let set = match to {
        "held" => {
            "state = 'held', hold_id = gen_random_uuid(), held_until = now() + interval '1 minute', booking_id = NULL"
        }
        "booked" => "state = 'booked', booking_id = gen_random_uuid(), hold_id = NULL, held_until = NULL",
        _ => "state = 'available', hold_id = NULL, held_until = NULL, booking_id = NULL",
    };
    let moved = sqlx::query(&format!(
        "UPDATE seats SET {set}
         WHERE id IN (SELECT id FROM seats WHERE event_id = $1 AND state::text = $2 ORDER BY id LIMIT $3)"
    ))
    .bind(event)
    .bind(from)
    .bind(count)
    .execute(db)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), count as u64);
}

/// A waiting room on a sale of `places` places (the same event id in both).
async fn sale(app: &TestApp, places: i32, admit_rate: f64) -> Uuid {
    let event = test_support::general_admission_event(&app.db, places).await.unwrap();
    let reply = app.put_settings(event, &settings(admit_rate, 100)).await;
    assert_eq!(reply.status, reqwest::StatusCode::OK, "{}", reply.body);
    event
}

async fn joined(app: &TestApp, event: Uuid, fans: &[String]) -> Vec<String> {
    let mut tickets = Vec::new();
    for fan in fans {
        tickets.push(app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    tickets
}

#[tokio::test]
async fn admission_stops_at_the_places_left_says_sold_out_and_resumes_in_line_order_when_places_come_back() {
    let app = spawn_app_with(|c| c.inventory.shoppers_per_place = 1.0).await;
    let event = sale(&app, 4, 1000.0).await;
    let fans: Vec<String> = (0..10).map(|i| format!("fan-{i:02}")).collect();
    let tickets = joined(&app, event, &fans).await;
    read_until(&app, event, SaleState::OnSale).await;

    assert_eq!(app.admit(event, 10, 25).await, fans[..4], "as many shoppers as places");
    let stats = app.stats(event).await;
    assert_eq!(stats["active"], 4);
    assert_eq!(stats["inventory"], json!({ "sale_state": "on_sale", "sellable": 4, "held": 0, "shopper_cap": 4 }));

    // The first shoppers hold two places and book two: every place is taken or in a
    // basket, so the line waits and is told why.
    move_seats(&app.db, event, "available", "held", 2).await;
    move_seats(&app.db, event, "available", "booked", 2).await;
    read_until(&app, event, SaleState::AllHeld).await;
    let waiting = app.poll_ok(event, &tickets[4]).await;
    assert_eq!((waiting["status"].as_str(), waiting["sale_state"].as_str()), (Some("waiting"), Some("all_held")));
    assert_eq!(app.stats(event).await["inventory"]["shopper_cap"], 0);

    // The holds are booked: sold out. Shoppers leaving free no room for anyone.
    move_seats(&app.db, event, "held", "booked", 2).await;
    read_until(&app, event, SaleState::SoldOut).await;
    for admitted in &tickets[..4] {
        app.leave(event, admitted).await;
    }
    assert_eq!(app.admit(event, 1, 10).await, Vec::<String>::new(), "nobody is let in to a sold-out show");
    let told = app.poll_ok(event, &tickets[4]).await;
    assert_eq!(told["sale_state"], "sold_out");
    assert_eq!(told["eta_seconds"], Value::Null, "no wait to tell when nobody more is let in");
    assert_eq!(told["position"], 1, "the fan keeps their place");
    assert!(told.get("waitlist_token").is_none(), "the event has no waitlist");
    let stats = app.stats(event).await;
    assert_eq!(stats["inventory"], json!({ "sale_state": "sold_out", "sellable": 0, "held": 0, "shopper_cap": 0 }));
    assert_eq!(stats["active"], 0);

    // The organizer opens a waitlist: the line is handed tokens to join it, and only it.
    sqlx::query("UPDATE events SET waitlist_enabled = true WHERE id = $1").bind(event).execute(&app.db).await.unwrap();
    until(|| async {
        app.inventory.refresh(event).await.unwrap();
        app.inventory.waitlist_enabled(event).then_some(())
    })
    .await;
    let told = app.poll_ok(event, &tickets[5]).await;
    let token = told["waitlist_token"].as_str().expect("a waitlist token for a fan in line");
    let claims = TokenVerifier::new(&app.public_keys, 0).verify(token).expect("the gateway accepts it");
    assert_eq!((claims.sub.as_str(), claims.evt, claims.scope), ("fan-05", event, TokenScope::Waitlist));
    assert_eq!(app.poll_ok(event, &tickets[5]).await["waitlist_token"], token, "the same token while it lasts");

    // A cancellation gives a place back: the next fan in line, and only them.
    move_seats(&app.db, event, "booked", "available", 1).await;
    read_until(&app, event, SaleState::OnSale).await;
    assert_eq!(app.admit(event, 2, 10).await, fans[4..5]);
    assert_eq!(app.poll_ok(event, &tickets[4]).await["sale_state"], "on_sale");
    assert!(app.poll_ok(event, &tickets[5]).await.get("waitlist_token").is_none(), "not sold out any more");
}

#[tokio::test]
async fn a_waiting_room_without_a_sale_behind_it_admits_at_the_organizers_rate_as_before() {
    let app = spawn_app_with(|_| {}).await;
    let event = app.new_event(settings(1000.0, 5)).await;
    let fans: Vec<String> = (0..8).map(|i| format!("fan-{i}")).collect();
    let tickets = joined(&app, event, &fans).await;
    app.inventory.refresh(event).await.unwrap();
    assert_eq!(app.admit(event, 8, 25).await, fans[..5], "max_active alone caps the room");
    assert_eq!(app.stats(event).await["inventory"], Value::Null);
    assert!(app.poll_ok(event, &tickets[7]).await.get("sale_state").is_none());
}

/// Counts older than `stale_after_ms` are dropped: with PostgreSQL partitioned, a
/// sold-out show's room admits at the organizer's rate again and the metric says the
/// counts are stale; once the partition heals, the budget is back.
#[tokio::test]
async fn when_the_feed_cannot_be_read_admission_follows_the_organizers_rate_and_the_metric_says_so() {
    let keys = RedisKeys::new();
    let (proxy, database) = database_behind_proxy(&keys).await;
    let app = spawn_app_with_database(keys, &database, |c| {
        c.admitter_tick_ms = 20;
        c.inventory.refresh_ms = 100;
        c.inventory.stale_after_ms = 600;
    })
    .await;
    let event = sale(&app, 2, 50.0).await;
    move_seats(&app.db, event, "available", "booked", 2).await;
    let fans: Vec<String> = (0..6).map(|i| format!("fan-{i}")).collect();
    joined(&app, event, &fans).await;
    read_until(&app, event, SaleState::SoldOut).await;
    let stop = CancellationToken::new();
    let admitter = tokio::spawn(waitroom::run_admitter(app.admitter.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.stats(event).await["admitted_total"], 0, "sold out: nobody let in");
    let stale = format!("boxoffice_waitroom_inventory_stale{{event=\"{event}\"}}");
    assert_eq!(metric(&app, &stale).await, Some(0.0));

    proxy.freeze();
    let frozen_at = Instant::now();
    let admitted = until(|| async { app.stats(event).await["admitted_total"].as_u64().filter(|&n| n >= 2) }).await;
    // The last read before the partition was at most refresh_ms before it.
    assert!(frozen_at.elapsed() >= Duration::from_millis(500), "not before the counts went stale");
    assert!(admitted >= 2);
    assert_eq!(metric(&app, &stale).await, Some(1.0));
    assert_eq!(app.stats(event).await["inventory"], Value::Null);

    proxy.thaw();
    until(|| async { (metric(&app, &stale).await == Some(0.0)).then_some(()) }).await;
    assert_eq!(app.stats(event).await["inventory"]["sale_state"], "sold_out");
    stop.cancel();
    admitter.await.unwrap();
}

/// Reads the seat feed until the sale is in `state`. A change is readable once every
/// transaction of the cluster older than it has ended, other tests' among them, so one
/// read right after a write may not see it yet.
async fn read_until(app: &TestApp, event: Uuid, state: SaleState) {
    until(|| async {
        app.inventory.refresh(event).await.unwrap();
        (app.inventory.sale_state(event) == Some(state)).then_some(())
    })
    .await;
}

async fn metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = app.metrics_text().await;
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Polls `check` every 50 ms until it returns `Some`, for at most 30 s.
async fn until<T, F: std::future::Future<Output = Option<T>>>(mut check: impl FnMut() -> F) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_no_longer_stepped_are_forgotten_and_read_afresh_if_they_come_back() {
    let app = spawn_app_with(|c| {
        c.inventory.refresh_ms = 50;
        c.inventory.stale_after_ms = 100;
    })
    .await;
    let (old, new) = (sale(&app, 4, 10.0).await, sale(&app, 4, 10.0).await);
    app.inventory.refresh_in_background(old);
    until(|| async { app.inventory.budget(old) }).await;
    // Ten times stale_after_ms without a step: the admitter no longer walks it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(app.inventory.stale(old), "still held, too old to use");
    app.inventory.refresh_in_background(new);
    assert!(!app.inventory.stale(old), "forgotten: nothing is held of it");
    app.inventory.refresh_in_background(old);
    assert_eq!(until(|| async { app.inventory.budget(old) }).await.availability.sellable, 4);
}
