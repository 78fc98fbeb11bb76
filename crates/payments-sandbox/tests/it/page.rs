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

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_browser_that_paid_is_sent_back_to_its_return_url_with_the_outcome() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let id = intent["id"].as_str().unwrap_or_default();
    let secret = intent["client_secret"].as_str().unwrap_or_default();
    let return_url = "https://shop.example/e/1/checkout/2?from=pay&lang=en#top";

    let shown = http()
        .get(format!("{}&return_url={}", sandbox.payment_page_url(id, secret), urlencode(return_url)))
        .send()
        .await
        .expect("answer");
    assert_eq!(shown.status().as_u16(), 200);
    let hidden = "<input type=\"hidden\" name=\"return_url\" \
                  value=\"https://shop.example/e/1/checkout/2?from=pay&amp;lang=en#top\">";
    assert!(shown.text().await.expect("html").contains(hidden));

    let post = |card: &'static str| {
        no_redirects()
            .post(format!("{}/pay/{id}", sandbox.url()))
            .form(&[("client_secret", secret), ("card_number", card), ("return_url", return_url)])
            .send()
    };
    let declined = post("4000000000000002").await.expect("answer");
    assert_eq!(declined.status().as_u16(), 402);
    let html = declined.text().await.expect("html");
    assert!(html.contains("Your card was declined.") && html.contains(hidden), "retry keeps the way back: {html}");

    let paid = post("4242424242424242").await.expect("answer");
    assert_eq!(paid.status().as_u16(), 303);
    let location = paid.headers()["location"].to_str().expect("ascii");
    assert_eq!(
        location,
        format!(
            "https://shop.example/e/1/checkout/2?from=pay&lang=en&payment_intent={id}&redirect_status=succeeded#top"
        )
    );
    // Submitted twice (a double click): sent back again, nothing paid twice.
    let again = post("4242424242424242").await.expect("answer");
    assert_eq!((again.status().as_u16(), again.headers()["location"].to_str().ok()), (303, Some(location)));

    // An API client asking for JSON still gets the intent, not a redirect.
    let json = no_redirects()
        .post(format!("{}/pay/{id}", sandbox.url()))
        .header("accept", "application/json")
        .form(&[("client_secret", secret), ("card_number", "4242424242424242"), ("return_url", return_url)])
        .send()
        .await
        .expect("answer");
    assert_eq!(json.status().as_u16(), 200);
    assert_eq!(json.json::<serde_json::Value>().await.expect("json")["status"], "succeeded");
}

#[tokio::test]
async fn a_return_url_that_is_not_http_is_refused_and_nothing_is_paid() {
    let sandbox = sandbox().await;
    let intent = create_intent(&sandbox, "1000").await;
    let id = intent["id"].as_str().unwrap_or_default();
    let secret = intent["client_secret"].as_str().unwrap_or_default();
    for bad in ["javascript:alert(1)", "data:text/html,hi", "ftp://shop.example/", "/relative/path"] {
        let shown = http()
            .get(format!("{}&return_url={}", sandbox.payment_page_url(id, secret), urlencode(bad)))
            .send()
            .await
            .expect("answer");
        assert_eq!(shown.status().as_u16(), 400, "{bad}");
        let html = shown.text().await.expect("html");
        assert!(html.contains("role=\"alert\"") && !html.contains("card_number"), "{bad}: {html}");

        let posted = no_redirects()
            .post(format!("{}/pay/{id}", sandbox.url()))
            .form(&[("client_secret", secret), ("card_number", "4242424242424242"), ("return_url", bad)])
            .send()
            .await
            .expect("answer");
        assert_eq!(posted.status().as_u16(), 400, "{bad}");
    }
    let refused = no_redirects()
        .post(format!("{}/pay/{id}", sandbox.url()))
        .header("accept", "application/json")
        .form(&[("client_secret", secret), ("card_number", "4242424242424242"), ("return_url", "javascript:x")])
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 400);
    let body = refused.json::<serde_json::Value>().await.expect("json");
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["param"].as_str()),
        (Some("url_invalid"), Some("return_url"))
    );
    let (_, read) = get(&sandbox, &format!("/v1/payment_intents/{id}")).await;
    assert_eq!(read["status"], "requires_payment_method");
    let kinds: Vec<String> = sandbox.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["payment_intent.created"]);
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
