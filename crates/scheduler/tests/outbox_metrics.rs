//! The outbox relay as the running scheduler runs it, seen through `/metrics`: the
//! relay job ticks on its interval, and its outcomes, failures and lag are exported.
//!
//! A test binary of its own, because the metrics recorder is one per process: no other
//! relay may move these counters while this test reads them.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use sales::outbox::{HoldExpired, Message};
use sales::webhooks::{NewWebhook, WebhookSecret};
use scheduler::{Scheduler, SchedulerConfig};
use test_support::TestDatabase;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn scrape(metrics: SocketAddr, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{metrics}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Polls `/metrics` until `series` reads `want`, for up to 15 s; returns what it read last.
async fn until(metrics: SocketAddr, series: &str, want: impl Fn(f64) -> bool) -> Option<f64> {
    let mut last = None;
    for _ in 0..150 {
        last = scrape(metrics, series).await;
        if last.is_some_and(&want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Answers `/fail` with 503 and `Retry-After: 3600` (so no retry comes during the test),
/// anything else with 204.
async fn receiver() -> SocketAddr {
    let app = axum::Router::new().route(
        "/{path}",
        axum::routing::post(|Path(path): Path<String>| async move {
            if path == "fail" {
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "3600")]).into_response()
            } else {
                StatusCode::NO_CONTENT.into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_job_delivers_on_its_interval_and_exports_outcomes_failures_and_lag() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = receiver().await;
    for path in ["ok", "fail"] {
        let new = NewWebhook::new(&format!("http://{receiver}/{path}"), None, None).unwrap();
        let mut conn = db.pool.acquire().await.unwrap();
        sales::store::webhooks::insert(&mut conn, Uuid::now_v7(), &new, &WebhookSecret::generate()).await.unwrap();
    }
    // Two messages of one event: `fail`'s head fails (retried in an hour, as its
    // Retry-After asks), and its second message waits behind it, due and undelivered: the lag.
    let event = Uuid::new_v4();
    let messages: Vec<Message> = (0..2)
        .map(|quantity| {
            Message::HoldExpired(HoldExpired {
                event_id: event,
                hold_id: Uuid::new_v4(),
                fan_id: "fan".into(),
                quantity,
            })
        })
        .collect();
    let mut conn = db.pool.acquire().await.unwrap();
    sales::store::outbox::enqueue(&mut conn, &messages).await.unwrap();
    sqlx::query("UPDATE outbox_messages SET created_at = now() - interval '1 minute'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let config: SchedulerConfig = test_support::config(&[], |c: &mut SchedulerConfig| c.outbox_relay.every_secs = 1);
    let scheduler = Scheduler::start(&config, db.service_database(4), None, None).await.unwrap();
    let metrics = scheduler.health_addr().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));

    let delivered = r#"boxoffice_outbox_deliveries_total{outcome="delivered"}"#;
    assert_eq!(until(metrics, delivered, |n| n == 2.0).await, Some(2.0));
    let lag = until(metrics, "boxoffice_outbox_lag_seconds", |s| s >= 60.0).await.unwrap();
    assert!((60.0..120.0).contains(&lag), "lag {lag}");
    assert_eq!(scrape(metrics, r#"boxoffice_outbox_deliveries_total{outcome="retried"}"#).await, Some(1.0));
    assert_eq!(scrape(metrics, r#"boxoffice_outbox_deliveries_total{outcome="abandoned"}"#).await, Some(0.0));
    assert_eq!(scrape(metrics, r#"boxoffice_webhook_delivery_failures_total{reason="status"}"#).await, Some(1.0));
    assert_eq!(scrape(metrics, r#"boxoffice_webhook_delivery_failures_total{reason="timeout"}"#).await, Some(0.0));
    assert_eq!(scrape(metrics, r#"boxoffice_scheduler_job_failures_total{task="relay_outbox"}"#).await, Some(0.0));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("scheduler stops").unwrap().unwrap();
}
