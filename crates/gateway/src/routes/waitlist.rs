use axum::extract::State;
use axum::http::StatusCode;
use sales::model::WaitlistEntryView;
use sales::waitlist::WaitlistRequest;
use service_kit::extract::Json;
use service_kit::openapi::RateLimited;
use service_kit::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{FanRefused, WaitlistFan};
use crate::error::Result;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(join)).routes(routes!(show, leave))
}

/// Joins the event's waitlist for sections that are sold out. Places that come back go
/// to the line in order, as an offer: a hold for the fan (`offer.hold_id`), taken with
/// the hold's checkout (or confirm when free) before it expires.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/waitlist",
    operation_id = "join_waitlist",
    tag = "waitlist",
    params(("event_id" = Uuid, Path)),
    request_body = WaitlistRequest,
    responses(
        (status = 201, description = "In line (or already offered places that were waiting)", body = WaitlistEntryView),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 409, description = "`waitlist_closed` (the event has no waitlist, was cancelled or has started), `not_sold_out` (a listed section has places for sale: book them), or `already_waitlisted` (the fan waits already, or holds an offer)", body = ErrorBody),
        (status = 422, description = "`invalid_quantity`, `invalid_selection`, `unknown_section` or `invalid_email`", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        FanRefused, RateLimited,
    ),
    security(("access_token" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn join(
    State(state): State<AppState>,
    WaitlistFan(scope): WaitlistFan,
    Json(request): Json<WaitlistRequest>,
) -> Result<(StatusCode, Json<WaitlistEntryView>)> {
    Ok((StatusCode::CREATED, Json(state.sales.join_waitlist(&scope, &request).await?)))
}

/// The fan's latest entry: their place in line, or their offer and what became of it.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/waitlist/me",
    operation_id = "show_waitlist_entry",
    tag = "waitlist",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The fan's entry", body = WaitlistEntryView),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `waitlist_entry_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        FanRefused, RateLimited,
    ),
    security(("access_token" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn show(State(state): State<AppState>, WaitlistFan(scope): WaitlistFan) -> Result<Json<WaitlistEntryView>> {
    Ok(Json(state.sales.waitlist_entry(&scope).await?))
}

/// Leaves the line; an offer the fan holds is declined, its places going to the next in
/// line. Leaving again answers with the entry as it is.
#[utoipa::path(
    delete,
    path = "/v1/events/{event_id}/waitlist/me",
    operation_id = "leave_waitlist",
    tag = "waitlist",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The fan's entry, left (or as it was)", body = WaitlistEntryView),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found` or `waitlist_entry_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` or `revocations_not_loaded` (with `Retry-After`)", body = ErrorBody),
        FanRefused, RateLimited,
    ),
    security(("access_token" = [])),
)]
#[tracing::instrument(skip_all, fields(event_id = %scope.event_id))]
async fn leave(State(state): State<AppState>, WaitlistFan(scope): WaitlistFan) -> Result<Json<WaitlistEntryView>> {
    Ok(Json(state.sales.leave_waitlist(&scope).await?))
}
