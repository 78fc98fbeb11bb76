//! The fan's endpoints: join, poll, leave.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::Router;
use serde::Deserialize;
use uuid::Uuid;

use service_kit::client_address::ClientAddress;
use service_kit::extract::{Body, Json, Path};

use crate::app::AppState;
use crate::domain::fan::FanId;
use crate::error::{Error, Result};
use crate::model::FanView;
use crate::store::Arrival;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{event_id}/queue", post(join))
        .route("/v1/events/{event_id}/queue/{ticket}", delete(leave).get(poll))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    fan_id: Option<String>,
    /// The organizer's signature on `fan_id`, required when vouching is configured.
    fan_id_signature: Option<String>,
}

/// The body is optional: a fan without an id of their own sends nothing.
fn parse_join_body(body: &[u8]) -> Result<JoinBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JoinBody::default());
    }
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}

#[tracing::instrument(skip_all, fields(%event_id))]
async fn join(
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    client: ClientAddress,
    Body(body): Body,
) -> Result<(StatusCode, Json<FanView>)> {
    let body = parse_join_body(&body)?;
    let fan = body.fan_id.map(|raw| FanId::parse(&raw)).transpose()?;
    if let (Some(fan), Some(vouching)) = (&fan, &state.fan_id_vouching) {
        vouching.verify(event_id, fan, body.fan_id_signature.as_deref())?;
    }
    state.join_limits.check_address(&client).map_err(Error::RateLimited)?;
    if let Some(fan) = &fan {
        state.join_limits.check_fan(fan.as_str()).map_err(Error::RateLimited)?;
    }
    let (view, arrival) = state.queue.join(event_id, fan.unwrap_or_else(FanId::issue)).await?;
    let status = if arrival == Arrival::Joined { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)))
}

#[tracing::instrument(skip_all, fields(%event_id))]
async fn poll(State(state): State<AppState>, Path((event_id, ticket)): Path<(Uuid, String)>) -> Result<Json<FanView>> {
    Ok(Json(state.queue.poll(event_id, &ticket).await?))
}

#[tracing::instrument(skip_all, fields(%event_id))]
async fn leave(State(state): State<AppState>, Path((event_id, ticket)): Path<(Uuid, String)>) -> Result<StatusCode> {
    state.queue.leave(event_id, &ticket).await?;
    Ok(StatusCode::NO_CONTENT)
}
