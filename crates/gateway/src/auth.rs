//! Who is calling: the organizer (admin API key) or an admitted fan (access token).

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::Error;
use crate::metrics;

/// The organizer, proven by the admin API key.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let presented = bearer(parts).ok_or(Error::NotAdmin)?;
        let expected = state.admin_api_key.expose_secret().as_bytes();
        if bool::from(presented.as_bytes().ct_eq(expected)) {
            Ok(Admin)
        } else {
            Err(Error::NotAdmin)
        }
    }
}

/// An admitted fan acting on the event in the request path; every fan query is
/// scoped by it, so a fan can only reach their own holds and bookings.
#[derive(Debug, Clone)]
pub struct Fan {
    pub fan_id: String,
    pub event_id: Uuid,
}

impl FromRequestParts<AppState> for Fan {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts).ok_or_else(|| {
            metrics::token_rejected("missing");
            Error::MissingToken
        })?;
        let claims = state.verifier.verify(token).map_err(|e| {
            metrics::token_rejected(e.reason());
            Error::BadToken(e)
        })?;
        state.limits.check_fan(&claims.sub)?;
        let event_id = path_event_id(parts, state).await?;
        if claims.evt != event_id {
            metrics::token_rejected("other_event");
            return Err(Error::TokenForOtherEvent);
        }
        Ok(Fan { fan_id: claims.sub, event_id })
    }
}

async fn path_event_id(parts: &mut Parts, state: &AppState) -> Result<Uuid, Error> {
    let params = RawPathParams::from_request_parts(parts, state).await.map_err(|e| Error::BadRequest(e.body_text()))?;
    let raw = params
        .iter()
        .find_map(|(name, value)| (name == "event_id").then_some(value))
        .ok_or_else(|| Error::BadRequest("this route has no event in its path".into()))?;
    raw.parse().map_err(|_| Error::BadRequest(format!("{raw:?} is not an event id (a UUID)")))
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}
