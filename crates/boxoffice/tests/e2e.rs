//! The whole system as users run it: the `boxoffice` binary in its own process, real
//! PostgreSQL and Redis, real HTTP.

mod support;

use std::time::{Duration, Instant};

use access_token::AccessClaims;
use serde_json::{json, Value};
use support::{System, ADMIN};
use test_support::unix_now;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_goes_from_the_queue_to_a_confirmed_booking() {
    use reqwest::Method;
    let system = System::start().await;
    let (status, event) = system
        .call(
            Method::POST,
            format!("{}/v1/events", system.gateway),
            Some(ADMIN),
            Some(json!({ "name": "E2E", "sections": [{ "name": "Stalls", "kind": "reserved",
                "price": { "amount_minor": 5000, "currency": "EUR" }, "rows": [{ "label": "A", "seats": 10 }] }] })),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let (status, settings) = system
        .call(
            Method::PUT,
            format!("{}/v1/admin/events/{event_id}/waitroom", system.waitroom),
            Some(ADMIN),
            Some(json!({ "admit_rate": 20.0, "max_active": 100, "token_lifetime_secs": 300 })),
        )
        .await;
    assert_eq!(status, 200, "{settings}");

    let (status, joined) =
        system.call(Method::POST, format!("{}/v1/events/{event_id}/queue", system.waitroom), None, None).await;
    assert_eq!(status, 201, "{joined}");
    let ticket = joined["ticket"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    let token = loop {
        let (_, polled) = system
            .call(Method::GET, format!("{}/v1/events/{event_id}/queue/{ticket}", system.waitroom), None, None)
            .await;
        if let Some(token) = polled["access_token"].as_str() {
            break token.to_owned();
        }
        assert!(Instant::now() < deadline, "never admitted: {polled}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let holds = format!("{}/v1/events/{event_id}/holds", system.gateway);
    let (status, refused) = system.call(Method::POST, holds.clone(), None, Some(json!({ "seats": ["A-1"] }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("missing_token")));
    let expired = system.signer.sign(&AccessClaims::new("e2e-fan", event_id.parse().unwrap(), unix_now() - 900, 300));
    let (status, refused) =
        system.call(Method::POST, holds.clone(), Some(&expired), Some(json!({ "seats": ["A-1"] }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("token_expired")));

    let (status, hold) =
        system.call(Method::POST, holds.clone(), Some(&token), Some(json!({ "seats": ["A-1", "A-2"] }))).await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["id"].as_str().unwrap();
    let (status, refused) = system.call(Method::POST, format!("{holds}/{hold_id}/confirm"), Some(&token), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (402, Some("payment_required")));

    // Pay on the provider's page, as the fan's browser would; its webhook books the seats.
    let (status, checkout) = system.call(Method::POST, format!("{holds}/{hold_id}/checkout"), Some(&token), None).await;
    assert_eq!(status, 200, "{checkout}");
    let page = checkout["payment_page_url"].as_str().unwrap();
    assert!(page.starts_with(&format!("{}/pay/", system.payments)), "{page}");
    let paid: Value = system
        .http
        .post(page.split('?').next().unwrap())
        .header("Accept", "application/json")
        .form(&[("client_secret", checkout["client_secret"].as_str().unwrap()), ("card_number", "4242424242424242")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let booking_id = loop {
        let (_, mine) = system
            .call(Method::GET, format!("{}/v1/events/{event_id}/bookings", system.gateway), Some(&token), None)
            .await;
        if let Some(booking) = mine["bookings"].as_array().and_then(|b| b.first()) {
            assert_eq!(booking["seats"].as_array().unwrap().len(), 2);
            assert_eq!(booking["payment_id"], checkout["payment_id"]);
            break booking["id"].clone();
        }
        assert!(Instant::now() < deadline, "the webhook never booked the seats");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, payment) = system.call(Method::GET, format!("{holds}/{hold_id}/payment"), Some(&token), None).await;
    assert_eq!(status, 200, "{payment}");
    assert_eq!((payment["status"].as_str(), payment["booking_id"].clone()), (Some("succeeded"), booking_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_sigterm_complete_and_the_process_exits_cleanly() {
    use reqwest::Method;
    let mut system = System::start().await;
    // Creating an event of 100,000 seats takes a second or more: long enough to be in
    // flight when the signal arrives.
    let create = system.call(
        Method::POST,
        format!("{}/v1/events", system.gateway),
        Some(ADMIN),
        Some(json!({ "name": "Big", "sections": [{ "name": "Floor", "kind": "general_admission",
            "price": { "amount_minor": 100, "currency": "EUR" }, "capacity": 100000 }] })),
    );
    let terminate = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        system.terminate();
    };
    let ((status, event), ()) = tokio::join!(create, terminate);
    assert_eq!(status, 201, "the in-flight request completed: {event}");
    assert_eq!(event["sections"][0]["remaining"], 100_000, "nothing half-written");

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = system.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the process did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    assert!(system.http.get(format!("{}/healthz", system.gateway)).send().await.is_err(), "no longer accepting");
}
