use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sales::model::{BookingView, HoldHeartbeat, HoldView};
use sales::orders::{Confirmation, Created, SeatRequest};
use service_kit::openapi::{refusals, RateLimited};
use service_kit::ErrorBody;
use utoipa::openapi::RefOr;
use utoipa::IntoResponses;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::{Json, Path};

use super::extract::IdempotencyKey;
use crate::auth::{Fan, FanRefused, HoldFan, HoldFanRefused};
use crate::error::{Error, Result};
use crate::metrics;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show, release))
        .routes(routes!(confirm))
        .routes(routes!(heartbeat))
        .routes(routes!(release_on_leaving))
}

/// Holds seats for the event's hold time, to be confirmed or released.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/holds",
    operation_id = "create_hold",
    tag = "orders",
    params(("event_id" = Uuid, Path), IdempotencyKey),
    request_body = SeatRequest,
    responses(
        (status = 201, description = "Held; `Idempotent-Replayed: true` when it repeats an earlier answer", body = HoldView,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        OrderRefused, FanRefused, RateLimited,
    ),
    security(("access_token" = [])),
)]
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

#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/holds/{hold_id}",
    operation_id = "show_hold",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The fan's hold", body = HoldView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `hold_not_found` (also another fan's hold)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HoldFanRefused, RateLimited,
    ),
    security(("access_token" = []), ("offer_link" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn show(
    State(state): State<AppState>,
    HoldFan(scope): HoldFan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldView>> {
    Ok(Json(state.sales.get_hold(&scope, hold_id).await?))
}

/// Gives the seats back; releasing an ended hold answers it as it is.
#[utoipa::path(
    delete,
    path = "/v1/events/{event_id}/holds/{hold_id}",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The hold, released (or expired, or as it already was)", body = HoldView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active`: it was confirmed", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HoldFanRefused, RateLimited,
    ),
    security(("access_token" = []), ("offer_link" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn release(
    State(state): State<AppState>,
    HoldFan(scope): HoldFan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldView>> {
    Ok(Json(state.sales.release(&scope, hold_id).await?))
}

/// Keeps the hold while the fan's page is open: it lasts the event's hold time from
/// now, never past its creation plus `gateway.hold_max_lifetime_secs` (the first time,
/// heartbeats and the checkout's payment window together). Waitlist offers are not
/// extended. Send one every minute or so while the page shows the hold.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/holds/{hold_id}/heartbeat",
    operation_id = "hold_heartbeat",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The hold's expiry now, and the latest it can reach", body = HoldHeartbeat),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active`: it was confirmed or released", body = ErrorBody),
        (status = 410, description = "`hold_expired`: it lapsed before this heartbeat", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HoldFanRefused, RateLimited,
    ),
    security(("access_token" = []), ("offer_link" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn heartbeat(
    State(state): State<AppState>,
    HoldFan(scope): HoldFan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<HoldHeartbeat>> {
    Ok(Json(state.sales.heartbeat(&scope, hold_id).await?))
}

/// The body of a release sent as the page closes.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LeavingBody {
    /// The fan's access token: `navigator.sendBeacon` cannot send an `Authorization`
    /// header. It is a bearer credential like the header, so no cookie (and no CSRF)
    /// is involved.
    access_token: String,
}

impl LeavingBody {
    /// Whatever its content type says, the body is read as JSON.
    pub(super) fn read(body: &[u8]) -> Result<Self> {
        serde_json::from_slice(body)
            .map_err(|e| Error::BadRequest(format!("the body must be {{\"access_token\": \"…\"}}: {e}")))
    }
}

/// Releases the hold as the fan's page closes: what `navigator.sendBeacon` sends
/// (`text/plain`, the JSON body carrying the access token; any content type is read as
/// JSON). Otherwise as `DELETE …/holds/{hold_id}`; a beacon gets no answer read, so a
/// hold this misses lapses at its normal expiry.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/holds/{hold_id}/release",
    operation_id = "release_hold_on_leaving",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    request_body(content = LeavingBody, content_type = "text/plain"),
    responses(
        (status = 200, description = "The hold, released (or as it already was)", body = HoldView),
        (status = 400, description = "`bad_request`: an id is not a UUID, or the body is not `{\"access_token\":…}`", body = ErrorBody),
        (status = 401, description = "`invalid_token`, `token_expired` or `token_revoked`", body = ErrorBody),
        (status = 403, description = "`token_for_other_event` or `token_scope_insufficient`", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active`: it was confirmed", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn release_on_leaving(
    State(state): State<AppState>,
    Path((event_id, hold_id)): Path<(Uuid, Uuid)>,
    body: axum::body::Bytes,
) -> Result<Json<HoldView>> {
    let body = LeavingBody::read(&body)?;
    let scope = crate::auth::fan_from_body_token(&body.access_token, event_id, &state)?;
    Ok(Json(state.sales.release(&scope, hold_id).await?))
}

/// `201 Created` with the new booking, or `200 OK` with the booking an earlier confirm made.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/holds/{hold_id}/confirm",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("hold_id" = Uuid, Path)),
    responses(
        (status = 201, description = "Booked", body = BookingView),
        (status = 200, description = "Booked before, by an earlier confirm", body = BookingView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `hold_not_found`", body = ErrorBody),
        (status = 409, description = "`hold_not_active`: it was released; `event_cancelled`: the event was cancelled", body = ErrorBody),
        (status = 410, description = "`hold_expired`", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HoldFanRefused, RateLimited,
    ),
    security(("access_token" = []), ("offer_link" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn confirm(
    State(state): State<AppState>,
    HoldFan(scope): HoldFan,
    Path((_, hold_id)): Path<(Uuid, Uuid)>,
) -> Result<(StatusCode, Json<BookingView>)> {
    let result = state.sales.confirm(&scope, hold_id).await.map_err(Error::from);
    metrics::order_outcome("confirm", &result);
    Ok(match result? {
        Confirmation::Booked(booking) => (StatusCode::CREATED, Json(booking)),
        Confirmation::AlreadyBooked(booking) => (StatusCode::OK, Json(booking)),
    })
}

/// What a new order (a hold, or a booking) can be refused with, beyond [`FanRefused`].
pub(super) struct OrderRefused;

impl IntoResponses for OrderRefused {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        refusals([
            ("400", "`bad_request`: an unreadable body, path or Idempotency-Key"),
            ("404", "`event_not_found`"),
            ("408", "`request_timeout`: the body arrived too slowly"),
            ("413", "`payload_too_large`: a body past 2 MB"),
            ("409", "`seat_unavailable`, `seat_contended`, `sold_out`, `fan_limit_reached` (the order would take the fan past the event's `max_per_fan`; `error.details` has `max_per_fan` and `remaining`, the places they may still take), or `request_in_progress` (an earlier request with this Idempotency-Key is being answered)"),
            ("422", "`invalid_selection`, `invalid_quantity`, `order_limit_exceeded`, `unknown_seat`, `duplicate_seat`, `unknown_section`, `invalid_email`, `idempotency_key_reused` (with another body), or `value_out_of_range` (the order's total)"),
            ("503", "`unavailable` (nothing was written), `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)"),
        ])
    }
}

/// `201 Created`, marked `Idempotent-Replayed: true` when it repeats an earlier answer.
pub(super) fn created(created: Created) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(created.order)).into_response();
    if created.replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    response
}
