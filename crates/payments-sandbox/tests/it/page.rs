use crate::support::{create_intent, get, http, pay, sandbox};

#[tokio::test]
async fn the_payment_page_is_a_labelled_card_form() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "6550").await;
    let url =
        sandbox.payment_page_url(intent["id"].as_str().expect("id"), intent["client_secret"].as_str().expect("secret"));
    let response = http().get(url).send().await.expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    let html = response.text().await.expect("html");
    assert!(html.contains("<html lang=\"en\">"));
    assert!(html.contains("<label for=\"card_number\">Card number</label>"), "{html}");
    assert!(html.contains("id=\"card_number\" name=\"card_number\""));
    assert!(html.contains("65.50 EUR"));

    let wrong = http()
        .get(format!("{}/pay/{}?client_secret=nope", sandbox.url(), intent["id"].as_str().unwrap_or_default()))
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status().as_u16(), 404);
}

#[tokio::test]
async fn a_declined_card_leaves_the_intent_payable_and_4242_then_pays_it() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let id = intent["id"].as_str().expect("id");

    let (status, declined) = pay(&sandbox, &intent, "4000 0000 0000 0002").await;
    assert_eq!(status, 402, "{declined}");
    assert_eq!(declined["error"]["type"], "card_error");
    assert_eq!(declined["error"]["code"], "card_declined");
    assert_eq!(declined["error"]["decline_code"], "generic_decline");
    let (_, read) = get(&sandbox, &format!("/v1/payment_intents/{id}")).await;
    assert_eq!(read["status"], "requires_payment_method");
    assert_eq!(read["last_payment_error"]["code"], "card_declined");

    let (status, poor) = pay(&sandbox, &intent, "4000000000009995").await;
    assert_eq!((status, poor["error"]["decline_code"].as_str()), (402, Some("insufficient_funds")));

    let (status, paid) = pay(&sandbox, &intent, "4242 4242 4242 4242").await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["status"], "succeeded");
    assert_eq!(paid["amount_received"], 1000);
    assert_eq!(paid["last_payment_error"], serde_json::Value::Null);
    let kinds: Vec<String> = sandbox.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            "payment_intent.created",
            "payment_intent.payment_failed",
            "payment_intent.payment_failed",
            "payment_intent.succeeded"
        ]
    );
}

#[tokio::test]
async fn paying_a_succeeded_intent_again_changes_nothing() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let (_, paid) = pay(&sandbox, &intent, "4242424242424242").await;
    let before = sandbox.events().len();
    let (status, again) = pay(&sandbox, &intent, "4000000000000002").await;
    assert_eq!((status, &again), (200, &paid));
    assert_eq!(sandbox.events().len(), before, "no new event");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_and_changes_nothing() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let mut forged = intent.clone();
    forged["client_secret"] = serde_json::json!("pi_x_secret_forged");
    let (status, error) = pay(&sandbox, &forged, "4242424242424242").await;
    assert_eq!(status, 403, "{error}");
    let (_, read) = get(&sandbox, &format!("/v1/payment_intents/{}", intent["id"].as_str().unwrap_or_default())).await;
    assert_eq!(read["status"], "requires_payment_method");

    // A form that is not one: refused, no panic.
    let response = http()
        .post(format!("{}/pay/{}", sandbox.url(), intent["id"].as_str().unwrap_or_default()))
        .body(vec![0xff, 0x00, b'%'])
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 403);
}

#[tokio::test]
async fn a_browser_paying_gets_an_html_result_page() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let id = intent["id"].as_str().unwrap_or_default();
    let secret = intent["client_secret"].as_str().unwrap_or_default();
    let post = |card: &'static str| {
        http()
            .post(format!("{}/pay/{id}", sandbox.url()))
            .form(&[("client_secret", secret), ("card_number", card)])
            .send()
    };
    let declined = post("4000000000000002").await.expect("answer");
    assert_eq!(declined.status().as_u16(), 402);
    let html = declined.text().await.expect("html");
    assert!(html.contains("role=\"alert\"") && html.contains("Your card was declined."), "{html}");
    let paid = post("4242424242424242").await.expect("answer");
    assert_eq!(paid.status().as_u16(), 200);
    assert!(paid.text().await.expect("html").contains("your payment succeeded"));
}
