use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::extract::{Json, Path};
use service_kit::openapi::{AdminKeyRefused, EventLookupRefused, RateLimited};
use service_kit::ErrorBody;

use sales::catalog::EventChanges;
use sales::domain::event::{Layout, NewEvent, NewSection, Row, WaitlistSettings};
use sales::domain::refund_policy::RefundPolicy;
use sales::domain::Invalid;
use sales::model::{EventDetails, EventSummary};
use sales::orders::EventCancellation;

use crate::auth::Admin;
use crate::error::Result;
use crate::state::{AppState, Catalogue, SeatMap};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(catalogue, create))
        .routes(routes!(list))
        .routes(routes!(details, change))
        .routes(routes!(seat_map))
        .routes(routes!(cancel_event))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateEvent {
    name: String,
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Seats one order may take; 10 if absent.
    max_per_order: Option<u32>,
    /// How long a hold keeps its seats; 600 if absent.
    hold_ttl_seconds: Option<u32>,
    sections: Vec<CreateSection>,
    /// How much a fan gets back for cancelling, by hours before `starts_at`; absent:
    /// fans may not cancel (the organizer still can). Changeable later.
    refund_policy: Option<RefundPolicy>,
    /// Places one fan may hold and book in this event in all (live holds and bookings
    /// together), 1-200000; absent or null: no limit. Changeable later.
    max_per_fan: Option<u32>,
    /// Whether fans may join a waitlist for sold-out sections; false if absent.
    /// Changeable later.
    waitlist_enabled: Option<bool>,
    /// How long a waitlist offer holds its places for the fan, 1-604800; 1800 if
    /// absent. Changeable later.
    waitlist_offer_ttl_secs: Option<u32>,
    /// Listed in the public catalogue (`GET /v1/events`) from now; false if absent:
    /// publish it later, once its sale is set up. Changeable later.
    published: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateSection {
    name: String,
    /// `reserved` or `general_admission`.
    kind: String,
    price: PriceBody,
    /// General admission: how many places.
    capacity: Option<u32>,
    /// Reserved, one unnamed row: seats "1".."N".
    seats: Option<u32>,
    /// Reserved: named rows, best first.
    rows: Option<Vec<RowBody>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    amount_minor: i64,
    currency: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RowBody {
    label: String,
    seats: u32,
}

impl CreateEvent {
    pub(super) fn into_domain(self) -> Result<NewEvent, Invalid> {
        let invalid = |m: String| Invalid::new("invalid_event", m);
        let currency = self.sections.first().map(|s| s.price.currency.clone()).unwrap_or_default();
        let mut sections = Vec::with_capacity(self.sections.len());
        for s in self.sections {
            if s.price.currency != currency {
                return Err(invalid("all sections of an event must be priced in one currency".into()));
            }
            let name = service_kit::quoted(&s.name);
            let layout = match (s.kind.as_str(), s.capacity, s.seats, s.rows) {
                ("general_admission", Some(capacity), None, None) => Layout::GeneralAdmission(capacity),
                ("reserved", None, Some(seats), None) => Layout::Reserved(vec![Row { label: None, seats }]),
                ("reserved", None, None, Some(rows)) => {
                    Layout::Reserved(rows.into_iter().map(|r| Row { label: Some(r.label), seats: r.seats }).collect())
                }
                ("general_admission", ..) => {
                    return Err(invalid(format!("section {name}: general admission takes only \"capacity\"")))
                }
                ("reserved", ..) => {
                    return Err(invalid(format!(
                        "section {name}: a reserved section takes either \"seats\" (numbered 1..N) or \"rows\""
                    )))
                }
                (other, ..) => {
                    return Err(invalid(format!(
                        "section {name}: kind {} must be \"reserved\" or \"general_admission\"",
                        service_kit::quoted(other)
                    )))
                }
            };
            sections.push(NewSection { name: s.name, price_minor: s.price.amount_minor, layout });
        }
        let event = NewEvent {
            name: self.name,
            starts_at: self.starts_at,
            currency,
            max_per_order: self.max_per_order.unwrap_or(10),
            hold_ttl_seconds: self.hold_ttl_seconds.unwrap_or(600),
            sections,
            refund_policy: self.refund_policy,
            max_per_fan: self.max_per_fan,
            waitlist: WaitlistSettings {
                enabled: self.waitlist_enabled.unwrap_or(false),
                offer_ttl_seconds: self
                    .waitlist_offer_ttl_secs
                    .unwrap_or(WaitlistSettings::default().offer_ttl_seconds),
            },
            published: self.published.unwrap_or(false),
        };
        event.validate()?;
        Ok(event)
    }
}

#[utoipa::path(
    post,
    path = "/v1/events",
    operation_id = "create_event",
    tag = "events",
    request_body = CreateEvent,
    responses(
        (status = 201, description = "Created, with its sections", body = EventDetails),
        (status = 400, description = "`bad_request`: an unreadable body", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_event`: the event breaks a rule, said in the message (names without control characters, prices 0-10^12 minor units)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all)]
async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<CreateEvent>,
) -> Result<(StatusCode, Json<EventDetails>)> {
    Ok((StatusCode::CREATED, Json(state.sales.create_event(body.into_domain()?).await?)))
}

/// What the organizer may change after creation (D8). A field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangeEvent {
    /// The policy for cancellations from now on; `null` removes it (fans may then not
    /// cancel). Bookings cancelled later are refunded by the policy in force then.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RefundPolicy>)]
    refund_policy: Option<Option<RefundPolicy>>,
    /// The limit of places per fan for orders from now on (1-200000); `null` removes it.
    /// Holds and bookings already made stay, also above a lowered limit; the fan's next
    /// order is refused (`409 fan_limit_reached`) until they are under it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>)]
    max_per_fan: Option<Option<u32>>,
    /// Turns the waitlist on or off. Off ends every waiting entry at once (their
    /// sections go back on sale); offers already made stay.
    waitlist_enabled: Option<bool>,
    /// How long the next waitlist offers last, 1-604800 seconds.
    waitlist_offer_ttl_secs: Option<u32>,
    /// `true` lists the event in the public catalogue (an event listed already keeps its
    /// `published_at`); `false` takes it out. Its details stay readable by id either way.
    published: Option<bool>,
}

impl ChangeEvent {
    pub(super) fn into_domain(self) -> Result<EventChanges, Invalid> {
        let changes = EventChanges {
            refund_policy: self.refund_policy,
            max_per_fan: self.max_per_fan,
            waitlist_enabled: self.waitlist_enabled,
            waitlist_offer_ttl_seconds: self.waitlist_offer_ttl_secs,
            published: self.published,
        };
        changes.validate()?;
        Ok(changes)
    }
}

/// Tells "absent" (None) from "null" (Some(None)).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[utoipa::path(
    patch,
    path = "/v1/events/{event_id}",
    operation_id = "change_event",
    tag = "events",
    params(("event_id" = Uuid, Path)),
    request_body = ChangeEvent,
    responses(
        (status = 200, description = "The event as changed", body = EventDetails),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 422, description = "`invalid_refund_policy`, or `invalid_event` (`max_per_fan` or `waitlist_offer_ttl_secs` out of range)", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state, body))]
async fn change(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<ChangeEvent>,
) -> Result<Json<EventDetails>> {
    Ok(Json(state.sales.change_event(event_id, body.into_domain()?).await?))
}

/// Cancels the whole event: nothing more is sold (every replica refuses orders with
/// `event_cancelled` within `gateway.event_rules_max_age_ms`), every live booking is
/// cancelled and refunded in full, every active hold released, and a payment arriving
/// later for one of its holds is refunded. Cancelling again finishes what is left.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{event_id}/cancel",
    operation_id = "cancel_event",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "What this call cancelled, refunded and released", body = EventCancellation),
        (status = 400, description = "`bad_request`: the event id is not a UUID", body = ErrorBody),
        (status = 404, description = "`event_not_found`", body = ErrorBody),
        (status = 503, description = "`unavailable` or `outcome_unknown` (cancelling again is safe)", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip(state))]
async fn cancel_event(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
) -> Result<Json<EventCancellation>> {
    Ok(Json(state.sales.cancel_event(event_id).await?))
}

#[derive(Serialize, ToSchema)]
struct EventList {
    events: Vec<EventSummary>,
}

/// Every event, published or not, newest first (at most 1,000).
#[utoipa::path(
    get,
    path = "/v1/admin/events",
    operation_id = "list_events",
    tag = "organizer",
    responses(
        (status = 200, description = "Every event", body = EventList),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        AdminKeyRefused, RateLimited,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all)]
async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<EventList>> {
    Ok(Json(EventList { events: state.sales.list_events().await? }))
}

/// The public catalogue: events their organizers published, neither cancelled nor
/// started, soonest first (those without a date last; at most 200), with each
/// section's price and places for sale, whether any are (`sale_state`) and the state
/// of the event's waiting room. Answered from a copy as old as
/// `gateway.seat_map_max_age_ms`.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "catalogue",
    tag = "events",
    responses(
        (status = 200, description = "The events on sale or coming up", body = Catalogue),
        (status = 503, description = "`unavailable`", body = ErrorBody),
        RateLimited,
    ),
)]
#[tracing::instrument(skip_all)]
async fn catalogue(State(state): State<AppState>, headers: HeaderMap) -> Result<Response> {
    Ok(state.catalogue_json().await?.answer(&headers))
}

#[utoipa::path(
    get,
    path = "/v1/events/{event_id}",
    tag = "events",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The event, with what remains in each section (as stale as `gateway.seat_map_max_age_ms`)", body = EventDetails),
        EventLookupRefused, RateLimited,
    ),
)]
#[tracing::instrument(skip(state, headers))]
async fn details(State(state): State<AppState>, Path(event_id): Path<Uuid>, headers: HeaderMap) -> Result<Response> {
    Ok(state.event_details_json(event_id).await?.answer(&headers))
}

/// Every seat and its state; answered from a short-lived cache when one is configured.
#[utoipa::path(
    get,
    path = "/v1/events/{event_id}/seats",
    tag = "events",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The seat map", body = SeatMap),
        EventLookupRefused, RateLimited,
    ),
)]
#[tracing::instrument(skip(state, headers))]
async fn seat_map(State(state): State<AppState>, Path(event_id): Path<Uuid>, headers: HeaderMap) -> Result<Response> {
    Ok(state.seat_map_json(event_id).await?.answer(&headers))
}
