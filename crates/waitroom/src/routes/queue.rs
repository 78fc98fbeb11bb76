//! The fan's endpoints: join, poll, leave, and the admission receipt.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::client_address::ClientAddress;
use service_kit::extract::{Body, Json, Path};
use service_kit::openapi::RateLimited;
use service_kit::ErrorBody;

use crate::app::AppState;
use crate::domain::fan::FanId;
use crate::domain::receipt::Receipt;
use crate::domain::ticket::Ticket;
use crate::error::{Error, Result};
use crate::model::FanView;
use crate::store::Arrival;
use crate::streams::Update;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(join))
        .routes(routes!(leave, poll))
        .routes(routes!(receipt))
        .routes(routes!(stream))
        .routes(routes!(challenge))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinBody {
    /// The fan's own id, vouched for by `fan_id_signature`; one is issued when absent.
    pub(super) fan_id: Option<String>,
    /// The organizer's signature on `fan_id` (see the README's "Fan ids"), without which
    /// a fan id of the client's own is refused.
    pub(super) fan_id_signature: Option<String>,
    /// For an event with a `pow_difficulty`: the base64 of the ALTCHA payload (the
    /// challenge from `GET …/queue/challenge` and its solution), as ALTCHA's widget
    /// sends it.
    pub(super) pow: Option<String>,
}

/// The body is optional: a fan without an id of their own sends nothing (or `null`, as
/// the description's optional body allows).
pub(super) fn parse_join_body(body: &[u8]) -> Result<JoinBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JoinBody::default());
    }
    let body: Option<JoinBody> =
        serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))?;
    Ok(body.unwrap_or_default())
}

/// Joins the event's queue, or answers the fan's place when they are in it already.
#[utoipa::path(
    post,
    path = "/v1/events/{event_id}/queue",
    tag = "queue",
    params(("event_id" = Uuid, Path)),
    request_body(content = Option<JoinBody>, description = "Optional: a fan without an id of their own sends nothing"),
    responses(
        (status = 201, description = "Joined", body = FanView),
        (status = 200, description = "Already in the queue: their standing", body = FanView),
        (status = 400, description = "`bad_request`: an unreadable body or event id; `pow_malformed`: `pow` is not a base64 ALTCHA payload", body = ErrorBody),
        (status = 403, description = "`fan_id_not_vouched`: the fan id's signature is missing or wrong, or this waiting room takes no fan id of the client's own; `pow_required`, `pow_invalid`, `pow_expired`: the event asks for a proof of work and this join's is missing, wrong or too old", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 409, description = "`event_closed`; `pow_replayed`: another fan already joined with this proof of work", body = ErrorBody),
        (status = 422, description = "`invalid_fan_id`", body = ErrorBody),
        (status = 503, description = "`unavailable`: the waiting room cannot reach Redis", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn join(
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    client: ClientAddress,
    Body(body): Body,
) -> Result<(StatusCode, Json<FanView>)> {
    let body = parse_join_body(&body)?;
    let fan = body.fan_id.map(|raw| FanId::parse(&raw)).transpose()?;
    if let Some(fan) = &fan {
        state.client_fan_ids.check(event_id, fan, body.fan_id_signature.as_deref())?;
    }
    state.join_limits.check_address(&client).map_err(Error::RateLimited)?;
    if let Some(fan) = &fan {
        state.join_limits.check_fan(fan.as_str()).map_err(Error::RateLimited)?;
    }
    let (view, arrival) = state.queue.join(event_id, fan.unwrap_or_else(FanId::issue), body.pow.as_deref()).await?;
    let status = if arrival == Arrival::Joined { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)))
}

/// A fresh proof-of-work challenge (ALTCHA PoW v2, deterministic mode) for a join to an
/// event whose organizer set a `pow_difficulty`: solve it (ALTCHA's widget or library)
/// and join with the payload as `pow`. It expires after `waitroom.pow.challenge_ttl_secs`.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/queue/challenge",
    tag = "queue",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "An ALTCHA challenge: `parameters` (algorithm, cost, nonce, salt, keyPrefix, keySignature, expiresAt, data.event) and `signature`", body = Object),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`, or `pow_not_required`: joins to this event need no proof of work", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn challenge(
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    client: ClientAddress,
) -> Result<Json<crate::pow::Challenge>> {
    state.join_limits.check_address(&client).map_err(Error::RateLimited)?;
    Ok(Json(state.queue.challenge(event_id).await?))
}

/// The fan's standing now, with a fresh ticket (and the access token once admitted).
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/queue/{ticket}",
    tag = "queue",
    params(("event_id" = Uuid, Path), ("ticket" = String, Path, description = "The latest ticket the fan was given")),
    responses(
        (status = 200, description = "The fan's standing", body = FanView),
        (status = 400, description = "`malformed_ticket`, or `bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`, `ticket_not_found` or `not_in_queue`", body = ErrorBody),
        (status = 409, description = "`queue_reset`: the queue was lost and this ticket cannot restore the fan's place", body = ErrorBody),
        (status = 410, description = "`ticket_expired`: join the queue again", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn poll(
    State(state): State<AppState>,
    Path((event_id, ticket)): Path<(Uuid, String)>,
    client: ClientAddress,
) -> Result<Json<FanView>> {
    let ticket = checked_ticket(&state, event_id, &ticket, &client)?;
    Ok(Json(state.queue.poll(event_id, ticket).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/events/{event_id}/queue/{ticket}",
    tag = "queue",
    params(("event_id" = Uuid, Path), ("ticket" = String, Path, description = "The latest ticket the fan was given")),
    responses(
        (status = 204, description = "Left the queue"),
        (status = 400, description = "`malformed_ticket`, or `bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`, `ticket_not_found` or `not_in_queue`", body = ErrorBody),
        (status = 410, description = "`ticket_expired`: join the queue again", body = ErrorBody),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn leave(
    State(state): State<AppState>,
    Path((event_id, ticket)): Path<(Uuid, String)>,
    client: ClientAddress,
) -> Result<StatusCode> {
    let ticket = checked_ticket(&state, event_id, &ticket, &client)?;
    state.queue.leave(event_id, ticket).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One event of a fan's stream, in the description.
struct StandingEvent;

impl utoipa::PartialSchema for StandingEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        service_kit::openapi::server_sent_event(&["status", "error"], false)
    }
}

impl utoipa::ToSchema for StandingEvent {}

/// The fan's standing pushed as it changes, as Server-Sent Events: `status` events
/// carrying what a poll answers (the first at once; then at most once per
/// `waitroom.stream.tick_ms` as the line moves, and an exact one at least every third of
/// the abandonment timeout, which keeps the fan's place as polling does; positions
/// between exact ones are estimated from the head of the line, never lower than the
/// truth). The
/// `status` with the access token, once admitted, is the last. An `error` event (the
/// error envelope: the fan left, was skipped as gone, the queue was reset) ends the
/// stream too. It also ends after `max_stream_secs`: reconnect with the latest ticket,
/// or poll.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/queue/{ticket}/stream",
    tag = "queue",
    params(("event_id" = Uuid, Path), ("ticket" = String, Path, description = "The latest ticket the fan was given")),
    responses(
        (status = 200, description = "`text/event-stream`: `status` events (a `FanView` each), and a final `error` event on a refusal", content_type = "text/event-stream", body = StandingEvent),
        (status = 400, description = "`malformed_ticket`, or `bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`, `ticket_not_found` or `not_in_queue`", body = ErrorBody),
        (status = 409, description = "`queue_reset`: the queue was lost and this ticket cannot restore the fan's place", body = ErrorBody),
        (status = 410, description = "`ticket_expired`: join the queue again", body = ErrorBody),
        (status = 503, description = "`too_many_streams` (with `Retry-After`): poll instead; or `unavailable`", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn stream(
    State(state): State<AppState>,
    Path((event_id, ticket)): Path<(Uuid, String)>,
    client: ClientAddress,
) -> Result<Response> {
    let ticket = checked_ticket(&state, event_id, &ticket, &client)?;
    let fan_stream = state.line_streams.subscribe(event_id, ticket).await?;
    let events = futures::stream::unfold(fan_stream, |mut fan_stream| async move {
        let event = match fan_stream.next().await? {
            Update::Standing(view) => Event::default().event("status").json_data(&*view).ok()?,
            Update::Refused(error) => {
                let body = json!({ "error": { "code": error.code(), "message": error.to_string() } });
                Event::default().event("error").data(body.to_string())
            }
        };
        Some((Ok::<_, Infallible>(event), fan_stream))
    });
    let keep_alive = KeepAlive::new().interval(state.line_streams.keep_alive());
    let mut response = Sse::new(events).keep_alive(keep_alive).into_response();
    // Proxies that buffer answers (nginx, and so the usual ingress) would hold updates back.
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// A signed admission receipt, and what it says.
#[derive(Serialize, ToSchema)]
struct ReceiptView {
    /// `base64url(payload).base64url(Ed25519 signature over the payload)`: keep it to
    /// check the published admission log (README "Admission receipts").
    receipt: String,
    says: Receipt,
}

/// The receipt of the fan's latest recorded admission (issue 18): keep it to check,
/// after the sale, that nobody who joined after you was let in before you.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/queue/{ticket}/receipt",
    tag = "queue",
    params(("event_id" = Uuid, Path), ("ticket" = String, Path, description = "The latest ticket the fan was given")),
    responses(
        (status = 200, description = "The receipt", body = ReceiptView),
        (status = 400, description = "`malformed_ticket`, or `bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`ticket_not_found`, or `no_recorded_admission`: not admitted, or admitted less than about a second ago (admissions are recorded in batches): try again", body = ErrorBody),
        (status = 410, description = "`ticket_expired`: join the queue again", body = ErrorBody),
        (status = 503, description = "`receipts_unavailable`: no receipt key is configured; or `unavailable`", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn receipt(
    State(state): State<AppState>,
    Path((event_id, ticket)): Path<(Uuid, String)>,
    client: ClientAddress,
) -> Result<Json<ReceiptView>> {
    let ticket = checked_ticket(&state, event_id, &ticket, &client)?;
    let (receipt, says) = state.receipts.receipt(event_id, &ticket.fan).await?;
    Ok(Json(ReceiptView { receipt, says }))
}

/// The ticket, verified, once the client and then the ticket are within their limits.
/// The address comes first, so a flood of made-up tickets is refused before each costs
/// an HMAC check; the ticket's own bucket is keyed by event and fan.
fn checked_ticket(state: &AppState, event_id: Uuid, raw: &str, client: &ClientAddress) -> Result<Ticket> {
    state.poll_limits.check_address(client).map_err(Error::RateLimited)?;
    let ticket = state.queue.verify(event_id, raw)?;
    state.poll_limits.check_fan(&format!("{event_id}/{}", ticket.fan)).map_err(Error::RateLimited)?;
    Ok(ticket)
}
