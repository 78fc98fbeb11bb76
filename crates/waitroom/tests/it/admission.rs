use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{settings, spawn_app, spawn_app_with, TestApp};

#[tokio::test]
async fn fans_joining_one_by_one_are_admitted_in_join_order() {
    let app = spawn_app().await;
    let event = app.new_event(settings(200.0, 1000)).await;
    let fans: Vec<String> = (0..40).map(|i| format!("fan-{i:02}")).collect();
    let mut tickets = Vec::new();
    for fan in &fans {
        tickets.push(app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }

    assert_eq!(app.admit(event, fans.len(), 100).await, fans);
    for ticket in &tickets {
        let polled = app.poll_ok(event, ticket).await;
        assert_eq!(polled["status"], "admitted");
        assert!(polled["access_token"].is_string());
    }
    let stats = app.stats(event).await;
    assert_eq!(stats["admitted_total"], 40);
    assert_eq!(stats["active"], 40);
    assert_eq!(stats["queue_length"], 0);
}

#[tokio::test]
async fn an_abandoned_fan_is_skipped_and_does_not_use_an_admission() {
    let app = spawn_app_with(|c| c.abandon_after_secs = 1).await;
    // Room for exactly two: if the ghost used a place, carol would not get in.
    let event = app.new_event(settings(1000.0, 2)).await;
    let alice = app.join_ok(event, "alice").await;
    let ghost = app.join_ok(event, "ghost").await;
    let carol = app.join_ok(event, "carol").await;

    tokio::time::sleep(Duration::from_millis(1300)).await;
    for fan in [&alice, &carol] {
        assert_eq!(app.poll_ok(event, fan["ticket"].as_str().unwrap()).await["status"], "waiting");
    }

    assert_eq!(app.admit(event, 2, 50).await, ["alice", "carol"]);
    let stats = app.stats(event).await;
    assert_eq!(stats["admitted_total"], 2);
    assert_eq!(stats["skipped_total"], 1);
    assert_eq!(stats["queue_length"], 0);
    let gone = app.poll(event, ghost["ticket"].as_str().unwrap()).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "the ghost lost their place");
    assert_eq!(gone.code(), "not_in_queue");
}

/// The rate is checked against the admission clock the script keeps in Redis (the
/// time of the latest step), so the comparison is exact rather than blurred by when
/// the test happened to look.
#[tokio::test]
async fn three_admitters_hold_the_global_rate_with_no_duplicates_gaps_or_excess_active() {
    const RATE: f64 = 250.0;
    const CAPPED_MAX_ACTIVE: u64 = 25;
    let app = spawn_app().await;
    let event = app.new_event(settings(RATE, 100_000)).await;
    let capped =
        app.new_event(json!({ "admit_rate": 200.0, "max_active": CAPPED_MAX_ACTIVE, "token_lifetime_secs": 1 })).await;

    let fans: Vec<String> = (0..1400).map(|i| format!("fan-{i:04}")).collect();
    let mut tickets = Vec::with_capacity(fans.len());
    for fan in &fans {
        tickets.push(app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    join_many(&app, capped, 600).await;

    let stop = CancellationToken::new();
    let admitters: Vec<_> =
        (0..3).map(|_| tokio::spawn(waitroom::run_admitter(app.admitter.clone(), stop.clone()))).collect();
    let sampler = tokio::spawn(sample_active(app.base.clone(), capped, stop.clone()));

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (total_1, at_1) = admitted_at(&app.stats(event).await);
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (total_2, at_2) = admitted_at(&app.stats(event).await);
    let wall = wall.elapsed();
    stop.cancel();
    for admitter in admitters {
        admitter.await.unwrap();
    }
    let max_active_seen = sampler.await.unwrap();

    let clock_secs = (at_2 - at_1).num_milliseconds() as f64 / 1000.0;
    assert!((clock_secs - wall.as_secs_f64()).abs() < 0.2, "the admitters kept stepping: {clock_secs} s vs {wall:?}");
    let expected = RATE * clock_secs;
    let admitted = (total_2 - total_1) as f64;
    assert!((admitted - expected).abs() <= expected * 0.01, "admitted {admitted}, expected {expected} ± 1%");

    // No duplicates and no gaps: exactly the first M fans are admitted (M being the
    // admissions counted), and everyone else is still waiting, in join order.
    let total = app.stats(event).await["admitted_total"].as_u64().unwrap() as usize;
    assert!(total < fans.len(), "the queue never ran dry");
    for (i, ticket) in tickets.iter().enumerate() {
        let polled = app.poll_ok(event, ticket).await;
        if i < total {
            assert_eq!(polled["status"], "admitted", "fan {i} of {total} admitted");
        } else {
            assert_eq!(polled["status"], "waiting", "fan {i} still waiting");
            assert_eq!(polled["position"], (i - total + 1) as u64, "fan {i} keeps their order");
        }
    }

    // The ETA divides by the rate actually measured, which converged on the setting.
    let measured = app.stats(event).await["measured_rate"].as_f64().unwrap();
    assert!((measured - RATE).abs() < RATE * 0.1, "measured {measured}/s");
    let last = app.poll_ok(event, tickets.last().unwrap()).await;
    let expected_eta = last["position"].as_f64().unwrap() / measured;
    assert_eq!(last["eta_seconds"].as_f64().unwrap(), expected_eta.ceil());

    assert!(max_active_seen <= CAPPED_MAX_ACTIVE, "active peaked at {max_active_seen}");
    let capped_total = app.stats(capped).await["admitted_total"].as_u64().unwrap();
    assert!(capped_total > 2 * CAPPED_MAX_ACTIVE, "expired admissions free room: {capped_total} admitted");
}

async fn join_many(app: &TestApp, event: Uuid, count: usize) {
    use futures::StreamExt;
    futures::stream::iter(0..count)
        .for_each_concurrent(16, |i| async move {
            app.join_ok(event, &format!("capped-{i}")).await;
        })
        .await;
}

async fn sample_active(base: String, event: Uuid, stop: CancellationToken) -> u64 {
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/admin/events/{event}/waitroom/stats");
    let mut peak = 0;
    while !stop.is_cancelled() {
        let stats: Value =
            http.get(&url).bearer_auth(crate::helpers::ADMIN_KEY).send().await.unwrap().json().await.unwrap();
        peak = peak.max(stats["active"].as_u64().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peak
}

fn admitted_at(stats: &Value) -> (u64, DateTime<Utc>) {
    let at = stats["last_admission_step_at"].as_str().expect("an admitter has stepped").parse().unwrap();
    (stats["admitted_total"].as_u64().unwrap(), at)
}

#[tokio::test]
async fn a_fractional_rate_carries_its_remainder_between_steps() {
    let app = spawn_app().await;
    let event = app.new_event(settings(2.5, 100)).await;
    for i in 0..20 {
        app.join_ok(event, &format!("fan-{i:02}")).await;
    }
    app.admitter.step(event).await.unwrap();
    let (_, start) = admitted_at(&app.stats(event).await);
    // Steps far shorter than the 400 ms between admissions: each owes a fraction.
    for _ in 0..100 {
        app.admitter.step(event).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (admitted, end) = admitted_at(&app.stats(event).await);
    let expected = 2.5 * (end - start).num_milliseconds() as f64 / 1000.0;
    assert!((admitted as f64 - expected).abs() <= 1.0, "admitted {admitted}, expected {expected}");
    assert!(admitted >= 4, "the fractions added up to whole admissions: {admitted}");
}

/// What an operator's dashboard reads for one event, in the Prometheus text format.
/// Series are per event (and the recorder per process), so other tests cannot disturb it.
#[tokio::test]
async fn metrics_show_the_line_the_admissions_and_the_route_templates() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1000.0, 3)).await;
    for fan in ["m-1", "m-2", "m-3", "m-4", "m-5"] {
        app.join_ok(event, fan).await;
    }
    assert_eq!(app.admit(event, 3, 50).await.len(), 3);
    app.admit(event, 0, 1).await;

    let text = app.http.get(format!("{}/metrics", app.management)).send().await.unwrap().text().await.unwrap();
    let series = |name: &str| {
        let prefix = format!("{name}{{event=\"{event}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(&prefix)?.parse::<f64>().ok())
    };
    assert_eq!(series("boxoffice_waitroom_admissions_total"), Some(3.0), "{text}");
    assert_eq!(series("boxoffice_waitroom_queue_length"), Some(2.0));
    assert_eq!(series("boxoffice_waitroom_active"), Some(3.0));
    assert_eq!(series("boxoffice_waitroom_admit_rate"), Some(0.0), "the rate in force: the room is full");
    assert_eq!(series("boxoffice_waitroom_max_active"), Some(3.0));
    assert!(
        text.contains(r#"method="POST",route="/v1/events/{event_id}/queue",status="201""#),
        "joins are labelled by route template: {text}"
    );
    assert!(!text.contains(&format!("/v1/events/{event}/")), "no raw paths as labels");
    assert!(text.contains(r#"boxoffice_redis_command_duration_seconds_bucket{command="join""#));
    assert!(text.contains("process_resident_memory_bytes"));

    app.admin_post(event, "pause").await;
    app.admit(event, 0, 1).await;
    let text = app.http.get(format!("{}/metrics", app.management)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(&format!("boxoffice_waitroom_admit_rate{{event=\"{event}\"}} 0\n")),
        "a paused event admits at rate 0: {text}"
    );
}
