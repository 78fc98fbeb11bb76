//! Reading credentials off a request.

use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Whether the request carries the admin API key, compared in constant time so the
/// answer's timing says nothing about how much of a guess was right.
pub fn is_admin(parts: &Parts, admin_api_key: &SecretString) -> bool {
    bearer(parts)
        .is_some_and(|presented| bool::from(presented.as_bytes().ct_eq(admin_api_key.expose_secret().as_bytes())))
}
