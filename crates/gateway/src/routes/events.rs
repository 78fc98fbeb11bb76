use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use service_kit::extract::{Json, Path};

use sales::domain::event::{Layout, NewEvent, NewSection, Row};
use sales::domain::Invalid;
use sales::model::EventDetails;

use crate::auth::Admin;
use crate::error::Result;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list).post(create))
        .route("/v1/events/{event_id}", get(details))
        .route("/v1/events/{event_id}/seats", get(seat_map))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEvent {
    name: String,
    starts_at: Option<chrono::DateTime<chrono::Utc>>,
    max_per_order: Option<u32>,
    hold_ttl_seconds: Option<u32>,
    sections: Vec<CreateSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSection {
    name: String,
    kind: String,
    price: PriceBody,
    /// General admission: how many places.
    capacity: Option<u32>,
    /// Reserved, one unnamed row: seats "1".."N".
    seats: Option<u32>,
    /// Reserved: named rows, best first.
    rows: Option<Vec<RowBody>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceBody {
    amount_minor: i64,
    currency: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RowBody {
    label: String,
    seats: u32,
}

impl CreateEvent {
    fn into_domain(self) -> Result<NewEvent, Invalid> {
        let invalid = |m: String| Invalid::new("invalid_event", m);
        let currency = self.sections.first().map(|s| s.price.currency.clone()).unwrap_or_default();
        let mut sections = Vec::with_capacity(self.sections.len());
        for s in self.sections {
            if s.price.currency != currency {
                return Err(invalid("all sections of an event must be priced in one currency".into()));
            }
            let layout = match (s.kind.as_str(), s.capacity, s.seats, s.rows) {
                ("general_admission", Some(capacity), None, None) => Layout::GeneralAdmission(capacity),
                ("reserved", None, Some(seats), None) => Layout::Reserved(vec![Row { label: None, seats }]),
                ("reserved", None, None, Some(rows)) => {
                    Layout::Reserved(rows.into_iter().map(|r| Row { label: Some(r.label), seats: r.seats }).collect())
                }
                ("general_admission", ..) => {
                    return Err(invalid(format!("section {:?}: general admission takes only \"capacity\"", s.name)))
                }
                ("reserved", ..) => {
                    return Err(invalid(format!(
                        "section {:?}: a reserved section takes either \"seats\" (numbered 1..N) or \"rows\"",
                        s.name
                    )))
                }
                (other, ..) => {
                    return Err(invalid(format!(
                        "section {:?}: kind {other:?} must be \"reserved\" or \"general_admission\"",
                        s.name
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
        };
        event.validate()?;
        Ok(event)
    }
}

#[tracing::instrument(skip_all)]
async fn create(
    _: Admin,
    State(state): State<AppState>,
    Json(body): Json<CreateEvent>,
) -> Result<(StatusCode, Json<EventDetails>)> {
    Ok((StatusCode::CREATED, Json(state.sales.create_event(body.into_domain()?).await?)))
}

#[tracing::instrument(skip_all)]
async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<serde_json::Value>> {
    Ok(Json(json!({ "events": state.sales.list_events().await? })))
}

#[tracing::instrument(skip(state))]
async fn details(State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<EventDetails>> {
    Ok(Json(state.sales.event_details(event_id).await?))
}

#[tracing::instrument(skip(state))]
async fn seat_map(State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<impl IntoResponse> {
    Ok(([(CONTENT_TYPE, "application/json")], state.seat_map_json(event_id).await?))
}
