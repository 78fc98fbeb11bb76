use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

use service_kit::extract::{Json, Path};

use super::extract::IdempotencyKey;
use crate::app::AppState;
use crate::auth::Fan;
use crate::error::Result;
use crate::model::{BookingView, HoldView};
use crate::orders::{self, Created, SeatRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{event_id}/holds", post(create))
        .route("/v1/events/{event_id}/holds/{hold_id}", get(show).delete(release))
        .route("/v1/events/{event_id}/holds/{hold_id}/confirm", post(confirm))
}

async fn create(
    State(state): State<AppState>,
    fan: Fan,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<SeatRequest>,
) -> Result<Response> {
    Ok(created(orders::hold(&state, &fan, &request, key.as_deref()).await?))
}

async fn show(
    State(state): State<AppState>,
    fan: Fan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldView>> {
    Ok(Json(orders::get_hold(&state, &fan, hold_id).await?))
}

async fn release(
    State(state): State<AppState>,
    fan: Fan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldView>> {
    Ok(Json(orders::release(&state, &fan, hold_id).await?))
}

async fn confirm(
    State(state): State<AppState>,
    fan: Fan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<BookingView>)> {
    let (new, booking) = orders::confirm(&state, &fan, hold_id).await?;
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(booking)))
}

/// `201 Created`, marked `Idempotent-Replayed: true` when it repeats an earlier answer.
pub(super) fn created(created: Created) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(created.body)).into_response();
    if created.replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}
