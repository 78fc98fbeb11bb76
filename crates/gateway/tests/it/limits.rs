use reqwest::StatusCode;
use serde_json::json;
use service_kit::rate_limit::RateLimit;

use crate::helpers::spawn_app_with;

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
