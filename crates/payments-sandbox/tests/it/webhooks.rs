use std::time::{Duration, Instant};

use payments_sandbox::{Faults, SandboxConfig, WebhookEndpoint};
use secrecy::SecretString;
use stripe_client::{verify_signature, DEFAULT_TOLERANCE};

use crate::support::{config, create_intent, local, pay, sandbox, Receiver, WHSEC};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[tokio::test]
async fn events_are_delivered_signed_with_stripes_recipe() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    let intent = create_intent(&sandbox, "1000").await;
    pay(&sandbox, &intent, "4242424242424242").await;

    let hits = receiver.wait_for(2).await;
    assert_eq!(hits.len(), 2);
    let secrets = [SecretString::from(WHSEC.to_owned())];
    for hit in &hits {
        assert_eq!(verify_signature(&hit.body, &hit.signature, &secrets, DEFAULT_TOLERANCE, now()), Ok(()));
        let wrong = [SecretString::from("whsec_other".to_owned())];
        assert!(verify_signature(&hit.body, &hit.signature, &wrong, DEFAULT_TOLERANCE, now()).is_err());
    }
    let mut kinds: Vec<String> =
        hits.iter().map(|h| h.json()["type"].as_str().unwrap_or_default().to_owned()).collect();
    kinds.sort();
    assert_eq!(kinds, ["payment_intent.created", "payment_intent.succeeded"]);
    let succeeded = hits.iter().map(|h| h.json()).find(|e| e["type"] == "payment_intent.succeeded").expect("succeeded");
    assert_eq!(succeeded["object"], "event");
    assert!(succeeded["id"].as_str().is_some_and(|id| id.starts_with("evt_")));
    assert_eq!(succeeded["data"]["object"]["id"], intent["id"]);
    assert_eq!(succeeded["data"]["object"]["status"], "succeeded");
    assert_eq!(succeeded["livemode"], false);
    assert!(
        succeeded["api_version"].is_string() && succeeded["created"].is_i64() && succeeded["pending_webhooks"].is_u64()
    );
    assert!(succeeded["request"].is_object());

    let events =
        sandbox.wait_for_events(Duration::from_secs(2), |e| e.iter().all(|e| e.delivered)).await.expect("delivered");
    assert!(events.iter().all(|e| e.attempts.len() == 1 && e.attempts[0].status == Some(200)));
}

/// As Stripe's `enabled_events`: an endpoint subscribed to successes is sent those
/// alone; the other events are recorded, retrievable, and never sent.
#[tokio::test]
async fn an_endpoint_is_sent_only_the_event_types_it_enabled() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook(WebhookEndpoint::new(&receiver.url, WHSEC).only(&["payment_intent.succeeded"]));
    let declined = create_intent(&sandbox, "1000").await;
    pay(&sandbox, &declined, "4000000000000002").await;
    let paid = create_intent(&sandbox, "1000").await;
    pay(&sandbox, &paid, "4242424242424242").await;

    let hits = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let kinds: Vec<String> =
        receiver.hits().iter().map(|h| h.json()["type"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(kinds, ["payment_intent.succeeded"]);
    assert_eq!(hits[0].json()["data"]["object"]["id"], paid["id"]);
    let mut recorded: Vec<String> = sandbox.events().into_iter().map(|e| e.kind).collect();
    recorded.sort();
    assert_eq!(
        recorded,
        [
            "payment_intent.created",
            "payment_intent.created",
            "payment_intent.payment_failed",
            "payment_intent.succeeded"
        ]
    );
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_with_growing_backoff_until_it_answers_2xx() {
    let receiver = Receiver::start().await;
    receiver.answer_next_with(&[500, 503, 404]);
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    create_intent(&sandbox, "1000").await;

    let hits = receiver.wait_for(4).await;
    assert_eq!(hits.len(), 4, "three failures, then the delivery");
    assert!(hits.iter().all(|h| h.body == hits[0].body), "every attempt sends the same body");
    // Backoff 5, 10, 20 ms (each attempt also takes its own time).
    for (i, floor) in [5u64, 10, 20].into_iter().enumerate() {
        let gap = hits[i + 1].at - hits[i].at;
        assert!(gap >= Duration::from_millis(floor), "gap {i}: {gap:?}");
    }
    let events =
        sandbox.wait_for_events(Duration::from_secs(2), |e| e.iter().all(|e| e.delivered)).await.expect("delivered");
    let statuses: Vec<Option<u16>> = events[0].attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(503), Some(404), Some(200)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.hits().len(), 4, "nothing more after a 2xx");
}

#[tokio::test]
async fn retries_stop_at_max_attempts_and_an_unreachable_endpoint_is_recorded() {
    let sandbox = sandbox().await;
    // A port nothing listens on: bind one, then free it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    sandbox.set_webhook_endpoint(format!("http://{closed}/hook"), WHSEC);
    create_intent(&sandbox, "1000").await;
    sandbox
        .wait_for_events(Duration::from_secs(5), |e| e.first().is_some_and(|e| e.attempts.len() == 5))
        .await
        .expect("five attempts");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let events = sandbox.events();
    assert_eq!(events[0].attempts.len(), 5, "max_attempts is 5");
    assert!(!events[0].delivered);
    assert!(events[0].attempts.iter().all(|a| a.status.is_none() && a.error.is_some()));
}

#[tokio::test]
async fn an_event_before_any_endpoint_is_delivered_by_a_retry_once_one_is_set() {
    let mut config = config();
    config.retry.base = Duration::from_millis(50);
    let sandbox = payments_sandbox::spawn(local(), config).await.expect("spawn");
    create_intent(&sandbox, "1000").await;
    let receiver = Receiver::start().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    assert_eq!(receiver.wait_for(1).await.len(), 1);
}

#[tokio::test]
async fn a_dropped_event_is_never_delivered() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    sandbox.set_faults(Faults { webhook_drop_probability: 1.0, ..Faults::default() }).expect("valid");
    create_intent(&sandbox, "1000").await;
    let events =
        sandbox.wait_for_events(Duration::from_secs(2), |e| e.iter().all(|e| e.dropped)).await.expect("dropped");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(receiver.hits().is_empty());
    assert!(events[0].attempts.is_empty());
}

#[tokio::test]
async fn duplicated_events_are_delivered_n_plus_one_times() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    sandbox.set_faults(Faults { webhook_duplicates: 2, ..Faults::default() }).expect("valid");
    create_intent(&sandbox, "1000").await;
    let hits = receiver.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(receiver.hits().len(), 3);
    let id = hits[0].json()["id"].clone();
    assert!(hits.iter().all(|h| h.json()["id"] == id), "three copies of one event");
    assert_eq!(sandbox.events()[0].copies, 3);
}

#[tokio::test]
async fn a_reorder_window_delivers_the_events_it_gathered_newest_first() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    sandbox.set_faults(Faults { webhook_reorder_window_ms: 1_000, ..Faults::default() }).expect("valid");
    let intent = create_intent(&sandbox, "1000").await;
    pay(&sandbox, &intent, "4000000000000002").await;
    pay(&sandbox, &intent, "4242424242424242").await;
    let hits = receiver.wait_for(3).await;
    let kinds: Vec<String> = hits.iter().map(|h| h.json()["type"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(kinds, ["payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.created"]);
}

#[tokio::test]
async fn a_delay_holds_each_delivery_back() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    sandbox.set_faults(Faults { webhook_delay_ms: 1_000, ..Faults::default() }).expect("valid");
    let started = Instant::now();
    create_intent(&sandbox, "1000").await;
    let answered = started.elapsed();
    assert!(answered < Duration::from_millis(900), "the API does not wait for deliveries: {answered:?}");
    let hits = receiver.wait_for(1).await;
    assert_eq!(hits.len(), 1);
    assert!(hits[0].at - started >= Duration::from_millis(1_000));
}

#[tokio::test]
async fn a_late_share_of_events_waits_longer_while_the_others_arrive_at_once() {
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
    let faults = Faults { webhook_late_probability: 0.5, webhook_late_ms: 3_000, ..Faults::default() };
    sandbox.set_faults(faults).expect("valid");
    for _ in 0..20 {
        create_intent(&sandbox, "100").await;
    }
    let events = sandbox
        .wait_for_events(Duration::from_secs(10), |e| e.len() == 20 && e.iter().all(|e| e.delivered))
        .await
        .expect("every event delivered in the end");
    // By the sandbox's own clock, each event's first delivery after its creation (whole
    // seconds, as Stripe's `created`): under 2 s on time, at least 3 s late.
    let waits: Vec<u64> = events.iter().map(|e| e.attempts[0].at_ms.saturating_sub(e.created as u64 * 1000)).collect();
    let late = waits.iter().filter(|&&ms| ms >= 3_000).count();
    let on_time = waits.iter().filter(|&&ms| ms < 2_000).count();
    assert_eq!(late + on_time, 20, "{waits:?}");
    assert!(late > 0 && on_time > 0, "some late, some not: {waits:?}");
}

#[tokio::test]
async fn the_same_seed_makes_the_same_fault_decisions() {
    async fn dropped_pattern(seed: u64) -> Vec<bool> {
        let mut config: SandboxConfig = config();
        config.seed = seed;
        config.faults = Faults { webhook_drop_probability: 0.5, ..Faults::default() };
        let sandbox = payments_sandbox::spawn(local(), config).await.expect("spawn");
        let receiver = Receiver::start().await;
        sandbox.set_webhook_endpoint(&receiver.url, WHSEC);
        for _ in 0..24 {
            create_intent(&sandbox, "100").await;
        }
        let events = sandbox
            .wait_for_events(Duration::from_secs(5), |e| e.iter().all(|e| e.dropped || e.delivered))
            .await
            .expect("all decided");
        events.iter().map(|e| e.dropped).collect()
    }
    let first = dropped_pattern(42).await;
    assert_eq!(first, dropped_pattern(42).await);
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
    assert_ne!(first, dropped_pattern(43).await);
}
