use payments_sandbox::Faults;
use serde_json::json;

use crate::support::{create_intent, get, http, pay, post_form, post_raw, sandbox, KEY};

#[tokio::test]
async fn calls_without_the_secret_key_are_refused_with_stripes_401() {
    let sandbox = sandbox().await;
    // curl -u sk_…: sends Basic with the key as user name, as Stripe accepts.
    let basic = http().get(format!("{}/v1/payment_intents/pi_x", sandbox.url())).basic_auth(KEY, Some("")).send().await;
    assert_eq!(basic.map(|r| r.status().as_u16()).ok(), Some(404));
    for auth in [
        None,
        Some("Bearer sk_test_wrong"),
        Some("Basic abc"),
        Some("Basic c2tfdGVzdF93cm9uZzo="),
        Some("sk_test_sandbox_tests"),
    ] {
        let mut request = http().get(format!("{}/v1/payment_intents/pi_x", sandbox.url()));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("answer");
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn an_intent_is_created_from_a_form_and_read_back_in_stripes_shape() {
    let sandbox = sandbox().await;
    let form = [
        ("amount", "6500"),
        ("currency", "EUR"),
        ("description", "2 seats"),
        ("metadata[hold_id]", "h-1"),
        ("metadata[event_id]", "e-1"),
    ];
    let (status, intent) = post_form(&sandbox, "/v1/payment_intents", &form, Some("attempt-1")).await;
    assert_eq!(status, 200, "{intent}");
    let id = intent["id"].as_str().expect("an id");
    assert!(id.starts_with("pi_"));
    assert_eq!(intent["object"], "payment_intent");
    assert_eq!(intent["amount"], 6500);
    assert_eq!(intent["currency"], "eur");
    assert_eq!(intent["status"], "requires_payment_method");
    assert_eq!(intent["livemode"], false);
    assert_eq!(intent["last_payment_error"], serde_json::Value::Null);
    assert_eq!(intent["metadata"], json!({ "hold_id": "h-1", "event_id": "e-1" }));
    assert!(intent["created"].as_i64().is_some_and(|t| t > 1_600_000_000));
    let secret = intent["client_secret"].as_str().expect("a client secret");
    assert!(secret.starts_with(&format!("{id}_secret_")), "{secret}");

    let (status, read) = get(&sandbox, &format!("/v1/payment_intents/{id}")).await;
    assert_eq!((status, &read), (200, &intent));
    let events = sandbox.events();
    assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["payment_intent.created"]);
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_first_answer_and_other_parameters_are_refused() {
    let sandbox = sandbox().await;
    let form = [("amount", "1000"), ("currency", "eur"), ("metadata[a]", "1")];
    let (_, first) = post_form(&sandbox, "/v1/payment_intents", &form, Some("key-1")).await;
    // The same parameters in another order are the same request.
    let reordered = [("metadata[a]", "1"), ("currency", "eur"), ("amount", "1000")];
    let (status, again) = post_form(&sandbox, "/v1/payment_intents", &reordered, Some("key-1")).await;
    assert_eq!((status, &again), (200, &first));

    let (status, refused) =
        post_form(&sandbox, "/v1/payment_intents", &[("amount", "1001"), ("currency", "eur")], Some("key-1")).await;
    assert_eq!(status, 400);
    assert_eq!(refused["error"]["type"], "idempotency_error");
    // The key on another endpoint is refused too.
    let (status, _) = post_form(&sandbox, "/v1/refunds", &form, Some("key-1")).await;
    assert_eq!(status, 400);

    let (_, other) = post_form(&sandbox, "/v1/payment_intents", &form, Some("key-2")).await;
    assert_ne!(other["id"], first["id"]);
    let created = sandbox.events().iter().filter(|e| e.kind == "payment_intent.created").count();
    assert_eq!(created, 2, "a replay creates nothing");
}

#[tokio::test]
async fn bad_bodies_are_refused_with_400_in_stripes_shape() {
    let sandbox = sandbox().await;
    let cases: [(&[u8], &str); 7] = [
        (b"currency=eur", "parameter_missing"),
        (b"amount=100", "parameter_missing"),
        (b"amount=abc&currency=eur", "parameter_invalid_integer"),
        (b"amount=-1&currency=eur", "parameter_invalid_integer"),
        (b"amount=100&currency=euro", "parameter_invalid_string"),
        (b"amount=100&currency=eur&colour=red", "parameter_unknown"),
        (b"\xff\xfe%%%=&&[]=\x00", "parameter_unknown"),
    ];
    for (body, code) in cases {
        let (status, error) = post_raw(&sandbox, "/v1/payment_intents", body.to_vec(), None).await;
        assert_eq!(status, 400, "{body:?}: {error}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body:?}");
        assert_eq!(error["error"]["code"], code, "{body:?}");
    }
    let (status, error) = get(&sandbox, "/v1/nothing").await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(sandbox.events().is_empty());
}

#[tokio::test]
async fn unknown_ids_are_404_resource_missing() {
    let sandbox = sandbox().await;
    for path in ["/v1/payment_intents/pi_nope", "/v1/refunds/re_nope", "/v1/events/evt_nope"] {
        let (status, error) = get(&sandbox, path).await;
        assert_eq!((status, error["error"]["code"].as_str()), (404, Some("resource_missing")), "{path}");
    }
}

#[tokio::test]
async fn a_refund_defaults_to_what_remains_and_more_is_refused() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "5000").await;
    let id = intent["id"].as_str().expect("id");
    let (status, refused) = post_form(&sandbox, "/v1/refunds", &[("payment_intent", id)], None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("charge_not_refundable")), "nothing paid yet");
    assert_eq!(pay(&sandbox, &intent, "4242424242424242").await.0, 200);

    let (status, part) = post_form(
        &sandbox,
        "/v1/refunds",
        &[("payment_intent", id), ("amount", "1500"), ("metadata[refund_id]", "r1")],
        Some("r1"),
    )
    .await;
    assert_eq!(status, 200, "{part}");
    assert!(part["id"].as_str().is_some_and(|r| r.starts_with("re_")));
    assert_eq!(
        (part["object"].as_str(), part["amount"].as_i64(), part["status"].as_str()),
        (Some("refund"), Some(1500), Some("succeeded"))
    );
    assert_eq!(part["payment_intent"], id);
    assert_eq!(part["metadata"]["refund_id"], "r1");

    let (status, too_much) =
        post_form(&sandbox, "/v1/refunds", &[("payment_intent", id), ("amount", "3501")], None).await;
    assert_eq!((status, too_much["error"]["code"].as_str()), (400, Some("amount_too_large")), "{too_much}");
    let (status, rest) = post_form(&sandbox, "/v1/refunds", &[("payment_intent", id)], None).await;
    assert_eq!((status, rest["amount"].as_i64()), (200, Some(3500)));
    let (status, none_left) = post_form(&sandbox, "/v1/refunds", &[("payment_intent", id)], None).await;
    assert_eq!((status, none_left["error"]["code"].as_str()), (400, Some("charge_already_refunded")));

    let refund_id = part["id"].as_str().expect("id");
    let (status, read) = get(&sandbox, &format!("/v1/refunds/{refund_id}")).await;
    assert_eq!((status, &read), (200, &part));
    let refunds = sandbox.events().iter().filter(|e| e.kind == "refund.created").count();
    assert_eq!(refunds, 2);
}

#[tokio::test]
async fn an_unpaid_intent_can_be_canceled_and_then_not_paid() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "100").await;
    let id = intent["id"].as_str().expect("id");
    let (status, canceled) = post_form(&sandbox, &format!("/v1/payment_intents/{id}/cancel"), &[], None).await;
    assert_eq!((status, canceled["status"].as_str()), (200, Some("canceled")));
    let (status, _) = pay(&sandbox, &intent, "4242424242424242").await;
    assert_eq!(status, 400);
    let (status, again) = post_form(&sandbox, &format!("/v1/payment_intents/{id}/cancel"), &[], None).await;
    assert_eq!((status, again["error"]["code"].as_str()), (400, Some("payment_intent_unexpected_state")));
    assert!(sandbox.events().iter().any(|e| e.kind == "payment_intent.canceled"));
}

#[tokio::test]
async fn injected_api_failures_answer_500_api_error_and_change_nothing() {
    let sandbox = sandbox().await;
    sandbox.set_faults(Faults { api_fail_next: 2, ..Faults::default() }).expect("valid");
    for _ in 0..2 {
        let (status, error) =
            post_form(&sandbox, "/v1/payment_intents", &[("amount", "100"), ("currency", "eur")], Some("k")).await;
        assert_eq!((status, error["error"]["type"].as_str()), (500, Some("api_error")));
    }
    assert!(sandbox.events().is_empty(), "a failed call creates nothing");
    // The key was not used up by the failures.
    let (status, intent) =
        post_form(&sandbox, "/v1/payment_intents", &[("amount", "100"), ("currency", "eur")], Some("k")).await;
    assert_eq!((status, intent["amount"].as_i64()), (200, Some(100)));

    sandbox.set_faults(Faults { api_failure_probability: 1.0, ..Faults::default() }).expect("valid");
    assert_eq!(get(&sandbox, "/v1/payment_intents/pi_x").await.0, 500);
}

#[tokio::test]
async fn faults_are_set_and_events_listed_through_the_control_routes() {
    let sandbox = sandbox().await;
    let response = http()
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .bearer_auth(KEY)
        .json(&json!({ "api_fail_next": 1, "webhook_delay_ms": 7 }))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(sandbox.faults(), Faults { api_fail_next: 1, webhook_delay_ms: 7, ..Faults::default() });
    let refused = http()
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .bearer_auth(KEY)
        .json(&json!({ "webhook_drop_probability": 2 }))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 400);
    let unknown = http()
        .post(format!("{}/_sandbox/faults", sandbox.url()))
        .bearer_auth(KEY)
        .body("{\"nope\":1}")
        .send()
        .await
        .expect("answer");
    assert_eq!(unknown.status().as_u16(), 400);
    let unauthorized = http().get(format!("{}/_sandbox/events", sandbox.url())).send().await.expect("answer");
    assert_eq!(unauthorized.status().as_u16(), 401);

    sandbox.set_faults(Faults::default()).expect("valid");
    create_intent(&sandbox, "100").await;
    let (status, listed) = get(&sandbox, "/_sandbox/events").await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"][0]["type"], "payment_intent.created");
    assert!(listed["data"][0]["attempts"].is_array());
}

#[tokio::test]
async fn latency_holds_the_answer_back() {
    let sandbox = sandbox().await;
    sandbox.set_faults(Faults { api_latency_ms: 1_000, ..Faults::default() }).expect("valid");
    let started = std::time::Instant::now();
    let short = reqwest::Client::builder().timeout(std::time::Duration::from_millis(100)).build().expect("client");
    let timed_out = short.get(format!("{}/v1/payment_intents/pi_x", sandbox.url())).bearer_auth(KEY).send().await;
    assert!(timed_out.is_err_and(|e| e.is_timeout()));
    assert!(started.elapsed() < std::time::Duration::from_millis(900));
    let started = std::time::Instant::now();
    assert_eq!(get(&sandbox, "/v1/payment_intents/pi_x").await.0, 404);
    assert!(started.elapsed() >= std::time::Duration::from_millis(1_000));
}

#[tokio::test]
async fn ten_concurrent_creates_under_one_key_make_one_intent() {
    let sandbox = sandbox().await;
    let form = [("amount", "1000"), ("currency", "eur")];
    let calls = (0..10).map(|_| post_form(&sandbox, "/v1/payment_intents", &form, Some("race-key")));
    let answers = futures::future::join_all(calls).await;
    assert!(answers.iter().all(|(status, body)| *status == 200 && body["id"] == answers[0].1["id"]), "{answers:?}");
    assert_eq!(sandbox.events().len(), 1);
}

#[tokio::test]
async fn ten_concurrent_payments_of_one_intent_succeed_once() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let answers = futures::future::join_all((0..10).map(|_| pay(&sandbox, &intent, "4242424242424242"))).await;
    assert!(answers.iter().all(|(status, body)| *status == 200 && body["status"] == "succeeded"));
    let succeeded = sandbox.events().iter().filter(|e| e.kind == "payment_intent.succeeded").count();
    assert_eq!(succeeded, 1);
}
