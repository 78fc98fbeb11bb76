//! The oversell watchdog, seen the way an operator sees it: through `/metrics`.
//!
//! A test binary of its own, because the metrics recorder is one per process: no other
//! test may set the watchdog's gauges while this one reads them.

use std::net::SocketAddr;
use std::time::Duration;

use scheduler::{Scheduler, SchedulerConfig};
use sqlx::PgPool;
use test_support::TestDatabase;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// An event of `places` general-admission places, the first `booked` of them sold one
/// per booking, written as the gateway writes a sale: seat row, booking, booking seat.
async fn event_with_bookings(pool: &PgPool, places: i32, booked: i32) -> Vec<i64> {
    let event = test_support::general_admission_event(pool, places).await.unwrap();
    let seats: Vec<i64> = sqlx::query_scalar("SELECT id FROM seats WHERE event_id = $1 ORDER BY id LIMIT $2")
        .bind(event)
        .bind(i64::from(booked))
        .fetch_all(pool)
        .await
        .unwrap();
    for &seat in &seats {
        booking_of(pool, event, seat, true).await;
    }
    seats
}

/// One booking of one seat, without the seat row's update when `record` is false.
async fn booking_of(pool: &PgPool, event: Uuid, seat: i64, record: bool) {
    let booking = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO bookings (id, event_id, fan_id, quantity, total_minor) VALUES ($1, $2, 'fan-' || $3, 1, 0)",
    )
    .bind(booking)
    .bind(event)
    .bind(seat)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO booking_seats (booking_id, seat_id, price_minor) VALUES ($1, $2, 0)")
        .bind(booking)
        .bind(seat)
        .execute(pool)
        .await
        .unwrap();
    if record {
        sqlx::query("UPDATE seats SET state = 'booked', booking_id = $1 WHERE id = $2")
            .bind(booking)
            .bind(seat)
            .execute(pool)
            .await
            .unwrap();
    }
}

async fn event_of(pool: &PgPool, seat: i64) -> Uuid {
    sqlx::query_scalar("SELECT event_id FROM seats WHERE id = $1").bind(seat).fetch_one(pool).await.unwrap()
}

/// The value of the series `series` (name and labels, as exported) in `/metrics`.
async fn scrape(metrics: SocketAddr, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{metrics}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits (up to 10 s, the watchdog runs every second) until `series` reads `expected`.
async fn wait_for(metrics: SocketAddr, series: &str, expected: f64) {
    let mut last = None;
    for _ in 0..100 {
        last = scrape(metrics, series).await;
        if last == Some(expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{series} should read {expected}, read {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_gauges_read_zero_until_an_invariant_is_broken_behind_the_apps_back() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let sold = event_with_bookings(&db.pool, 10, 4).await;
    // Only the watchdog ticks during the test, every second.
    let config: SchedulerConfig = test_support::config(&[("check_invariants_every_secs", "1")], |_| {});
    let scheduler = Scheduler::start(&config, db.service_database(4), None, None).await.unwrap();
    let metrics = scheduler.health_addr().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));

    wait_for(metrics, "boxoffice_oversold_seats", 0.0).await;
    for invariant in ["oversold_seat", "seat_in_two_bookings", "booking_quantity_mismatch"] {
        wait_for(metrics, &format!("boxoffice_invariant_violations{{invariant=\"{invariant}\"}}"), 0.0).await;
    }
    assert!(scrape(metrics, "boxoffice_watchdog_last_run_timestamp_seconds").await.unwrap() > 1.7e9);
    // Created at 0 before any run (this job does not tick during the test).
    wait_for(metrics, "boxoffice_scheduler_job_skipped_total{task=\"purge_idempotency_keys\"}", 0.0).await;

    // A hand-run "fix" frees a sold seat: the booking still holds it, the inventory
    // would sell it again.
    sqlx::query("UPDATE seats SET state = 'available', booking_id = NULL WHERE id = $1")
        .bind(sold[0])
        .execute(&db.pool)
        .await
        .unwrap();
    wait_for(metrics, "boxoffice_oversold_seats", 1.0).await;
    wait_for(metrics, "boxoffice_invariant_violations{invariant=\"oversold_seat\"}", 1.0).await;

    // Without the unique index, a second booking takes a seat someone already has.
    sqlx::query("DROP INDEX booking_seats_one_live_booking_per_seat").execute(&db.pool).await.unwrap();
    booking_of(&db.pool, event_of(&db.pool, sold[1]).await, sold[1], false).await;
    wait_for(metrics, "boxoffice_oversold_seats", 2.0).await;
    wait_for(metrics, "boxoffice_invariant_violations{invariant=\"seat_in_two_bookings\"}", 1.0).await;

    // A booking cancelled behind the app's back leaves its seat marked booked: lost to sale.
    sqlx::query("UPDATE booking_seats SET live = false WHERE seat_id = $1")
        .bind(sold[2])
        .execute(&db.pool)
        .await
        .unwrap();
    wait_for(metrics, "boxoffice_invariant_violations{invariant=\"booked_seat_without_booking\"}", 1.0).await;
    wait_for(metrics, "boxoffice_invariant_violations{invariant=\"booking_quantity_mismatch\"}", 1.0).await;

    // A watchdog that cannot read leaves its last-run timestamp as it was, so it goes
    // stale and BoxofficeWatchdogStale fires instead of the old figures being trusted.
    let failures = "boxoffice_scheduler_job_failures_total{task=\"check_invariants\"}";
    let failed_before = scrape(metrics, failures).await.unwrap();
    sqlx::query("ALTER TABLE booking_seats RENAME TO booking_seats_gone").execute(&db.pool).await.unwrap();
    // After one failed run none of the earlier, successful ones is still going (runs
    // do not overlap), so the timestamp read now is the last one.
    wait_for(metrics, failures, failed_before + 1.0).await;
    let last_run = scrape(metrics, "boxoffice_watchdog_last_run_timestamp_seconds").await.unwrap();
    wait_for(metrics, failures, failed_before + 3.0).await;
    assert_eq!(scrape(metrics, "boxoffice_watchdog_last_run_timestamp_seconds").await, Some(last_run));
    assert_eq!(scrape(metrics, "boxoffice_oversold_seats").await, Some(2.0), "the last successful run's figure");

    shutdown.cancel();
    running.await.unwrap().unwrap();
}
