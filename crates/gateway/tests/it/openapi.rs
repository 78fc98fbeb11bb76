//! The gateway's published description (`/openapi.json`) against the routes it serves
//! and the answers it gives.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_support::openapi;

use crate::helpers::{spawn_app, TestApp};

/// Every route the gateway serves, its pages too. A route added, removed or left undocumented
/// changes the description, and this list with it.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/admin/bookings"),
    ("POST", "/v1/admin/events/{event_id}/revocations"),
    ("GET", "/v1/admin/webhooks"),
    ("POST", "/v1/admin/webhooks"),
    ("PATCH", "/v1/admin/webhooks/{webhook_id}"),
    ("DELETE", "/v1/admin/webhooks/{webhook_id}"),
    ("POST", "/v1/admin/webhooks/{webhook_id}/rotate-secret"),
    ("GET", "/v1/admin/webhooks/{webhook_id}/deliveries"),
    ("GET", "/v1/admin/events"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events/{event_id}"),
    ("GET", "/v1/events/{event_id}/bookings"),
    ("POST", "/v1/events/{event_id}/bookings"),
    ("GET", "/v1/events/{event_id}/bookings/{booking_id}"),
    ("POST", "/v1/events/{event_id}/bookings/{booking_id}/cancel"),
    ("POST", "/v1/events/{event_id}/bookings/{booking_id}/rotate-link"),
    ("POST", "/v1/admin/events/{event_id}/bookings/{booking_id}/cancel"),
    ("PATCH", "/v1/events/{event_id}"),
    ("POST", "/v1/admin/events/{event_id}/cancel"),
    ("POST", "/v1/events/{event_id}/holds/{hold_id}/checkout"),
    ("GET", "/v1/events/{event_id}/holds/{hold_id}/payment"),
    ("POST", "/v1/payments/webhooks"),
    ("GET", "/v1/admin/payments"),
    ("POST", "/v1/events/{event_id}/holds"),
    ("DELETE", "/v1/events/{event_id}/holds/{hold_id}"),
    ("GET", "/v1/events/{event_id}/holds/{hold_id}"),
    ("POST", "/v1/events/{event_id}/holds/{hold_id}/confirm"),
    ("POST", "/v1/events/{event_id}/holds/{hold_id}/heartbeat"),
    ("POST", "/v1/events/{event_id}/holds/{hold_id}/release"),
    ("GET", "/v1/events/{event_id}/seats"),
    ("GET", "/v1/events/{event_id}/seats/layout"),
    ("GET", "/v1/events/{event_id}/seats/state"),
    ("GET", "/v1/events/{event_id}/seats/stream"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/v1/events/{event_id}/bookings/{booking_id}/tickets"),
    ("GET", "/v1/events/{event_id}/bookings/{booking_id}/tickets/{ticket_id}/qr.svg"),
    ("GET", "/v1/events/{event_id}/bookings/{booking_id}/tickets/print"),
    ("POST", "/v1/events/{event_id}/bookings/{booking_id}/tickets/{ticket_id}/reissue"),
    ("GET", "/v1/events/{event_id}/tickets/revocations"),
    ("POST", "/v1/admin/events/{event_id}/scanner-keys"),
    ("POST", "/v1/events/{event_id}/checkins"),
    ("POST", "/v1/events/{event_id}/checkins/batch"),
    ("GET", "/v1/admin/events/{event_id}/checkins"),
    ("POST", "/v1/events/{event_id}/waitlist"),
    ("GET", "/v1/events/{event_id}/waitlist/me"),
    ("DELETE", "/v1/events/{event_id}/waitlist/me"),
    ("GET", "/"),
    ("GET", "/e/{event_id}"),
    ("GET", "/e/{event_id}/seats"),
    ("GET", "/e/{event_id}/checkout/{hold_id}"),
    ("GET", "/e/{event_id}/bookings/{booking_id}"),
    ("GET", "/admin"),
    ("GET", "/assets/{file}"),
];

async fn description(app: &TestApp) -> Value {
    let reply = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.body
}

#[tokio::test]
async fn openapi_json_documents_every_route_with_its_refusals() {
    let app = spawn_app().await;
    let description = description(&app).await;

    assert!(description["openapi"].as_str().unwrap().starts_with("3."), "{}", description["openapi"]);
    assert_eq!(description["info"]["title"], "boxoffice gateway");
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(openapi::operations(&description), expected);
    assert_eq!(openapi::operations_without_refusal(&description, "ErrorBody"), BTreeSet::new());
    // Headers past 32 KiB, refused by the server before any route: on every operation.
    assert_eq!(openapi::operations_without_status(&description, "431"), BTreeSet::new());
    // Both are `Authorization: Bearer …`: the fan's signed token, the organizer's key.
    let schemes = &description["components"]["securitySchemes"];
    let scheme_names: Vec<&String> = schemes.as_object().unwrap().keys().collect();
    assert_eq!(scheme_names, ["access_token", "admin_key", "booking_link", "offer_link", "scanner_key"]);
    assert_eq!(
        (&schemes["access_token"]["scheme"], &schemes["access_token"]["bearerFormat"]),
        (&json!("bearer"), &json!("JWT"))
    );
    assert_eq!(
        (&schemes["admin_key"]["scheme"], &schemes["admin_key"]["bearerFormat"]),
        (&json!("bearer"), &Value::Null)
    );
    let operation_ids: BTreeSet<&str> = ROUTES
        .iter()
        .map(|(m, p)| description["paths"][p][m.to_lowercase()]["operationId"].as_str().unwrap())
        .collect();
    assert_eq!(operation_ids.len(), ROUTES.len(), "operation ids are unique: {operation_ids:?}");
    // What a fan does next, as links: a hold to its confirmation, a booking to its cancel.
    let hold_links = &description["paths"]["/v1/events/{event_id}/holds"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        hold_links["confirm"],
        json!({ "operationId": "confirm", "parameters": { "event_id": "$request.path.event_id", "hold_id": "$response.body#/id" } })
    );
    let confirmed = &description["paths"]["/v1/events/{event_id}/holds/{hold_id}/confirm"]["post"]["responses"];
    assert_eq!(confirmed["201"]["links"]["cancel"]["parameters"]["booking_id"], "$response.body#/id");
}

/// The fuzz target of request bodies reaches every body the description names.
/// The committed copy in `docs/openapi/` is the one the gateway serves.
#[tokio::test]
async fn the_committed_description_is_the_served_one() {
    let app = spawn_app().await;
    openapi::matches_committed(&description(&app).await, "gateway.json").unwrap();
}

#[tokio::test]
async fn every_request_body_described_is_one_the_body_fuzzer_reads() {
    let app = spawn_app().await;
    let described = openapi::operations_with_a_body(&description(&app).await);
    let fuzzed: BTreeSet<String> =
        gateway::routes::bodies::REQUEST_BODIES.iter().map(|(operation, _)| operation.to_string()).collect();
    assert_eq!(described, fuzzed);
}

#[tokio::test]
async fn the_gateway_answers_as_its_description_says() {
    let app = spawn_app().await;
    let description = description(&app).await;

    let bare = openapi::bare_request_mismatches(&app.http, &app.url(""), &description).await;
    assert_eq!(bare, Vec::<String>::new());
    let methods = openapi::undocumented_method_mismatches(&app.http, &app.url(""), &description).await;
    assert_eq!(methods, Vec::<String>::new());
}

#[tokio::test]
async fn a_real_refusal_fits_the_published_error_envelope() {
    let app = spawn_app().await;
    let description = description(&app).await;
    let envelope = openapi::schema(&description, "ErrorBody");
    let error = &envelope["properties"]["error"];
    assert_eq!((&envelope["required"], &error["required"]), (&json!(["error"]), &json!(["code", "message"])));
    assert_eq!(
        (&error["properties"]["code"]["type"], &error["properties"]["message"]["type"]),
        (&json!("string"), &json!("string"))
    );

    let refused = app.send(Method::GET, "/v1/admin/bookings", Some("wrong-key"), None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "admin_key_required"));
    assert_eq!(openapi::fits(&refused.body, envelope), Ok(()));
}
