//! Checkout against the payments sandbox, a real HTTP server on a free port: pay →
//! webhook → booking, exactly once, and late payments that never lose money or seats.

use std::time::Duration;

use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, Event, TestApp, ADMIN_KEY};

const SECRET_KEY: &str = "sk_test_checkout_tests";
const WEBHOOK_SECRET: &str = "whsec_checkout_tests";
const OLD_WEBHOOK_SECRET: &str = "whsec_checkout_tests_before_rotation";

const SUCCEEDS: &str = "4242 4242 4242 4242";
const DECLINED: &str = "4000 0000 0000 0002";

struct Checkout {
    app: TestApp,
    sandbox: Sandbox,
}

/// The gateway paying through a sandbox whose webhooks it receives (with `faults`).
async fn spawn(faults: Faults) -> Checkout {
    spawn_checking_every(faults, 1).await
}

/// As [`spawn`], asking the provider about an attempt for fans at most once per
/// `provider_check_interval_ms`.
async fn spawn_checking_every(faults: Faults, provider_check_interval_ms: u64) -> Checkout {
    let mut config = SandboxConfig::new(SECRET_KEY);
    config.faults = faults;
    config.retry.base = Duration::from_millis(20);
    config.retry.max_delay = Duration::from_millis(200);
    let sandbox = payments_sandbox::spawn("127.0.0.1:0".parse().unwrap(), config).await.expect("sandbox");
    let api_base = sandbox.url();
    let app = spawn_app_with(10, move |c| {
        c.payments.payment_page_url = format!("{api_base}/pay/{{intent_id}}?client_secret={{client_secret}}");
        c.payments.api_base = api_base;
        c.payments.secret_key = SECRET_KEY.to_owned().into();
        c.payments.webhook_secrets = vec![OLD_WEBHOOK_SECRET.to_owned().into(), WEBHOOK_SECRET.to_owned().into()];
        c.payments.refund_retry_first_ms = 10;
        c.event_rules_max_age_ms = 200;
        c.payments.refund_retry_max_ms = 100;
        c.payments.provider_check_interval_ms = provider_check_interval_ms;
    })
    .await;
    sandbox.set_webhook_endpoint(app.url("/v1/payments/webhooks"), WEBHOOK_SECRET);
    Checkout { app, sandbox }
}

impl Checkout {
    async fn hold(&self, event: &Event, fan: &str, seats: &[&str]) -> String {
        let reply = self.app.hold(event, fan, json!({ "seats": seats })).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    async fn checkout(&self, event: &Event, fan: &str, hold: &str) -> test_support::Reply {
        let token = self.app.token(fan, event);
        self.app.send(Method::POST, &event.path(&format!("/holds/{hold}/checkout")), Some(&token), None).await
    }

    async fn payment(&self, event: &Event, fan: &str, hold: &str) -> test_support::Reply {
        let token = self.app.token(fan, event);
        self.app.send(Method::GET, &event.path(&format!("/holds/{hold}/payment")), Some(&token), None).await
    }

    /// Pays on the sandbox's page as the fan's browser would.
    async fn pay(&self, checkout: &Value, card: &str) -> Value {
        let intent = checkout["intent_id"].as_str().unwrap();
        let secret = checkout["client_secret"].as_str().unwrap();
        let reply = reqwest::Client::new()
            .post(format!("{}/pay/{intent}", self.sandbox.url()))
            .header("Accept", "application/json")
            .form(&[("client_secret", secret), ("card_number", card)])
            .send()
            .await
            .unwrap();
        reply.json().await.unwrap()
    }

    /// Waits (bounded) until the hold's payment reads `status` in the database.
    async fn wait_for_payment(
        &self,
        hold: &str,
        done: impl Fn(&str, Option<&str>) -> bool,
    ) -> (String, Option<String>) {
        let hold: uuid::Uuid = hold.parse().unwrap();
        for _ in 0..500 {
            let row: Option<(String, Option<String>)> = sqlx::query_as(
                "SELECT status::text, resolution::text FROM payments WHERE hold_id = $1
                 ORDER BY succeeded_at IS NOT NULL DESC, id DESC LIMIT 1",
            )
            .bind(hold)
            .fetch_optional(&self.app.pool)
            .await
            .unwrap();
            if let Some((status, resolution)) = &row {
                if done(status, resolution.as_deref()) {
                    return row.unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the payment of hold {hold} never got there");
    }

    async fn count(&self, sql: &str, hold: &str) -> i64 {
        sqlx::query_scalar(sql).bind(hold.parse::<uuid::Uuid>().unwrap()).fetch_one(&self.app.pool).await.unwrap()
    }
}

#[tokio::test]
async fn a_paid_hold_becomes_a_booking_through_the_webhook_with_its_outbox_messages() {
    let c = spawn(Faults::default()).await;
    let event = c.app.numbered_event_priced(4, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1", "2"]).await;

    let checkout = c.checkout(&event, "fan-1", &hold).await;
    assert_eq!(checkout.status, StatusCode::OK, "{}", checkout.body);
    assert_eq!(checkout.body["status"], "pending");
    assert_eq!(checkout.body["amount"], json!({ "amount_minor": 5000, "currency": "EUR" }));
    let page = checkout.body["payment_page_url"].as_str().unwrap();
    assert!(page.starts_with(&format!("{}/pay/pi_", c.sandbox.url())), "{page}");

    let paid = c.pay(&checkout.body, SUCCEEDS).await;
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let (status, resolution) = c.wait_for_payment(&hold, |_, r| r.is_some()).await;
    assert_eq!((status.as_str(), resolution.as_deref()), ("succeeded", Some("booked")));

    let shown = c.payment(&event, "fan-1", &hold).await;
    assert_eq!(shown.body["hold_status"], "confirmed");
    let booking = shown.body["booking_id"].as_str().unwrap().to_owned();
    let token = c.app.token("fan-1", &event);
    let reply = c.app.send(Method::GET, &event.path(&format!("/bookings/{booking}")), Some(&token), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "confirmed");
    assert_eq!(reply.body["seats"].as_array().unwrap().len(), 2);
    assert_eq!(
        c.count("SELECT count(*) FROM bookings b JOIN payments p ON p.id = b.payment_id WHERE b.hold_id = $1", &hold)
            .await,
        1
    );
    let topics: Vec<String> = sqlx::query_scalar("SELECT topic FROM outbox_messages WHERE event_id = $1 ORDER BY id")
        .bind(event.id)
        .fetch_all(&c.app.pool)
        .await
        .unwrap();
    assert_eq!(topics, ["payment.succeeded", "booking.confirmed"]);
    let (data, paid_by): (Value, Uuid) = sqlx::query_as(
        "SELECT m.payload->'data', b.payment_id FROM outbox_messages m JOIN bookings b ON b.hold_id = $2
         WHERE m.event_id = $1 AND m.topic = 'booking.confirmed'",
    )
    .bind(event.id)
    .bind(hold.parse::<Uuid>().unwrap())
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(
        (&data["booking_id"], &data["hold_id"], &data["payment_id"], &data["total"]),
        (&json!(booking), &json!(hold), &json!(paid_by), &json!({ "amount_minor": 5000, "currency": "EUR" }))
    );
    // The webhook's transaction wrote a ticket per seat.
    let tickets = "SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id WHERE b.hold_id = $1";
    assert_eq!(c.count(tickets, &hold).await, 2);
    c.app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn the_same_webhook_delivered_ten_times_at_once_books_once() {
    let c = spawn(Faults { webhook_duplicates: 10, ..Faults::default() }).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;
    let checkout = c.checkout(&event, "fan-1", &hold).await;
    c.pay(&checkout.body, SUCCEEDS).await;
    c.wait_for_payment(&hold, |_, r| r.is_some()).await;

    // Replay the signed event ten more times at once, as a provider retrying would.
    let succeeded = c
        .sandbox
        .wait_for_events(Duration::from_secs(10), |events| events.iter().any(|e| e.kind == "payment_intent.succeeded"))
        .await
        .expect("the sandbox made the event");
    let body = succeeded.iter().find(|e| e.kind == "payment_intent.succeeded").unwrap().body.clone().into_bytes();
    let replies = futures::future::join_all((0..10).map(|_| {
        let signature = stripe_client::sign(&body, WEBHOOK_SECRET, chrono::Utc::now().timestamp());
        c.app
            .http
            .post(c.app.url("/v1/payments/webhooks"))
            .header("Stripe-Signature", signature)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
    }))
    .await;
    for reply in replies {
        let reply = reply.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let answer: Value = reply.json().await.unwrap();
        assert_eq!(answer["outcome"], "already_applied");
    }
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &hold).await, 1);
    assert_eq!(
        c.count("SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.hold_id = $1", &hold)
            .await,
        0
    );
    c.app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn webhooks_with_bad_stale_future_or_tampered_signatures_are_refused_and_change_nothing() {
    let c = spawn(Faults { webhook_drop_probability: 1.0, ..Faults::default() }).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;
    let checkout = c.checkout(&event, "fan-1", &hold).await;
    c.pay(&checkout.body, SUCCEEDS).await;
    let events = c
        .sandbox
        .wait_for_events(Duration::from_secs(10), |events| events.iter().any(|e| e.kind == "payment_intent.succeeded"))
        .await
        .unwrap();
    let body = events.iter().find(|e| e.kind == "payment_intent.succeeded").unwrap().body.clone().into_bytes();
    let event_json: Value = serde_json::from_slice(&body).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut tampered = event_json.clone();
    tampered["data"]["object"]["amount"] = json!(1);
    let tampered = serde_json::to_vec(&tampered).unwrap();

    let cases: Vec<(&str, Option<String>, &[u8])> = vec![
        ("missing", None, &body),
        ("wrong secret", Some(stripe_client::sign(&body, "whsec_someone_else", now)), &body),
        ("stale", Some(stripe_client::sign(&body, WEBHOOK_SECRET, now - 301)), &body),
        ("future", Some(stripe_client::sign(&body, WEBHOOK_SECRET, now + 330)), &body),
        ("tampered", Some(stripe_client::sign(&body, WEBHOOK_SECRET, now)), &tampered),
        ("malformed", Some("t=abc,v1=zz".into()), &body),
    ];
    for (case, signature, payload) in cases {
        let mut request = c.app.http.post(c.app.url("/v1/payments/webhooks")).body(payload.to_vec());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{case}");
        let answer: Value = reply.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "invalid_signature", "{case}");
    }
    assert_eq!(c.count("SELECT count(*) FROM payment_provider_events WHERE $1::uuid IS NOT NULL", &hold).await, 0);
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &hold).await, 0);

    // The secret from before a rotation still verifies.
    let reply = c
        .app
        .http
        .post(c.app.url("/v1/payments/webhooks"))
        .header("Stripe-Signature", stripe_client::sign(&body, OLD_WEBHOOK_SECRET, now))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &hold).await, 1);
}

/// `payment_intent.created` (sent to an endpoint subscribed to every type) changes no
/// payment: answered 200 `ignored` without a transaction, so nothing is recorded.
#[tokio::test]
async fn an_intent_event_that_changes_no_payment_is_ignored_without_being_recorded() {
    let c = spawn(Faults { webhook_drop_probability: 1.0, ..Faults::default() }).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;
    c.checkout(&event, "fan-1", &hold).await;
    let events = c
        .sandbox
        .wait_for_events(Duration::from_secs(10), |events| events.iter().any(|e| e.kind == "payment_intent.created"))
        .await
        .unwrap();
    let body = events.iter().find(|e| e.kind == "payment_intent.created").unwrap().body.clone().into_bytes();
    let signature = stripe_client::sign(&body, WEBHOOK_SECRET, chrono::Utc::now().timestamp());

    let reply = c
        .app
        .http
        .post(c.app.url("/v1/payments/webhooks"))
        .header("Stripe-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.json::<Value>().await.unwrap(), json!({ "received": true, "outcome": "ignored" }));
    assert_eq!(c.count("SELECT count(*) FROM payment_provider_events WHERE $1::uuid IS NOT NULL", &hold).await, 0);
    assert_eq!(c.wait_for_payment(&hold, |status, _| status == "pending").await, ("pending".to_owned(), None));
}

#[tokio::test]
async fn a_fan_back_before_the_webhook_sees_the_booking_and_a_dropped_webhook_loses_nothing() {
    let c = spawn(Faults { webhook_drop_probability: 1.0, ..Faults::default() }).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["2"]).await;
    let checkout = c.checkout(&event, "fan-1", &hold).await;

    // Until paid, confirming is refused: only the payment books a hold being checked out.
    let token = c.app.token("fan-1", &event);
    let refused = c.app.send(Method::POST, &event.path(&format!("/holds/{hold}/confirm")), Some(&token), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::PAYMENT_REQUIRED, "payment_required"));

    c.pay(&checkout.body, SUCCEEDS).await;
    let confirmed = c.app.send(Method::POST, &event.path(&format!("/holds/{hold}/confirm")), Some(&token), None).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(confirmed.body["status"], "confirmed");
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1 AND payment_id IS NOT NULL", &hold).await, 1);
}

/// A fan refreshing the payment page cannot turn into a flood of provider API calls:
/// one retrieval per attempt per interval, and one again once it has passed.
#[tokio::test]
async fn fans_asking_about_a_pending_payment_ask_the_provider_once_per_interval() {
    let c = spawn_checking_every(Faults::default(), 400).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;
    c.checkout(&event, "fan-1", &hold).await;

    for _ in 0..10 {
        let payment = c.payment(&event, "fan-1", &hold).await;
        assert_eq!((payment.status, payment.body["status"].as_str()), (StatusCode::OK, Some("pending")));
    }
    assert_eq!(c.sandbox.retrievals("payment_intent"), 1);

    tokio::time::sleep(Duration::from_millis(450)).await;
    c.payment(&event, "fan-1", &hold).await;
    c.payment(&event, "fan-1", &hold).await;
    assert_eq!(c.sandbox.retrievals("payment_intent"), 2);
}

#[tokio::test]
async fn a_decline_then_a_new_attempt_and_two_checkouts_at_once_start_one_attempt() {
    let c = spawn(Faults::default()).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;

    let (first, second) = tokio::join!(c.checkout(&event, "fan-1", &hold), c.checkout(&event, "fan-1", &hold));
    assert_eq!((first.status, second.status), (StatusCode::OK, StatusCode::OK), "{} {}", first.body, second.body);
    assert_eq!(first.body["payment_id"], second.body["payment_id"]);
    assert_eq!(first.body["intent_id"], second.body["intent_id"]);

    let declined = c.pay(&first.body, DECLINED).await;
    assert_eq!(declined["error"]["code"], "card_declined", "{declined}");
    assert_eq!(declined["error"]["payment_intent"]["status"], "requires_payment_method", "{declined}");
    c.wait_for_payment(&hold, |s, _| s == "failed").await;

    let retry = c.checkout(&event, "fan-1", &hold).await;
    assert_eq!(retry.status, StatusCode::OK);
    assert_ne!(retry.body["payment_id"], first.body["payment_id"], "a new attempt, with a key of its own");
    assert_ne!(retry.body["intent_id"], first.body["intent_id"]);
    c.pay(&retry.body, SUCCEEDS).await;
    c.wait_for_payment(&hold, |_, r| r == Some("booked")).await;
    assert_eq!(c.count("SELECT count(*) FROM payments WHERE hold_id = $1", &hold).await, 2);
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &hold).await, 1);
}

/// The intent is asked for before the attempt is written: a provider that fails writes
/// nothing (no attempt, no extension), and the next checkout starts the hold's attempt.
#[tokio::test]
async fn a_checkout_the_provider_fails_writes_nothing_and_the_next_one_starts_the_attempt() {
    let c = spawn(Faults::default()).await;
    let event = c.app.numbered_event_priced(1, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;
    c.sandbox.set_faults(Faults { api_fail_next: 1, ..Faults::default() }).unwrap();

    let failed = c.checkout(&event, "fan-1", &hold).await;
    assert_eq!(
        (failed.status, &failed.body["error"]["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("payment_provider_unavailable")),
        "{}",
        failed.body
    );
    assert_eq!(c.count("SELECT count(*) FROM payments WHERE hold_id = $1", &hold).await, 0);
    let extended = "SELECT count(*) FROM holds WHERE id = $1 AND checkout_started_at IS NOT NULL";
    assert_eq!(c.count(extended, &hold).await, 0);

    let started = c.checkout(&event, "fan-1", &hold).await;
    assert_eq!((started.status, &started.body["status"]), (StatusCode::OK, &json!("pending")), "{}", started.body);
    assert_eq!(c.count("SELECT count(*) FROM payments WHERE hold_id = $1", &hold).await, 1);
    assert_eq!(c.count(extended, &hold).await, 1);
    c.pay(&started.body, SUCCEEDS).await;
    c.wait_for_payment(&hold, |_, r| r == Some("booked")).await;
}

#[tokio::test]
async fn a_late_payment_rebooks_free_seats_and_refunds_once_when_they_are_gone() {
    let c = spawn(Faults::default()).await;
    let event = c.app.numbered_event_priced(3, 2500).await;

    // Seat still free after the hold lapsed: booked anyway.
    let free_hold = c.hold(&event, "fan-1", &["1"]).await;
    let free_checkout = c.checkout(&event, "fan-1", &free_hold).await;
    c.app.lapse_holds(&event).await;
    c.pay(&free_checkout.body, SUCCEEDS).await;
    c.wait_for_payment(&free_hold, |_, r| r == Some("late_booked")).await;

    // Seat sold to someone else meanwhile: refunded in full, once, and flagged.
    let lost_hold = c.hold(&event, "fan-2", &["2"]).await;
    let lost_checkout = c.checkout(&event, "fan-2", &lost_hold).await;
    c.app.lapse_holds(&event).await;
    let other = c.app.hold(&event, "fan-3", json!({ "seats": ["2"] })).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    c.pay(&lost_checkout.body, SUCCEEDS).await;
    c.wait_for_payment(&lost_hold, |s, r| s == "refunded" && r == Some("refunded")).await;

    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &lost_hold).await, 0);
    assert_eq!(
        c.count(
            "SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id
             WHERE p.hold_id = $1 AND r.status = 'succeeded' AND r.amount_minor = p.amount_minor",
            &lost_hold
        )
        .await,
        1
    );
    let flagged = c.needing_attention(&event).await;
    assert_eq!(flagged.len(), 1);
    assert_eq!(flagged[0]["hold_id"], lost_hold.as_str());
    assert_eq!((&flagged[0]["reason"], &flagged[0]["refund_failure"]), (&json!("late_payment_refunded"), &Value::Null));
    assert_eq!(flagged[0]["refunded"]["amount_minor"], 2500);
    let seat_2_holder: String = sqlx::query_scalar(
        "SELECT h.fan_id FROM seats s JOIN holds h ON h.id = s.hold_id WHERE s.event_id = $1 AND s.label = '2'",
    )
    .bind(event.id)
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(seat_2_holder, "fan-3", "the late payer never takes a seat someone else owns");
    c.app.assert_inventory_consistent(&event).await;
}

/// A lapsed hold's places stop counting towards the fan's `max_per_fan`; a payment that
/// arrives for it after the fan took others is refunded, not booked past the limit (and
/// the webhook is answered, not failed forever).
#[tokio::test]
async fn a_late_payment_that_would_pass_the_fans_limit_is_refunded_and_a_live_hold_is_booked() {
    let c = spawn(Faults::default()).await;
    let event = c.app.numbered_event_priced(4, 2500).await;
    let limited = c
        .app
        .send(Method::PATCH, &format!("/v1/events/{}", event.id), Some(ADMIN_KEY), Some(json!({ "max_per_fan": 1 })))
        .await;
    assert_eq!(limited.status, StatusCode::OK, "{}", limited.body);

    let lapsed = c.hold(&event, "fan-1", &["1"]).await;
    let lapsed_checkout = c.checkout(&event, "fan-1", &lapsed).await;
    c.app.lapse_holds(&event).await;
    let live = c.hold(&event, "fan-1", &["2"]).await;
    let live_checkout = c.checkout(&event, "fan-1", &live).await;
    c.pay(&lapsed_checkout.body, SUCCEEDS).await;
    c.wait_for_payment(&lapsed, |s, r| s == "refunded" && r == Some("refunded")).await;
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &lapsed).await, 0);

    c.pay(&live_checkout.body, SUCCEEDS).await;
    c.wait_for_payment(&live, |_, r| r == Some("booked")).await;
    let (booked,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM bookings WHERE event_id = $1 AND fan_id = 'fan-1' AND status = 'confirmed'",
    )
    .bind(event.id)
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(booked, 1);
    c.app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn paid_places_are_never_booked_without_a_payment() {
    let c = spawn(Faults::default()).await;
    let seated = c.app.numbered_event_priced(3, 2500).await;
    let standing = c.app.ga_event_priced(3, 4000).await;

    let chosen = c.app.book(&seated, "fan-1", json!({ "seats": ["1"] })).await;
    assert_eq!((chosen.status, chosen.code()), (StatusCode::PAYMENT_REQUIRED, "payment_required"), "{}", chosen.body);
    let any = c.app.book(&standing, "fan-1", json!({ "section_id": standing.sections[0], "quantity": 2 })).await;
    assert_eq!((any.status, any.code()), (StatusCode::PAYMENT_REQUIRED, "payment_required"), "{}", any.body);
    let hold = c.hold(&seated, "fan-1", &["2"]).await;
    let token = c.app.token("fan-1", &seated);
    let confirm = c.app.send(Method::POST, &seated.path(&format!("/holds/{hold}/confirm")), Some(&token), None).await;
    assert_eq!((confirm.status, confirm.code()), (StatusCode::PAYMENT_REQUIRED, "payment_required"));

    // Nothing was sold, and the refused seats are free for the next fan.
    for event in [&seated, &standing] {
        let bookings: i64 = sqlx::query_scalar("SELECT count(*) FROM bookings WHERE event_id = $1")
            .bind(event.id)
            .fetch_one(&c.app.pool)
            .await
            .unwrap();
        assert_eq!(bookings, 0);
    }
    assert_eq!(c.app.details(&seated).await["sections"][0]["remaining"], 2);
    assert_eq!(c.app.details(&standing).await["sections"][0]["remaining"], 3);
    // The refused booking's locks last until its rollback reaches the database, a moment
    // after its answer: `seat_contended` says retry, as a client would.
    let mut next = c.app.hold(&seated, "fan-2", json!({ "seats": ["1"] })).await;
    for _ in 0..50 {
        if next.code() != "seat_contended" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        next = c.app.hold(&seated, "fan-2", json!({ "seats": ["1"] })).await;
    }
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
}

impl Checkout {
    /// An event of `seats` seats at 2500, starting `starts_in_minutes` from now (None:
    /// no start date), refunding 100 % until 24 h before and 50 % until 4 h before.
    async fn event_starting(&self, starts_in_minutes: Option<i64>, seats: u32) -> Event {
        let starts_at = starts_in_minutes.map(|m| (chrono::Utc::now() + chrono::Duration::minutes(m)).to_rfc3339());
        let body = self
            .app
            .create_event(json!({
                "name": "Refundable", "starts_at": starts_at,
                "refund_policy": [{ "before_hours": 24, "refund_percent": 100 }, { "before_hours": 4, "refund_percent": 50 }],
                "sections": [{ "name": "Hall", "kind": "reserved", "price": { "amount_minor": 2500, "currency": "EUR" }, "seats": seats }]
            }))
            .await;
        Event::from_details(&body)
    }

    /// Holds `seat`, pays for it and waits for the booking; its id.
    async fn paid_booking(&self, event: &Event, fan: &str, seat: &str) -> String {
        let hold = self.hold(event, fan, &[seat]).await;
        let checkout = self.checkout(event, fan, &hold).await;
        assert_eq!(checkout.status, StatusCode::OK, "{}", checkout.body);
        self.pay(&checkout.body, SUCCEEDS).await;
        for _ in 0..500 {
            let shown = self.payment(event, fan, &hold).await;
            if let Some(booking) = shown.body["booking_id"].as_str() {
                return booking.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("hold {hold} was paid but never booked");
    }

    async fn cancel(&self, event: &Event, fan: &str, booking: &str) -> test_support::Reply {
        let token = self.app.token(fan, event);
        self.app.send(Method::POST, &event.path(&format!("/bookings/{booking}/cancel")), Some(&token), None).await
    }

    /// The sale with this test's provider, as the scheduler runs it (reconciliation).
    fn scheduler_sales(&self) -> sales::Sales {
        let provider = stripe_client::StripeClient::new(stripe_client::StripeConfig {
            base_url: self.sandbox.url(),
            secret_key: SECRET_KEY.to_owned().into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let settings = sales::Settings {
            best_available_attempts: 3,
            create_event_timeout: Duration::from_secs(20),
            event_rules_max_age: Duration::from_secs(1),
            checkout_extension: Duration::from_secs(600),
            hold_max_lifetime: Duration::from_secs(1800),
            refund_retry_first: Duration::from_millis(10),
            refund_retry_max: Duration::from_millis(100),
            provider_check_interval: Duration::from_millis(1),
            webhook_secret_grace: Duration::from_secs(86_400),
            webhook_private_urls_allowed: true,
        };
        sales::Sales::new(self.app.db.clone(), settings, std::sync::Arc::new(provider))
    }
}

#[tokio::test]
async fn cancelling_refunds_by_the_policy_tier_in_force_by_the_database_clock() {
    let c = spawn(Faults::default()).await;
    // (minutes before the start, refunded of 2500)
    let cases = [
        (Some(24 * 60 + 2), 2500),
        (Some(24 * 60 - 2), 1250),
        (Some(4 * 60 + 2), 1250),
        (Some(4 * 60 - 2), 0),
        (Some(-60), 0),
        (None, 2500),
    ];
    for (starts_in, refunded) in cases {
        let event = c.event_starting(starts_in, 2).await;
        let booking = c.paid_booking(&event, "fan-1", "1").await;
        let cancelled = c.cancel(&event, "fan-1", &booking).await;
        assert_eq!(cancelled.status, StatusCode::OK, "{starts_in:?}: {}", cancelled.body);
        assert_eq!(cancelled.body["status"], "cancelled");
        if refunded == 0 {
            assert_eq!(cancelled.body["refund"], Value::Null, "{starts_in:?}");
        } else {
            assert_eq!(cancelled.body["refund"]["amount"]["amount_minor"], refunded, "{starts_in:?}");
            assert_eq!(cancelled.body["refund"]["status"], "succeeded", "{starts_in:?}");
        }
        // The seat is on sale again at once, whatever was refunded.
        let next = c.app.hold(&event, "fan-2", json!({ "seats": ["1"] })).await;
        assert_eq!(next.status, StatusCode::CREATED, "{starts_in:?}: {}", next.body);
    }
}

#[tokio::test]
async fn without_a_policy_only_the_organizer_cancels_and_refunds_in_full_and_a_policy_set_later_applies() {
    let c = spawn(Faults::default()).await;
    let event = c.app.numbered_event_priced(3, 2500).await;
    c.app
        .send(
            Method::PATCH,
            &format!("/v1/events/{}", event.id),
            Some(ADMIN_KEY),
            Some(json!({ "refund_policy": null })),
        )
        .await;
    let booking = c.paid_booking(&event, "fan-1", "1").await;
    let refused = c.cancel(&event, "fan-1", &booking).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "cancellation_not_allowed"));

    let by_organizer = c
        .app
        .send(Method::POST, &format!("/v1/admin/events/{}/bookings/{booking}/cancel", event.id), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(by_organizer.status, StatusCode::OK, "{}", by_organizer.body);
    assert_eq!(by_organizer.body["refund"]["amount"]["amount_minor"], 2500);

    // A policy set after creation applies to the next cancellation.
    let changed = c
        .app
        .send(
            Method::PATCH,
            &format!("/v1/events/{}", event.id),
            Some(ADMIN_KEY),
            Some(json!({ "refund_policy": [{ "before_hours": 0, "refund_percent": 40 }] })),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.body["refund_policy"], json!([{ "before_hours": 0, "refund_percent": 40 }]));
    let second = c.paid_booking(&event, "fan-2", "2").await;
    let cancelled = c.cancel(&event, "fan-2", &second).await;
    assert_eq!(cancelled.body["refund"]["amount"]["amount_minor"], 1000, "{}", cancelled.body);
    let invalid = c
        .app
        .send(
            Method::PATCH,
            &format!("/v1/events/{}", event.id),
            Some(ADMIN_KEY),
            Some(json!({ "refund_policy": [{ "before_hours": 0, "refund_percent": 140 }] })),
        )
        .await;
    assert_eq!((invalid.status, invalid.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_refund_policy"));
}

#[tokio::test]
async fn a_refund_the_provider_failed_is_retried_until_it_succeeds_and_never_twice() {
    let c = spawn(Faults::default()).await;
    let event = c.event_starting(None, 2).await;
    let booking = c.paid_booking(&event, "fan-1", "1").await;
    c.sandbox.set_faults(Faults { api_fail_next: 1, ..Faults::default() }).unwrap();
    let cancelled = c.cancel(&event, "fan-1", &booking).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["refund"]["status"], "pending", "the provider failed the first try");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM refunds WHERE booking_id = $1")
        .bind(booking.parse::<uuid::Uuid>().unwrap())
        .fetch_one(&c.app.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1);

    tokio::time::sleep(Duration::from_millis(50)).await;
    let sales = c.scheduler_sales();
    let done = sales.reconcile(Duration::from_secs(300), 100).await.unwrap();
    assert_eq!(done.refunds_retried, 1);
    let again = sales.reconcile(Duration::from_secs(300), 100).await.unwrap();
    assert_eq!(again.refunds_retried, 0);
    let token = c.app.token("fan-1", &event);
    let shown = c.app.send(Method::GET, &event.path(&format!("/bookings/{booking}")), Some(&token), None).await;
    assert_eq!(shown.body["refund"]["status"], "succeeded", "{}", shown.body);
    let refunds_at_provider = c.sandbox.events().iter().filter(|e| e.kind == "refund.created").count();
    assert_eq!(refunds_at_provider, 1);
}

impl Checkout {
    /// What the gateway knows of `booking`'s one refund: its status and how many
    /// `payment.refunded` messages were written for it.
    async fn refund_of(&self, booking: &str) -> (String, i64) {
        sqlx::query_as(
            "SELECT r.status::text,
                    (SELECT count(*) FROM outbox_messages m
                     WHERE m.topic = 'payment.refunded' AND m.payload->'data'->>'refund_id' = r.id::text)
             FROM refunds r WHERE r.booking_id = $1",
        )
        .bind(booking.parse::<Uuid>().unwrap())
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    /// The organizer's list of payments needing attention for `event`.
    async fn needing_attention(&self, event: &Event) -> Vec<Value> {
        let path = format!("/v1/admin/payments?state=needs_attention&event_id={}", event.id);
        let reply = self.app.send(Method::GET, &path, Some(ADMIN_KEY), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body.as_array().expect("a list").clone()
    }

    /// The refund of `booking` once its status is `status` (waiting up to 5 s).
    async fn wait_for_refund(&self, booking: &str, status: &str) -> (String, i64) {
        let mut seen = self.refund_of(booking).await;
        for _ in 0..250 {
            if seen.0 == status {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen = self.refund_of(booking).await;
        }
        seen
    }

    fn sandbox_events(&self, kind: &str) -> usize {
        self.sandbox.events().iter().filter(|e| e.kind == kind).count()
    }
}

#[tokio::test]
async fn a_refund_that_settles_later_is_applied_once_from_its_refund_updated_webhook() {
    // Every webhook delivered twice: the settlement must still be applied once.
    let c = spawn(Faults { refund_settle_ms: 150, webhook_duplicates: 1, ..Faults::default() }).await;
    let event = c.event_starting(None, 2).await;
    let booking = c.paid_booking(&event, "fan-1", "1").await;

    let cancelled = c.cancel(&event, "fan-1", &booking).await;

    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["refund"]["status"], "pending", "the provider has not settled it yet");
    assert_eq!(c.refund_of(&booking).await, ("pending".to_owned(), 0));
    let seen = c.wait_for_refund(&booking, "succeeded").await;
    assert_eq!(seen, ("succeeded".to_owned(), 1), "settled by refund.updated, told once");
    assert_eq!((c.sandbox_events("refund.created"), c.sandbox_events("refund.updated")), (1, 1));
    let payment: String = sqlx::query_scalar(
        "SELECT p.status::text FROM payments p JOIN bookings b ON b.payment_id = p.id WHERE b.id = $1",
    )
    .bind(booking.parse::<Uuid>().unwrap())
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!(payment, "refunded");
    // Webhooks still arriving (the duplicates) change nothing more.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.refund_of(&booking).await, ("succeeded".to_owned(), 1));
}

#[tokio::test]
async fn a_refund_the_provider_fails_is_flagged_for_the_organizer_told_once_and_never_tried_again() {
    // Every webhook delivered twice: the failure must still be applied once.
    let c = spawn(Faults::default()).await;
    let event = c.event_starting(None, 2).await;
    let booking = c.paid_booking(&event, "fan-1", "1").await;
    let failing =
        Faults { refund_settle_ms: 100, refund_failure_probability: 1.0, webhook_duplicates: 1, ..Faults::default() };
    c.sandbox.set_faults(failing).unwrap();

    let cancelled = c.cancel(&event, "fan-1", &booking).await;

    assert_eq!((cancelled.status, &cancelled.body["refund"]["status"]), (StatusCode::OK, &json!("pending")));
    let failed = c.wait_for_refund(&booking, "failed").await;
    assert_eq!(failed, ("failed".to_owned(), 0), "failed, and no payment.refunded");
    let told = "SELECT count(*) FROM outbox_messages WHERE topic = 'refund.failed' AND payload->'data'->>'booking_id' = $1::text";
    assert_eq!(c.count(told, &booking).await, 1);
    let (payment_status, attention): (String, bool) = sqlx::query_as(
        "SELECT p.status::text, p.needs_attention FROM payments p JOIN bookings b ON b.payment_id = p.id WHERE b.id = $1",
    )
    .bind(booking.parse::<Uuid>().unwrap())
    .fetch_one(&c.app.pool)
    .await
    .unwrap();
    assert_eq!((payment_status.as_str(), attention), ("succeeded", true), "the money is still with the organizer");
    let flagged = c.needing_attention(&event).await;
    assert_eq!(flagged.len(), 1, "{flagged:?}");
    assert_eq!(
        (&flagged[0]["reason"], &flagged[0]["refund_failure"]),
        (&json!("refund_failed"), &json!("failed: expired_or_canceled_card"))
    );
    let shown = c
        .app
        .send(
            Method::GET,
            &format!("/v1/events/{}/bookings/{booking}", event.id),
            Some(&c.app.token("fan-1", &event)),
            None,
        )
        .await;
    assert_eq!(shown.body["refund"]["status"], "failed", "{}", shown.body);

    // Nothing asks the provider again, and the duplicates still arriving change nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let done = c.scheduler_sales().reconcile(Duration::from_secs(300), 100).await.unwrap();
    assert_eq!(done.refunds_retried, 0);
    assert_eq!((c.sandbox_events("refund.created"), c.count(told, &booking).await), (1, 1));
}

#[tokio::test]
async fn a_refund_failed_at_the_provider_whose_webhooks_were_lost_is_found_failed_by_reconciliation() {
    let c = spawn(Faults::default()).await;
    let event = c.event_starting(None, 2).await;
    let booking = c.paid_booking(&event, "fan-1", "1").await;
    let failing = Faults {
        refund_settle_ms: 50,
        refund_failure_probability: 1.0,
        webhook_drop_probability: 1.0,
        ..Faults::default()
    };
    c.sandbox.set_faults(failing).unwrap();

    c.cancel(&event, "fan-1", &booking).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.sandbox_events("refund.updated"), 1, "failed at the provider");
    assert_eq!(c.refund_of(&booking).await, ("pending".to_owned(), 0), "no webhook told the gateway");

    let done = c.scheduler_sales().reconcile(Duration::from_secs(300), 100).await.unwrap();

    assert_eq!(done.refunds_retried, 1);
    assert_eq!(c.refund_of(&booking).await, ("failed".to_owned(), 0));
    let again = c.scheduler_sales().reconcile(Duration::from_secs(300), 100).await.unwrap();
    assert_eq!(again.refunds_retried, 0, "a failed refund is the organizer's now, not retried for ever");
    assert_eq!(c.sandbox_events("refund.created"), 1);
}

#[tokio::test]
async fn a_refund_settled_at_the_provider_whose_webhooks_were_lost_is_found_by_reconciliation() {
    let c = spawn(Faults::default()).await;
    let event = c.event_starting(None, 2).await;
    let booking = c.paid_booking(&event, "fan-1", "1").await;
    c.sandbox.set_faults(Faults { refund_settle_ms: 100, webhook_drop_probability: 1.0, ..Faults::default() }).unwrap();

    let cancelled = c.cancel(&event, "fan-1", &booking).await;

    assert_eq!((cancelled.status, &cancelled.body["refund"]["status"]), (StatusCode::OK, &json!("pending")));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.sandbox_events("refund.updated"), 1, "settled at the provider");
    assert_eq!(c.refund_of(&booking).await, ("pending".to_owned(), 0), "no webhook told the gateway");

    let done = c.scheduler_sales().reconcile(Duration::from_secs(300), 100).await.unwrap();

    assert_eq!(done.refunds_retried, 1);
    assert_eq!(c.refund_of(&booking).await, ("succeeded".to_owned(), 1));
    assert_eq!(c.sandbox_events("refund.created"), 1, "asked about, never made twice");
    let again = c.scheduler_sales().reconcile(Duration::from_secs(300), 100).await.unwrap();
    assert_eq!(again.refunds_retried, 0);
}

#[tokio::test]
async fn a_lost_webhook_is_made_good_by_reconciliation() {
    let c = spawn(Faults { webhook_drop_probability: 1.0, ..Faults::default() }).await;
    let event = c.app.numbered_event_priced(2, 2500).await;
    let hold = c.hold(&event, "fan-1", &["1"]).await;
    let checkout = c.checkout(&event, "fan-1", &hold).await;
    c.pay(&checkout.body, SUCCEEDS).await;
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &hold).await, 0, "no webhook arrived");

    let done = c.scheduler_sales().reconcile(Duration::ZERO, 100).await.unwrap();
    assert_eq!(done.attempts_checked, 1);
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1 AND payment_id IS NOT NULL", &hold).await, 1);
    let (status, resolution) = c.wait_for_payment(&hold, |_, r| r.is_some()).await;
    assert_eq!((status.as_str(), resolution.as_deref()), ("succeeded", Some("booked")));
    // The reconciliation's booking has its ticket, as every booking does.
    let tickets = "SELECT count(*) FROM tickets t JOIN bookings b ON b.id = t.booking_id WHERE b.hold_id = $1";
    assert_eq!(c.count(tickets, &hold).await, 1);
    c.app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn cancelling_an_event_refunds_every_booking_in_full_and_sells_nothing_more() {
    let c = spawn(Faults::default()).await;
    let event = c.event_starting(Some(60), 5).await;
    let first = c.paid_booking(&event, "fan-1", "1").await;
    let second = c.paid_booking(&event, "fan-2", "2").await;
    let pending_hold = c.hold(&event, "fan-3", &["3"]).await;
    let pending = c.checkout(&event, "fan-3", &pending_hold).await;

    let cancel = |c: &Checkout| {
        c.app.send(Method::POST, &format!("/v1/admin/events/{}/cancel", event.id), Some(ADMIN_KEY), None)
    };
    let cancelled = cancel(&c).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body, json!({ "bookings_cancelled": 2, "refunds_started": 2, "holds_released": 1 }));
    for (fan, booking) in [("fan-1", &first), ("fan-2", &second)] {
        let token = c.app.token(fan, &event);
        let shown = c.app.send(Method::GET, &event.path(&format!("/bookings/{booking}")), Some(&token), None).await;
        assert_eq!(shown.body["status"], "cancelled");
        // An hour before the start the policy would refund half; the organizer refunds all.
        assert_eq!(shown.body["refund"]["amount"]["amount_minor"], 2500);
        assert_eq!(shown.body["refund"]["status"], "succeeded");
    }
    let details = c.app.details(&event).await;
    assert!(details["cancelled_at"].is_string(), "{details}");
    assert_eq!(details["sections"][0]["remaining"], 5);

    // A payment arriving afterwards for a hold of the cancelled event is refunded, not booked.
    c.pay(&pending.body, SUCCEEDS).await;
    let (status, resolution) = c.wait_for_payment(&pending_hold, |s, _| s == "refunded").await;
    assert_eq!((status.as_str(), resolution.as_deref()), ("refunded", Some("refunded")));
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE hold_id = $1", &pending_hold).await, 0);

    // Once every replica's copy of the rules knows (at most event_rules_max_age_ms),
    // nothing more is sold; cancelling again finds nothing left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = c.app.hold(&event, "fan-4", json!({ "seats": ["4"] })).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "event_cancelled"));
    let again = cancel(&c).await;
    assert_eq!(again.body, json!({ "bookings_cancelled": 0, "refunds_started": 0, "holds_released": 0 }));
    // Every ticket of the event was revoked by its booking's cancellation, each with the
    // revocation offline scanners read.
    let live = "SELECT count(*) FROM tickets WHERE event_id = $1 AND revoked_at IS NULL";
    assert_eq!(crate::helpers::count(&c.app.pool, live, event.id).await, 0);
    let revoked = "SELECT count(*) FROM ticket_revocations WHERE event_id = $1 AND reason = 'cancelled'";
    assert_eq!(crate::helpers::count(&c.app.pool, revoked, event.id).await, 2);
    c.app.assert_inventory_consistent(&event).await;
}

#[tokio::test]
async fn the_booking_link_cancels_a_paid_booking_by_the_same_policy_and_refund_as_the_fans_token() {
    let c = spawn(Faults::default()).await;
    // Starting in 23 h 58 min: the 50 % tier.
    let event = c.event_starting(Some(24 * 60 - 2), 2).await;
    let link_of = |booking: String| {
        let token = c.app.token("fan-1", &event);
        let show = c.app.send(Method::GET, &event.path(&format!("/bookings/{booking}")), Some(&token), None);
        async move { (show.await.body["link"].as_str().unwrap().to_owned(), booking) }
    };
    let (link, booking) = link_of(c.paid_booking(&event, "fan-1", "1").await).await;
    let cancel = event.path(&format!("/bookings/{booking}/cancel?link={link}"));
    let cancelled = c.app.send(Method::POST, &cancel, None, None).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["refund"]["amount"]["amount_minor"], 1250, "{}", cancelled.body);
    assert_eq!(cancelled.body["refund"]["status"], "succeeded");
    let again = c.app.send(Method::POST, &cancel, None, None).await;
    assert_eq!(again.body["refund"]["id"], cancelled.body["refund"]["id"], "cancelling again refunds nothing more");
    assert_eq!(c.count("SELECT count(*) FROM refunds WHERE booking_id = $1", &booking).await, 1);

    // Without a policy the link cannot cancel either.
    let unset = Some(json!({ "refund_policy": null }));
    c.app.send(Method::PATCH, &format!("/v1/events/{}", event.id), Some(ADMIN_KEY), unset).await;
    let (link, second) = link_of(c.paid_booking(&event, "fan-1", "2").await).await;
    let refused =
        c.app.send(Method::POST, &event.path(&format!("/bookings/{second}/cancel?link={link}")), None, None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "cancellation_not_allowed"));
    assert_eq!(c.count("SELECT count(*) FROM bookings WHERE id = $1 AND status = 'confirmed'", &second).await, 1);
}

#[tokio::test]
async fn the_payment_window_ends_at_the_holds_cap_on_its_whole_life() {
    let checkout = spawn(Faults::default()).await;
    let event = checkout.app.numbered_event_priced(2, 5000).await;
    let hold = checkout.hold(&event, "fan-1", &["1"]).await;
    // 25 minutes old, seconds left: the checkout's 10-minute window would pass the
    // 30-minute cap (`gateway.hold_max_lifetime_secs`), so it stops there.
    sqlx::query(
        "WITH aged AS (UPDATE holds SET created_at = now() - interval '1500 seconds', expires_at = now() + interval '5 seconds'
                       WHERE id = $1 RETURNING expires_at)
         UPDATE seats SET held_until = aged.expires_at FROM aged WHERE seats.hold_id = $1",
    )
    .bind(hold.parse::<Uuid>().unwrap())
    .execute(&checkout.app.pool)
    .await
    .unwrap();

    let started = checkout.checkout(&event, "fan-1", &hold).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert_eq!(
        checkout
            .count("SELECT extract(epoch FROM expires_at - created_at)::bigint FROM holds WHERE id = $1", &hold)
            .await,
        1800
    );
    let seats_past_the_hold = "SELECT count(*) FROM seats s JOIN holds h ON h.id = s.hold_id
                               WHERE h.id = $1 AND s.held_until <> h.expires_at";
    assert_eq!(checkout.count(seats_past_the_hold, &hold).await, 0);
}
