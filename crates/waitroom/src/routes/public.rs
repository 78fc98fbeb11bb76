//! What anyone may read: the signing keys and an event's shuffle audit trail.

use axum::extract::State;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::{Json, Path};
use service_kit::openapi::EventLookupRefused;

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::model::PublicEventView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks)).routes(routes!(event))
}

/// The public keys access tokens are signed with, by `kid`: what the gateway verifies with.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "public",
    responses((status = 200, description = "A JSON Web Key Set (RFC 7517) of Ed25519 keys", body = Object)),
)]
async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.jwks.as_ref().clone())
}

/// From Redis, or from PostgreSQL while Redis has lost the event or is unreachable: the
/// commitment stays readable whatever happened to Redis.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/waitroom",
    tag = "public",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The event's state and its shuffle commitment (the seed once open)", body = PublicEventView),
        EventLookupRefused,
    ),
)]
async fn event(State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<PublicEventView>> {
    let event = state.restorer.event(event_id).await?.ok_or(Error::NotFound("event"))?;
    Ok(Json(PublicEventView::new(event_id, event)))
}
