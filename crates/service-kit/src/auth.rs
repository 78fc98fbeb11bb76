//! Reading credentials off a request, and the organizer as an extractor.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::error_response;

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The organizer's API key, as a service's state holds it (and hands it to [`Admin`]
/// through `FromRef`). Shared, since the state is cloned for every request: a copy of
/// the secret would be allocated and zeroized each time.
#[derive(Clone)]
pub struct AdminKey(Arc<SecretString>);

impl AdminKey {
    pub fn new(key: SecretString) -> Self {
        Self(Arc::new(key))
    }

    /// Whether the request carries this key, compared in constant time so the answer's
    /// timing says nothing about how much of a guess was right.
    fn presented_in(&self, parts: &Parts) -> bool {
        bearer(parts).is_some_and(|presented| bool::from(presented.as_bytes().ct_eq(self.0.expose_secret().as_bytes())))
    }
}

/// The organizer, proven by `Authorization: Bearer <admin_api_key>`.
pub struct Admin;

impl<S> FromRequestParts<S> for Admin
where
    S: Send + Sync,
    AdminKey: FromRef<S>,
{
    type Rejection = NotAdmin;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, NotAdmin> {
        AdminKey::from_ref(state).presented_in(parts).then_some(Admin).ok_or(NotAdmin)
    }
}

/// The admin API key was missing or wrong: `401 admin_key_required`.
#[derive(Debug)]
pub struct NotAdmin;

impl IntoResponse for NotAdmin {
    fn into_response(self) -> Response {
        error_response(StatusCode::UNAUTHORIZED, "admin_key_required", "the admin API key is missing or wrong")
    }
}
