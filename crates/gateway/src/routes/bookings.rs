use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use service_kit::extract::{Json, Path, Query};

use sales::model::BookingView;
use sales::orders::SeatRequest;

use super::extract::IdempotencyKey;
use crate::auth::{Admin, Fan};
use crate::error::{Error, Result};
use crate::metrics;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{event_id}/bookings", post(book).get(list_mine))
        .route("/v1/events/{event_id}/bookings/{booking_id}", get(show))
        .route("/v1/events/{event_id}/bookings/{booking_id}/cancel", post(cancel))
        .route("/v1/admin/bookings", get(list_all))
}

/// Holds and confirms in one transaction, for events without a checkout step.
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn book(
    State(state): State<AppState>,
    Fan(scope): Fan,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<SeatRequest>,
) -> Result<Response> {
    let result = state.sales.book(&scope, &request, key.as_deref()).await.map_err(Error::from);
    metrics::order_outcome("book", &result);
    Ok(super::holds::created(result?))
}

#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn list_mine(State(state): State<AppState>, Fan(scope): Fan) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "bookings": state.sales.my_bookings(&scope).await? })))
}

#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn show(
    State(state): State<AppState>,
    Fan(scope): Fan,
    Path((_, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(state.sales.get_booking(&scope, booking_id).await?))
}

#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn cancel(
    State(state): State<AppState>,
    Fan(scope): Fan,
    Path((_, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(state.sales.cancel(&scope, booking_id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdminListing {
    event_id: Option<Uuid>,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

#[tracing::instrument(skip_all)]
async fn list_all(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<AdminListing>,
) -> Result<Json<serde_json::Value>> {
    if !(1..=1000).contains(&q.limit) || q.offset < 0 {
        return Err(Error::BadRequest("limit must be 1-1000 and offset at least 0".into()));
    }
    let bookings = state.sales.all_bookings(q.event_id, q.limit, q.offset).await?;
    Ok(Json(json!({ "bookings": bookings, "limit": q.limit, "offset": q.offset })))
}
