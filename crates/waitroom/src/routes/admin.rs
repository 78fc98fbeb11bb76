//! The organizer's endpoints: settings, live stats, pause and resume.

use axum::extract::State;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use service_kit::extract::{Json, Path};

use crate::app::AppState;
use crate::auth::Admin;
use crate::domain::settings::{EventState, Settings};
use crate::domain::shuffle;
use crate::error::{Error, Result};
use crate::model::SettingsView;
use crate::store::Stats;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/events/{event_id}/waitroom", get(settings).put(put_settings))
        .route("/v1/admin/events/{event_id}/waitroom/stats", get(stats))
        .route("/v1/admin/events/{event_id}/waitroom/pause", post(pause))
        .route("/v1/admin/events/{event_id}/waitroom/resume", post(resume))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsBody {
    admit_rate: f64,
    max_active: u32,
    token_lifetime_secs: u32,
    opens_at: Option<DateTime<Utc>>,
    /// Defaults to running: configuring an event is opening its waiting room.
    state: Option<EventState>,
}

#[tracing::instrument(skip_all, fields(%event_id))]
async fn put_settings(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<SettingsBody>,
) -> Result<Json<SettingsView>> {
    let settings = Settings {
        admit_rate: body.admit_rate,
        max_active: body.max_active,
        token_lifetime_secs: body.token_lifetime_secs,
        opens_at: body.opens_at,
        state: body.state.unwrap_or(EventState::Running),
    };
    settings.validate()?;
    // Used only if this is the event's first configuration; an existing seed stays.
    let seed = shuffle::new_seed();
    state.store.put_settings(event_id, &settings, &seed, &shuffle::commitment(&seed)).await?;
    current(&state, event_id).await
}

async fn settings(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<SettingsView>> {
    current(&state, event_id).await
}

async fn stats(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<Stats>> {
    Ok(Json(state.store.stats(event_id).await?.ok_or(Error::NotFound("event"))?))
}

#[tracing::instrument(skip_all, fields(%event_id))]
async fn pause(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<SettingsView>> {
    set_state(&state, event_id, EventState::Paused).await
}

#[tracing::instrument(skip_all, fields(%event_id))]
async fn resume(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<SettingsView>> {
    set_state(&state, event_id, EventState::Running).await
}

async fn set_state(state: &AppState, event_id: Uuid, new_state: EventState) -> Result<Json<SettingsView>> {
    if !state.store.set_state(event_id, new_state).await? {
        return Err(Error::NotFound("event"));
    }
    current(state, event_id).await
}

async fn current(state: &AppState, event_id: Uuid) -> Result<Json<SettingsView>> {
    let event = state.store.event(event_id).await?.ok_or(Error::NotFound("event"))?;
    Ok(Json(SettingsView::new(event_id, event)))
}
