//! What anyone may read: the signing keys and an event's shuffle audit trail.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use serde_json::Value;
use uuid::Uuid;

use service_kit::extract::{Json, Path};

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::model::PublicEventView;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks)).route("/v1/events/{event_id}/waitroom", get(event))
}

async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.jwks.as_ref().clone())
}

/// From Redis, or from PostgreSQL while Redis has lost the event or is unreachable: the
/// commitment stays readable whatever happened to Redis.
async fn event(State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<PublicEventView>> {
    let event = state.restorer.event(event_id).await?.ok_or(Error::NotFound("event"))?;
    Ok(Json(PublicEventView::new(event_id, event)))
}
