//! Back-pressure (issue 18): while the gateways report distress, the admitter lets fans
//! in at a share of the organizer's rate, and the stats say so and why. (The gateway's
//! side, measured on a really saturated pool, is `crates/boxoffice/tests/backpressure.rs`.)

use std::time::{Duration, Instant};

use serde_json::json;
use service_kit::distress;

use crate::helpers::{settings, spawn_app_with};

#[tokio::test]
async fn at_full_distress_fans_are_let_in_at_the_floor_share_of_the_rate() {
    let app = spawn_app_with(|c| c.backpressure.min_rate_share = 0.1).await;
    let event = app.new_event(settings(100.0, 10_000)).await;
    for i in 0..300 {
        app.join_ok(event, &format!("fan-{i:03}")).await;
    }
    let mut redis = app.redis.clone();
    distress::publish(&mut redis, &app.prefix, "gateway-1", 1.0, Duration::from_secs(60)).await.unwrap();
    distress::publish(&mut redis, &app.prefix, "gateway-2", 1.0, Duration::from_secs(60)).await.unwrap();
    let fleet = app.backpressure.refresh().await.unwrap();
    assert_eq!((fleet.reporting, fleet.level), (2, 1.0));

    // A second of admission at 10 % of 100 fans a second owes about 10 (the first step
    // makes up at most a second); at the full rate it would be about 100.
    let started = Instant::now();
    let mut admitted = 0;
    while started.elapsed() < Duration::from_secs(1) {
        admitted += app.admitter.step(event).await.unwrap().admitted.len();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!((1..=30).contains(&admitted), "admitted {admitted} in a second at 10 fans a second");
    let stats = app.stats(event).await;
    assert_eq!(
        stats["admission"],
        json!({
            "rate_in_force": 10.0,
            "reason": "gateway_distress",
            "backpressure": { "gateways_reporting": 2, "gateway_distress": 1.0, "rate_share": 0.1 },
        })
    );

    // The reports expire: the organizer's rate again.
    distress::publish(&mut redis, &app.prefix, "gateway-1", 0.0, Duration::from_millis(1)).await.unwrap();
    distress::publish(&mut redis, &app.prefix, "gateway-2", 0.0, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(app.backpressure.refresh().await.unwrap().reporting, 0);
    let stats = app.stats(event).await;
    assert_eq!(
        (stats["admission"]["rate_in_force"].as_f64(), stats["admission"]["reason"].as_str()),
        (Some(100.0), Some("organizer_rate"))
    );
}
