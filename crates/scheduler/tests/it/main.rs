//! Scheduler tests against a fresh PostgreSQL database each.

mod emails;
mod relay;

use std::time::Duration;

use sales::store::invariants::{self, Scope, Violations};
use scheduler::jobs::{self, Batches, Exclusive, Run};
use scheduler::{Scheduler, SchedulerConfig};
use service_kit::postgres::Database;
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

/// How the scheduler reaches the database: through [`Database`], as in production.
fn service(db: &TestDatabase) -> Database {
    db.service_database(4)
}

/// One watchdog check in a transaction of its own.
async fn check(db: &TestDatabase, scope: Scope) -> Violations {
    let mut tx = db.pool.begin().await.unwrap();
    invariants::check(&mut tx, scope).await.unwrap()
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
    let db = TestDatabase::new(&schema::MIGRATOR, 10).await.unwrap();
    expired_holds(&db.pool, 5_000).await;
    // Two schedulers: a pool each.
    let (one, other) = (service(&db), service(&db));
    let (a, b) = tokio::join!(jobs::release_expired_holds(&one, 100), jobs::release_expired_holds(&other, 100));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 5_000, "released {a} + {b}: a hold was released twice or not at all");
    assert_eq!(counts(&db.pool).await, (5_000, 0, 5_000));
    assert_eq!(jobs::release_expired_holds(&service(&db), 100).await.unwrap(), 0);
}

#[tokio::test]
async fn live_holds_are_left_alone() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    expired_holds(&db.pool, 10).await;
    sqlx::query(
        "UPDATE holds SET expires_at = now() + interval '1 hour' WHERE fan_id IN (SELECT fan_id FROM holds LIMIT 3)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(jobs::release_expired_holds(&service(&db), 4).await.unwrap(), 7);
    let (expired, active, _) = counts(&db.pool).await;
    assert_eq!((expired, active), (7, 3));
}

#[tokio::test]
async fn the_running_scheduler_sweeps_on_its_interval_and_stops_on_shutdown() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    expired_holds(&db.pool, 50).await;
    let config = quiet_config(|c| {
        c.release_expired_holds_every_secs = 1;
        c.release_batch = 20;
    });
    let shutdown = CancellationToken::new();
    let scheduler = Scheduler::start(&config, service(&db), None, None).await.unwrap();
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
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_keys (event_id, fan_id, key, request_hash, created_at) VALUES
         (gen_random_uuid(), 'a', 'old', '\\x00', now() - interval '2 days'),
         (gen_random_uuid(), 'b', 'new', '\\x00', now() - interval '1 hour')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        jobs::purge_idempotency_keys(&service(&db), 24, 5000).await.unwrap(),
        Batches { rows: 1, statements: 1 }
    );
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys").fetch_all(&db.pool).await.unwrap();
    assert_eq!(keys, ["new"]);
}

/// Revocations written `age` ago (SQL intervals), as the gateway's use case writes them
/// (`expires_at` a day and five minutes later), unless `expires_at` is given: the fan's
/// ids, or "token <fan>" for a row that revokes one token.
async fn revocations(pool: &PgPool, rows: &[(&str, &str, Option<&str>)]) {
    for (name, age, expires_in) in rows {
        let (jti, fan_id) = match name.strip_prefix("token ") {
            Some(_) => (Some(Uuid::new_v4()), None),
            None => (None, Some(*name)),
        };
        sqlx::query(
            "INSERT INTO token_revocations (event_id, jti, fan_id, revoked_at, expires_at)
             VALUES (gen_random_uuid(), $1, $2, now() - $3::interval,
                     coalesce(now() + $4::interval, now() - $3::interval + interval '1 day 5 minutes'))",
        )
        .bind(jti)
        .bind(fan_id)
        .bind(age)
        .bind(expires_in)
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn revocations_left(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT coalesce(fan_id, 'token') FROM token_revocations ORDER BY revoked_at")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn revocations_are_purged_once_no_token_they_cover_can_be_valid_and_the_others_kept() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    revocations(
        &db.pool,
        &[
            ("token old", "3 days", None),
            ("expired-fan", "2 days", None),
            ("expired-a-second-ago", "1 day 5 minutes 1 second", None),
            // A token issued just before this revocation is accepted for 5 more minutes.
            ("live-for-5-minutes", "1 day", None),
            ("live-new", "0 seconds", None),
            // Written with a longer lifetime than today's: its own expires_at decides.
            ("long-lived", "2 days", Some("1 hour")),
        ],
    )
    .await;
    // Three expired rows in batches of 2: 2, then 1 (short: done).
    assert_eq!(jobs::purge_token_revocations(&service(&db), 2).await.unwrap(), Batches { rows: 3, statements: 2 });
    assert_eq!(revocations_left(&db.pool).await, ["long-lived", "live-for-5-minutes", "live-new"]);
    assert_eq!(jobs::purge_token_revocations(&service(&db), 2).await.unwrap(), Batches { rows: 0, statements: 1 });
    assert_eq!(revocations_left(&db.pool).await, ["long-lived", "live-for-5-minutes", "live-new"]);
}

/// `n` idempotency keys created `age` ago (an SQL interval), named `{prefix}-1`…
async fn keys(pool: &PgPool, prefix: &str, n: i32, age: &str) {
    sqlx::query(
        "INSERT INTO idempotency_keys (event_id, fan_id, key, request_hash, created_at)
         SELECT gen_random_uuid(), 'fan', $1 || '-' || g, '\\x00', now() - $3::interval - g * interval '1 second'
         FROM generate_series(1, $2) g",
    )
    .bind(prefix)
    .bind(n)
    .bind(age)
    .execute(pool)
    .await
    .unwrap();
}

async fn key_names(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key").fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn the_purge_deletes_exactly_the_old_keys_one_bounded_statement_at_a_time() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    keys(&db.pool, "old", 12, "2 days").await;
    keys(&db.pool, "new", 3, "1 hour").await;

    // One statement deletes at most a batch, oldest first.
    let (old_before,): (i64,) = sqlx::query_as("SELECT count(*) FROM idempotency_keys WHERE key LIKE 'old-%'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(old_before, 12);
    assert_eq!(
        sales::store::idempotency::purge_older_than(&mut db.pool.acquire().await.unwrap(), 24, 5).await.unwrap(),
        5
    );
    let oldest_left: Vec<String> =
        sqlx::query_scalar("SELECT key FROM idempotency_keys WHERE key LIKE 'old-%' ORDER BY created_at LIMIT 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(oldest_left, ["old-7"], "the five oldest (old-12 … old-8) go first");

    // The job loops: 5 + 2 of the 7 left, the short batch ends it.
    assert_eq!(jobs::purge_idempotency_keys(&service(&db), 24, 5).await.unwrap(), Batches { rows: 7, statements: 2 });
    assert_eq!(key_names(&db.pool).await, ["new-1", "new-2", "new-3"]);

    // 12 old keys in batches of 5: 5, 5, 2.
    keys(&db.pool, "old", 12, "3 days").await;
    assert_eq!(jobs::purge_idempotency_keys(&service(&db), 24, 5).await.unwrap(), Batches { rows: 12, statements: 3 });
    assert_eq!(key_names(&db.pool).await, ["new-1", "new-2", "new-3"]);

    // A multiple of the batch takes one more statement, which finds nothing: 5, 5, 0.
    keys(&db.pool, "old", 10, "3 days").await;
    assert_eq!(jobs::purge_idempotency_keys(&service(&db), 24, 5).await.unwrap(), Batches { rows: 10, statements: 3 });
    assert_eq!(jobs::purge_idempotency_keys(&service(&db), 24, 5).await.unwrap(), Batches { rows: 0, statements: 1 });
    assert_eq!(key_names(&db.pool).await, ["new-1", "new-2", "new-3"]);
}

/// Books the first `n` seats of `event`, one booking each, without recording the
/// bookings on the seat rows: `n` oversold seats the watchdog must count, if it looks.
async fn oversell(pool: &PgPool, event: Uuid, n: i64) {
    sqlx::query(
        "WITH seat AS (SELECT id, gen_random_uuid() AS booking FROM seats WHERE event_id = $1 ORDER BY id LIMIT $2),
              booked AS (INSERT INTO bookings (id, event_id, fan_id, quantity, total_minor)
                         SELECT booking, $1, 'fan-' || id, 1, 0 FROM seat)
         INSERT INTO booking_seats (booking_id, seat_id, price_minor) SELECT booking, id, 0 FROM seat",
    )
    .bind(event)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// An event of 32 places with `oversold` (at most 32) oversold seats, created `created`
/// ago and starting at `starts` from now (SQL intervals; `None`: undated).
async fn event(pool: &PgPool, created: &str, starts: Option<&str>, oversold: i64) -> Uuid {
    let event = test_support::general_admission_event(pool, 32).await.unwrap();
    sqlx::query("UPDATE events SET created_at = now() - $2::interval, starts_at = now() + $3::interval WHERE id = $1")
        .bind(event)
        .bind(created)
        .bind(starts)
        .execute(pool)
        .await
        .unwrap();
    oversell(pool, event, oversold).await;
    event
}

#[tokio::test]
async fn the_watchdog_checks_events_on_sale_and_undated_events_for_a_week_only() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    // Each event has its own power of two of oversold seats, so the total says exactly
    // which events were checked.
    event(&db.pool, "1 minute", None, 1).await; // undated, fresh: in scope
    event(&db.pool, "6 days", None, 2).await; // undated, within the week: in scope
    event(&db.pool, "8 days", None, 4).await; // undated, created long ago: out
    event(&db.pool, "30 days", Some("1 day"), 8).await; // starts tomorrow: in scope
    event(&db.pool, "30 days", Some("-1 hour"), 16).await; // started an hour ago: in scope
    event(&db.pool, "30 days", Some("-25 hours"), 32).await; // started more than a day ago: out

    let scope = Scope { after_start_hours: 24, undated_days: 7, ..Scope::default() };
    let expected = Violations { oversold_seats: 1 + 2 + 8 + 16, ..Violations::default() };
    assert_eq!(check(&db, scope).await, expected);
    assert_eq!(jobs::check_invariants(&service(&db), scope).await.unwrap(), 27);

    // The windows are the configuration's: widen them and the old events come back.
    let everything = Scope { after_start_hours: 48, undated_days: 9, ..Scope::default() };
    assert_eq!(check(&db, everything).await.oversold_seats, 63);
    let fresh_only = Scope { after_start_hours: 0, undated_days: 1, ..Scope::default() };
    assert_eq!(check(&db, fresh_only).await.oversold_seats, 1 + 8);
}

#[tokio::test]
async fn the_watchdog_reads_its_scope_and_the_events_in_it_through_indexes() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let undated = event(&db.pool, "1 minute", None, 1).await;
    let dated = event(&db.pool, "1 day", Some("1 day"), 0).await;
    let mut tx = db.pool.begin().await.unwrap();
    // With sequential scans priced out, a plan shows which indexes a statement can use.
    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await.unwrap();
    let explain = |lines: Vec<String>| lines.join("\n");
    let scope = explain(
        sqlx::query_scalar(&format!("EXPLAIN {}", invariants::SCOPE))
            .bind(24)
            .bind(7)
            .fetch_all(&mut *tx)
            .await
            .unwrap(),
    );
    for index in ["events_starting", "events_undated_by_creation"] {
        assert!(scope.contains(index), "{index} unused:\n{scope}");
    }
    assert!(!scope.contains("Seq Scan"), "{scope}");
    let check = explain(
        sqlx::query_scalar(&format!("EXPLAIN {}", invariants::STATEMENT))
            .bind(vec![undated, dated])
            .bind(330.0)
            .fetch_all(&mut *tx)
            .await
            .unwrap(),
    );
    assert!(!check.contains("Seq Scan"), "every table is entered by index:\n{check}");
}

#[tokio::test]
async fn a_run_that_finds_the_previous_one_still_going_skips_and_is_counted() {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
    // A scheduler of its own, for its /metrics; its jobs do not tick during the test.
    let config = quiet_config(|_| {});
    let scheduler = Scheduler::start(&config, service(&db), None, None).await.unwrap();
    let metrics = scheduler.health_addr().unwrap();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));
    // The task label is this test's own, so no other test's skips can be counted here.
    let skipped = "boxoffice_scheduler_job_skipped_total{task=\"overlap_test\"}";
    assert_eq!(scrape(metrics, skipped).await, None);

    let guard = Exclusive::new("overlap_test");
    let (entered, is_inside) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn({
        let guard = guard.clone();
        async move {
            guard
                .run(|| async move {
                    entered.send(()).unwrap();
                    released.await.unwrap();
                    1
                })
                .await
        }
    });
    is_inside.await.unwrap();
    // The first run is inside its job and stays there until released: the second skips
    // at once, without waiting, and its job never starts.
    assert_eq!(guard.run(|| async { 2 }).await, Run::Skipped);
    assert_eq!(guard.clone().run(|| async { 3 }).await, Run::Skipped);
    assert_eq!(scrape(metrics, skipped).await, Some(2.0));

    release.send(()).unwrap();
    assert_eq!(first.await.unwrap(), Run::Ran(1));
    // Once it has finished, the next tick runs.
    assert_eq!(guard.run(|| async { 4 }).await, Run::Ran(4));
    assert_eq!(scrape(metrics, skipped).await, Some(2.0));
    // Another job's guard is its own.
    assert_eq!(Exclusive::new("overlap_test_other").run(|| async { 5 }).await, Run::Ran(5));

    shutdown.cancel();
    running.await.unwrap().unwrap();
}

/// The value of the series `series` (name and labels, as exported) in `/metrics`.
async fn scrape(metrics: std::net::SocketAddr, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{metrics}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A scheduler whose jobs do not tick during a test (hourly, see
/// [`test_support::config`]), on a free port, changed by `adjust`.
fn quiet_config(adjust: impl FnOnce(&mut SchedulerConfig)) -> SchedulerConfig {
    test_support::config(&[], adjust)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_partition_every_job_fails_within_its_deadline_and_the_jobs_recover() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    expired_holds(&db.pool, 10).await;
    let (proxy, url) = db.behind_proxy().await.unwrap();
    // The services' timeouts (work deadline 3 s); the watchdog's statements may run 1 s.
    let service = test_support::postgres_config(&url, 2).database().unwrap();
    let scope = Scope { time_limit: Duration::from_secs(1), ..Scope::default() };
    // Connected before the partition, so the jobs hang on a statement, not on a connect.
    assert_eq!(jobs::check_invariants(&service, scope).await.unwrap(), 0);

    proxy.freeze();
    let started = std::time::Instant::now();
    let (swept, purged, checked) = tokio::join!(
        jobs::release_expired_holds(&service, 4),
        jobs::purge_idempotency_keys(&service, 24, 5),
        jobs::check_invariants(&service, scope),
    );
    let took = started.elapsed();
    assert!(swept.is_err() && purged.is_err() && checked.is_err(), "{swept:?} {purged:?} {checked:?}");
    // Without a client-side deadline they would wait as long as the partition lasts.
    assert!(took < Duration::from_secs(10), "the jobs gave up after {took:?}");

    proxy.thaw();
    // A statement held by the partition may still arrive and run; either way, once the
    // sweep has run again every hold is whole: ended with its seat freed.
    let mut last = None;
    for _ in 0..50 {
        if jobs::release_expired_holds(&service, 4).await.is_ok() {
            last = Some(counts(&db.pool).await);
            if last == Some((10, 0, 10)) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last, Some((10, 0, 10)));
    assert_eq!(jobs::check_invariants(&service, scope).await.unwrap(), 0);
    assert_eq!(jobs::purge_idempotency_keys(&service, 24, 5).await.unwrap(), Batches { rows: 0, statements: 1 });
}

/// Payments written straight to the database, as the checkout leaves them: one
/// declined, one pending, one booked, one booked late, one refunded in full, and one
/// that broke the rules.
#[tokio::test]
async fn the_watchdog_counts_the_money_and_flags_payments_that_break_the_rules() {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
    let event = test_support::general_admission_event(&db.pool, 10).await.unwrap();
    sqlx::query(
        "INSERT INTO payments (id, event_id, hold_id, fan_id, amount_minor, currency, status, intent_id,
                               succeeded_at, resolution, refunded_minor)
         VALUES (gen_random_uuid(), $1, gen_random_uuid(), 'a', 100, 'EUR', 'failed', 'pi_a', NULL, NULL, 0),
                (gen_random_uuid(), $1, gen_random_uuid(), 'b', 100, 'EUR', 'pending', 'pi_b', NULL, NULL, 0),
                (gen_random_uuid(), $1, gen_random_uuid(), 'c', 100, 'EUR', 'succeeded', 'pi_c', now(), 'booked', 0),
                (gen_random_uuid(), $1, gen_random_uuid(), 'd', 100, 'EUR', 'succeeded', 'pi_d', now(), 'late_booked', 0),
                ('00000000-0000-0000-0000-00000000000e', $1, gen_random_uuid(), 'e', 100, 'EUR', 'refunded', 'pi_e',
                 now(), 'refunded', 100),
                -- Succeeded an hour ago and never resolved: money kept for nothing.
                (gen_random_uuid(), $1, gen_random_uuid(), 'f', 100, 'EUR', 'succeeded', 'pi_f',
                 now() - interval '1 hour', NULL, 0)",
    )
    .bind(event)
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, event_id, reason, amount_minor, status, succeeded_at)
         VALUES (gen_random_uuid(), '00000000-0000-0000-0000-00000000000e', $1, 'late_payment', 100, 'succeeded', now())",
    )
    .bind(event)
    .execute(&db.pool)
    .await
    .unwrap();

    let mut tx = db.pool.begin().await.unwrap();
    let money = invariants::money(&mut tx, Scope::default()).await.unwrap();
    let sorted = |mut v: Vec<(String, i64)>| {
        v.sort();
        v
    };
    let pairs = |v: &[(&str, i64)]| v.iter().map(|(l, n)| ((*l).to_owned(), *n)).collect::<Vec<_>>();
    assert_eq!(sorted(money.payments), pairs(&[("failed", 1), ("pending", 1), ("refunded", 1), ("succeeded", 3)]));
    assert_eq!(
        sorted(money.resolutions),
        pairs(&[("booked", 1), ("late_booked", 1), ("refunded", 1), ("unresolved", 1)])
    );
    assert_eq!(money.refunds, pairs(&[("succeeded", 1)]));
    drop(tx);

    let violations = check(&db, Scope::default()).await;
    // One succeeded an hour ago, past the window, without a booking or a refund; the
    // refunded one is covered by its refund, exactly.
    assert_eq!(violations, Violations { payments_unresolved: 1, ..Violations::default() });
}

#[tokio::test]
async fn the_watchdog_finds_a_waitlist_count_or_offer_that_disagrees_with_the_entries() {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
    let event = event(&db.pool, "1 minute", None, 0).await;
    let section: Uuid = sqlx::query_scalar("SELECT id FROM sections WHERE event_id = $1")
        .bind(event)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    for (fan, status) in [("waiting", "waiting"), ("offered", "offered")] {
        sqlx::query(
            "INSERT INTO waitlist_entries (id, event_id, fan_id, quantity, section_ids, status, ended_at)
             VALUES ($1, $2, $3, 1, ARRAY[$4], $5::waitlist_entry_status,
                     CASE WHEN $5 = 'waiting' THEN NULL ELSE now() END)",
        )
        .bind(Uuid::now_v7())
        .bind(event)
        .bind(fan)
        .bind(section)
        .bind(status)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let scope = Scope::default();
    // The entry's trigger counted the waiting one; the offered one has no offer hold.
    assert_eq!(check(&db, scope).await, Violations { waitlist_offers_wrong: 1, ..Violations::default() });

    sqlx::query("UPDATE sections SET waitlist_waiting = 0 WHERE id = $1")
        .bind(section)
        .execute(&db.pool)
        .await
        .unwrap();

    assert_eq!(
        check(&db, scope).await,
        Violations { waitlist_counts_wrong: 1, waitlist_offers_wrong: 1, ..Violations::default() }
    );
}
