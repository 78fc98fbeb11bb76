use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp, ADMIN_KEY};

fn concert() -> serde_json::Value {
    json!({
        "name": "Concert",
        "starts_at": "2027-06-01T19:30:00Z",
        "max_per_order": 6,
        "hold_ttl_seconds": 300,
        "sections": [
            { "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 5000, "currency": "EUR" },
              "rows": [{ "label": "A", "seats": 3 }, { "label": "B", "seats": 2 }] },
            { "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 3000, "currency": "EUR" }, "capacity": 100 }
        ]
    })
}

#[tokio::test]
async fn an_organizer_creates_an_event_and_everyone_sees_its_live_counts() {
    let app = spawn_app().await;
    let created = app.create_event(concert()).await;
    let id = created["id"].as_str().unwrap();
    let details = app.send(Method::GET, &format!("/v1/events/{id}"), None, None).await;
    assert_eq!(details.status, StatusCode::OK);
    let sections = details.body["sections"].as_array().unwrap();
    assert_eq!(sections.len(), 2);
    assert_eq!(sections[0]["name"], "Stalls");
    assert_eq!(sections[0]["capacity"], 5);
    assert_eq!(sections[0]["remaining"], 5);
    assert_eq!(sections[0]["price"], json!({ "amount_minor": 5000, "currency": "EUR" }));
    assert_eq!(sections[1]["kind"], "general_admission");
    assert_eq!(sections[1]["remaining"], 100);
}

#[tokio::test]
async fn event_details_are_answered_from_a_short_lived_copy_when_one_is_configured() {
    let app = spawn_app_with(4, |config| config.seat_map_max_age_ms = 60_000).await;
    let event = app.numbered_event(4).await;
    let before = app.send(Method::GET, &event.path(""), None, None).await;
    assert_eq!(before.body["sections"][0]["remaining"], 4);
    let booked = app.book(&event, "fan", json!({ "seats": ["1"] })).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.body);
    // The copy, not a new aggregate over every seat: still 4 within the minute.
    let again = app.send(Method::GET, &event.path(""), None, None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, before.body);
}

#[tokio::test]
async fn the_seat_map_lists_every_reserved_seat_with_its_status() {
    let app = spawn_app().await;
    let created = app.create_event(concert()).await;
    let id = created["id"].as_str().unwrap();
    let map = app.send(Method::GET, &format!("/v1/events/{id}/seats"), None, None).await;
    let seats = map.body["seats"].as_array().unwrap();
    let labels: Vec<_> = seats.iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["A-1", "A-2", "A-3", "B-1", "B-2"]);
    assert!(seats.iter().all(|s| s["status"] == "available" && s["section_id"] == created["sections"][0]["id"]));
}

#[tokio::test]
async fn an_event_of_n_numbered_seats_labels_them_1_to_n() {
    let app = spawn_app().await;
    let event = app.numbered_event(4).await;
    let map = app.send(Method::GET, &event.path("/seats"), None, None).await;
    let labels: Vec<_> = map.body["seats"].as_array().unwrap().iter().map(|s| s["label"].clone()).collect();
    assert_eq!(labels, [json!("1"), json!("2"), json!("3"), json!("4")]);
}

#[tokio::test]
async fn creating_or_listing_events_needs_the_admin_key() {
    let app = spawn_app().await;
    for key in [None, Some("wrong-key-wrong-key-wrong")] {
        let reply = app.send(Method::POST, "/v1/events", key, Some(concert())).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.code(), "admin_key_required");
        assert_eq!(app.send(Method::GET, "/v1/admin/events", key, None).await.status, StatusCode::UNAUTHORIZED);
    }
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM events").fetch_one(&app.pool).await.unwrap();
    assert_eq!(events, 0);
    app.create_event(concert()).await;
    let listed = app.send(Method::GET, "/v1/admin/events", Some(ADMIN_KEY), None).await;
    assert_eq!(
        (&listed.body["events"][0]["capacity"], &listed.body["events"][0]["published_at"]),
        (&json!(105), &Value::Null)
    );
}

#[tokio::test]
async fn invalid_events_are_refused_with_422_and_write_nothing() {
    let app = spawn_app().await;
    let cases = [
        json!({ "name": "", "sections": [{ "name": "A", "kind": "reserved", "price": { "amount_minor": 1, "currency": "EUR" }, "seats": 3 }] }),
        json!({ "name": "No sections", "sections": [] }),
        json!({ "name": "Bad kind", "sections": [{ "name": "A", "kind": "vip", "price": { "amount_minor": 1, "currency": "EUR" }, "seats": 3 }] }),
        json!({ "name": "Both", "sections": [{ "name": "A", "kind": "reserved", "price": { "amount_minor": 1, "currency": "EUR" }, "seats": 3, "capacity": 3 }] }),
        json!({ "name": "Zero", "sections": [{ "name": "A", "kind": "general_admission", "price": { "amount_minor": 1, "currency": "EUR" }, "capacity": 0 }] }),
        json!({ "name": "Negative price", "sections": [{ "name": "A", "kind": "general_admission", "price": { "amount_minor": -5, "currency": "EUR" }, "capacity": 3 }] }),
        json!({ "name": "Two currencies", "sections": [
            { "name": "A", "kind": "general_admission", "price": { "amount_minor": 1, "currency": "EUR" }, "capacity": 3 },
            { "name": "B", "kind": "general_admission", "price": { "amount_minor": 1, "currency": "USD" }, "capacity": 3 }] }),
        json!({ "name": "Same row twice", "sections": [
            { "name": "A", "kind": "reserved", "price": { "amount_minor": 1, "currency": "EUR" }, "rows": [{ "label": "A", "seats": 2 }] },
            { "name": "B", "kind": "reserved", "price": { "amount_minor": 1, "currency": "EUR" }, "rows": [{ "label": "A", "seats": 2 }] }] }),
    ];
    for body in cases {
        let reply = app.send(Method::POST, "/v1/events", Some(ADMIN_KEY), Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.body);
        assert_eq!(reply.code(), "invalid_event");
    }
    let (events, seats): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM seats)")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((events, seats), (0, 0));
}

#[tokio::test]
async fn unknown_events_are_404_and_malformed_ids_400() {
    let app = spawn_app().await;
    let missing = app.send(Method::GET, &format!("/v1/events/{}", uuid::Uuid::new_v4()), None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "event_not_found");
    let seats = app.send(Method::GET, &format!("/v1/events/{}/seats", uuid::Uuid::new_v4()), None, None).await;
    assert_eq!(seats.status, StatusCode::NOT_FOUND);
    let malformed = app.send(Method::GET, "/v1/events/not-a-uuid", None, None).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.code(), "bad_request");
}

#[tokio::test]
async fn an_order_limit_changed_in_the_database_applies_within_the_rules_cache_bound() {
    const BOUND_MS: u64 = 300;
    let app = spawn_app_with(4, |config| config.event_rules_max_age_ms = BOUND_MS).await;
    let event = app.numbered_event(6).await;
    let first = app.book(&event, "fan-1", json!({ "seats": ["1", "2"] })).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    sqlx::query("UPDATE events SET max_per_order = 1 WHERE id = $1").bind(event.id).execute(&app.pool).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(BOUND_MS + 200)).await;

    let second = app.book(&event, "fan-2", json!({ "seats": ["3", "4"] })).await;
    assert_eq!(second.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", second.body);
    assert_eq!(second.code(), "order_limit_exceeded");
}

/// `GET path` with `Accept-Encoding: gzip` when `gzip`: the `Content-Encoding` and
/// `Content-Length` answered and the body as sent.
async fn raw_get(app: &TestApp, path: &str, gzip: bool) -> (Option<String>, Option<u64>, Vec<u8>) {
    let mut request = app.http.get(app.url(path));
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (encoding, length) = (header("content-encoding"), header("content-length").map(|n| n.parse().unwrap()));
    (encoding, length, response.bytes().await.unwrap().to_vec())
}

/// Uncached, the answer is compressed on its way out; cached, its copy was compressed
/// once when it was read. Either way the client sees the same.
#[tokio::test]
async fn the_seat_map_is_gzipped_for_a_client_that_accepts_it_and_decodes_to_the_same_json() {
    for max_age_ms in [0, 60_000] {
        let app = spawn_app_with(10, |c| c.seat_map_max_age_ms = max_age_ms).await;
        let event = app.numbered_event(2_000).await;

        let (encoding, _, plain) = raw_get(&app, &event.path("/seats"), false).await;
        assert_eq!(encoding, None, "not asked for ({max_age_ms} ms)");
        let (encoding, length, gzipped) = raw_get(&app, &event.path("/seats"), true).await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{max_age_ms} ms");
        // Compressed on the way out, the answer streams; the cached copy was compressed
        // whole when it was read, so its length is known.
        let cached = max_age_ms > 0;
        assert_eq!(length, cached.then_some(gzipped.len() as u64), "{max_age_ms} ms");
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut decoded).unwrap();
        let json = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).unwrap();
        assert_eq!(json(&decoded), json(&plain), "{max_age_ms} ms");
        assert_eq!(json(&plain)["seats"].as_array().map(Vec::len), Some(2_000));
        assert!(gzipped.len() * 10 < plain.len(), "{} bytes gzipped, {} plain", gzipped.len(), plain.len());

        // Small answers (up to service_kit::compression::COMPRESS_ABOVE) go out as they are.
        let (encoding, _, details) = raw_get(&app, &event.path(""), true).await;
        assert_eq!((encoding, json(&details)["id"].as_str()), (None, Some(event.id.to_string().as_str())));
    }
}
