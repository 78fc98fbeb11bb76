//! Scheduler tests against a fresh PostgreSQL database each.

use std::time::Duration;

use scheduler::{jobs, Scheduler, SchedulerConfig};
use sqlx::PgPool;
use test_support::TestDatabase;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// An event of `n` general-admission places, each held by its own hold that expired a
/// minute ago (written straight to the database: the state a crashed fleet of clients
/// leaves behind).
async fn expired_holds(pool: &PgPool, n: i32) -> Uuid {
    let event = test_support::general_admission_event(pool, n).await.unwrap();
    sqlx::query(
        "WITH seat AS (SELECT id, gen_random_uuid() AS hold_id FROM seats WHERE event_id = $1),
              hold AS (INSERT INTO holds (id, event_id, fan_id, quantity, total_minor, expires_at)
                       SELECT hold_id, $1, 'fan-' || id, 1, 100, now() - interval '1 minute' FROM seat),
              members AS (INSERT INTO hold_seats (hold_id, seat_id) SELECT hold_id, id FROM seat)
         UPDATE seats s SET state = 'held', hold_id = seat.hold_id, held_until = now() - interval '1 minute'
         FROM seat WHERE s.id = seat.id",
    )
    .bind(event)
    .execute(pool)
    .await
    .unwrap();
    event
}

async fn counts(pool: &PgPool) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM holds WHERE status = 'expired'),
                (SELECT count(*) FROM holds WHERE status = 'active'),
                (SELECT count(*) FROM seats WHERE state = 'available')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sweepers_at_once_release_every_expired_hold_exactly_once() {
    let db = TestDatabase::new(&gateway::MIGRATOR, 10).await.unwrap();
    expired_holds(&db.pool, 5_000).await;
    let (a, b) = tokio::join!(jobs::release_expired_holds(&db.pool, 100), jobs::release_expired_holds(&db.pool, 100));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 5_000, "released {a} + {b}: a hold was released twice or not at all");
    assert_eq!(counts(&db.pool).await, (5_000, 0, 5_000));
    assert_eq!(jobs::release_expired_holds(&db.pool, 100).await.unwrap(), 0);
}

#[tokio::test]
async fn live_holds_are_left_alone() {
    let db = TestDatabase::new(&gateway::MIGRATOR, 5).await.unwrap();
    expired_holds(&db.pool, 10).await;
    sqlx::query(
        "UPDATE holds SET expires_at = now() + interval '1 hour' WHERE fan_id IN (SELECT fan_id FROM holds LIMIT 3)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs::release_expired_holds(&db.pool, 4).await.unwrap(), 7);
    let (expired, active, _) = counts(&db.pool).await;
    assert_eq!((expired, active), (7, 3));
}

#[tokio::test]
async fn the_running_scheduler_sweeps_on_its_interval_and_stops_on_shutdown() {
    let db = TestDatabase::new(&gateway::MIGRATOR, 5).await.unwrap();
    expired_holds(&db.pool, 50).await;
    let config = SchedulerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        release_expired_holds_every_secs: 1,
        release_batch: 20,
        purge_idempotency_keys_every_secs: 3600,
        idempotency_key_retention_hours: 24,
        check_invariants_every_secs: 3600,
        check_invariants_after_start_hours: 24,
        http: test_support::http_config(),
    };
    let shutdown = CancellationToken::new();
    let scheduler = Scheduler::start(&config, db.pool.clone()).await.unwrap();
    let health = scheduler.health_addr().unwrap();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));
    let mut swept = false;
    for _ in 0..50 {
        if counts(&db.pool).await == (50, 0, 50) {
            swept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(swept, "the scheduler did not release the expired holds: {:?}", counts(&db.pool).await);
    let ready = reqwest::get(format!("http://{health}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("scheduler stops").unwrap().unwrap();
}

#[tokio::test]
async fn old_idempotency_keys_are_purged_and_recent_ones_kept() {
    let db = TestDatabase::new(&gateway::MIGRATOR, 5).await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (event_id, fan_id, key, request_hash, created_at) VALUES
         (gen_random_uuid(), 'a', 'old', '\\x00', now() - interval '2 days'),
         (gen_random_uuid(), 'b', 'new', '\\x00', now() - interval '1 hour')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs::purge_idempotency_keys(&db.pool, 24).await.unwrap(), 1);
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys").fetch_all(&db.pool).await.unwrap();
    assert_eq!(keys, ["new"]);
}
