//! The live seat map (issue 17): the venue's layout, cached long, and the seats' states
//! as a snapshot or a stream of Server-Sent Events ([`crate::seat_stream`]).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::Path;
use service_kit::openapi::{EventLookupRefused, RateLimited};
use service_kit::ErrorBody;

use sales::model::SeatLayout;

use crate::error::Result;
use crate::seat_stream::{Message, Subscription};
use crate::state::{AppState, LAYOUT_MAX_AGE};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(layout)).routes(routes!(seat_states)).routes(routes!(stream))
}

/// The venue: sections with their prices, rows best first and each row's seats. Fixed
/// when the event is created, so clients and proxies may keep it.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/seats/layout",
    operation_id = "seat_layout",
    tag = "seat map",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The layout; `Cache-Control: public, max-age=300`", body = SeatLayout),
        EventLookupRefused, RateLimited,
    ),
)]
#[tracing::instrument(skip(state, headers))]
async fn layout(State(state): State<AppState>, Path(event_id): Path<Uuid>, headers: HeaderMap) -> Result<Response> {
    let mut response = state.seat_layout_json(event_id).await?.answer(&headers);
    let cache_control = format!("public, max-age={}", LAYOUT_MAX_AGE.as_secs());
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_str(&cache_control).expect("ascii"));
    Ok(response)
}

/// The seats' states now, as a stream's first `snapshot` event carries them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the JSON `seat_feed::live` writes; never built.
struct SeatStates {
    /// The change feed's position: the `id:` a stream would go on from.
    position: i64,
    /// How many seats `states` has.
    seats: i64,
    /// A letter per reserved seat in ascending seat id (the layout's ids sorted):
    /// `a` available, `h` held (free again once its `held_until` has passed), `b` booked.
    states: String,
    /// `[[unix ms, [seat id, …]], …]`: when each held seat's hold lapses.
    held_until: Vec<Vec<serde_json::Value>>,
    /// Sections whose free seats are kept for their waitlist: not for sale to others.
    kept_for_waitlist: Vec<Uuid>,
}

/// The seats' states now, read from this replica's live map: no database read per
/// request. For clients that cannot hold a stream open.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/seats/state",
    operation_id = "seat_states",
    tag = "seat map",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "Every reserved seat's state", body = SeatStates),
        EventLookupRefused, RateLimited,
    ),
)]
#[tracing::instrument(skip(state))]
async fn seat_states(State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Response> {
    let snapshot = state.seat_streams.snapshot(event_id).await?;
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")];
    Ok((headers, snapshot.json.to_string()).into_response())
}

/// The seats as they change, as Server-Sent Events: first a `snapshot` (the JSON of
/// `GET …/seats/state`), then `changes` — `{"from":F,"position":P,"seats":[[id,
/// "a"|"h"|"b",held_until_ms|null],…],"kept_for_waitlist":[…]}`, every seat that
/// changed with what it is now — at most once per `gateway.seat_stream.poll_ms`. Each
/// event's `id:` is its position; a client reconnecting with `Last-Event-ID` is sent
/// what it missed, or a fresh `snapshot` when that is no longer kept, so a gap never
/// goes unnoticed. The stream ends after `max_stream_secs`; browsers reconnect by
/// themselves.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/seats/stream",
    operation_id = "seat_stream",
    tag = "seat map",
    params(
        ("event_id" = Uuid, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "The last `id:` received; anything else is answered with a snapshot"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`: `snapshot` and `changes` events", content_type = "text/event-stream", body = SeatStreamEvent),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 503, description = "`too_many_streams` (with `Retry-After`): this replica streams `max_streams` already; or `unavailable`: the database cannot be reached", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip(state, headers))]
async fn stream(State(state): State<AppState>, Path(event_id): Path<Uuid>, headers: HeaderMap) -> Result<Response> {
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    let subscription = state.seat_streams.subscribe(event_id, last_event_id).await?;
    let headers = [
        (header::CONTENT_TYPE, "text/event-stream"),
        (header::CACHE_CONTROL, "no-cache"),
        // Proxies that buffer answers (nginx, and so the usual ingress) would hold
        // updates back.
        (HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    Ok((headers, Body::from_stream(frames(subscription))).into_response())
}

/// One event of the seat stream, in the description.
struct SeatStreamEvent;

impl utoipa::PartialSchema for SeatStreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        service_kit::openapi::server_sent_event(&["snapshot", "changes"], true)
    }
}

impl utoipa::ToSchema for SeatStreamEvent {}

/// The events, each already framed and shared with every other viewer of the event.
fn frames(subscription: Subscription) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::unfold(subscription, |mut subscription| async move {
        let message = subscription.next().await?;
        match &message {
            Message::Snapshot(_) => crate::metrics::seat_stream_sent("snapshot"),
            Message::Delta(_) => crate::metrics::seat_stream_sent("delta"),
            Message::KeepAlive => {}
        }
        Some((Ok(message.into_frame()), subscription))
    })
}
