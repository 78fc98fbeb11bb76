//! Check-in: the organizer's scanner keys and counts, and the gates' scans.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use sales::tickets::{CheckinCounts, CheckinResult, NewScannerKey, OfflineScan};
use service_kit::extract::{Json, Path};
use service_kit::openapi::{AdminKeyRefused, RateLimited};
use service_kit::ErrorBody;

use crate::auth::{Admin, Scanner, ScannerRefused};
use crate::error::Result;
use crate::metrics;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_scanner_key))
        .routes(routes!(check_in))
        .routes(routes!(check_in_batch))
        .routes(routes!(counts))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScannerKeyBody {
    /// Who or which gate holds it, e.g. "North gate": 1-100 characters, no control
    /// characters.
    #[schema(pattern = r"^[^\u0000-\u001F\u007F-\u009F]{1,100}$")]
    pub(super) name: String,
}

/// Issues a scanner key for the event's gates: it checks tickets in and reads the
/// revocation feed, for this event only. Shown once; only its hash is kept.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{event_id}/scanner-keys",
    operation_id = "create_scanner_key",
    tag = "check-in",
    params(("event_id" = Uuid, Path)),
    request_body = ScannerKeyBody,
    responses(
        (status = 201, description = "The key (shown only now)", body = NewScannerKey),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_name`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state, body))]
async fn create_scanner_key(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<ScannerKeyBody>,
) -> Result<(StatusCode, Json<NewScannerKey>)> {
    Ok((StatusCode::CREATED, Json(state.sales.create_scanner_key(event_id, &body.name).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScanBody {
    /// What the QR code carried, as it was read.
    pub(super) secret: String,
    /// Which gate scanned: 1-100 characters, not only spaces, no control characters.
    #[schema(
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub(super) gate: String,
}

/// A gate's scan: `valid` (let them in; recorded with the gate and time), or
/// `already_checked_in` (when and where), `revoked`, `wrong_event`, `invalid` (with a
/// reason). Exactly one scan of a ticket is ever `valid`, however many gates scan it at
/// once. Any bytes scanned get one of these answers.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/checkins",
    operation_id = "check_in",
    tag = "check-in",
    params(("event_id" = Uuid, Path)),
    request_body = ScanBody,
    responses(
        (status = 200, description = "What the scan means (`result`)", body = CheckinResult),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_gate`", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` (scan again: a recorded check-in answers `already_checked_in` at the same gate) or `tickets_unavailable`", body = ErrorBody),
        ScannerRefused, RateLimited,
    ),
    security(("scanner_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn check_in(
    State(state): State<AppState>,
    Scanner(event_id): Scanner,
    Json(body): Json<ScanBody>,
) -> Result<Json<CheckinResult>> {
    let result = state.sales.check_in(event_id, &body.secret, &body.gate).await?;
    metrics::checkin(result.name());
    Ok(Json(result))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BatchBody {
    /// 1-500 scans an offline scanner made, with when it made them.
    #[schema(min_items = 1, max_items = 500)]
    pub(super) scans: Vec<OfflineScan>,
}

#[derive(Serialize, ToSchema)]
struct BatchResults {
    /// One answer per scan, in order.
    results: Vec<CheckinResult>,
}

/// Scans made offline, uploaded later: merged by the same rule as online scans, except
/// that the earliest scan of a ticket wins (an earlier offline scan takes the place of
/// a later recorded one). Uploading the same batch again changes nothing.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/checkins/batch",
    operation_id = "check_in_batch",
    tag = "check-in",
    params(("event_id" = Uuid, Path)),
    request_body = BatchBody,
    responses(
        (status = 200, description = "What each scan means", body = BatchResults),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_batch`, `invalid_gate` or `invalid_scanned_at` (in the future)", body = ErrorBody),
        (status = 503, description = "`unavailable`, `outcome_unknown` (upload again) or `tickets_unavailable`", body = ErrorBody),
        ScannerRefused, RateLimited,
    ),
    security(("scanner_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn check_in_batch(
    State(state): State<AppState>,
    Scanner(event_id): Scanner,
    Json(body): Json<BatchBody>,
) -> Result<Json<BatchResults>> {
    let results = state.sales.check_in_batch(event_id, body.scans).await?;
    for result in &results {
        metrics::checkin(result.name());
    }
    Ok(Json(BatchResults { results }))
}

/// Checked in against sold (live tickets), by section.
#[utoipa::path(
    get,
    path = "/v1/admin/events/{event_id}/checkins",
    operation_id = "checkin_counts",
    tag = "check-in",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The counts", body = CheckinCounts),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state))]
async fn counts(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<CheckinCounts>> {
    Ok(Json(state.sales.checkin_counts(event_id).await?))
}
