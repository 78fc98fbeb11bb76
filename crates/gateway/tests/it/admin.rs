use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_KEY};

#[tokio::test]
async fn the_organizer_lists_all_bookings_with_event_and_section() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    app.book(&event, "a", json!({ "seats": ["1"] })).await;
    app.book(&event, "b", json!({ "seats": ["2", "3"] })).await;
    let reply = app.send(Method::GET, "/v1/admin/bookings", Some(ADMIN_KEY), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let bookings = reply.body["bookings"].as_array().unwrap();
    assert_eq!(bookings.len(), 2);
    assert_eq!(bookings[0]["fan_id"], "b");
    assert_eq!(bookings[0]["event"]["name"], "Numbered show");
    assert_eq!(bookings[0]["seats"][0]["section"]["name"], "Hall");
    let filtered = app
        .send(Method::GET, &format!("/v1/admin/bookings?event_id={}", uuid::Uuid::new_v4()), Some(ADMIN_KEY), None)
        .await;
    assert_eq!(filtered.body["bookings"].as_array().unwrap().len(), 0);
    assert_eq!(app.send(Method::GET, "/v1/admin/bookings", None, None).await.status, StatusCode::UNAUTHORIZED);
    let bad = app.send(Method::GET, "/v1/admin/bookings?limit=0", Some(ADMIN_KEY), None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}
