use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sales::model::{BookingView, HoldView};
use sales::orders::{Confirmation, Created, SeatRequest};
use uuid::Uuid;

use service_kit::extract::{Json, Path};

use super::extract::IdempotencyKey;
use crate::auth::Fan;
use crate::error::{Error, Result};
use crate::metrics;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{event_id}/holds", post(create))
        .route("/v1/events/{event_id}/holds/{hold_id}", get(show).delete(release))
        .route("/v1/events/{event_id}/holds/{hold_id}/confirm", post(confirm))
}

#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn create(
    State(state): State<AppState>,
    Fan(scope): Fan,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<SeatRequest>,
) -> Result<Response> {
    let result = state.sales.hold(&scope, &request, key.as_deref()).await.map_err(Error::from);
    metrics::order_outcome("hold", &result);
    Ok(created(result?))
}

#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn show(
    State(state): State<AppState>,
    Fan(scope): Fan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldView>> {
    Ok(Json(state.sales.get_hold(&scope, hold_id).await?))
}

#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn release(
    State(state): State<AppState>,
    Fan(scope): Fan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldView>> {
    Ok(Json(state.sales.release(&scope, hold_id).await?))
}

/// `201 Created` with the new booking, or `200 OK` with the booking an earlier confirm made.
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn confirm(
    State(state): State<AppState>,
    Fan(scope): Fan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<BookingView>)> {
    let result = state.sales.confirm(&scope, hold_id).await.map_err(Error::from);
    metrics::order_outcome("confirm", &result);
    Ok(match result? {
        Confirmation::Booked(booking) => (StatusCode::CREATED, Json(booking)),
        Confirmation::AlreadyBooked(booking) => (StatusCode::OK, Json(booking)),
    })
}

/// `201 Created`, marked `Idempotent-Replayed: true` when it repeats an earlier answer.
pub(super) fn created(created: Created) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(created.order)).into_response();
    if created.replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}
