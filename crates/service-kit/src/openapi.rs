//! What every service's OpenAPI description shares: its title and version, the error
//! envelope as the schema `ErrorBody`, the organizer's `admin_key` security scheme, and
//! the refusals several routes give, for a handler's `#[utoipa::path(responses(…))]`.
//!
//! A handler names its own responses as tuples (`(status = 404, description = "…",
//! body = ErrorBody)`) and adds these sets by type (`responses(…, AdminKeyRefused)`).

use std::collections::BTreeMap;

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
