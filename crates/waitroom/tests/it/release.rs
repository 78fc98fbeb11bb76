//! Slots freed when a fan is done (issue 18): a fan who books stops counting under the
//! event's max_active once the waiting room has taken the booking's `booking.confirmed`
//! from the outbox, so the next fan in line is let in; an admission that began after
//! the booking is left alone.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use sales::orders::SeatRequest;
use sales::waitlist::WaitlistRequest;
use sales::FanScope;
use uuid::Uuid;

use crate::helpers::{database_url, settings, spawn_app_with, TestApp};

/// A free general-admission sale of `places` places with a waiting room letting one
/// fan shop at a time (the same event id in both).
async fn one_shopper_at_a_time(app: &TestApp, places: i32) -> Uuid {
    let event = test_support::general_admission_event(&app.db, places).await.unwrap();
    sqlx::query("UPDATE sections SET price_minor = 0 WHERE event_id = $1").bind(event).execute(&app.db).await.unwrap();
    let reply = app.put_settings(event, &settings(1000.0, 1)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    event
}

/// The sale as the gateway runs it, on the waiting room's database. Its payment
/// provider is never called: the places are free.
pub(crate) async fn sales_of(app: &TestApp) -> sales::Sales {
    let provider = stripe_client::StripeClient::new(stripe_client::StripeConfig {
        base_url: "http://127.0.0.1:9".to_owned(),
        secret_key: "sk_test_unused".to_owned().into(),
        request_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
    })
    .unwrap();
    let settings = sales::Settings {
        best_available_attempts: 3,
        create_event_timeout: Duration::from_secs(20),
        event_rules_max_age: Duration::from_secs(1),
        checkout_extension: Duration::from_secs(600),
        hold_max_lifetime: Duration::from_secs(1800),
        refund_retry_first: Duration::from_secs(1),
        refund_retry_max: Duration::from_secs(60),
        provider_check_interval: Duration::from_secs(1),
        webhook_secret_grace: Duration::from_secs(86_400),
        webhook_private_urls_allowed: true,
    };
    let db = test_support::postgres_config(&database_url(&app.prefix).await, 2).database().unwrap();
    sales::Sales::new(db, settings, Arc::new(provider))
}

/// Books one place for `fan` as the gateway's one-step booking does.
async fn book_one(app: &TestApp, sales: &sales::Sales, event: Uuid, fan: &str) {
    let section: Uuid =
        sqlx::query_scalar("SELECT id FROM sections WHERE event_id = $1").bind(event).fetch_one(&app.db).await.unwrap();
    let scope = FanScope { event_id: event, fan_id: fan.to_owned() };
    let request = SeatRequest { seats: None, section_id: Some(section), quantity: Some(1), email: None };
    sales.book(&scope, &request, None).await.unwrap();
}

#[tokio::test]
async fn a_fan_who_books_frees_their_slot_and_the_next_fan_in_line_is_admitted() {
    let app = spawn_app_with(|_| {}).await;
    let sales = sales_of(&app).await;
    let event = one_shopper_at_a_time(&app, 10).await;
    // The waiting room subscribes to bookings as its admitter starts.
    app.admitter.release_slots().await.unwrap();
    let mut tickets = Vec::new();
    for fan in ["fan-a", "fan-b", "fan-c"] {
        tickets.push(app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.admit(event, 1, 25).await, ["fan-a"]);
    assert_eq!(app.admit(event, 1, 5).await, Vec::<String>::new(), "fan-a is shopping: nobody else");

    book_one(&app, &sales, event, "fan-a").await;
    let run = app.admitter.release_slots().await.unwrap();
    assert_eq!((run.attempts, run.delivered), (1, 1));
    assert_eq!(app.stats(event).await["active"], 0, "fan-a no longer counts");
    let metrics = app.metrics_text().await;
    assert!(metrics.contains("boxoffice_waitroom_slot_release_duration_seconds_bucket"), "{metrics}");
    assert_eq!(app.admit(event, 1, 25).await, ["fan-b"], "the next fan in line");
    let done = app.poll(event, &tickets[0]).await;
    assert_eq!((done.status, done.body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_in_queue")));

    // Delivered once: the next run finds nothing to do.
    assert_eq!(app.admitter.release_slots().await.unwrap().attempts, 0);
    assert_eq!(app.stats(event).await["active"], 1, "fan-b shops");
}

#[tokio::test]
async fn a_booking_does_not_end_an_admission_that_began_after_it() {
    let app = spawn_app_with(|c| c.slot_release.clock_skew_ms = 0).await;
    let sales = sales_of(&app).await;
    let event = one_shopper_at_a_time(&app, 10).await;
    app.admitter.release_slots().await.unwrap();
    // fan-a books before ever queueing (another tab, a link), then queues and is let in.
    book_one(&app, &sales, event, "fan-a").await;
    app.join_ok(event, "fan-a").await;
    app.join_ok(event, "fan-b").await;
    assert_eq!(app.admit(event, 1, 25).await, ["fan-a"]);

    let run = app.admitter.release_slots().await.unwrap();
    assert_eq!((run.attempts, run.delivered), (1, 1));
    assert_eq!(app.stats(event).await["active"], 1, "fan-a's admission came after the booking: it still counts");
    assert_eq!(app.admit(event, 1, 5).await, Vec::<String>::new());
}

#[tokio::test]
async fn with_the_release_off_a_fan_who_books_counts_until_their_admission_ends() {
    let app = spawn_app_with(|c| c.slot_release.enabled = false).await;
    let sales = sales_of(&app).await;
    let event = one_shopper_at_a_time(&app, 10).await;
    app.join_ok(event, "fan-a").await;
    app.join_ok(event, "fan-b").await;
    assert_eq!(app.admit(event, 1, 25).await, ["fan-a"]);
    app.admitter.release_slots().await.unwrap();
    book_one(&app, &sales, event, "fan-a").await;

    assert_eq!(app.admitter.release_slots().await.unwrap().attempts, 0);
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_deliveries d JOIN outbox_subscribers s ON s.id = d.subscriber_id
         WHERE s.kind = 'slot_release'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(kept, 0, "nothing kept for a release that is off");
    assert_eq!(app.stats(event).await["active"], 1);
}

#[tokio::test]
async fn a_fan_who_joins_the_waitlist_frees_their_slot_too() {
    // Without the admission budget, which would let nobody in to a sold-out show.
    let app = spawn_app_with(|c| c.inventory.enabled = false).await;
    let sales = sales_of(&app).await;
    let event = one_shopper_at_a_time(&app, 1).await;
    sqlx::query("UPDATE events SET waitlist_enabled = true WHERE id = $1").bind(event).execute(&app.db).await.unwrap();
    app.admitter.release_slots().await.unwrap();
    // The one place went to someone outside the line; fan-a, let in, finds it sold out.
    book_one(&app, &sales, event, "early-bird").await;
    app.join_ok(event, "fan-a").await;
    app.join_ok(event, "fan-b").await;
    assert_eq!(app.admit(event, 1, 25).await, ["fan-a"]);
    app.admitter.release_slots().await.unwrap();
    assert_eq!(app.stats(event).await["active"], 1, "the early bird was never admitted: nothing to free");

    let section: Uuid =
        sqlx::query_scalar("SELECT id FROM sections WHERE event_id = $1").bind(event).fetch_one(&app.db).await.unwrap();
    let scope = FanScope { event_id: event, fan_id: "fan-a".to_owned() };
    let request = WaitlistRequest { quantity: 1, section_ids: vec![section], allow_partial: false, email: None };
    sales.join_waitlist(&scope, &request).await.unwrap();
    let run = app.admitter.release_slots().await.unwrap();
    assert_eq!((run.attempts, run.delivered), (1, 1));
    assert_eq!(app.stats(event).await["active"], 0, "on the waitlist, fan-a no longer counts");
}

#[tokio::test]
async fn after_redis_loses_the_event_a_fan_who_booked_does_not_count_again() {
    let app = spawn_app_with(|c| c.inventory.enabled = false).await;
    let sales = sales_of(&app).await;
    let event = test_support::general_admission_event(&app.db, 10).await.unwrap();
    sqlx::query("UPDATE sections SET price_minor = 0 WHERE event_id = $1").bind(event).execute(&app.db).await.unwrap();
    assert_eq!(app.put_settings(event, &settings(1000.0, 10)).await.status, StatusCode::OK);
    app.admitter.release_slots().await.unwrap();
    app.join_ok(event, "fan-a").await;
    app.join_ok(event, "fan-b").await;
    assert_eq!(app.admit(event, 2, 25).await, ["fan-a", "fan-b"]);
    app.admitter.record_admissions().await.unwrap();
    book_one(&app, &sales, event, "fan-a").await;
    app.admitter.release_slots().await.unwrap();
    assert_eq!(app.stats(event).await["active"], 1);

    // Redis loses the event; the next request rebuilds it from PostgreSQL.
    let mut redis = app.redis.clone();
    let keys = waitroom::store::keys::EventKeys::new(&app.prefix, event).script_keys();
    let _: () = redis::AsyncCommands::del(&mut redis, &keys[..]).await.unwrap();
    let rebuilt = app.stats(event).await;
    assert!(rebuilt["restored_at"].is_string(), "rebuilt: {rebuilt}");
    assert_eq!(rebuilt["active"], 1, "fan-b only: fan-a was done");
}
