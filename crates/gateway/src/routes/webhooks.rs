use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::{Json, Path, Query};
use service_kit::openapi::{AdminKeyRefused, RateLimited};
use service_kit::ErrorBody;

use sales::domain::Invalid;
use sales::webhooks::{DeliveryLogEntry, NewWebhook, RegisteredWebhook, RotatedSecret, Webhook};

use crate::auth::Admin;
use crate::error::{Error, Result};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register, list))
        .routes(routes!(update, delete))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
}

impl RegisterWebhook {
    pub(super) fn into_domain(self) -> Result<NewWebhook, Invalid> {
        NewWebhook::new(&self.url, self.event_id, self.topics)
    }
}

/// An endpoint to register.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RegisterWebhook {
    /// Where messages are POSTed: an absolute `http` or `https` URL without credentials.
    url: String,
    /// Only this event's messages; every event's if absent.
    event_id: Option<Uuid>,
    /// Only these topics (`booking.confirmed`, `booking.cancelled`, `payment.succeeded`,
    /// `payment.refunded`, `hold.expired`, `late_payment.needs_attention`); every topic if
    /// absent.
    topics: Option<Vec<String>>,
}

/// Registers a webhook endpoint. The answer carries its signing secret (Standard
/// Webhooks, `whsec_…`), shown this once: every message is POSTed to the URL signed with
/// it (`webhook-id`, `webhook-timestamp`, `webhook-signature`), at least once and in
/// order per event.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks",
    operation_id = "register_webhook",
    tag = "organizer",
    request_body = RegisterWebhook,
    responses(
        (status = 201, description = "Registered; the secret is not shown again", body = RegisteredWebhook),
        (status = 400, description = "`bad_request`: an unreadable body", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_webhook_url` (not absolute http(s), credentials, a fragment, too long, or naming localhost or a non-public IP address), `invalid_topics` (an unknown topic, none, or one twice) or `unknown_event`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all)]
async fn register(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<RegisterWebhook>,
) -> Result<(StatusCode, Json<RegisteredWebhook>)> {
    Ok((StatusCode::CREATED, Json(state.sales.register_webhook(body.into_domain()?).await?)))
}

#[derive(Serialize, ToSchema)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

/// Every registered endpoint, oldest first, without secrets.
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks",
    operation_id = "list_webhooks",
    tag = "organizer",
    responses(
        (status = 200, description = "The endpoints", body = WebhookList),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all)]
async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<WebhookList>> {
    Ok(Json(WebhookList { webhooks: state.sales.webhooks().await? }))
}

/// What to change in an endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateWebhook {
    /// `false` turns the endpoint off: nothing is sent, and its messages (pending, and
    /// those written meanwhile) wait. `true` turns it back on (also after a `410 Gone`):
    /// each event's stream resumes, in order, at the message where it stopped.
    enabled: bool,
}

/// Turns an endpoint off or on again. Off, its messages wait; on, they are delivered
/// in order from where each event's stream stopped, those written while it was off
/// included. Turning it on checks its URL again.
#[utoipa::path(
    patch,
    path = "/v1/admin/webhooks/{webhook_id}",
    operation_id = "update_webhook",
    tag = "organizer",
    params(("webhook_id" = Uuid, Path)),
    request_body = UpdateWebhook,
    responses(
        (status = 200, description = "The endpoint as it is now", body = Webhook),
        (status = 400, description = "`bad_request`: an unreadable id or body", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_webhook_url`: turning on an endpoint whose URL names a non-public address", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state, body))]
async fn update(
    _: Admin,
    State(state): State<AppState>,
    Path(webhook_id): Path<Uuid>,
    Json(body): Json<UpdateWebhook>,
) -> Result<Json<Webhook>> {
    Ok(Json(state.sales.set_webhook_enabled(webhook_id, body.enabled).await?))
}

/// Deletes an endpoint: nothing more is sent to it, its pending deliveries are dropped
/// (abandoned), and it answers `404` from then on. To stop it for a while instead, turn
/// it off (`PATCH`).
#[utoipa::path(
    delete,
    path = "/v1/admin/webhooks/{webhook_id}",
    operation_id = "delete_webhook",
    tag = "organizer",
    params(("webhook_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`bad_request`: an unreadable id", body = ErrorBody),
        (status = 404, description = "`webhook_not_found` (also one deleted before)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state))]
async fn delete(_: Admin, State(state): State<AppState>, Path(webhook_id): Path<Uuid>) -> Result<StatusCode> {
    state.sales.delete_webhook(webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Draws a new signing secret for an endpoint, answered this once. For the grace
/// window (`previous_secret_expires_at`; a day by default) every request carries two
/// `v1` signatures, space-separated in `webhook-signature`: the new secret's and the
/// old one's, so a receiver verifying with either accepts it and can switch at leisure.
/// After the window, only the new one's.
#[utoipa::path(
    post,
    path = "/v1/admin/webhooks/{webhook_id}/rotate-secret",
    operation_id = "rotate_webhook_secret",
    tag = "organizer",
    params(("webhook_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Rotated; the new secret is not shown again", body = RotatedSecret),
        (status = 400, description = "`bad_request`: an unreadable id", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state))]
async fn rotate_secret(
    _: Admin,
    State(state): State<AppState>,
    Path(webhook_id): Path<Uuid>,
) -> Result<Json<RotatedSecret>> {
    Ok(Json(state.sales.rotate_webhook_secret(webhook_id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct Page {
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

#[derive(Serialize, ToSchema)]
struct DeliveryLog {
    deliveries: Vec<DeliveryLogEntry>,
    limit: i64,
    offset: i64,
}

/// The endpoint's delivery log, newest message first: each message's topic, status,
/// attempts, and its latest attempt's answer or error.
#[utoipa::path(
    get,
    path = "/v1/admin/webhooks/{webhook_id}/deliveries",
    operation_id = "webhook_deliveries",
    tag = "organizer",
    params(("webhook_id" = Uuid, Path), Page),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryLog),
        (status = 400, description = "`bad_request`: an unreadable id or query, or limit or offset out of range", body = ErrorBody),
        (status = 404, description = "`webhook_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state, page))]
async fn deliveries(
    _: Admin,
    State(state): State<AppState>,
    Path(webhook_id): Path<Uuid>,
    Query(page): Query<Page>,
) -> Result<Json<DeliveryLog>> {
    if !(1..=1000).contains(&page.limit) || page.offset < 0 {
        return Err(Error::BadRequest("limit must be 1-1000 and offset at least 0".into()));
    }
    let deliveries = state.sales.webhook_deliveries(webhook_id, page.limit, page.offset).await?;
    Ok(Json(DeliveryLog { deliveries, limit: page.limit, offset: page.offset }))
}
