//! An event nobody closed leaves the admitter's walk once it has stayed open with nobody
//! in line and nobody admitted for `waitroom.idle_retention_secs`, and its Redis keys
//! expire; a join brings it back. The idle clock is backdated rather than waited out:
//! `counters.idle_since_ms` is what days of steps finding the room empty leave behind.

use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;
use waitroom::store::keys::EventKeys;
use waitroom::store::{EventKey, Step};

use crate::helpers::{indexed, spawn_app, ttls_of, TestApp};

/// `config/default.toml`'s `waitroom.idle_retention_secs`, in ms.
const IDLE_RETENTION_MS: i64 = 3 * 24 * 3600 * 1000;
/// `config/default.toml`'s `waitroom.closed_retention_secs`: a retired event's keys live
/// this long after its retirement.
const RETENTION_SECS: i64 = 24 * 3600;

fn settings(state: &str) -> serde_json::Value {
    json!({ "admit_rate": 100.0, "max_active": 1, "token_lifetime_secs": 600, "state": state })
}

fn key(app: &TestApp, event_id: Uuid, key: EventKey) -> String {
    EventKeys::new(&app.prefix, event_id).key(key)
}

async fn redis_now_ms(app: &TestApp) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut app.redis.clone()).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Sets the event's idle clock to a minute more than the idle retention ago.
async fn backdate_idle_clock(app: &TestApp, event_id: Uuid) {
    let since = redis_now_ms(app).await - IDLE_RETENTION_MS - 60_000;
    let _: () = app.redis.clone().hset(key(app, event_id, EventKey::Counters), "idle_since_ms", since).await.unwrap();
}

async fn idle_since(app: &TestApp, event_id: Uuid) -> Option<i64> {
    app.redis.clone().hget(key(app, event_id, EventKey::Counters), "idle_since_ms").await.unwrap()
}

/// The event's retirement mark in Redis (`'1'`, `'reviving'`, or none).
async fn retired_mark(app: &TestApp, event_id: Uuid) -> Option<String> {
    app.redis.clone().hget(key(app, event_id, EventKey::Settings), "retired").await.unwrap()
}

async fn retired_in_postgres(app: &TestApp, event_id: Uuid) -> bool {
    sqlx::query_scalar("SELECT retired_at IS NOT NULL FROM waitroom_events WHERE event_id = $1")
        .bind(event_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Waits for the admitter's background write of the event's retirement (or return).
async fn until_recorded(app: &TestApp, event_id: Uuid, retired: bool) {
    for _ in 0..250 {
        if retired_in_postgres(app, event_id).await == retired {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("PostgreSQL never recorded retired = {retired} for {event_id}");
}

/// Whether the admitter's next tick steps the event (PostgreSQL's list read afresh).
async fn walked(app: &TestApp, event_id: Uuid) -> bool {
    app.admitter.walked_events().await.unwrap().contains(&event_id)
}

/// A late fan joins the retired event: an ordinary answer, and the event is back in the
/// admitter's index.
async fn late_fan_joins(app: &TestApp, event_id: Uuid) {
    let joined = app.join_ok(event_id, "fan-late").await;
    assert_eq!((joined["status"].as_str(), joined["position"].as_u64()), (Some("waiting"), Some(1)));
    assert!(indexed(app, event_id).await, "back in the admitter's index");
    assert_eq!(retired_mark(app, event_id).await, None);
}

/// Once stepped again, the event is back in PostgreSQL's walk too, with its seed.
async fn back_in_the_walk(app: &TestApp, event_id: Uuid, seed_sha256: &serde_json::Value) {
    until_recorded(app, event_id, false).await;
    assert!(walked(app, event_id).await);
    assert_eq!(&app.public_event(event_id).await["seed_sha256"], seed_sha256, "the same seed");
}

/// An event that opened at once and sold: a fan joined, was admitted and left. Long
/// over, never closed; its idle clock running.
async fn finished_event(app: &TestApp) -> Uuid {
    let event_id = app.new_event(settings("running")).await;
    let ticket = app.join_ok(event_id, "fan-1").await["ticket"].as_str().unwrap().to_owned();
    assert_eq!(app.admit(event_id, 1, 50).await, ["fan-1"]);
    assert_eq!(app.leave(event_id, &ticket).await.status, StatusCode::NO_CONTENT);
    let room = app.admitter.step(event_id).await.unwrap().room;
    assert_eq!((room.queue_length, room.active), (0, 0));
    assert!(idle_since(app, event_id).await.is_some(), "the empty room starts the idle clock");
    assert!(indexed(app, event_id).await && walked(app, event_id).await);
    event_id
}

/// [`finished_event`], retired by a step once idle for longer than the retention, and
/// recorded retired in PostgreSQL.
async fn retired_event(app: &TestApp) -> Uuid {
    let event_id = finished_event(app).await;
    backdate_idle_clock(app, event_id).await;
    let step = app.admitter.step(event_id).await.unwrap();
    assert!(!indexed(app, event_id).await, "an idle event long over is not stepped");
    assert_eq!(step, Step::default(), "the retiring step admits nobody");
    until_recorded(app, event_id, true).await;
    event_id
}

#[tokio::test]
async fn an_open_event_idle_for_the_retention_leaves_the_walk_and_its_keys_expire() {
    let app = spawn_app().await;
    let event_id = retired_event(&app).await;

    assert!(!walked(&app, event_id).await, "PostgreSQL's walk leaves it out too");
    assert_eq!(retired_mark(&app, event_id).await.as_deref(), Some("1"));
    // The settings and counters expire after the retention; the line, the last-seen
    // times and the admitted set are empty, so no key at all.
    let ttls = ttls_of(&app, event_id).await;
    let expiring = |ttl: i64| (RETENTION_SECS - 60..=RETENTION_SECS).contains(&ttl);
    assert!(expiring(ttls[0].1) && expiring(ttls[1].1), "a day's retention: {ttls:?}");
    assert_eq!(ttls[2..].iter().map(|(_, ttl)| *ttl).collect::<Vec<_>>(), [-2, -2, -2], "{ttls:?}");

    // A step of a retired event (a walk still listing it) admits nobody and leaves it
    // retired.
    assert_eq!(app.admitter.step(event_id).await.unwrap(), Step::default());
    assert!(!indexed(&app, event_id).await);
    assert_eq!(retired_mark(&app, event_id).await.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_pre_queue_before_its_opening_time_is_never_retired() {
    let app = spawn_app().await;
    let opens_at = Utc::now() + chrono::Duration::days(14);
    let event_id = app
        .new_event(json!({ "admit_rate": 100.0, "max_active": 1, "token_lifetime_secs": 600,
                           "opens_at": opens_at, "state": "running" }))
        .await;
    // Nobody has joined yet, weeks before the opening, and the clock says idle for
    // longer than the retention: still walked, still kept.
    backdate_idle_clock(&app, event_id).await;
    for _ in 0..3 {
        let step = app.admitter.step(event_id).await.unwrap();
        assert_eq!((step.admitted.len(), step.room.queue_length, step.room.admit_rate), (0, 0, 0.0));
    }
    assert!(indexed(&app, event_id).await && walked(&app, event_id).await);
    assert_eq!(retired_mark(&app, event_id).await, None);
    let ttls = ttls_of(&app, event_id).await;
    assert_eq!((ttls[0].1, ttls[1].1), (-1, -1), "kept: {ttls:?}");
    assert!(!retired_in_postgres(&app, event_id).await);

    // The pre-queue then fills and stays kept.
    assert_eq!(app.join_ok(event_id, "early-fan").await["status"], "pre_queue");
    assert_eq!(app.admitter.step(event_id).await.unwrap().room.queue_length, 1);
    assert!(indexed(&app, event_id).await && ttls_of(&app, event_id).await.iter().all(|(_, ttl)| *ttl != 0));
}

#[tokio::test]
async fn an_event_with_fans_in_line_or_admitted_is_never_retired() {
    let app = spawn_app().await;
    // Paused for days with fans in line: nobody admitted for ever so long, yet they wait.
    let waiting = app.new_event(settings("paused")).await;
    for fan in ["fan-1", "fan-2"] {
        assert_eq!(app.join_ok(waiting, fan).await["status"], "waiting");
    }
    // Running, nobody in line, one fan admitted (their admission has not expired).
    let admitted = app.new_event(settings("running")).await;
    app.join_ok(admitted, "fan-1").await;
    assert_eq!(app.admit(admitted, 1, 50).await, ["fan-1"]);

    for event_id in [waiting, admitted] {
        backdate_idle_clock(&app, event_id).await;
        let room = app.admitter.step(event_id).await.unwrap().room;
        assert_eq!((room.queue_length, room.active), if event_id == waiting { (2, 0) } else { (0, 1) });
        assert_eq!(idle_since(&app, event_id).await, None, "a fan in the room stops the idle clock");
        assert!(indexed(&app, event_id).await && walked(&app, event_id).await);
        assert_eq!(retired_mark(&app, event_id).await, None);
        let ttls = ttls_of(&app, event_id).await;
        assert!(ttls.iter().all(|(_, ttl)| *ttl == -1 || *ttl == -2), "kept: {ttls:?}");
        assert_eq!(ttls[0].1, -1, "{ttls:?}");
    }
}

#[tokio::test]
async fn an_idle_retired_event_comes_back_on_the_next_join_and_is_walked_again() {
    let app = spawn_app().await;
    let event_id = retired_event(&app).await;
    let seed_sha256 = app.public_event(event_id).await["seed_sha256"].clone();
    assert!(!walked(&app, event_id).await);

    late_fan_joins(&app, event_id).await;
    let ttls = ttls_of(&app, event_id).await;
    assert_eq!(ttls.iter().map(|(_, ttl)| *ttl).collect::<Vec<_>>(), [-1, -1, -1, -1, -2], "kept: {ttls:?}");

    // Admitted as in any sale, and PostgreSQL's walk lists it again.
    assert_eq!(app.admit(event_id, 1, 50).await, ["fan-late"]);
    back_in_the_walk(&app, event_id, &seed_sha256).await;
}

#[tokio::test]
async fn an_idle_retired_event_whose_keys_expired_is_rebuilt_retired_and_a_join_brings_it_back() {
    let app = spawn_app().await;
    let event_id = retired_event(&app).await;
    let seed_sha256 = app.public_event(event_id).await["seed_sha256"].clone();
    // What the retention does, without waiting a day.
    let _: () = app.redis.clone().del(EventKeys::new(&app.prefix, event_id).script_keys().to_vec()).await.unwrap();

    // An organizer's read rebuilds it from PostgreSQL, still retired: not walked, its
    // keys expiring again.
    assert_eq!(app.stats(event_id).await["state"], "running");
    assert!(!indexed(&app, event_id).await && !walked(&app, event_id).await);
    assert_eq!(retired_mark(&app, event_id).await.as_deref(), Some("1"));
    let ttls = ttls_of(&app, event_id).await;
    assert!((RETENTION_SECS - 60..=RETENTION_SECS).contains(&ttls[0].1), "the rebuilt settings expire: {ttls:?}");

    // A fan arriving later gets a normal answer and a normal sale.
    late_fan_joins(&app, event_id).await;
    assert_eq!(ttls_of(&app, event_id).await[0].1, -1);
    // Admission pauses after a rebuild (22 s by default): the step is not waited out
    // here; the event is stepped again, and PostgreSQL told.
    assert_eq!(app.admitter.step(event_id).await.unwrap().room.queue_length, 1);
    back_in_the_walk(&app, event_id, &seed_sha256).await;
}

#[tokio::test]
async fn an_organizers_write_brings_an_idle_retired_event_back() {
    let app = spawn_app().await;
    let event_id = retired_event(&app).await;

    assert_eq!(app.admin_post(event_id, "pause").await.status, StatusCode::OK);
    assert!(indexed(&app, event_id).await && walked(&app, event_id).await);
    assert!(!retired_in_postgres(&app, event_id).await, "cleared with the write");
    assert_eq!(retired_mark(&app, event_id).await, None);
    assert_eq!(ttls_of(&app, event_id).await[..2].iter().map(|(_, ttl)| *ttl).collect::<Vec<_>>(), [-1, -1]);
    assert_eq!(idle_since(&app, event_id).await, None, "the idle clock starts again");
}

#[tokio::test]
async fn fans_joining_a_retired_event_at_once_all_stand_in_line_and_it_is_indexed() {
    let app = spawn_app().await;
    let event_id = retired_event(&app).await;

    let joins = (0..20).map(|i| {
        let app = &app;
        async move { app.join(event_id, Some(&format!("fan-{i:02}"))).await }
    });
    let replies = futures::future::join_all(joins).await;
    let statuses: Vec<_> = replies.iter().map(|r| (r.status, r.body["status"].clone())).collect();
    assert!(statuses.iter().all(|s| *s == (StatusCode::CREATED, json!("waiting"))), "{statuses:?}");
    let mut positions: Vec<u64> = replies.iter().map(|r| r.body["position"].as_u64().unwrap()).collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=20).collect::<Vec<_>>());
    assert!(indexed(&app, event_id).await);
    assert_eq!(retired_mark(&app, event_id).await, None);
    let ttls = ttls_of(&app, event_id).await;
    assert_eq!(ttls.iter().map(|(_, ttl)| *ttl).collect::<Vec<_>>(), [-1, -1, -1, -1, -2], "kept: {ttls:?}");
}
