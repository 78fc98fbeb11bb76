//! What every service's OpenAPI description shares: its title and version, the error
//! envelope as the schema `ErrorBody`, the organizer's `admin_key` security scheme, and
//! the refusals several routes give, for a handler's `#[utoipa::path(responses(…))]`.
//!
//! A handler names its own responses as tuples (`(status = 404, description = "…",
//! body = ErrorBody)`) and adds these sets by type (`responses(…, AdminKeyRefused)`).

use std::collections::BTreeMap;

use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    Components, ContentBuilder, HeaderBuilder, Info, ObjectBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder,
    Schema, Type,
};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use crate::error_body::ErrorBody;

/// The security scheme of the organizer's endpoints, as a handler names it:
/// `security(("admin_key" = []))`.
pub const ADMIN_KEY: &str = "admin_key";

/// Names the service, and adds what handlers' descriptions refer to but may not bring
/// in themselves (the envelope, when only a response set below uses it; the admin key).
pub(crate) fn describe(openapi: &mut OpenApi, component: &str) {
    // Every crate takes the workspace's version, so service-kit's is the service's.
    openapi.info = Info::new(format!("boxoffice {component}"), env!("CARGO_PKG_VERSION").to_owned());
    let components = openapi.components.get_or_insert_with(Components::new);
    components.schemas.insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    let admin_key = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("`Authorization: Bearer <admin_api_key>`: the organizer's API key from the configuration"))
        .build();
    components.security_schemes.insert(ADMIN_KEY.to_owned(), SecurityScheme::Http(admin_key));
    // Refused by the server itself (`crate::serve`) before any route runs, whatever the
    // route: said once here rather than by every handler.
    let everywhere =
        refusals([("431", "`headers_too_large`: the request's headers are past `MAX_HEADER_BYTES` (32 KiB)")]);
    for operation in operations(openapi) {
        for (status, refusal) in &everywhere {
            operation.responses.responses.entry(status.clone()).or_insert_with(|| refusal.clone());
        }
    }
}

fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
    })
}

/// Responses whose body is the error envelope, by status, each described by the codes
/// it carries: `refusals([("404", "`event_not_found`")])`.
pub fn refusals<const N: usize>(described: [(&str, &str); N]) -> BTreeMap<String, RefOr<Response>> {
    described.into_iter().map(|(status, codes)| (status.to_owned(), refusal(codes).build().into())).collect()
}

fn refusal(description: &str) -> ResponseBuilder {
    let envelope = ContentBuilder::new().schema(Some(Ref::from_schema_name(ErrorBody::name()))).build();
    ResponseBuilder::new().description(description).content("application/json", envelope)
}

/// `401 admin_key_required`: the admin API key was missing or wrong.
pub struct AdminKeyRefused;

impl IntoResponses for AdminKeyRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([("401", "`admin_key_required`: the admin API key is missing or wrong")])
    }
}

/// What reading an event named in the path can be refused with: `400 bad_request` (the
/// id is not a UUID), `404 event_not_found`, `503 unavailable`.
pub struct EventLookupRefused;

impl IntoResponses for EventLookupRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            ("400", "`bad_request`: the event id is not a UUID"),
            ("404", "`event_not_found`"),
            ("503", "`unavailable`: the service cannot reach its store; nothing was changed"),
        ])
    }
}

/// `429 rate_limited`, with `Retry-After` in whole seconds.
pub struct RateLimited;

impl IntoResponses for RateLimited {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)).build();
        let retry_after =
            HeaderBuilder::new().schema(seconds).description(Some("whole seconds to wait before trying again")).build();
        let limited = refusal("`rate_limited`: too many requests from this client, fan or replica")
            .header("Retry-After", retry_after)
            .build();
        BTreeMap::from([("429".to_owned(), limited.into())])
    }
}

/// The schema of one event of a `text/event-stream` answer: before OpenAPI 3.2's
/// `itemSchema`, a stream's `schema` describes each of its events, as the fields an SSE
/// reader hands over (`event`, `id`, `data`; comments such as keep-alives are not
/// events). `names` are the event names it sends; every `data` is one line of JSON.
pub fn server_sent_event(names: &[&str], with_id: bool) -> RefOr<Schema> {
    let name = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names.iter().copied()));
    let data = ObjectBuilder::new()
        .schema_type(Type::String)
        .content_media_type("application/json")
        .description(Some("The event's JSON, on one line"));
    let mut event =
        ObjectBuilder::new().property("event", name).required("event").property("data", data).required("data");
    if with_id {
        let id = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[0-9]+$"));
        event = event.property("id", id).required("id");
    }
    RefOr::T(Schema::Object(event.build()))
}

/// Adds an OpenAPI link to operation `from`'s `status` answer: what it returns names
/// what operation `to` acts on, each parameter an expression such as
/// `$response.body#/id` or `$request.path.event_id`. Clients and schemathesis' stateful
/// phase follow links from one answer to the next request (a hold, then its
/// confirmation, then the booking's cancellation). A link naming an operation or answer
/// the description lacks is a bug in the caller: it panics at start-up.
pub fn link(openapi: &mut OpenApi, from: &str, status: &str, to: &str, parameters: &[(&str, &str)]) {
    assert!(operation(openapi, to).is_some(), "no operation {to} to link to");
    let answer = operation(openapi, from)
        .unwrap_or_else(|| panic!("no operation {from} to link from"))
        .responses
        .responses
        .get_mut(status)
        .unwrap_or_else(|| panic!("{from} has no {status} answer"));
    let RefOr::T(answer) = answer else { panic!("{from}'s {status} answer is a reference") };
    let link = parameters
        .iter()
        .fold(LinkBuilder::new().operation_id(to), |link, (name, value)| link.parameter(*name, *value))
        .build();
    answer.links.insert(to.to_owned(), RefOr::T(link));
}

fn operation<'a>(openapi: &'a mut OpenApi, operation_id: &str) -> Option<&'a mut Operation> {
    operations(openapi).find(|operation| operation.operation_id.as_deref() == Some(operation_id))
}

/// The description as JSON. utoipa 5.5 writes a link's fields as their Rust names
/// (`operation_id`, `operation_ref`, `request_body`) where OpenAPI names them in
/// camelCase; they are renamed here, so that clients and schemathesis follow the links.
pub(crate) fn to_json(openapi: &OpenApi) -> String {
    let mut description = serde_json::to_value(openapi).expect("an OpenAPI description always serialises");
    let answers = description["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for answer in answers {
        let links = answer.get_mut("links").and_then(|l| l.as_object_mut()).into_iter().flat_map(|l| l.values_mut());
        for link in links.filter_map(|link| link.as_object_mut()) {
            for (rust, openapi) in
                [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
            {
                if let Some(value) = link.remove(rust) {
                    link.insert(openapi.to_owned(), value);
                }
            }
        }
    }
    description.to_string()
}
