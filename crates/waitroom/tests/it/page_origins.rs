//! The fans' pages are served by the gateway, on another origin: their browsers may call
//! the waiting room from the origins in `page_origins` only, and from no other site.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN,
};
use reqwest::{Method, StatusCode};

use crate::helpers::{settings, spawn_app_with};

const PAGES: &str = "https://tickets.example.test";

#[tokio::test]
async fn only_the_pages_origin_may_call_from_a_browser_and_never_with_credentials() {
    let app = spawn_app_with(|c| c.page_origins = vec![PAGES.to_owned()]).await;
    let event = app.new_event(settings(1.0, 100)).await;
    let join = format!("{}/v1/events/{event}/queue", app.base);

    let preflight = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, &join)
            .header(ORIGIN, origin)
            .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .send()
    };
    let allowed = preflight(PAGES).await.unwrap();
    assert_eq!(allowed.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], PAGES);
    assert!(allowed.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none(), "no cookie crosses");
    let refused = preflight("https://evil.example.test").await.unwrap();
    assert!(refused.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(), "another site is not let in");

    let joined = app.http.post(&join).header(ORIGIN, PAGES).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(joined.status(), StatusCode::CREATED);
    assert_eq!(joined.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], PAGES);
    let exposed = joined.headers()[ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap().to_lowercase();
    assert!(exposed.contains("retry-after"), "a page reads how long to wait: {exposed}");
}

#[test]
fn a_page_origin_that_is_not_an_origin_is_refused_at_start() {
    for wrong in ["tickets.example.test", "https://tickets.example.test/", "https://tickets.example.test/e"] {
        let mut config = crate::helpers::test_config(|_| {});
        config.page_origins = vec![wrong.to_owned()];
        let refused = service_kit::settings::Section::validate(&config).unwrap_err();
        assert!(refused.starts_with("waitroom.page_origins"), "{wrong}: {refused}");
    }
}
