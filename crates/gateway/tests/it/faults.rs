//! Faults injected between the gateway and PostgreSQL (a [`ChaosProxy`]): partitions,
//! pauses right after `BEGIN`, a statement or `COMMIT`, clients that hang up. Each test
//! ends by checking the inventory invariants and that every answer a client saw is
//! true in the database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::Connection;
use test_support::chaos::PgMatch;
use uuid::Uuid;

use crate::helpers::{spawn_app_through_proxy, Event, TestApp};

/// A client that gives up after `timeout`, as an impatient fan's browser does.
fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder().timeout(timeout).build().unwrap()
}

/// The gateway's database settings in these tests.
fn service_settings() -> service_kit::postgres::PostgresConfig {
    test_support::postgres_config("postgres://unused", 1)
}

/// The general-admission statement, matched whole: a pause after it stops an order
/// mid-transaction, its seats locked.
const TAKE_NEXT: &str = sales::store::inventory::TAKE_NEXT;

/// What one client saw: an answer, or nothing because it hung up first.
#[derive(Debug)]
struct Seen {
    fan: String,
    key: String,
    status: Option<StatusCode>,
    body: Value,
    took: Duration,
}

impl Seen {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn book_with_key(
    http: &reqwest::Client,
    app: &TestApp,
    event: &Event,
    fan: String,
    key: String,
    body: Value,
) -> Seen {
    let started = Instant::now();
    let sent = http
        .post(app.url(&event.path("/bookings")))
        .bearer_auth(app.token(&fan, event))
        .header("Idempotency-Key", &key)
        .json(&body)
        .send()
        .await;
    let (status, body) = match sent {
        Ok(response) => (Some(response.status()), response.json().await.unwrap_or(Value::Null)),
        Err(_) => (None, Value::Null),
    };
    Seen { fan, key, status, body, took: started.elapsed() }
}

/// Backends of the test database still inside a transaction (other than this query's).
async fn backends_in_transaction(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// Waits (bounded) until no backend of the test database is left inside a transaction.
async fn assert_no_backend_left_in_transaction(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while backends_in_transaction(app).await > 0 {
        assert!(Instant::now() < deadline, "a backend stayed idle in transaction");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every seat of the event can be locked at once: no stranded transaction holds one.
async fn assert_no_seat_locked(app: &TestApp, event: &Event) {
    let mut conn = app.pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let locked = sqlx::query("SELECT id FROM seats WHERE event_id = $1 FOR UPDATE NOWAIT")
        .bind(event.id)
        .fetch_all(&mut *tx)
        .await;
    assert!(locked.is_ok(), "a seat is still locked: {locked:?}");
    tx.rollback().await.unwrap();
}

/// The watchdog's invariants, and the test's own, read straight from the database.
async fn assert_invariants(app: &TestApp, event: &Event) -> i64 {
    let violations =
        sales::store::invariants::check(&mut app.pool.begin().await.unwrap(), Default::default()).await.unwrap();
    assert_eq!(violations, Default::default(), "the watchdog finds violations");
    app.assert_inventory_consistent(event).await
}

/// The fan's confirmed bookings, as another session sees them.
async fn committed_bookings(app: &TestApp, event: &Event, fan: &str) -> Vec<Uuid> {
    sqlx::query_scalar("SELECT id FROM bookings WHERE event_id = $1 AND fan_id = $2 AND status = 'confirmed'")
        .bind(event.id)
        .bind(fan)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// Checks one answer against the database: a 201's booking is committed, and a
/// `503 unavailable` left nothing behind (no booking, its key unclaimed), nor did a
/// refusal (4xx). An answer of
/// `outcome_unknown`, or none at all, is settled by retrying with the same key, as
/// the API tells clients to; the retry must agree with the database. Returns whether
/// the fan ended up with a booking.
async fn assert_answer_is_true(app: &TestApp, event: &Event, seen: &Seen, body: &Value) -> bool {
    let committed = committed_bookings(app, event, &seen.fan).await;
    match (seen.status, seen.code()) {
        (Some(StatusCode::CREATED), _) => {
            let id: Uuid = seen.body["id"].as_str().unwrap().parse().unwrap();
            assert_eq!(committed, vec![id], "{} was told 201 but the database disagrees", seen.fan);
            true
        }
        (Some(StatusCode::SERVICE_UNAVAILABLE), "unavailable") => {
            assert!(committed.is_empty(), "{} was told nothing was written, but it was", seen.fan);
            let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE fan_id = $1")
                .bind(&seen.fan)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            assert_eq!(keys, 0, "{} was told nothing was written, but its key was", seen.fan);
            false
        }
        (None, _) | (Some(StatusCode::SERVICE_UNAVAILABLE), "outcome_unknown") => {
            let retry = book_with_key(&app.http, app, event, seen.fan.clone(), seen.key.clone(), body.clone()).await;
            assert_eq!(retry.status, Some(StatusCode::CREATED), "retry of {}: {}", seen.fan, retry.body);
            let id: Uuid = retry.body["id"].as_str().unwrap().parse().unwrap();
            assert_eq!(committed_bookings(app, event, &seen.fan).await, vec![id], "retry of {}", seen.fan);
            true
        }
        (Some(status), _) if status.is_client_error() => {
            assert!(committed.is_empty(), "{} was refused ({status}), but booked", seen.fan);
            false
        }
        (status, code) => panic!("{}: unexpected answer {status:?} {code}: {}", seen.fan, seen.body),
    }
}

/// The fault reported in issue 13, as it was seen: a pool of 2 connections, a partition
/// while 4 general-admission bookings are in flight and their clients hang up after
/// 4 s, then 6 chosen-seat bookings made normally. Before the fix, all 6 answered 201
/// but some were never committed (their statements ran inside a transaction left open
/// by a cancelled `BEGIN`) and vanished when the gateway stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_with_impatient_clients_loses_no_answered_booking() {
    let (mut app, proxy) = spawn_app_through_proxy(2).await;
    let event = Event::from_details(
        &app.create_event(json!({
            "name": "Partitioned show",
            "sections": [
                { "name": "Hall", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 20 },
                { "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 0, "currency": "EUR" }, "capacity": 100 }
            ]
        }))
        .await,
    );
    let ga = json!({ "section_id": event.sections[1], "quantity": 1 });
    // Both pooled connections open and idle, as in a running gateway.
    let warm = futures::future::join_all((0..2).map(|i| app.book(&event, &format!("warm-{i}"), ga.clone()))).await;
    assert!(warm.iter().all(|r| r.status == StatusCode::CREATED));

    proxy.freeze();
    let impatient = client(Duration::from_secs(4));
    let in_flight = futures::future::join_all(
        (0..4).map(|i| book_with_key(&impatient, &app, &event, format!("ga-{i}"), format!("ga-key-{i}"), ga.clone())),
    )
    .await;
    proxy.thaw();

    // Made normally: chosen seats without an Idempotency-Key, each one statement on a
    // pooled connection (the path the stranded transaction swallowed).
    let mut chosen = Vec::new();
    for i in 1..=6 {
        let fan = format!("chosen-{i}");
        let started = Instant::now();
        let reply = app.book(&event, &fan, json!({ "seats": [i.to_string()] })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{fan}: {}", reply.body);
        assert_eq!(committed_bookings(&app, &event, &fan).await.len(), 1, "{fan} is visible to another session");
        chosen.push(Seen {
            fan,
            key: String::new(),
            status: Some(reply.status),
            body: reply.body,
            took: started.elapsed(),
        });
    }
    assert_no_backend_left_in_transaction(&app).await;
    for seen in &in_flight {
        assert!(seen.took < Duration::from_secs(5), "{} waited {:?}", seen.fan, seen.took);
        assert!(
            seen.status.is_none_or(|s| s == StatusCode::SERVICE_UNAVAILABLE),
            "{}: {:?} {}",
            seen.fan,
            seen.status,
            seen.body
        );
        if seen.status.is_some() && seen.code() == "unavailable" {
            assert!(committed_bookings(&app, &event, &seen.fan).await.is_empty(), "{}", seen.fan);
        }
    }
    assert_no_seat_locked(&app, &event).await;
    let booked = assert_invariants(&app, &event).await;
    assert_eq!(booked, 2 + 6 + committed_ga(&app, &event, &in_flight).await);

    // What was answered survives the gateway stopping (a stale transaction would be
    // rolled back as its connection closes).
    app.stop().await;
    for seen in &chosen {
        let id: Uuid = seen.body["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            committed_bookings(&app, &event, &seen.fan).await,
            vec![id],
            "{} after the gateway stopped",
            seen.fan
        );
    }
    let still_booked: i64 = sqlx::query_scalar("SELECT count(*) FROM seats WHERE event_id = $1 AND state = 'booked'")
        .bind(event.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(still_booked, booked);
}

async fn committed_ga(app: &TestApp, event: &Event, seen: &[Seen]) -> i64 {
    let mut booked = 0;
    for s in seen {
        booked += committed_bookings(app, event, &s.fan).await.len() as i64;
    }
    booked
}

/// Where a pause hits one keyed general-admission order, and for how long.
struct Pause {
    after: &'static str,
    hold_for: Duration,
}

/// Clients hang up (after 1 s) while the database connection is paused right after
/// `BEGIN`, after the statement that locks the places, or after `COMMIT`; the pause
/// ends either before the gateway's deadline (the order completes without its client)
/// or after it (the gateway closes the connection). Either way a retry with the same
/// key tells the truth, the fan has exactly one booking, and nothing is left locked or
/// inside a transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_hanging_up_at_begin_mid_transaction_and_commit_leave_nothing_half_done() {
    let deadline = Duration::from_millis(service_settings().work_deadline_ms);
    let (short, long) = (Duration::from_millis(1500), deadline + Duration::from_secs(1));
    let pauses = ["BEGIN", TAKE_NEXT, "COMMIT"]
        .into_iter()
        .flat_map(|after| [Pause { after, hold_for: short }, Pause { after, hold_for: long }]);
    futures::future::join_all(pauses.map(hang_up_during)).await;
}

async fn hang_up_during(pause: Pause) {
    let (app, proxy) = spawn_app_through_proxy(2).await;
    let event = app.ga_event(20).await;
    let ga = json!({ "section_id": event.sections[0], "quantity": 2 });
    // Caches the event's rules, so the order below sends only its own statements, each
    // prepared for the first time (the pause matches a statement's text when it is
    // prepared, not when a prepared statement runs again).
    assert_eq!(app.send(Method::GET, &event.path("/seats"), None, None).await.status, StatusCode::OK);

    proxy.pause_after(PgMatch::query_starts_with(pause.after));
    let order = tokio::spawn({
        let (http, url, token) =
            (client(Duration::from_secs(1)), app.url(&event.path("/bookings")), app.token("fan", &event));
        let body = ga.clone();
        async move {
            http.post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", "k")
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        }
    });
    let hit = Instant::now() + Duration::from_secs(5);
    while proxy.pause_hits() == 0 {
        assert!(Instant::now() < hit, "the pause after {} never hit", pause.after);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(order.await.unwrap().is_err(), "the client hangs up before any answer");
    tokio::time::sleep(pause.hold_for.saturating_sub(Duration::from_secs(1))).await;
    proxy.resume();

    let seen = Seen { fan: "fan".into(), key: "k".into(), status: None, body: Value::Null, took: Duration::ZERO };
    assert!(assert_answer_is_true(&app, &event, &seen, &ga).await, "pause after {}", pause.after);
    assert_no_backend_left_in_transaction(&app).await;
    assert_no_seat_locked(&app, &event).await;
    assert_eq!(assert_invariants(&app, &event).await, 2, "pause after {} for {:?}", pause.after, pause.hold_for);
}

/// A partition in the middle of a storm of orders: every request answers within a
/// bounded time (503 while PostgreSQL is unreachable), the gateway recovers by itself
/// when the network does, and every answer is true.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_during_a_storm_answers_in_bounded_time_and_recovers() {
    let (app, proxy) = spawn_app_through_proxy(4).await;
    let event = app.ga_event(20_000).await;
    let ga = json!({ "section_id": event.sections[0], "quantity": 1 });
    let (start, partition, heal, stop) =
        (Instant::now(), Duration::from_secs(2), Duration::from_secs(6), Duration::from_secs(10));
    let patient = client(Duration::from_secs(30));
    let fans = (0..12).map(|client_no| {
        let (app, event, patient, ga) = (&app, &event, patient.clone(), ga.clone());
        async move {
            let mut seen = Vec::new();
            for attempt in 0.. {
                if start.elapsed() > stop {
                    break;
                }
                let fan = format!("fan-{client_no}-{attempt}");
                let key = format!("key-{client_no}-{attempt}");
                let sent_at = start.elapsed();
                seen.push((sent_at, book_with_key(&patient, app, event, fan, key, ga.clone()).await));
            }
            seen
        }
    });
    let storm = futures::future::join_all(fans);
    let faults = async {
        tokio::time::sleep(partition).await;
        proxy.freeze();
        tokio::time::sleep(heal - partition).await;
        proxy.thaw();
    };
    let (seen, ()) = tokio::join!(storm, faults);
    let seen: Vec<(Duration, Seen)> = seen.into_iter().flatten().collect();

    let bound = service_settings().longest_work() + Duration::from_secs(2);
    let mut by_outcome: HashMap<String, usize> = HashMap::new();
    for (_, s) in &seen {
        assert!(s.took <= bound, "{} waited {:?} (bound {bound:?}): {}", s.fan, s.took, s.body);
        *by_outcome.entry(format!("{:?} {}", s.status, s.code())).or_default() += 1;
    }
    // Requests in flight when the partition began, and those sent during it.
    let refused_in_partition = seen
        .iter()
        .filter(|(at, s)| *at < heal && *at + s.took > partition && s.status != Some(StatusCode::CREATED))
        .count();
    assert!(refused_in_partition > 0, "the partition refused nothing: {by_outcome:?}");
    let recovered = seen
        .iter()
        .filter(|(at, s)| *at >= heal && s.status == Some(StatusCode::CREATED))
        .map(|(at, _)| *at - heal)
        .min();
    assert!(
        recovered.is_some_and(|after| after < Duration::from_secs(3)),
        "no recovery after the partition: {by_outcome:?}"
    );
    let slowest = seen.iter().map(|(_, s)| s.took).max().unwrap_or_default();
    println!("partition storm: {by_outcome:?}; slowest answer {slowest:?}; first booking {recovered:?} after healing");

    let mut booked = 0;
    for (_, s) in &seen {
        booked += i64::from(assert_answer_is_true(&app, &event, s, &ga).await);
    }
    assert_no_backend_left_in_transaction(&app).await;
    assert_no_seat_locked(&app, &event).await;
    assert_eq!(assert_invariants(&app, &event).await, booked);
}

/// The driver patch (vendor/README.md), on its own: a `BEGIN` whose caller gave up
/// before its answer must not leave the pooled connection inside a transaction, or
/// the next single statement on it would never be committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_cancelled_before_its_answer_never_poisons_the_pool() {
    let (app, proxy) = spawn_app_through_proxy(1).await;
    let pool = app.db.pool().clone();
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    proxy.pause_after(PgMatch::query_starts_with("BEGIN"));
    let cancelled = tokio::time::timeout(Duration::from_millis(300), pool.begin()).await;
    assert!(cancelled.is_err(), "BEGIN was answered through a paused connection");
    assert_eq!(proxy.pause_hits(), 1);
    proxy.resume();

    let key = Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO idempotency_keys (event_id, fan_id, key, request_hash) VALUES ($1, 'fan', $2, '')")
        .bind(Uuid::nil())
        .bind(&key)
        .execute(&pool)
        .await
        .unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
        .bind(&key)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(visible, 1, "a statement after the cancelled BEGIN ran inside its transaction, uncommitted");
    assert_no_backend_left_in_transaction(&app).await;
}

/// A retry that arrives while the first attempt with its key is stuck mid-transaction
/// waits for it at most `lock_timeout`, then is told the request is still in progress;
/// once the first attempt finishes, a retry replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_during_a_stuck_first_attempt_is_told_it_is_in_progress() {
    let (app, proxy) = spawn_app_through_proxy(2).await;
    let event = app.ga_event(10).await;
    let ga = json!({ "section_id": event.sections[0], "quantity": 1 });
    assert_eq!(app.send(Method::GET, &event.path("/seats"), None, None).await.status, StatusCode::OK);
    proxy.pause_after(PgMatch::query_starts_with(TAKE_NEXT));
    let first = tokio::spawn({
        let (http, app_url, token, body) =
            (app.http.clone(), app.url(&event.path("/bookings")), app.token("fan", &event), ga.clone());
        async move {
            let response =
                http.post(app_url).bearer_auth(token).header("Idempotency-Key", "k").json(&body).send().await;
            response.unwrap().status()
        }
    });
    while proxy.pause_hits() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let retry = book_with_key(&app.http, &app, &event, "fan".into(), "k".into(), ga.clone()).await;
    assert_eq!((retry.status, retry.code()), (Some(StatusCode::CONFLICT), "request_in_progress"), "{}", retry.body);
    proxy.resume();
    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    let replay = book_with_key(&app.http, &app, &event, "fan".into(), "k".into(), ga.clone()).await;
    assert_eq!(replay.status, Some(StatusCode::CREATED));
    assert_eq!(committed_bookings(&app, &event, "fan").await.len(), 1);
    assert_eq!(assert_invariants(&app, &event).await, 1);
}
