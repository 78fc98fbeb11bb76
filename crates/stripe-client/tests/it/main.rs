//! The client against the payments sandbox, a real server on a free port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use payments_sandbox::{Faults, Sandbox, SandboxConfig};
use sales::payment_provider::{
    IntentStatus, NewIntent, NewRefund, PaymentProvider, ProviderError, ProviderEventKind, RefundStatus,
};
use secrecy::SecretString;
use stripe_client::{parse_event, verify_signature, StripeClient, StripeConfig, DEFAULT_TOLERANCE};

const KEY: &str = "sk_test_client_tests";

async fn sandbox() -> Sandbox {
    payments_sandbox::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), SandboxConfig::new(KEY)).await.expect("sandbox")
}

fn client_for(sandbox: &Sandbox, key: &str, timeout: Duration) -> StripeClient {
    StripeClient::new(StripeConfig {
        base_url: sandbox.url(),
        secret_key: SecretString::from(key.to_owned()),
        request_timeout: timeout,
        connect_timeout: Duration::from_secs(1),
    })
    .expect("client")
}

fn client(sandbox: &Sandbox) -> StripeClient {
    client_for(sandbox, KEY, Duration::from_secs(5))
}

fn new_intent(key: &str, amount: i64) -> NewIntent {
    NewIntent {
        amount_minor: amount,
        currency: "EUR".to_owned(),
        idempotency_key: key.to_owned(),
        description: "2 seats, Demo concert".to_owned(),
        metadata: BTreeMap::from([("hold_id".to_owned(), "h-1".to_owned()), ("payment_id".to_owned(), key.to_owned())]),
    }
}

/// Pays on the sandbox's page as a fan's browser would post the form.
async fn pay(sandbox: &Sandbox, intent_id: &str, client_secret: &str, card: &str) -> u16 {
    sandbox.pay(intent_id, client_secret, card).await.expect("the page answers")
}

#[tokio::test]
async fn an_intent_created_then_paid_on_the_page_reads_back_succeeded() {
    let sandbox = sandbox().await;
    let client = client(&sandbox);
    let intent = client.create_intent(new_intent("attempt-1", 6500)).await.expect("created");
    assert!(intent.id.starts_with("pi_"));
    assert_eq!(
        (intent.status, intent.amount_minor, intent.currency.as_str()),
        (IntentStatus::RequiresPaymentMethod, 6500, "EUR")
    );
    assert_eq!(intent.metadata.get("hold_id").map(String::as_str), Some("h-1"));
    let secret = intent.client_secret.clone().expect("a client secret");

    assert_eq!(pay(&sandbox, &intent.id, &secret, "4242 4242 4242 4242").await, 200);
    let read = client.retrieve_intent(&intent.id).await.expect("read");
    assert_eq!(read.status, IntentStatus::Succeeded);
    assert_eq!(read.last_payment_error, None);
}

#[tokio::test]
async fn a_declined_attempt_then_a_new_intent_for_the_next_attempt() {
    let sandbox = sandbox().await;
    let client = client(&sandbox);
    let first = client.create_intent(new_intent("attempt-1", 1000)).await.expect("created");
    let status = pay(&sandbox, &first.id, first.client_secret.as_deref().unwrap_or_default(), "4000000000009995").await;
    assert_eq!(status, 402);
    let declined = client.retrieve_intent(&first.id).await.expect("read");
    assert_eq!(declined.status, IntentStatus::RequiresPaymentMethod);
    assert_eq!(declined.last_payment_error.as_deref(), Some("insufficient_funds"));

    let second = client.create_intent(new_intent("attempt-2", 1000)).await.expect("created");
    assert_ne!(second.id, first.id, "a new attempt is a new intent");
    pay(&sandbox, &second.id, second.client_secret.as_deref().unwrap_or_default(), "4242424242424242").await;
    assert_eq!(client.retrieve_intent(&second.id).await.map(|i| i.status), Ok(IntentStatus::Succeeded));
}

#[tokio::test]
async fn creating_twice_with_one_key_returns_the_same_intent() {
    let sandbox = sandbox().await;
    let client = client(&sandbox);
    let first = client.create_intent(new_intent("attempt-7", 1000)).await.expect("created");
    let again = client.create_intent(new_intent("attempt-7", 1000)).await.expect("replayed");
    assert_eq!(first, again);
    // The same key for another amount is a refusal, not a second intent.
    let mut other = new_intent("attempt-7", 2000);
    other.metadata.clear();
    let refused = client.create_intent(other).await;
    assert!(matches!(&refused, Err(ProviderError::Refused { code, .. }) if code == "idempotency_error"), "{refused:?}");
    assert_eq!(sandbox.events().iter().filter(|e| e.kind == "payment_intent.created").count(), 1);
}

#[tokio::test]
async fn a_refund_succeeds_once_per_key_and_over_refunding_is_refused() {
    let sandbox = sandbox().await;
    let client = client(&sandbox);
    let intent = client.create_intent(new_intent("attempt-1", 5000)).await.expect("created");
    pay(&sandbox, &intent.id, intent.client_secret.as_deref().unwrap_or_default(), "4242424242424242").await;
    let refund = |key: &str, amount| NewRefund {
        payment_intent: intent.id.clone(),
        amount_minor: amount,
        idempotency_key: key.to_owned(),
        metadata: BTreeMap::from([("refund_id".to_owned(), key.to_owned())]),
    };
    let made = client.create_refund(refund("refund-1", 2500)).await.expect("refunded");
    assert!(made.id.starts_with("re_"));
    assert_eq!(
        (made.status, made.amount_minor, made.payment_intent.as_str()),
        (RefundStatus::Succeeded, 2500, intent.id.as_str())
    );
    assert_eq!(client.create_refund(refund("refund-1", 2500)).await, Ok(made.clone()), "a retry refunds nothing more");
    assert_eq!(client.retrieve_refund(&made.id).await, Ok(made));
    let too_much = client.create_refund(refund("refund-2", 2501)).await;
    assert!(
        matches!(&too_much, Err(ProviderError::Refused { code, .. }) if code == "amount_too_large"),
        "{too_much:?}"
    );
    assert_eq!(sandbox.events().iter().filter(|e| e.kind == "refund.created").count(), 1);
}

#[tokio::test]
async fn a_wrong_key_and_an_unknown_intent_are_refused() {
    let sandbox = sandbox().await;
    let wrong = client_for(&sandbox, "sk_test_wrong", Duration::from_secs(5));
    assert!(matches!(wrong.retrieve_intent("pi_x").await, Err(ProviderError::Refused { .. })));
    let missing = client(&sandbox).retrieve_intent("pi_missing").await;
    assert!(matches!(&missing, Err(ProviderError::Refused { code, .. }) if code == "resource_missing"), "{missing:?}");
    // An id that tries to leave its path segment stays a missing intent.
    assert!(matches!(client(&sandbox).retrieve_intent("../refunds/re_1").await, Err(ProviderError::Refused { .. })));
}

#[tokio::test]
async fn provider_failures_are_unavailable_and_the_retry_under_the_same_key_creates_once() {
    let sandbox = sandbox().await;
    let client = client(&sandbox);
    sandbox.set_faults(Faults { api_fail_next: 1, ..Faults::default() }).expect("valid");
    let failed = client.create_intent(new_intent("attempt-1", 1000)).await;
    assert!(matches!(failed, Err(ProviderError::Unavailable(_))), "{failed:?}");
    let created = client.create_intent(new_intent("attempt-1", 1000)).await.expect("the retry succeeds");
    assert_eq!(client.create_intent(new_intent("attempt-1", 1000)).await, Ok(created));
}

#[tokio::test]
async fn a_slow_provider_is_unavailable_within_the_request_timeout() {
    let sandbox = sandbox().await;
    sandbox.set_faults(Faults { api_latency_ms: 5_000, ..Faults::default() }).expect("valid");
    let client = client_for(&sandbox, KEY, Duration::from_millis(200));
    let started = Instant::now();
    let result = client.retrieve_intent("pi_x").await;
    assert!(matches!(result, Err(ProviderError::Unavailable(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_millis(2_000), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_provider_that_is_not_there_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let client = StripeClient::new(StripeConfig {
        base_url: format!("http://{closed}"),
        secret_key: SecretString::from(KEY.to_owned()),
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_millis(500),
    })
    .expect("client");
    assert!(matches!(client.retrieve_intent("pi_x").await, Err(ProviderError::Unavailable(_))));
}

#[tokio::test]
async fn a_delivered_webhook_verifies_and_parses_into_the_ports_event() {
    use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let signature =
                headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            record.lock().expect("lock").push((signature, body));
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(hook, "whsec_client_tests");
    let client = client(&sandbox);
    let intent = client.create_intent(new_intent("attempt-1", 1000)).await.expect("created");
    pay(&sandbox, &intent.id, intent.client_secret.as_deref().unwrap_or_default(), "4242424242424242").await;
    sandbox
        .wait_for_events(Duration::from_secs(5), |e| e.len() == 2 && e.iter().all(|e| e.delivered))
        .await
        .expect("delivered");

    let secrets = [SecretString::from("whsec_old".to_owned()), SecretString::from("whsec_client_tests".to_owned())];
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let deliveries = seen.lock().expect("lock").clone();
    let mut succeeded = 0;
    for (signature, body) in deliveries {
        assert_eq!(verify_signature(&body, &signature, &secrets, DEFAULT_TOLERANCE, now), Ok(()));
        let event = parse_event(&body).expect("an event");
        assert!(event.id.starts_with("evt_"));
        match event.kind {
            ProviderEventKind::Intent(i) if i.status == IntentStatus::Succeeded => {
                assert_eq!(i.id, intent.id);
                succeeded += 1;
            }
            ProviderEventKind::Intent(i) => assert_eq!(i.status, IntentStatus::RequiresPaymentMethod),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(succeeded, 1);
}
