//! A slow Redis: 200 ms on every command (a [`ChaosProxy`] adding 100 ms each way),
//! three waiting-room replicas each running its admitter. The rate is global and owed
//! by elapsed Redis time, so slow steps make admissions lumpier, not fewer: over a
//! fixed window of Redis time the fans admitted number rate × window within 2 %, and
//! nobody is admitted twice.
//!
//! Admissions are counted by Redis-side time, two ways, both through the public API:
//!
//! - per fan, in a fixed window of whole Redis seconds: an admitted fan's poll carries
//!   `access_token_expires_at`, the admission's expiry (Redis `TIME` at the step +
//!   the token lifetime) in whole seconds, so "admitted in second s" is exact for whole
//!   seconds. This is what fans saw, and it does not depend on when the test looked.
//! - by the counters: `admitted_total` with `last_admission_step_at` (the Redis time of
//!   the latest step, written by the same script), read at the window's start and end.
//!   This is the script's own bookkeeping, exact to one admission (the carried fraction).
//!
//! Window start and end are read with `TIME` from the test's Redis directly, not
//! through the proxy, so the test's own clock and the injected latency do not blur them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::{json, Value};
use service_kit::redis_conn::RedisConfig;
use test_support::chaos::ChaosProxy;
use test_support::redis_config;
use test_support::redis_server::RedisServer;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{spawn_app_on, TestApp};

const RATE: f64 = 100.0;
/// Injected each way, so every command's round trip is at least twice this.
const ONE_WAY: Duration = Duration::from_millis(100);
/// The measured window, in whole seconds of Redis time.
const WINDOW_SECS: i64 = 30;
/// Enough fans that the line never runs dry: warm-up, window and the steps after it.
const FANS: usize = 3_800;
/// Long enough that no admission expires during the test, so every one stays visible.
const LIFETIME_SECS: i64 = 3_600;

/// Redis server time in milliseconds, asked directly (not through the proxy).
async fn redis_time_ms(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1000 + micros / 1000
}

/// How many times Redis ran `command` (from `INFO commandstats`), to count steps
/// without reading the waiting room's keys.
async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query_async(conn).await.unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines().find_map(|line| line.strip_prefix(&prefix)?.split(',').next()?.parse().ok()).unwrap_or(0)
}

/// `admitted_total` and the Redis time (ms) of the latest step, one consistent pair.
async fn counters(app: &TestApp, event: Uuid) -> (u64, i64) {
    let stats = app.stats(event).await;
    let at: DateTime<Utc> = stats["last_admission_step_at"].as_str().expect("an admitter has stepped").parse().unwrap();
    (stats["admitted_total"].as_u64().unwrap(), at.timestamp_millis())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_200_ms_per_redis_command_three_admitters_hold_the_rate_over_a_fixed_window() {
    let started = Instant::now();
    let server = RedisServer::start().await.unwrap();
    let mut direct = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let proxy = ChaosProxy::start(server.addr()).await.unwrap();
    // The default command timeout (500 ms) is too close to a 200 ms round trip that
    // queues behind others on the connection; a replica facing a slow Redis raises it.
    let redis = RedisConfig {
        command_timeout_ms: 2_000,
        connect_timeout_ms: 3_000,
        ..redis_config(&format!("redis://{}", proxy.addr()))
    };
    // Three replicas, each with its own connection to Redis and its own admitter, as
    // three `boxoffice waitroom` processes run; fans waiting this test out are not gone.
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(
            spawn_app_on(&redis, |c| {
                c.abandon_after_secs = 3_600;
                c.ticket_lifetime_secs = 7_200;
            })
            .await,
        );
    }
    let app = &replicas[0];
    let event = app
        .new_event(json!({ "admit_rate": RATE, "max_active": 1_000_000, "token_lifetime_secs": LIFETIME_SECS }))
        .await;

    // The line, joined before Redis slows down. No admitter runs yet, so each join's
    // position is its place in line.
    let mut line: Vec<(u64, String)> = futures::stream::iter(0..FANS)
        .map(|i| async move {
            let joined = app.join_ok(event, &format!("fan-{i:04}")).await;
            (joined["position"].as_u64().unwrap(), joined["ticket"].as_str().unwrap().to_owned())
        })
        .buffer_unordered(32)
        .collect()
        .await;
    line.sort();
    assert!(line.iter().enumerate().all(|(i, (position, _))| *position == i as u64 + 1), "one place each");
    let joined_after = started.elapsed();

    proxy.set_latency(ONE_WAY);
    let stop = CancellationToken::new();
    let admitters: Vec<_> = replicas
        .iter()
        .map(|replica| tokio::spawn(waitroom::run_admitter(replica.admitter.clone(), stop.clone())))
        .collect();
    // Warm-up: every replica has connected and loaded the script (NOSCRIPT, SCRIPT
    // LOAD, EVALSHA: three slow round trips), and admissions flow.
    let warm = Instant::now();
    while app.stats(event).await["admitted_total"].as_u64().unwrap() == 0 {
        assert!(warm.elapsed() < Duration::from_secs(10), "nobody admitted through the slow Redis");
    }
    let round_trip = {
        let sent = Instant::now();
        app.stats(event).await;
        sent.elapsed()
    };
    assert!(round_trip >= 2 * ONE_WAY, "the latency is in force: a stats call took {round_trip:?}");
    let warmed_up = warm.elapsed();

    // The window: whole seconds [from, to) of Redis time, starting at the next second.
    let from = redis_time_ms(&mut direct).await / 1000 + 1;
    let to = from + WINDOW_SECS;
    while redis_time_ms(&mut direct).await < from * 1000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let steps_before = calls(&mut direct, "smembers").await;
    let (total_1, step_1) = counters(app, event).await;
    while redis_time_ms(&mut direct).await < to * 1000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let steps = calls(&mut direct, "smembers").await - steps_before;
    let (total_2, step_2) = counters(app, event).await;
    stop.cancel();
    for admitter in admitters {
        admitter.await.unwrap();
    }
    // A step sent before the admitters stopped still reaches Redis and runs: wait for
    // the last ones, then let the checks below run at full speed.
    tokio::time::sleep(4 * ONE_WAY + Duration::from_millis(200)).await;
    proxy.set_latency(Duration::ZERO);

    // By the counters: exact to the carried fraction, and within 2 %.
    let clock_secs = (step_2 - step_1) as f64 / 1000.0;
    let by_counters = (total_2 - total_1) as f64;
    assert!(
        (by_counters - RATE * clock_secs).abs() <= 1.0,
        "counters: {by_counters} admitted over {clock_secs} s of admission clock"
    );
    assert!((by_counters - RATE * clock_secs).abs() <= RATE * clock_secs * 0.02);

    // Every fan, polled: the admitted ones are exactly the first of the line and the
    // rest wait in order behind them, so nobody was admitted twice or skipped.
    let stats = app.stats(event).await;
    let admitted_total = stats["admitted_total"].as_u64().unwrap() as usize;
    assert_eq!(app.stats(event).await["admitted_total"].as_u64().unwrap() as usize, admitted_total, "quiet");
    // The admitted set holds one entry per fan; nothing has expired, so its size is
    // every admission counted.
    assert_eq!(stats["active"].as_u64().unwrap() as usize, admitted_total, "admitted set vs admitted_total: {stats}");
    assert!(admitted_total < FANS, "the line ran dry: {admitted_total} of {FANS} admitted");
    let checks_from = Instant::now();
    let polled: Vec<Value> =
        futures::stream::iter(&line).map(|(_, ticket)| app.poll_ok(event, ticket)).buffered(32).collect().await;
    let mut per_second: HashMap<i64, usize> = HashMap::new();
    for (i, answer) in polled.iter().enumerate() {
        if i < admitted_total {
            assert_eq!(answer["status"], "admitted", "fan {} of {admitted_total} admitted: {answer}", i + 1);
            let expires: DateTime<Utc> = answer["access_token_expires_at"].as_str().unwrap().parse().unwrap();
            *per_second.entry(expires.timestamp() - LIFETIME_SECS).or_default() += 1;
        } else {
            assert_eq!(answer["status"], "waiting", "fan {} still waiting: {answer}", i + 1);
            assert_eq!(answer["position"].as_u64(), Some((i - admitted_total + 1) as u64), "fan {} keeps order", i + 1);
        }
    }
    assert_eq!(per_second.values().sum::<usize>(), admitted_total, "one admission per admitted fan");

    // Per fan, in the fixed window of Redis time.
    let in_window: usize = (from..to).map(|s| per_second.get(&s).copied().unwrap_or(0)).sum();
    let expected = RATE * WINDOW_SECS as f64;
    let error = in_window as f64 - expected;
    let (lowest, highest) = (from..to)
        .map(|s| per_second.get(&s).copied().unwrap_or(0))
        .fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
    println!(
        "redis latency: {in_window} fans admitted in {WINDOW_SECS} s of Redis time (expected {expected}, {:+.2} %); \
         counters {by_counters} over {clock_secs} s of admission clock ({:.1}/s); {steps} admitter rounds in the \
         window ({:.0} ms apart across three replicas); per second {lowest}..{highest}; stats round trip \
         {round_trip:?}; {FANS} fans joined in {joined_after:?}, warm-up {warmed_up:?}, polled in {:?}; wall {:?}",
        100.0 * error / expected,
        by_counters / clock_secs,
        1000.0 * WINDOW_SECS as f64 / steps.max(1) as f64,
        checks_from.elapsed(),
        started.elapsed(),
    );
    assert!(error.abs() <= expected * 0.02, "{in_window} admitted in the window, expected {expected} ± 2 %");
}
