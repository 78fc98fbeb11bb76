//! The waiting room's published description (`/openapi.json`) against the routes it
//! serves and the answers it gives.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::openapi;

use crate::helpers::{settings, spawn_app, TestApp};

/// Every API route the waiting room serves. A route added, removed or left
/// undocumented changes the description, and this list with it.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/v1/admin/events/{event_id}/waitroom"),
    ("PUT", "/v1/admin/events/{event_id}/waitroom"),
    ("POST", "/v1/admin/events/{event_id}/waitroom/pause"),
    ("POST", "/v1/admin/events/{event_id}/waitroom/resume"),
    ("GET", "/v1/admin/events/{event_id}/waitroom/stats"),
    ("GET", "/v1/admin/events/{event_id}/waitroom/admission-log"),
    ("POST", "/v1/events/{event_id}/queue"),
    ("GET", "/v1/events/{event_id}/queue/challenge"),
    ("DELETE", "/v1/events/{event_id}/queue/{ticket}"),
    ("GET", "/v1/events/{event_id}/queue/{ticket}"),
    ("GET", "/v1/events/{event_id}/queue/{ticket}/receipt"),
    ("GET", "/v1/events/{event_id}/queue/{ticket}/stream"),
    ("GET", "/v1/events/{event_id}/waitroom"),
];

/// The signing keys are a static document: nothing about a request can be refused.
const CANNOT_BE_REFUSED: (&str, &str) = ("GET", "/.well-known/jwks.json");

async fn description(app: &TestApp) -> Value {
    let response = app.http.get(format!("{}/openapi.json", app.base)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// The fuzz target of request bodies reaches every body the description names.
/// The committed copy in `docs/openapi/` is the one the waiting room serves.
#[tokio::test]
async fn the_committed_description_is_the_served_one() {
    let app = spawn_app().await;
    openapi::matches_committed(&description(&app).await, "waitroom.json").unwrap();
}

#[tokio::test]
async fn every_request_body_described_is_one_the_body_fuzzer_reads() {
    let app = spawn_app().await;
    let described = openapi::operations_with_a_body(&description(&app).await);
    let fuzzed: BTreeSet<String> =
        waitroom::routes::bodies::REQUEST_BODIES.iter().map(|(operation, _)| operation.to_string()).collect();
    assert_eq!(described, fuzzed);
}

#[tokio::test]
async fn openapi_json_documents_every_route_with_its_refusals() {
    let app = spawn_app().await;
    let description = description(&app).await;

    assert!(description["openapi"].as_str().unwrap().starts_with("3."), "{}", description["openapi"]);
    assert_eq!(description["info"]["title"], "boxoffice waitroom");
    let expected: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(openapi::operations(&description), expected);
    let unrefused = BTreeSet::from([(CANNOT_BE_REFUSED.0.to_owned(), CANNOT_BE_REFUSED.1.to_owned())]);
    assert_eq!(openapi::operations_without_refusal(&description, "ErrorBody"), unrefused);
    // Headers past 32 KiB, refused by the server before any route: on every operation.
    assert_eq!(openapi::operations_without_status(&description, "431"), BTreeSet::new());
    let schemes = &description["components"]["securitySchemes"];
    assert_eq!(schemes.as_object().unwrap().keys().collect::<Vec<_>>(), ["admin_key"]);
    assert_eq!(schemes["admin_key"]["scheme"], "bearer");
    // A join's ticket, linked to what the fan does with it next.
    let joined = &description["paths"]["/v1/events/{event_id}/queue"]["post"]["responses"]["201"]["links"];
    let linked: Vec<(&str, &Value)> =
        joined.as_object().unwrap().iter().map(|(to, l)| (to.as_str(), &l["parameters"]["ticket"])).collect();
    let ticket = json!("$response.body#/ticket");
    assert_eq!(linked, [("leave", &ticket), ("poll", &ticket), ("receipt", &ticket), ("stream", &ticket)]);
}

#[tokio::test]
async fn the_waiting_room_answers_as_its_description_says() {
    let app = spawn_app().await;
    let description = description(&app).await;

    let bare = openapi::bare_request_mismatches(&app.http, &app.base, &description).await;
    assert_eq!(bare, Vec::<String>::new());
    let methods = openapi::undocumented_method_mismatches(&app.http, &app.base, &description).await;
    assert_eq!(methods, Vec::<String>::new());
}

#[tokio::test]
async fn a_real_refusal_fits_the_published_error_envelope() {
    let app = spawn_app().await;
    let description = description(&app).await;

    let response = app.http.get(format!("{}/v1/events/{}/waitroom", app.base, uuid::Uuid::nil())).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], json!("event_not_found"));
    assert_eq!(openapi::fits(&body, openapi::schema(&description, "ErrorBody")), Ok(()));
}

/// The join body is optional in the description (`null` allowed): no body and `null`
/// are both a fan without an id of their own.
#[tokio::test]
async fn a_join_without_a_body_or_with_null_is_given_a_fan_id() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 10)).await;
    let url = format!("{}/v1/events/{event}/queue", app.base);

    let mut issued = BTreeSet::new();
    for body in ["", "null"] {
        let response = app.http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED, "body {body:?}");
        let joined: Value = response.json().await.unwrap();
        let fan_id: uuid::Uuid = joined["fan_id"].as_str().unwrap().parse().expect("an issued fan id is a UUID");
        issued.insert(fan_id);
    }
    assert_eq!(issued.len(), 2, "each join was a new fan: {issued:?}");
}
