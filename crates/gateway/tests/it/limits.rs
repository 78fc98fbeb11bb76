use std::future::Future;

use reqwest::{Method, StatusCode};
use serde_json::json;
use service_kit::rate_limit::RateLimit;
use test_support::Reply;

use crate::helpers::{spawn_app_with, Event, TestApp};

#[tokio::test]
async fn a_fan_bursting_past_the_limit_gets_429_with_retry_after_and_books_nothing_more() {
    let app = spawn_app_with(5, |c| c.limit_per_fan = RateLimit { per_second: 1, burst: 3 }).await;
    let event = app.ga_event(100).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = app.book(&event, "eager", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(reply.code(), "rate_limited");
            let retry_after: u64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry_after));
        }
        statuses.push(reply.status);
    }
    assert_eq!(&statuses[..3], [StatusCode::CREATED; 3], "within the burst every request succeeds");
    assert!(statuses[3..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_eq!(app.assert_inventory_consistent(&event).await, 3);

    let other = app.book(&event, "patient", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(other.status, StatusCode::CREATED, "another fan is not limited");
}

#[tokio::test]
async fn one_address_past_its_limit_is_refused_before_routing() {
    let app = spawn_app_with(5, |c| c.limit_per_address = RateLimit { per_second: 1, burst: 2 }).await;
    let event = app.ga_event(10).await; // the organizer's request uses one token of the bucket
    let first = app.send(reqwest::Method::GET, &event.path(""), None, None).await;
    assert_eq!(first.status, StatusCode::OK);
    let refused = app.send(reqwest::Method::GET, &event.path(""), None, None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
}

/// A request that passes the limits fast and touches no database: its path is no event
/// id, so it is answered 400 once the limits let it through.
fn cheap_request(app: &TestApp, forwarded_for: &str) -> impl std::future::Future<Output = Reply> + 'static {
    app.send_with(reqwest::Method::GET, "/v1/events/not-an-id", None, None, &[("x-forwarded-for", forwarded_for)])
}

#[tokio::test]
async fn a_forwarded_address_from_a_peer_that_is_not_a_trusted_proxy_is_ignored() {
    for trusted in [vec![], vec!["192.0.2.0/24".parse().unwrap()]] {
        let app = spawn_app_with(5, |c| {
            c.limit_per_address = RateLimit { per_second: 1, burst: 2 };
            c.client_address.trusted_proxies = trusted;
        })
        .await;
        let mut statuses = Vec::new();
        for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            statuses.push(cheap_request(&app, client).await.status);
        }
        assert_eq!(statuses, [StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST, StatusCode::TOO_MANY_REQUESTS]);
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_addresses_of_one_ipv6_64_share_a_bucket() {
    let app = spawn_app_with(5, |c| {
        c.limit_per_address = RateLimit { per_second: 1, burst: 80 };
        c.client_address.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap(), "::1/128".parse().unwrap()];
    })
    .await;
    let within = (1..=80).map(|host| cheap_request(&app, &format!("2001:db8:1:2::{host:x}")));
    let statuses: Vec<StatusCode> = futures::future::join_all(within).await.into_iter().map(|r| r.status).collect();
    assert!(statuses.iter().all(|s| *s == StatusCode::BAD_REQUEST), "{statuses:?}");

    let same_64 = cheap_request(&app, "2001:db8:1:2:ffff:ffff:ffff:ffff").await;
    assert_eq!(same_64.status, StatusCode::TOO_MANY_REQUESTS, "the 81st address of the /64");
    let other_64 = cheap_request(&app, "2001:db8:1:3::1").await;
    assert_eq!(other_64.status, StatusCode::BAD_REQUEST, "another /64 has its own bucket");
    // The proxy's own hop is skipped: the client is the right-most address it does not trust.
    let through_two_proxies = cheap_request(&app, "2001:db8:1:2::1, 127.0.0.1").await;
    assert_eq!(through_two_proxies.status, StatusCode::TOO_MANY_REQUESTS);
}

/// A gateway behind a trusted proxy on loopback, with a small replica-wide ceiling
/// (10 at once) and a per-address bucket of 5, both refilling at one a second.
async fn behind_a_proxy_with_a_small_ceiling() -> TestApp {
    spawn_app_with(5, |c| {
        c.limit_global = RateLimit { per_second: 1, burst: 10 };
        c.limit_per_address = RateLimit { per_second: 1, burst: 5 };
        c.client_address.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await
}

/// A fan's listing of their bookings with `bearer`, sent by our proxy for `address`.
fn list_bookings_from(
    app: &TestApp,
    event: &Event,
    bearer: &str,
    address: &str,
) -> impl Future<Output = Reply> + 'static {
    app.send_with(Method::GET, &event.path("/bookings"), Some(bearer), None, &[("x-forwarded-for", address)])
}

/// One address sends 40 requests at once with `bearer` (its own five pass, the rest are
/// refused as over its limit); then another address lists its bookings three times.
/// Refused requests must take nothing from the replica's ceiling, so the other address
/// is served.
async fn a_flooder_does_not_starve_another_address(flooder_bearer: impl Fn(&TestApp, &Event) -> String) {
    let app = behind_a_proxy_with_a_small_ceiling().await;
    let event = app.ga_event(10).await; // the organizer's request: one from the ceiling
    let bearer = flooder_bearer(&app, &event);
    let flood = (0..40).map(|_| list_bookings_from(&app, &event, &bearer, "198.51.100.66"));
    let flooded: Vec<StatusCode> = futures::future::join_all(flood).await.into_iter().map(|r| r.status).collect();
    let refused = flooded.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert!((34..=35).contains(&refused), "the flooder's own bucket of 5 (+1 refilled) passes: {flooded:?}");

    let innocent = app.token("innocent", &event);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = list_bookings_from(&app, &event, &innocent, "203.0.113.7").await;
        statuses.push((reply.status, reply.code().to_owned()));
    }
    assert!(statuses.iter().all(|(s, _)| *s == StatusCode::OK), "the innocent address is served: {statuses:?}");
}

#[tokio::test]
async fn a_flooder_with_a_valid_token_cannot_starve_another_address() {
    a_flooder_does_not_starve_another_address(|app, event| app.token("flooder", event)).await;
}

#[tokio::test]
async fn a_flooder_with_garbage_tokens_cannot_starve_another_address() {
    a_flooder_does_not_starve_another_address(|_, _| "garbage.not-a.token".to_owned()).await;
}

/// Bad tokens are verified only within the sender's address bucket: past it, they are
/// refused as over the limit before any signature check.
#[tokio::test]
async fn garbage_tokens_past_the_address_limit_are_refused_before_verification() {
    let app = behind_a_proxy_with_a_small_ceiling().await;
    let event = app.ga_event(10).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let garbage = "eyJhbGciOiJFZERTQSJ9.e30.c2lnbmF0dXJl";
        statuses.push(list_bookings_from(&app, &event, garbage, "198.51.100.66").await.status);
    }
    assert_eq!(&statuses[..5], [StatusCode::UNAUTHORIZED; 5], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}

/// The event details and the seat map need no token: they take from a lower bucket per
/// address on top of the address's own, which a fan's order routes do not touch.
#[tokio::test]
async fn public_reads_past_their_lower_limit_get_429_while_the_same_address_still_loads_pages_and_books() {
    let app = spawn_app_with(5, |c| {
        c.limit_per_address = RateLimit { per_second: 1, burst: 20 };
        c.limit_public_reads_per_address = RateLimit { per_second: 1, burst: 2 };
    })
    .await;
    let event = app.ga_event(10).await;
    let details = app.send(Method::GET, &event.path(""), None, None).await;
    let seats = app.send(Method::GET, &event.path("/seats"), None, None).await;
    assert_eq!((details.status, seats.status), (StatusCode::OK, StatusCode::OK));

    for path in ["", "/seats"] {
        let refused = app.send(Method::GET, &event.path(path), None, None).await;
        assert_eq!((refused.status, refused.code()), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"), "{path}");
        assert_eq!(refused.headers["retry-after"], "1", "{path}");
    }

    // The pages and their assets, served from memory, take nothing from that bucket.
    let seat_picker = format!("/e/{}/seats", event.id);
    for path in ["/", seat_picker.as_str(), "/assets/common.js", "/assets/seats.js", "/assets/app.css"] {
        let page = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
    }

    let booked = app.book(&event, "reader", json!({ "section_id": event.sections[0], "quantity": 1 })).await;
    assert_eq!(booked.status, StatusCode::CREATED, "an order route from the same address: {}", booked.body);
    let token = app.token("reader", &event);
    let listed = app.send(Method::GET, &event.path("/bookings"), Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["bookings"].as_array().map(Vec::len), Some(1), "{}", listed.body);
}
