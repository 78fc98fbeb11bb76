use axum::extract::State;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::{Json, Path};
use service_kit::openapi::{AdminKeyRefused, RateLimited};
use service_kit::ErrorBody;

use sales::domain::Invalid;
use sales::model::Revocation;
use sales::revocations::Revoke;

use crate::auth::Admin;
use crate::error::Result;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(revoke))
}

/// Exactly one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeBody {
    /// One token: its `jti` claim (one per admission).
    jti: Option<Uuid>,
    /// Every token this fan holds for the event, issued up to now.
    fan_id: Option<String>,
}

impl RevokeBody {
    pub(super) fn into_domain(self) -> Result<Revoke, Invalid> {
        Revoke::new(self.jti, self.fan_id)
    }
}

/// Revokes an admission: every gateway replica refuses the token within about a second
/// (`401 token_revoked`), also one it has verified before. Idempotent: revoking a token
/// again answers its first revocation; revoking a fan again also covers tokens they
/// were issued since.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{event_id}/revocations",
    operation_id = "revoke_admission",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    request_body = RevokeBody,
    responses(
        (status = 200, description = "Revoked (now or before)", body = Revocation),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_revocation`: not exactly one of `jti` and `fan_id`, or a fan id that cannot be one", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown` (revoking again is safe)", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state, body))]
async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<RevokeBody>,
) -> Result<Json<Revocation>> {
    Ok(Json(state.sales.revoke(event_id, body.into_domain()?).await?))
}
