//! The waiting room while its Redis is down, unreachable or restarted: prompt
//! `503 unavailable` answers, honest probes, and recovery without a restart. Each test
//! runs a `redis-server` of its own (and a chaos proxy where it needs a partition),
//! never the shared one.
//!
//! Time bounds are generous on purpose (the Redis timeouts are 0.5 s and 1 s): they
//! tell a prompt answer from the 8–9.5 s waits these tests were written against.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use test_support::chaos::ChaosProxy;
use test_support::redis_server::RedisServer;
use test_support::{redis_config, Reply};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{settings, spawn_app_on, TestApp, ADMIN_KEY};

/// A request that needs Redis answers within this while Redis is down or unreachable.
const PROMPT: Duration = Duration::from_secs(3);
/// `/readyz` answers within this whatever its dependencies do.
const READYZ_PROMPT: Duration = Duration::from_secs(2);
/// Redis back (or the network healed): the waiting room is ready again within this.
const RECOVERY: Duration = Duration::from_secs(15);

async fn timed(request: impl Future<Output = Reply>) -> (Reply, Duration) {
    let started = Instant::now();
    let response = request.await;
    (response, started.elapsed())
}

/// `what` answered `503` with code `unavailable`, within [`PROMPT`].
async fn assert_unavailable(what: &str, (response, took): (Reply, Duration)) {
    let Reply { status, body, .. } = response;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"]["code"], "unavailable", "{what}: {body}");
    assert!(took < PROMPT, "{what} took {took:?}");
}

async fn readyz(app: &TestApp) -> (StatusCode, Value, Duration) {
    let (response, took) = timed(Reply::of(app.http.get(format!("{}/readyz", app.management)))).await;
    (response.status, response.body, took)
}

/// `/readyz` answers 503 within [`READYZ_PROMPT`], naming redis (and only redis) as
/// failing, once the answer cached from before the outage has aged out.
async fn assert_not_ready(app: &TestApp) {
    let started = Instant::now();
    loop {
        let (status, body, took) = readyz(app).await;
        assert!(took < READYZ_PROMPT, "/readyz took {took:?}");
        if status == StatusCode::OK && started.elapsed() < service_kit::health::READINESS_CACHE * 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body, serde_json::json!({ "status": "unavailable", "failing": ["redis"] }), "names only");
        return;
    }
}

async fn assert_alive(app: &TestApp) {
    let response = Reply::of(app.http.get(format!("{}/healthz", app.base))).await;
    assert_eq!(response.status, StatusCode::OK);
}

/// Polls `/readyz` until it answers 200; how long that took.
async fn wait_until_ready(app: &TestApp) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body, _) = readyz(app).await;
        if status == StatusCode::OK {
            return started.elapsed();
        }
        assert!(started.elapsed() < RECOVERY, "not ready {RECOVERY:?} after Redis came back: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stats(app: &TestApp, event_id: Uuid) -> Reply {
    Reply::of(app.http.get(format!("{}/v1/admin/events/{event_id}/waitroom/stats", app.base)).bearer_auth(ADMIN_KEY))
        .await
}

fn ticket(joined: &Value) -> String {
    joined["ticket"].as_str().unwrap().to_owned()
}

/// `boxoffice_waitroom_admitter_errors_total` as this process's `/metrics` shows it
/// (one registry per process, so other tests' admitters may add to it too).
async fn admitter_errors(app: &TestApp) -> f64 {
    let text = app.http.get(format!("{}/metrics", app.management)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("boxoffice_waitroom_admitter_errors_total "))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn while_redis_is_down_every_request_answers_503_promptly_and_it_serves_again_once_redis_is_back() {
    let mut server = RedisServer::start().await.unwrap();
    let app = spawn_app_on(&redis_config(&server.url()), |_| {}).await;
    let event_id = app.new_event(settings(100.0, 10)).await;
    let ticket = ticket(&app.join_ok(event_id, "fan-before").await);

    server.stop();
    // Every request, not only the first: before the command timeout the first request
    // after the crash failed at once and each later one waited 8–9.5 s.
    for attempt in 0..3 {
        assert_unavailable("join", timed(app.join(event_id, Some(&format!("fan-down-{attempt}")))).await).await;
        assert_unavailable("poll", timed(app.poll(event_id, &ticket)).await).await;
    }
    assert_unavailable("leave", timed(app.leave(event_id, &ticket)).await).await;
    assert_unavailable("stats", timed(stats(&app, event_id)).await).await;
    assert_unavailable("settings", timed(app.put_settings(event_id, &settings(100.0, 10))).await).await;
    assert_not_ready(&app).await;
    assert_alive(&app).await;

    // Back, and empty: this Redis persists nothing, so the organizer puts the event back.
    server.restart().await.unwrap();
    wait_until_ready(&app).await;
    let response = app.put_settings(event_id, &settings(100.0, 10)).await;
    assert_eq!(response.status, StatusCode::OK);
    let response = app.join(event_id, Some("fan-after")).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let response = app.join(event_id, Some("fan-after")).await;
    assert_eq!(response.status, StatusCode::OK, "joining again answers where the fan stands");
}

#[tokio::test]
async fn the_waiting_room_starts_while_its_redis_is_not_running_and_becomes_ready_once_it_is() {
    let mut server = RedisServer::start().await.unwrap();
    server.stop(); // the port is known; nothing listens on it
    let started = Instant::now();
    let app = spawn_app_on(&redis_config(&server.url()), |c| c.admitter_tick_ms = 20).await;
    assert!(started.elapsed() < PROMPT, "building took {:?}", started.elapsed());
    let shutdown = CancellationToken::new();
    let admitter = tokio::spawn(waitroom::run_admitter(app.admitter.clone(), shutdown.clone()));

    assert_alive(&app).await;
    assert_not_ready(&app).await;
    let event_id = Uuid::new_v4();
    assert_unavailable("settings", timed(app.put_settings(event_id, &settings(1000.0, 10))).await).await;
    assert_unavailable("join", timed(app.join(event_id, Some("fan-early"))).await).await;
    // The admitter keeps ticking (each tick failing fast) and counts its failures.
    let errors_before = admitter_errors(&app).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let errors_after = admitter_errors(&app).await;
    assert!(errors_after > errors_before, "admitter errors {errors_before} → {errors_after}");
    assert!(!admitter.is_finished(), "the admitter stopped while Redis was down");

    server.restart().await.unwrap();
    wait_until_ready(&app).await;
    let event_id = app.new_event(settings(1000.0, 10)).await;
    let joined = app.join_ok(event_id, "fan-1").await;
    assert_eq!(joined["status"], "waiting");
    // The admitter that ran through the outage admits the fan by itself.
    let started = Instant::now();
    loop {
        let polled = app.poll_ok(event_id, &ticket(&joined)).await;
        if polled["status"] == "admitted" {
            assert!(polled["access_token"].is_string(), "{polled}");
            break;
        }
        assert!(started.elapsed() < RECOVERY, "not admitted after {RECOVERY:?}: {polled}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    admitter.await.unwrap();
}

#[tokio::test]
async fn during_a_partition_from_redis_requests_and_probes_answer_503_promptly_and_it_heals_by_itself() {
    let server = RedisServer::start().await.unwrap();
    let proxy = ChaosProxy::start(server.addr()).await.unwrap();
    let redis = redis_config(&format!("redis://{}", proxy.addr()));
    let app = spawn_app_on(&redis, |_| {}).await;
    // A replica whose commands may wait 30 s: its /readyz still answers within its own
    // deadline and names redis "timed out".
    let patient =
        spawn_app_on(&service_kit::redis_conn::RedisConfig { command_timeout_ms: 30_000, ..redis.clone() }, |_| {})
            .await;
    let event_id = app.new_event(settings(100.0, 10)).await;
    let ticket = ticket(&app.join_ok(event_id, "fan-before").await);
    wait_until_ready(&patient).await; // connected before the partition

    proxy.freeze();
    assert_unavailable("join", timed(app.join(event_id, Some("fan-during"))).await).await;
    assert_unavailable("poll", timed(app.poll(event_id, &ticket)).await).await;
    assert_unavailable("stats", timed(stats(&app, event_id)).await).await;
    assert_not_ready(&app).await;
    // Named, not explained: "timed out" goes to its log.
    assert_not_ready(&patient).await;
    assert_alive(&app).await;

    proxy.thaw();
    wait_until_ready(&app).await;
    wait_until_ready(&patient).await;
    let polled = app.poll_ok(event_id, &ticket).await;
    assert_eq!((polled["status"].as_str(), polled["position"].as_u64()), (Some("waiting"), Some(1)));
    // A 503 is not a rollback: the join sent during the partition was held, not lost,
    // and ran once the network healed; joining again finds the fan in line.
    let response = app.join(event_id, Some("fan-during")).await;
    assert_eq!(response.status, StatusCode::OK);
    let response = app.join(event_id, Some("fan-after")).await;
    assert_eq!(response.status, StatusCode::CREATED);
}

#[tokio::test]
async fn scripts_flushed_from_redis_are_loaded_again_on_their_next_call() {
    let server = RedisServer::start().await.unwrap();
    let app = spawn_app_on(&redis_config(&server.url()), |_| {}).await;
    let event_id = app.new_event(settings(1000.0, 10)).await;
    let first = ticket(&app.join_ok(event_id, "fan-1").await);
    let mut conn = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let locate = redis::Script::new(include_str!("../../src/store/scripts/locate.lua"));
    let loaded = || redis::cmd("SCRIPT").arg("EXISTS").arg(locate.get_hash()).to_owned();
    assert_eq!(loaded().query_async::<Vec<bool>>(&mut conn).await.unwrap(), [true]);

    // What a Redis restart does to scripts, without losing the data: every script's
    // next EVALSHA meets NOSCRIPT, and must load the script and run it.
    redis::cmd("SCRIPT").arg("FLUSH").query_async::<()>(&mut conn).await.unwrap();
    assert_eq!(loaded().query_async::<Vec<bool>>(&mut conn).await.unwrap(), [false]);
    let second = ticket(&app.join_ok(event_id, "fan-2").await); // locate.lua
    assert_eq!(loaded().query_async::<Vec<bool>>(&mut conn).await.unwrap(), [true]);
    assert_eq!(app.poll_ok(event_id, &first).await["position"], 1);
    let other_event = app.new_event(settings(1000.0, 10)).await; // put_settings.lua
    assert_eq!(app.admit(event_id, 2, 100).await, ["fan-1", "fan-2"]); // admit.lua
    assert_eq!(stats(&app, event_id).await.status, StatusCode::OK); // stats.lua
    assert_eq!(app.admin_post(other_event, "pause").await.status, StatusCode::OK); // set_state.lua
    assert_eq!(app.leave(event_id, &second).await.status, StatusCode::NO_CONTENT);
    // leave.lua
}
