use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use service_kit::extract::{Json, Path, Query};

use super::extract::IdempotencyKey;
use crate::app::AppState;
use crate::auth::{Admin, Fan};
use crate::catalog;
use crate::error::{Error, Result};
use crate::model::BookingView;
use crate::orders::{self, SeatRequest};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events/{event_id}/bookings", post(book).get(list_mine))
        .route("/v1/events/{event_id}/bookings/{booking_id}", get(show))
        .route("/v1/events/{event_id}/bookings/{booking_id}/cancel", post(cancel))
        .route("/v1/admin/bookings", get(list_all))
}

/// Holds and confirms in one transaction, for events without a checkout step.
async fn book(
    State(state): State<AppState>,
    fan: Fan,
    IdempotencyKey(key): IdempotencyKey,
    Json(request): Json<SeatRequest>,
) -> Result<Response> {
    Ok(super::holds::created(orders::book(&state, &fan, &request, key.as_deref()).await?))
}

async fn list_mine(State(state): State<AppState>, fan: Fan) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "bookings": orders::my_bookings(&state, &fan).await? })))
}

async fn show(
    State(state): State<AppState>,
    fan: Fan,
    Path((_, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(orders::get_booking(&state, &fan, booking_id).await?))
}

async fn cancel(
    State(state): State<AppState>,
    fan: Fan,
    Path((_, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(orders::cancel(&state, &fan, booking_id).await?))
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

async fn list_all(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<AdminListing>,
) -> Result<Json<serde_json::Value>> {
    if !(1..=1000).contains(&q.limit) || q.offset < 0 {
        return Err(Error::BadRequest("limit must be 1-1000 and offset at least 0".into()));
    }
    let bookings = catalog::all_bookings(&state, q.event_id, q.limit, q.offset).await?;
    Ok(Json(json!({ "bookings": bookings, "limit": q.limit, "offset": q.offset })))
}
