//! The gateway's own extractors; `Json`, `Path` and `Query` come from
//! [`service_kit::extract`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::Error;
use crate::state::AppState;

/// The optional `Idempotency-Key` header: 1-255 visible ASCII characters.
pub struct IdempotencyKey(pub Option<String>);

impl FromRequestParts<AppState> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Error> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| Error::BadRequest("Idempotency-Key must be 1-255 visible ASCII characters".into()))?;
        Ok(Self(Some(key.to_owned())))
    }
}
