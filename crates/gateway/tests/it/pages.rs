//! The pages as HTTP serves them: each with the waiting room's origin filled in and a
//! policy allowing scripts and connections to this origin and the waiting room's only;
//! assets with an `ETag` answered `304` once seen; clear JSON refusals otherwise. What
//! the pages do in a browser is `crates/boxoffice/tests/browser.rs`.

use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY};
use reqwest::{Method, StatusCode};

use crate::helpers::spawn_app_with;

const WAITROOM: &str = "https://queue.example.test:8443";

#[tokio::test]
async fn every_page_names_the_waiting_room_and_allows_scripts_from_this_origin_only() {
    let app = spawn_app_with(2, |config| config.pages.waitroom_origin = WAITROOM.to_owned()).await;
    let event = app.numbered_event(2).await;
    let id = uuid::Uuid::now_v7();
    let pages = [
        ("/".to_owned(), "home.js"),
        (format!("/e/{}", event.id), "waiting.js"),
        (format!("/e/{}/seats", event.id), "seats.js"),
        (format!("/e/{}/checkout/{id}", event.id), "checkout.js"),
        (format!("/e/{}/bookings/{id}", event.id), "booking.js"),
        ("/admin".to_owned(), "organizer.js"),
    ];
    for (path, script) in pages {
        let reply = app.http.get(app.url(&path)).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
        assert_eq!(reply.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(reply.headers()[REFERRER_POLICY], "no-referrer", "{path}: a booking page's address is a capability");
        let policy = reply.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
        assert!(policy.contains(&format!("connect-src 'self' {WAITROOM};")), "{path}: {policy}");
        assert!(policy.contains("script-src 'self';"), "{path}: {policy}");
        // The origin as minijinja escapes it in an attribute (a browser reads it back).
        let html = reply.text().await.unwrap().replace("&#x2f;", "/");
        assert!(html.contains(&format!(r#"<meta name="boxoffice-waitroom" content="{WAITROOM}">"#)), "{path}");
        assert!(html.contains(&format!(r#"<script src="/assets/{script}" defer></script>"#)), "{path}");
        assert!(!html.contains("{{") && !html.contains("{%"), "{path}: the template rendered whole");
    }
}

#[tokio::test]
async fn an_asset_is_revalidated_by_its_etag_and_unknown_paths_are_refused_in_json() {
    let app = spawn_app_with(2, |_| {}).await;
    let script = app.http.get(app.url("/assets/common.js")).send().await.unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()[CONTENT_TYPE], "text/javascript");
    let etag = script.headers()[ETAG].clone();
    assert!(script.text().await.unwrap().contains("const bo ="));
    let again = app.http.get(app.url("/assets/common.js")).header(IF_NONE_MATCH, etag).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let style = app.http.get(app.url("/assets/app.css")).send().await.unwrap();
    assert_eq!(style.headers()[CONTENT_TYPE], "text/css");

    for (path, status, code) in [
        ("/assets/nothing.js", StatusCode::NOT_FOUND, "not_found"),
        ("/assets/..%2Fhome.html", StatusCode::NOT_FOUND, "not_found"),
        ("/e/not-a-uuid", StatusCode::BAD_REQUEST, "bad_request"),
        ("/e/00000000-0000-0000-0000-000000000000/checkout/nope", StatusCode::BAD_REQUEST, "bad_request"),
    ] {
        let reply = app.send(Method::GET, path, None, None).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{path}");
    }
}
