//! The organizer, proven by the admin API key.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::Error;

pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        service_kit::auth::is_admin(parts, &state.admin_api_key).then_some(Admin).ok_or(Error::NotAdmin)
    }
}
