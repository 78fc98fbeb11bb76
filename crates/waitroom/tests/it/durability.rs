//! The waiting room when Redis loses its data (a `FLUSHALL`, a restart without
//! persistence) or PostgreSQL is away: settings and seeds kept in PostgreSQL, every
//! admission recorded there, fans put back in their places by their tickets, admission
//! paused while they come back. Each test that wipes Redis runs a `redis-server` of its
//! own, and every test a database of its own.
//!
//! Assertions are exact where the waiting room's own timestamps can decide (Redis time,
//! recorded in PostgreSQL); wall-clock waits only have generous upper bounds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use test_support::redis_server::RedisServer;
use test_support::{redis_config, RedisKeys, Reply};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waitroom::domain::fan::FanId;
use waitroom::domain::shuffle;
use waitroom::domain::ticket::{Issued, Place, TicketKey};

use crate::helpers::{database_behind_proxy, spawn_app, spawn_app_on, spawn_app_with_database, test_config, TestApp};

/// Anything the tests wait for happens well within this.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` every 50 ms until it returns `Some`, for at most [`PATIENCE`].
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut check: impl FnMut() -> F) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ticket_key() -> TicketKey {
    let config = test_config(|_| {});
    TicketKey::new(config.ticket_secret, Duration::from_secs(config.ticket_lifetime_secs))
}

/// A metric of this process as `/metrics` shows it (one registry per process: other
/// tests may add to counters, so compare before and after).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.http.get(format!("{}/metrics", app.management)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Admission rows PostgreSQL holds for the event: fan, score, admitted at, expires at.
async fn recorded(db: &PgPool, event: Uuid) -> Vec<(String, i64, DateTime<Utc>, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT fan_id, join_score, admitted_at, expires_at FROM waitroom_admissions
         WHERE event_id = $1 ORDER BY admitted_at, join_score",
    )
    .bind(event)
    .fetch_all(db)
    .await
    .unwrap()
}

async fn live_recorded(db: &PgPool, event: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(DISTINCT fan_id) FROM waitroom_admissions WHERE event_id = $1 AND expires_at > now()",
    )
    .bind(event)
    .fetch_one(db)
    .await
    .unwrap()
}

fn millis(value: &Value) -> i64 {
    value.as_str().unwrap().parse::<DateTime<Utc>>().unwrap().timestamp_millis()
}

/// A settings PUT (or the first poll) after Redis lost the event rebuilds it from
/// PostgreSQL: the seed, and so the published commitment, never change, and the seed
/// revealed after opening is the one committed to. Pre-queue fans come back at their
/// shuffled places, before and after opening.
#[tokio::test]
async fn after_a_wipe_the_seed_commitment_is_unchanged_and_the_revealed_seed_matches_it() {
    let server = RedisServer::start().await.unwrap();
    let app = spawn_app_on(&redis_config(&server.url()), |_| {}).await;
    let opens_at = Utc::now() + chrono::Duration::milliseconds(2000);
    let paused = json!({
        "admit_rate": 100.0, "max_active": 1000, "token_lifetime_secs": 600, "opens_at": opens_at, "state": "paused",
    });
    let event = app.new_event(paused.clone()).await;
    let before = app.public_event(event).await;
    let commitment = before["seed_sha256"].as_str().unwrap().to_owned();
    assert_eq!(before["seed"], Value::Null);
    let fans: Vec<String> = (0..12).map(|i| format!("early-{i:02}")).collect();
    let mut tickets = BTreeMap::new();
    for fan in &fans {
        let joined = app.join_ok(event, fan).await;
        assert_eq!(joined["status"], "pre_queue");
        tickets.insert(fan.clone(), joined["ticket"].as_str().unwrap().to_owned());
    }

    server.flushall().await.unwrap();
    let wiped = app.public_event(event).await;
    assert_eq!((wiped["seed_sha256"].as_str(), &wiped["seed"]), (Some(commitment.as_str()), &Value::Null));
    let put = app.put_settings(event, &paused).await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(put.body["seed_sha256"], commitment.as_str(), "no new seed");
    assert!(app.stats(event).await["restored_at"].is_string(), "rebuilt, not started afresh");
    for fan in &fans {
        let polled = app.poll_ok(event, &tickets[fan]).await;
        assert_eq!(polled["status"], "pre_queue", "{fan} is back in the pre-queue");
        tickets.insert(fan.clone(), polled["ticket"].as_str().unwrap().to_owned());
    }

    tokio::time::sleep((opens_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100)).await;
    server.flushall().await.unwrap();
    // From PostgreSQL alone, now that the opening time has passed.
    let revealed = app.public_event(event).await;
    assert_eq!(revealed["seed_sha256"], commitment.as_str());
    let seed = revealed["seed"].as_str().expect("the seed is published after opening").to_owned();
    assert_eq!(hex::encode(Sha256::digest(seed.as_bytes())), commitment, "the seed matches its commitment");

    for fan in &fans {
        let polled = app.poll_ok(event, &tickets[fan]).await;
        assert_eq!(polled["status"], "waiting", "{fan} is back in line");
        tickets.insert(fan.clone(), polled["ticket"].as_str().unwrap().to_owned());
    }
    let mut by_position = vec![String::new(); fans.len()];
    for fan in &fans {
        let polled = app.poll_ok(event, &tickets[fan]).await;
        by_position[polled["position"].as_u64().unwrap() as usize - 1] = fan.clone();
    }
    assert_eq!(by_position, shuffle::order(&seed, &fans), "the pre-queue is back in the committed order");
    let after = app.public_event(event).await;
    assert_eq!(
        (after["seed"].as_str(), after["seed_sha256"].as_str()),
        (Some(seed.as_str()), Some(commitment.as_str()))
    );
    let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM waitroom_events WHERE event_id = $1")
        .bind(event)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(epoch, 2, "one rebuild per wipe");
}

/// Right after a rebuild nobody is admitted, however much room there is, until the
/// pause is over; fans who come back meanwhile keep their order, a new joiner stands
/// behind them, a fan whose admission was already used does not get it again, and a
/// fan who stays away past the window has to join again.
#[tokio::test]
async fn after_a_rebuild_admission_pauses_while_fans_come_back_to_their_places() {
    let server = RedisServer::start().await.unwrap();
    // abandon_after 3 s: fans poll at least every second, the pause is 3 s.
    let app = spawn_app_on(&redis_config(&server.url()), |c| c.abandon_after_secs = 3).await;
    let event = app.new_event(json!({ "admit_rate": 1000.0, "max_active": 100, "token_lifetime_secs": 1 })).await;
    let used = app.join_ok(event, "used").await;
    assert_eq!(app.admit(event, 1, 50).await, ["used"]);
    let mut tickets = BTreeMap::new();
    for fan in ["a", "b", "late"] {
        tickets.insert(fan, app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.admitter.record_admissions().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await; // "used"'s admission expires

    server.flushall().await.unwrap();
    let a = app.poll_ok(event, &tickets["a"]).await;
    assert_eq!((a["status"].as_str(), a["position"].as_u64()), (Some("waiting"), Some(1)));
    assert!(a["eta_seconds"].as_u64().unwrap() >= 2, "the ETA includes the pause: {a}");
    let step = app.admitter.step(event).await.unwrap();
    assert_eq!(step.admitted, Vec::<String>::new(), "paused after the rebuild");
    assert_eq!(step.room.admit_rate, 0.0, "and the rate in force says so");
    assert_eq!(app.poll_ok(event, &tickets["b"]).await["position"], 2);
    let c = app.join_ok(event, "c").await;
    assert_eq!(c["position"], 3, "a new joiner stands behind everyone put back");
    let gone = app.poll(event, used["ticket"].as_str().unwrap()).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "an admission already used is not given back");
    assert_eq!(gone.code(), "not_in_queue");

    // a, b and c keep polling (at least every second, as told); "late" does not.
    let stats = app.stats(event).await;
    let resumes_at = millis(&stats["restored_at"]) + 3000;
    while Utc::now().timestamp_millis() < resumes_at + 100 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ticket in [&tickets["a"], &tickets["b"], c["ticket"].as_str().unwrap()] {
            assert_eq!(app.poll_ok(event, ticket).await["status"], "waiting");
        }
    }
    let late = app.poll(event, &tickets["late"]).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "back after the window: the place is gone");
    assert_eq!(late.code(), "queue_reset");
    assert_eq!(app.admit(event, 3, 100).await, ["a", "b", "c"]);
    assert!(
        recorded(&app.db, event).await.iter().skip(1).all(|(_, _, at, _)| at.timestamp_millis() >= resumes_at),
        "nobody admitted before the pause was over"
    );
}

/// What each fan's client does: poll with the latest ticket every 200 ms (more often
/// than told), retry a 503, and stop once admitted or refused.
#[derive(Debug, Clone, Default)]
struct FanState {
    ticket: String,
    status: String,
    position: Option<u64>,
    /// When the latest 200 answer arrived.
    answered_at: Option<Instant>,
    /// A refusal other than 503 (which ends the client).
    refused: Option<String>,
}

type Crowd = Arc<Mutex<BTreeMap<String, FanState>>>;

fn spawn_poller(app: &TestApp, event: Uuid, fan: String, crowd: Crowd, stop: CancellationToken) {
    let (http, base) = (app.http.clone(), app.base.clone());
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let ticket = crowd.lock().unwrap()[&fan].ticket.clone();
            if let Ok(response) = http.get(format!("{base}/v1/events/{event}/queue/{ticket}")).send().await {
                // Raw, not a `Reply`: a poller outlives a refused connection.
                let status = response.status();
                let body: Value = response.json().await.unwrap_or_default();
                let mut crowd = crowd.lock().unwrap();
                let state = crowd.get_mut(&fan).unwrap();
                if status == StatusCode::OK {
                    state.ticket = body["ticket"].as_str().unwrap().to_owned();
                    state.status = body["status"].as_str().unwrap().to_owned();
                    state.position = body["position"].as_u64();
                    state.answered_at = Some(Instant::now());
                    if state.status == "admitted" {
                        return;
                    }
                } else if status != StatusCode::SERVICE_UNAVAILABLE {
                    state.refused = Some(body["error"]["code"].as_str().unwrap_or_default().to_owned());
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
}

/// The issue's scenario: Redis wiped (FLUSHALL) and restarted mid-queue, with fans
/// waiting and some admitted. Every waiting fan who keeps polling is put back in their
/// original order, nobody is overtaken or admitted twice, new joiners stand behind all
/// of them, max_active holds (the admitted set is rebuilt from PostgreSQL), admission
/// resumes after the pause at the configured rate, and tickets that cannot restore a
/// place get `409 queue_reset`.
#[tokio::test]
async fn redis_wiped_and_restarted_mid_queue_every_polling_fan_keeps_their_place() {
    const RATE: f64 = 10.0;
    const MAX_ACTIVE: u64 = 5;
    // Fans poll at least every 2 s; admission pauses 4 s after the rebuild.
    const ABANDON_AFTER_SECS: u64 = 6;
    const PAUSE_MS: i64 = 4000;
    let mut server = RedisServer::start().await.unwrap();
    let app = spawn_app_on(&redis_config(&server.url()), |c| {
        c.abandon_after_secs = ABANDON_AFTER_SECS;
        c.admitter_tick_ms = 20;
    })
    .await;
    let stop = CancellationToken::new();
    let admitter = tokio::spawn(waitroom::run_admitter(app.admitter.clone(), stop.clone()));
    let settings =
        |max_active: u64| json!({ "admit_rate": RATE, "max_active": max_active, "token_lifetime_secs": 600 });
    let event = app.new_event(settings(MAX_ACTIVE)).await;

    // 25 fans in line: the first five fill the room and the rest wait.
    let fans: Vec<String> = (0..25).map(|i| format!("fan-{i:02}")).collect();
    let crowd: Crowd = Arc::default();
    for fan in &fans {
        let joined = app.join_ok(event, fan).await;
        let state = FanState { ticket: joined["ticket"].as_str().unwrap().to_owned(), ..FanState::default() };
        crowd.lock().unwrap().insert(fan.clone(), state);
        spawn_poller(&app, event, fan.clone(), crowd.clone(), stop.clone());
    }
    eventually("the room full and every admission recorded", || async {
        let stats = app.stats(event).await;
        let full = stats["active"] == MAX_ACTIVE && stats["admitted_total"] == MAX_ACTIVE;
        (full && recorded(&app.db, event).await.len() == MAX_ACTIVE as usize).then_some(())
    })
    .await;
    let waiting = &fans[MAX_ACTIVE as usize..];
    let before: Vec<String> = eventually("every waiting fan polled", || async {
        let crowd = crowd.lock().unwrap();
        let mut by_position: Vec<(u64, String)> =
            waiting.iter().filter_map(|fan| Some((crowd[fan].position?, fan.clone()))).collect();
        by_position.sort();
        (by_position.len() == waiting.len()).then(|| by_position.into_iter().map(|(_, fan)| fan).collect())
    })
    .await;
    assert_eq!(before, waiting, "in join order before the wipe");

    let wiped_at = Instant::now();
    server.flushall().await.unwrap();
    server.restart().await.unwrap();
    let redis_back = Instant::now();

    // Every waiting fan's next poll puts them back, in their original order.
    eventually("every waiting fan answered again after the wipe", || async {
        let crowd = crowd.lock().unwrap();
        waiting.iter().all(|fan| crowd[fan].answered_at.is_some_and(|at| at > wiped_at)).then_some(())
    })
    .await;
    let all_back = redis_back.elapsed();
    let stats = app.stats(event).await;
    let restored_at = millis(&stats["restored_at"]);
    assert_eq!(stats["active"], MAX_ACTIVE, "the admitted set is rebuilt: max_active still holds");
    assert_eq!(live_recorded(&app.db, event).await, MAX_ACTIVE as i64);
    assert_eq!(stats["admitted_total"], MAX_ACTIVE);
    let mut after = Vec::new();
    for fan in waiting {
        let ticket = crowd.lock().unwrap()[fan].ticket.clone();
        let polled = app.poll_ok(event, &ticket).await;
        after.push((polled["position"].as_u64().unwrap(), fan.clone()));
    }
    after.sort();
    let positions: Vec<u64> = after.iter().map(|(position, _)| *position).collect();
    assert_eq!(positions, (1..=waiting.len() as u64).collect::<Vec<_>>());
    assert_eq!(after.into_iter().map(|(_, fan)| fan).collect::<Vec<_>>(), waiting, "the original order");
    for fan in &fans[..MAX_ACTIVE as usize] {
        let ticket = crowd.lock().unwrap()[fan].ticket.clone();
        assert_eq!(app.poll_ok(event, &ticket).await["status"], "admitted", "{fan} is still admitted");
    }

    // A ticket that cannot say where its fan stood.
    let made_up = ticket_key().issue(
        event,
        &FanId::parse("nobody").unwrap(),
        Issued { place: Place::Score(3), epoch: 1, at_ms: restored_at + 1 },
    );
    let made_up = app.poll(event, &made_up).await;
    assert_eq!(made_up.status, StatusCode::CONFLICT);
    assert_eq!(made_up.code(), "queue_reset");

    // New joiners stand behind every fan put back.
    let newcomers: Vec<String> = (0..5).map(|i| format!("new-{i}")).collect();
    for (i, fan) in newcomers.iter().enumerate() {
        let joined = app.join_ok(event, fan).await;
        assert_eq!(joined["position"], waiting.len() + i + 1, "{fan}");
        let state = FanState { ticket: joined["ticket"].as_str().unwrap().to_owned(), ..FanState::default() };
        crowd.lock().unwrap().insert(fan.clone(), state);
        spawn_poller(&app, event, fan.clone(), crowd.clone(), stop.clone());
    }

    // Room for everyone: admission resumes once the pause is over, at the rate.
    assert_eq!(app.put_settings(event, &settings(100)).await.status, StatusCode::OK);
    let everyone = fans.len() + newcomers.len();
    let rows = eventually("everyone admitted and recorded", || async {
        let rows = recorded(&app.db, event).await;
        (rows.len() == everyone).then_some(rows)
    })
    .await;
    stop.cancel();
    admitter.await.unwrap();

    let order: Vec<&str> = rows.iter().map(|(fan, ..)| fan.as_str()).collect();
    let expected: Vec<&str> = fans.iter().chain(&newcomers).map(String::as_str).collect();
    assert_eq!(order, expected, "admitted in join order: 0 overtakes, nobody twice");
    let overtakes = rows.iter().enumerate().filter(|&(i, (_, _, at, _))| rows[..i].iter().any(|r| r.2 > *at)).count();
    assert_eq!(overtakes, 0);
    let after_wipe = &rows[MAX_ACTIVE as usize..];
    assert!(
        after_wipe.iter().all(|(_, _, at, _)| at.timestamp_millis() >= restored_at + PAUSE_MS),
        "nobody admitted during the pause"
    );
    let (scores_before, scores_new) = after_wipe.split_at(waiting.len());
    assert!(scores_before.iter().all(|(_, score, ..)| *score < 1 << 40), "put back at their epoch-0 places");
    assert!(scores_new.iter().all(|(_, score, ..)| *score > 1 << 40), "new joiners in epoch 1");
    let first = after_wipe.first().unwrap().2;
    let last = after_wipe.last().unwrap().2;
    let rate = (after_wipe.len() - 1) as f64 / (last - first).as_seconds_f64();
    assert!((RATE * 0.5..=RATE * 1.5).contains(&rate), "admitted at {rate:.1}/s after the pause");
    println!(
        "redis wipe: Redis restarted in {:?}; all {} waiting fans back in place {all_back:?} after it answered; \
         first admission {} ms after the rebuild (pause {PAUSE_MS} ms); then {rate:.2}/s (configured {RATE})",
        redis_back - wiped_at,
        waiting.len(),
        first.timestamp_millis() - restored_at,
    );
    let stats = app.stats(event).await;
    assert_eq!(stats["admitted_total"], everyone, "Redis' count agrees with PostgreSQL's rows");
    let crowd = crowd.lock().unwrap().clone();
    assert!(crowd.values().all(|state| state.refused.is_none()), "no fan was refused: {crowd:?}");
    for (fan, state) in &crowd {
        assert_eq!(app.poll_ok(event, &state.ticket).await["status"], "admitted", "{fan}");
    }
}

/// Admission never waits for PostgreSQL: with the database partitioned the admitter
/// keeps admitting (and fans keep joining and polling), the records wait in a buffer,
/// failed writes are counted, and once the partition heals every admission is written.
#[tokio::test]
async fn every_admission_is_recorded_and_admission_goes_on_while_postgres_is_unreachable() {
    let keys = RedisKeys::new();
    let (proxy, database) = database_behind_proxy(&keys).await;
    let app = spawn_app_with_database(keys, &database, |c| {
        c.admitter_tick_ms = 20;
    })
    .await;
    let event = app.new_event(json!({ "admit_rate": 25.0, "max_active": 1000, "token_lifetime_secs": 600 })).await;
    let fans: Vec<String> = (0..150).map(|i| format!("fan-{i:03}")).collect();
    for fan in &fans {
        app.join_ok(event, fan).await;
    }
    let stop = CancellationToken::new();
    let admitter = tokio::spawn(waitroom::run_admitter(app.admitter.clone(), stop.clone()));
    eventually("some admissions recorded", || async { (recorded(&app.db, event).await.len() >= 10).then_some(()) })
        .await;

    let failures = metric(&app, "boxoffice_waitroom_admission_record_failures_total").await;
    proxy.freeze();
    let frozen_at = Instant::now();
    let admitted_at_freeze = app.stats(event).await["admitted_total"].as_u64().unwrap();
    let joined = app.join(event, Some("during-the-partition")).await;
    assert_eq!(joined.status, StatusCode::CREATED, "fans do not need PostgreSQL");
    eventually("admission going on and a failed write counted", || async {
        let admitted = app.stats(event).await["admitted_total"].as_u64().unwrap();
        let failed = metric(&app, "boxoffice_waitroom_admission_record_failures_total").await > failures;
        (admitted >= admitted_at_freeze + 25 && failed).then_some(())
    })
    .await;
    assert!(app.admitter.unrecorded_admissions() > 0, "admissions wait in the buffer");
    let stats = app.stats(event).await;
    assert!((recorded(&app.db, event).await.len() as u64) < stats["admitted_total"].as_u64().unwrap());

    let admitted_at_thaw = stats["admitted_total"].as_u64().unwrap() as usize;
    let pending_at_thaw = app.admitter.unrecorded_admissions();
    proxy.thaw();
    let thawed_at = Instant::now();
    eventually("the backlog recorded after the partition", || async {
        (recorded(&app.db, event).await.len() >= admitted_at_thaw).then_some(())
    })
    .await;
    println!(
        "postgres partition: {} admitted during {:?} without PostgreSQL ({pending_at_thaw} records waiting); \
         the backlog written {:?} after it healed",
        admitted_at_thaw as u64 - admitted_at_freeze,
        thawed_at - frozen_at,
        thawed_at.elapsed(),
    );
    let everyone = fans.len() + 1;
    eventually("every admission recorded after the partition", || async {
        let admitted = app.stats(event).await["admitted_total"].as_u64().unwrap() as usize;
        (admitted == everyone && recorded(&app.db, event).await.len() == everyone).then_some(())
    })
    .await;
    stop.cancel();
    admitter.await.unwrap();
    let rows = recorded(&app.db, event).await;
    let mut distinct: Vec<&str> = rows.iter().map(|(fan, ..)| fan.as_str()).collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), everyone, "each admission recorded once");
    assert_eq!(app.admitter.unrecorded_admissions(), 0);
}

/// A fan let in who leaves is recorded as gone, on that admission only: after a wipe
/// the rebuilt room does not count them under max_active again, while a fan still
/// shopping counts.
#[tokio::test]
async fn after_a_wipe_a_fan_who_left_after_being_let_in_does_not_count_again() {
    let app = spawn_app().await;
    let event = app.new_event(json!({ "admit_rate": 1000.0, "max_active": 10, "token_lifetime_secs": 600 })).await;
    let leaving = app.join_ok(event, "fan-leaving").await;
    app.join_ok(event, "fan-shopping").await;
    assert_eq!(app.admit(event, 2, 25).await, ["fan-leaving", "fan-shopping"]);
    app.admitter.record_admissions().await.unwrap();
    let ticket = leaving["ticket"].as_str().unwrap();
    let left = app.leave(event, ticket).await;
    assert!(left.status.is_success(), "{} {}", left.status, left.body);
    assert_eq!(app.stats(event).await["active"], 1);
    app.admitter.record_admissions().await.unwrap();
    let departures: Vec<(String, bool)> = sqlx::query_as(
        "SELECT fan_id, left_at IS NOT NULL FROM waitroom_admissions WHERE event_id = $1 ORDER BY fan_id",
    )
    .bind(event)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(departures, [("fan-leaving".to_owned(), true), ("fan-shopping".to_owned(), false)]);

    let mut redis = app.redis.clone();
    let keys = waitroom::store::keys::EventKeys::new(&app.prefix, event).script_keys();
    let _: () = redis::AsyncCommands::del(&mut redis, &keys[..]).await.unwrap();
    let rebuilt = app.stats(event).await;
    assert!(rebuilt["restored_at"].is_string(), "rebuilt: {rebuilt}");
    assert_eq!(rebuilt["active"], 1, "fan-shopping only: fan-leaving went home");
}

/// Like Redis, PostgreSQL need not be up for the waiting room to start: it answers
/// `/healthz`, says on `/readyz` that it has not reached PostgreSQL yet, and is ready
/// once it has. From then on a PostgreSQL outage does not make it unready, since fans'
/// requests do not need PostgreSQL.
#[tokio::test]
async fn the_waiting_room_starts_while_postgres_is_down_and_is_ready_once_it_reached_it() {
    let keys = RedisKeys::new();
    let (proxy, database) = database_behind_proxy(&keys).await;
    proxy.refuse(true);
    let app = spawn_app_with_database(keys, &database, |_| {}).await;
    let readyz = || async {
        let response = Reply::of(app.http.get(format!("{}/readyz", app.management))).await;
        (response.status, response.body)
    };

    let health = Reply::of(app.http.get(format!("{}/healthz", app.base))).await;
    assert_eq!(health.status, StatusCode::OK);
    let (status, body) = readyz().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["failing"], json!(["postgres"]), "{body}");
    let event = Uuid::new_v4();
    let refused =
        app.put_settings(event, &json!({ "admit_rate": 1.0, "max_active": 1, "token_lifetime_secs": 60 })).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.code(), "unavailable");

    proxy.refuse(false);
    eventually("ready once PostgreSQL answers", || async { (readyz().await.0 == StatusCode::OK).then_some(()) }).await;
    let event = app.new_event(json!({ "admit_rate": 1.0, "max_active": 1, "token_lifetime_secs": 60 })).await;
    let joined = app.join_ok(event, "fan-1").await;

    proxy.freeze();
    // Past the answer cached from before the freeze: this one is a fresh round.
    tokio::time::sleep(service_kit::health::READINESS_CACHE).await;
    assert_eq!(readyz().await.0, StatusCode::OK, "still ready: fans do not need PostgreSQL");
    assert_eq!(app.poll_ok(event, joined["ticket"].as_str().unwrap()).await["position"], 1);
    proxy.thaw();
}

/// The cost of recording admissions, printed (D9: tests time nothing; this one only
/// measures). Each step admits exactly `per_step` fans (that many join before it). The
/// admission path pays the script and a push into the recorder's buffer; the batched
/// INSERT runs on the recorder's own task, timed here on its own. Rounds alternate
/// without and with recording. Run with
/// `cargo test -p waitroom --test it -- --ignored --nocapture admission_step_cost`.
#[tokio::test]
#[ignore]
async fn admission_step_cost_with_and_without_recording() {
    const STEPS: usize = 200;
    let app = spawn_app().await;
    let store = waitroom::store::Store::new(app.redis.clone(), &app.prefix);
    let percentile = |times: &mut Vec<Duration>, p: f64| {
        times.sort();
        times.get(((times.len() - 1) as f64 * p) as usize).map_or(0.0, |d| d.as_micros() as f64)
    };
    for per_step in [20, 100] {
        for round in 1..=3 {
            for recording in [false, true] {
                let settings = json!({ "admit_rate": 100000.0, "max_active": 10000000, "token_lifetime_secs": 600 });
                let event = app.new_event(settings).await;
                store.admit_step(event, 60_000, 22_000, None, 1.0).await.unwrap(); // starts the admission clock
                let (mut steps, mut inserts) = (Vec::new(), Vec::new());
                for i in 0..STEPS {
                    for j in 0..per_step {
                        let fan = FanId::parse(&format!("fan-{i:04}-{j:03}")).unwrap();
                        let joined = store.locate(event, &fan, waitroom::store::LocateMode::Join).await.unwrap();
                        assert!(matches!(joined, waitroom::store::Location::Found(_)));
                    }
                    // Owes far more than per_step by now: the step admits the whole line.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let t = Instant::now();
                    let n = if recording {
                        app.admitter.step(event).await.unwrap().admitted.len()
                    } else {
                        match store.admit_step(event, 60_000, 22_000, None, 1.0).await.unwrap() {
                            waitroom::store::StepOutcome::Stepped(step) => step.admitted.len(),
                            _ => 0,
                        }
                    };
                    steps.push(t.elapsed());
                    assert_eq!(n, per_step);
                    if recording {
                        let t = Instant::now();
                        assert_eq!(app.admitter.record_admissions().await.unwrap(), n);
                        inserts.push(t.elapsed());
                    }
                }
                let insert = if recording {
                    format!(
                        "; INSERT of the step's {per_step} p50 {:>5.0} µs p99 {:>5.0} µs (recorder's task)",
                        percentile(&mut inserts.clone(), 0.5),
                        percentile(&mut inserts, 0.99)
                    )
                } else {
                    String::new()
                };
                println!(
                    "{per_step:>3} fans/step round {round} recording={recording:<5}: admission step p50 {:>5.0} µs \
                     p99 {:>5.0} µs{insert}",
                    percentile(&mut steps.clone(), 0.5),
                    percentile(&mut steps, 0.99),
                );
            }
        }
    }
}

/// A replica migrating a fresh database in the background is not ready until the last
/// migration it knows has run: an early migration already makes the tables, and the
/// organizer's writes met a column a later one adds.
#[tokio::test]
async fn the_waiting_room_is_not_ready_until_its_last_migration_has_run() {
    let app = spawn_app().await;
    let latest = "(SELECT max(version) FROM _sqlx_migrations)";
    let mark = |success: bool| format!("UPDATE _sqlx_migrations SET success = {success} WHERE version = {latest}");
    sqlx::query(&mark(false)).execute(&app.db).await.unwrap();
    let readyz = || async { Reply::of(app.http.get(format!("{}/readyz", app.management))).await };

    let pending = readyz().await;
    assert_eq!((pending.status, &pending.body["failing"]), (StatusCode::SERVICE_UNAVAILABLE, &json!(["postgres"])));

    sqlx::query(&mark(true)).execute(&app.db).await.unwrap();
    tokio::time::sleep(service_kit::health::READINESS_CACHE).await;
    assert_eq!(readyz().await.status, StatusCode::OK);
}
