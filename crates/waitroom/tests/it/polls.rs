//! What a poll costs and how long a ticket lasts: polls are limited per client address
//! (before the ticket's signature is checked) and per ticket, and a ticket expires
//! `ticket_lifetime_secs` after it was issued while every poll hands out a fresh one.

use std::time::Duration;

use reqwest::StatusCode;
use waitroom::domain::fan::FanId;
use waitroom::domain::ticket::TicketKey;
use waitroom::RateLimit;

use crate::helpers::{settings, spawn_app_with, test_config};

/// Burst of `n`, then one more a second: longer than the few polls of a test take.
const fn burst(n: u32) -> RateLimit {
    RateLimit { per_second: 1, burst: n }
}

fn ticket_of(body: &serde_json::Value) -> String {
    body["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_fan_polling_too_fast_is_refused_and_other_fans_are_not() {
    let app = spawn_app_with(|c| c.poll_limit_per_ticket = burst(3)).await;
    let event = app.new_event(settings(1.0, 100)).await;
    let alice = ticket_of(&app.join_ok(event, "alice").await);
    let bob = ticket_of(&app.join_ok(event, "bob").await);

    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.poll(event, &alice).await.status);
    }
    assert_eq!(statuses, [StatusCode::OK, StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS]);
    let refused = app.poll(event, &alice).await;
    assert_eq!(refused.code(), "rate_limited", "{}", refused.body);
    assert_eq!(refused.headers["retry-after"], "1");
    // The bucket is the fan's, not the ticket string's: a fresh ticket does not refill it.
    let fresh = ticket_of(&app.join_ok(event, "alice").await);
    assert_eq!(app.poll(event, &fresh).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(app.poll(event, &bob).await.status, StatusCode::OK);
    assert_eq!(app.leave(event, &alice).await.status, StatusCode::TOO_MANY_REQUESTS, "leaves count too");
}

#[tokio::test]
async fn a_flood_of_polls_from_one_address_is_refused_before_its_tickets_are_checked() {
    let app = spawn_app_with(|c| {
        c.poll_limit_per_address = burst(5);
        c.client_address.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let event = app.new_event(settings(1.0, 100)).await;
    let alice = ticket_of(&app.join_ok(event, "alice").await);
    let flooder = [("x-forwarded-for", "198.51.100.66")];

    let mut codes = Vec::new();
    for i in 0..7 {
        let reply = app.poll_with(event, &format!("v2.made-up-{i}.AAAA"), &flooder).await;
        codes.push(reply.code().to_owned());
    }
    assert_eq!(codes, ["malformed_ticket"; 5].into_iter().chain(["rate_limited"; 2]).collect::<Vec<_>>());
    // Now even a genuine ticket from that address waits; from another address it does not.
    assert_eq!(app.poll_with(event, &alice, &flooder).await.status, StatusCode::TOO_MANY_REQUESTS);
    let elsewhere = app.poll_with(event, &alice, &[("x-forwarded-for", "198.51.100.7")]).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.body);
}

#[tokio::test]
async fn a_ticket_expires_while_the_tickets_a_polling_fan_is_handed_do_not() {
    let app = spawn_app_with(|c| {
        c.abandon_after_secs = 1;
        c.ticket_lifetime_secs = 2;
    })
    .await;
    let event = app.new_event(settings(1.0, 100)).await;
    let first = ticket_of(&app.join_ok(event, "alice").await);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = ticket_of(&app.poll_ok(event, &first).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let expired = app.poll(event, &first).await;
    assert_eq!((expired.status, expired.code()), (StatusCode::GONE, "ticket_expired"), "{}", expired.body);
    let polled = app.poll_ok(event, &second).await;
    assert_eq!((polled["status"].as_str(), polled["position"].as_u64()), (Some("waiting"), Some(1)));
    assert_eq!(app.leave(event, &first).await.code(), "ticket_expired");

    // A ticket of the earlier format carries no issue time: it is answered as expired.
    let v1 = TicketKey::new(test_config(|_| {}).ticket_secret, Duration::from_secs(3600))
        .issue_v1(event, &FanId::parse("alice").unwrap());
    assert_eq!(app.poll(event, &v1).await.code(), "ticket_expired");
}
