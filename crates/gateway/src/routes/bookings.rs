use axum::extract::State;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::{Json, Path, Query};
use service_kit::openapi::{AdminKeyRefused, RateLimited};
use service_kit::ErrorBody;

use sales::model::{AdminBookingView, BookingView};
use sales::orders::SeatRequest;

use super::extract::IdempotencyKey;
use super::holds::OrderRefused;
use crate::auth::{Admin, BookingHolder, Fan, FanRefused, HolderRefused};
use crate::error::{Error, Result};
use crate::metrics;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(book, list_mine))
        .routes(routes!(show))
        .routes(routes!(cancel))
        .routes(routes!(rotate_link))
        .routes(routes!(cancel_as_organizer))
        .routes(routes!(list_all))
}

/// Holds and confirms in one transaction, for events without a checkout step.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/bookings",
    tag = "orders",
    params(("event_id" = Uuid, Path), IdempotencyKey),
    request_body = SeatRequest,
    responses(
        (status = 201, description = "Booked; `Idempotent-Replayed: true` when it repeats an earlier answer", body = BookingView,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        OrderRefused, FanRefused, RateLimited,
    ),
    security(("access_token" = [])),
)]
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

#[derive(Serialize, ToSchema)]
struct MyBookings {
    bookings: Vec<BookingView>,
}

#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/bookings",
    tag = "orders",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The fan's bookings for the event", body = MyBookings),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 503, description = "`unavailable` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        FanRefused, RateLimited,
    ),
    security(("access_token" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn list_mine(State(state): State<AppState>, Fan(scope): Fan) -> Result<Json<MyBookings>> {
    Ok(Json(MyBookings { bookings: state.sales.my_bookings(&scope).await? }))
}

/// The booking, with its current link. For the booking's fan (access token) or through
/// the booking's link (`?link=…`), long after the access token expired.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/bookings/{booking_id}",
    operation_id = "show_booking",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The booking", body = BookingView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`booking_not_found` (also another fan's booking, or a revoked link's)", body = ErrorBody),
        (status = 503, description = "`unavailable`, `tickets_unavailable` (a link, and no ticket keys here) or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
async fn show(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(state.sales.get_booking(&access, event_id, booking_id).await?))
}

/// Cancels a confirmed booking by the event's refund policy in force now: the seats go
/// back on sale at once, and a paid booking's refund (the policy's share of the price,
/// by hours before the start) is started and shown on the booking. Cancelling it again
/// answers it as it is. For the booking's fan (access token) or through the booking's
/// link (`?link=…`), long after the access token expired: the same rules either way.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/bookings/{booking_id}/cancel",
    tag = "orders",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The booking, cancelled, with its refund", body = BookingView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 403, description = "`cancellation_not_allowed`: the event has no refund policy (only the organizer may cancel)", body = ErrorBody),
        (status = 404, description = "`booking_not_found` (also another fan's booking, or a revoked link's)", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown`, `tickets_unavailable` (a link, and no ticket keys here) or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
async fn cancel(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(state.sales.cancel(&access, event_id, booking_id).await?))
}

/// Revokes every link of the booking given out so far and answers the booking with a
/// new one (a link leaked or went to the wrong person): from the commit on, an old link
/// opens nothing (the booking, tickets, QR codes, the printable page, reissue, cancel, this). For the
/// booking's fan (access token) or through the booking's current link. Its tickets'
/// secrets stay as they are: reissue a ticket whose QR code leaked.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/bookings/{booking_id}/rotate-link",
    operation_id = "rotate_booking_link",
    tag = "tickets",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The booking with its new `link`", body = BookingView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`booking_not_found` (also another fan's booking, or a revoked link's)", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown`, `tickets_unavailable` (no ticket keys here) or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        HolderRefused, RateLimited,
    ),
    security(("access_token" = []), ("booking_link" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id, %booking_id))]
async fn rotate_link(
    State(state): State<AppState>,
    BookingHolder(access): BookingHolder,
    Path((event_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(state.sales.rotate_booking_link(&access, event_id, booking_id).await?))
}

/// Cancels a booking as the organizer, whatever the refund policy says, and refunds it
/// in full. Cancelling it again answers it as it is.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{event_id}/bookings/{booking_id}/cancel",
    operation_id = "cancel_booking_as_organizer",
    tag = "organizer",
    params(("event_id" = Uuid, Path), ("booking_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The booking, cancelled, with its refund", body = BookingView),
        (status = 400, description = "`bad_request`: an id is not a UUID", body = ErrorBody),
        (status = 404, description = "`booking_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown` (cancelling again is safe)", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state))]
async fn cancel_as_organizer(
    _: Admin,
    State(state): State<AppState>,
    Path((event_id, booking_id)): Path<(Uuid, Uuid)>,
) -> Result<Json<BookingView>> {
    Ok(Json(state.sales.cancel_as_organizer(event_id, booking_id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AdminListing {
    /// Only this event's bookings.
    event_id: Option<Uuid>,
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: i64,
    #[serde(default)]
    #[param(minimum = 0, default = 0)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

/// A page of every fan's bookings, newest first.
#[derive(Serialize, ToSchema)]
struct BookingPage {
    bookings: Vec<AdminBookingView>,
    limit: i64,
    offset: i64,
}

#[utoipa::path(
    get,
    path = "/v1/admin/bookings",
    tag = "organizer",
    params(AdminListing),
    responses(
        (status = 200, description = "A page of bookings", body = BookingPage),
        (status = 400, description = "`bad_request`: an unreadable query, or limit or offset out of range", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all)]
async fn list_all(_: Admin, State(state): State<AppState>, Query(q): Query<AdminListing>) -> Result<Json<BookingPage>> {
    if !(1..=1000).contains(&q.limit) || q.offset < 0 {
        return Err(Error::BadRequest("limit must be 1-1000 and offset at least 0".into()));
    }
    let bookings = state.sales.all_bookings(q.event_id, q.limit, q.offset).await?;
    Ok(Json(BookingPage { bookings, limit: q.limit, offset: q.offset }))
}
