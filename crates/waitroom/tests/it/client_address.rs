//! Who a joining fan is, for the per-address join limit: behind a trusted proxy, the
//! address that proxy forwards (the right-most hop it does not trust); from any other
//! peer, the peer itself, whatever the request's forwarding header says.

use reqwest::StatusCode;
use test_support::Reply;
use uuid::Uuid;
use waitroom::RateLimit;

use crate::helpers::{settings, spawn_app_with, test_config, TestApp};

/// Two joins per address, then 429 (a token comes back each second, longer than the
/// few joins of a test take).
const TWO_JOINS: RateLimit = RateLimit { per_second: 1, burst: 2 };

/// Joins as a new fan each time (so only the per-address limit can refuse), the
/// request carrying `x-forwarded-for: <forwarded>`.
async fn join_via(app: &TestApp, event: Uuid, fan: &str, forwarded: &str) -> Reply {
    app.join_with(event, Some(fan), &[("x-forwarded-for", forwarded)]).await
}

#[tokio::test]
async fn behind_a_trusted_proxy_joins_are_limited_per_forwarded_address() {
    assert_eq!(test_config(|_| {}).client_address.header, "x-forwarded-for", "the header the default reads");
    let app = spawn_app_with(|c| {
        c.join_limit_per_address = TWO_JOINS;
        c.client_address.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let event = app.new_event(settings(1.0, 100)).await;

    let mut statuses = Vec::new();
    for (i, client) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].into_iter().enumerate() {
        for attempt in 0..2 {
            statuses.push(join_via(&app, event, &format!("fan-{i}-{attempt}"), client).await.status);
        }
    }
    assert_eq!(statuses, [StatusCode::CREATED; 6], "two joins from each of three forwarded addresses");

    let third = join_via(&app, event, "fan-0-2", "198.51.100.1").await;
    assert_eq!((third.status, third.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{}", third.body);
    // What the client wrote left of the address our proxy appended picks no bucket.
    let spoofed = join_via(&app, event, "fan-1-2", "203.0.113.7, 198.51.100.2").await;
    assert_eq!((spoofed.status, spoofed.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{}", spoofed.body);
    assert_eq!(app.stats(event).await["queue_length"], 6);
}

#[tokio::test]
async fn without_a_trusted_proxy_the_forwarding_header_is_ignored() {
    assert!(test_config(|_| {}).client_address.trusted_proxies.is_empty(), "no proxy is trusted by default");
    let app = spawn_app_with(|c| c.join_limit_per_address = TWO_JOINS).await;
    let event = app.new_event(settings(1.0, 100)).await;

    let mut statuses = Vec::new();
    for (i, client) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"].into_iter().enumerate() {
        statuses.push(join_via(&app, event, &format!("fan-{i}"), client).await.status);
    }
    // Every join came from 127.0.0.1, whichever address its header named.
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS]);
    assert_eq!(app.stats(event).await["queue_length"], 2);
}
