//! The gateway's own extractors; `Json`, `Path` and `Query` come from
//! [`service_kit::extract`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa::IntoParams;

use crate::error::Error;
use crate::state::AppState;

/// The optional `Idempotency-Key` header: 1-255 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

/// The header as a handler's `#[utoipa::path(params(…))]` names it.
impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some("^[!-~]+$"));
        let header = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("A retry with the same key and body answers the first request's order, marked `Idempotent-Replayed: true`"))
            .schema(Some(key));
        vec![header.build()]
    }
}

impl FromRequestParts<AppState> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Error> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = idempotency_key(value.as_bytes())
            .ok_or_else(|| Error::BadRequest("Idempotency-Key must be 1-255 visible ASCII characters".into()))?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// An `Idempotency-Key` header's value, if it is 1-255 visible ASCII characters.
pub fn idempotency_key(raw: &[u8]) -> Option<&str> {
    let valid = (1..=255).contains(&raw.len()) && raw.iter().all(u8::is_ascii_graphic);
    valid.then(|| std::str::from_utf8(raw).ok()).flatten()
}
