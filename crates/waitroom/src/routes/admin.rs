//! The organizer's endpoints: settings, live stats, pause and resume, the admission log.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tracing::Instrument;
use utoipa::openapi::{RefOr, Response};
use utoipa::{IntoResponses, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use service_kit::auth::Admin;
use service_kit::extract::{Json, Path};
use service_kit::openapi::{refusals, AdminKeyRefused, EventLookupRefused};
use service_kit::ErrorBody;

use crate::app::AppState;
use crate::domain::receipt::AdmissionLog;
use crate::domain::settings::{EventState, Settings};
use crate::domain::shuffle;
use crate::error::{Error, Result};
use crate::model::{AdmissionView, InventoryView, SettingsView, StatsView};
use crate::store::PutOutcome;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(settings, put_settings))
        .routes(routes!(stats))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(admission_log))
}

/// The event's admission log, to publish after the sale (issue 18): every recorded
/// admission in the order made, fans blinded. A fan holding a receipt checks it with
/// `scripts/check-admission-log`; publish the file as downloaded, with its SHA-256.
#[utoipa::path(
    get,
    path = "/v1/admin/events/{event_id}/waitroom/admission-log",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The admission log", body = AdmissionLog),
        (status = 503, description = "`receipts_unavailable`: no receipt key is configured; or `unavailable`", body = ErrorBody),
        EventLookupRefused, AdminKeyRefused,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn admission_log(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
) -> Result<Json<AdmissionLog>> {
    Ok(Json(state.receipts.log(event_id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SettingsBody {
    /// Fans admitted per second: above 0, at most 100,000.
    #[schema(exclusive_minimum = 0.0, maximum = 100_000.0)]
    admit_rate: f64,
    #[schema(minimum = 1, maximum = 10_000_000)]
    max_active: u32,
    #[schema(minimum = 1, maximum = 86_400)]
    token_lifetime_secs: u32,
    opens_at: Option<DateTime<Utc>>,
    /// Defaults to running: configuring an event is opening its waiting room.
    state: Option<EventState>,
    /// Proof of work at the door (1 to 1,000,000): each join must carry the solution of
    /// a challenge hiding a counter up to this. Absent: none.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pow_difficulty: Option<u32>,
}

impl SettingsBody {
    pub(super) fn into_settings(self) -> Result<Settings> {
        let settings = Settings {
            admit_rate: self.admit_rate,
            max_active: self.max_active,
            token_lifetime_secs: self.token_lifetime_secs,
            opens_at: self.opens_at,
            state: self.state.unwrap_or(EventState::Running),
            pow_difficulty: self.pow_difficulty,
        };
        settings.validate()?;
        Ok(settings)
    }
}

/// PostgreSQL first (the source of truth: it keeps the event's seed, or records the new
/// one), then Redis with what PostgreSQL recorded. If Redis lost the event meanwhile, it
/// is rebuilt from PostgreSQL rather than started afresh.
#[utoipa::path(
    put,
    path = "/v1/admin/events/{event_id}/waitroom",
    summary = "Sets the event's waiting room, opening it unless `state` says otherwise",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    request_body = SettingsBody,
    responses(
        (status = 200, description = "The event's waiting room as now set", body = SettingsView),
        (status = 400, description = "`bad_request`: an unreadable body or event id", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body arrived too slowly", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: a body past 2 MB", body = ErrorBody),
        (status = 409, description = "`already_open`: the sale has opened, its opening time can no longer change", body = ErrorBody),
        (status = 422, description = "`invalid_settings`", body = ErrorBody),
        (status = 503, description = "`unavailable` (nothing was changed) or `outcome_unknown`", body = ErrorBody),
        AdminKeyRefused,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn put_settings(
    _: Admin,
    State(state): State<AppState>,
    Path(event_id): Path<Uuid>,
    Json(body): Json<SettingsBody>,
) -> Result<Json<SettingsView>> {
    to_the_end(write_settings(state.clone(), event_id, body.into_settings()?)).await?;
    current(&state, event_id).await
}

/// Runs both writes of an organizer's change in a task of its own, so an organizer who
/// hangs up between them cannot leave PostgreSQL changed and Redis not.
async fn to_the_end(work: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Result<()> {
    match tokio::spawn(work.in_current_span()).await {
        Ok(result) => result,
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(_) => Err(Error::OutcomeUnknown),
    }
}

async fn write_settings(state: AppState, event_id: Uuid, settings: Settings) -> Result<()> {
    // Used only if PostgreSQL has no seed for the event yet: the one Redis holds for an
    // event configured before PostgreSQL kept seeds (its hash may be public), else a
    // new one.
    let seed = state.store.seed(event_id).await?.unwrap_or_else(shuffle::new_seed);
    let (event, write) = state.restorer.ledger().put_settings(event_id, &settings, seed).await?;
    let outcome =
        state.store.put_settings(event_id, &settings, &event.seed, &event.seed_sha256, event.epoch, write).await?;
    match outcome {
        PutOutcome::Written => Ok(()),
        PutOutcome::AlreadyOpen => Err(Error::AlreadyOpen),
        PutOutcome::Lost => state.restorer.rebuild(event_id).await.map(drop),
    }
}

#[utoipa::path(
    get,
    path = "/v1/admin/events/{event_id}/waitroom",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The event's waiting room", body = SettingsView),
        EventLookupRefused, AdminKeyRefused,
    ),
    security(("admin_key" = [])),
)]
async fn settings(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<SettingsView>> {
    current(&state, event_id).await
}

#[utoipa::path(
    get,
    path = "/v1/admin/events/{event_id}/waitroom/stats",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The queue and the room right now, and what the sale has left", body = StatsView),
        EventLookupRefused, AdminKeyRefused,
    ),
    security(("admin_key" = [])),
)]
async fn stats(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<StatsView>> {
    let mut stats = state.store.stats(event_id).await?;
    if stats.is_none() && state.restorer.rebuild_if_known(event_id).await? {
        stats = state.store.stats(event_id).await?;
    }
    let room = stats.ok_or(Error::NotFound("event"))?;
    let event = state.store.event(event_id).await?.ok_or(Error::NotFound("event"))?;
    let budget = state.inventory.budget(event_id);
    let admission = AdmissionView::new(&event, room.active, budget.as_ref(), state.backpressure.view(), Utc::now());
    Ok(Json(StatsView { room, inventory: budget.map(InventoryView::new), admission }))
}

/// Stops admitting; fans keep their places.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{event_id}/waitroom/pause",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The event's waiting room as now set", body = SettingsView),
        StateChangeRefused, AdminKeyRefused,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn pause(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<SettingsView>> {
    set_state(&state, event_id, EventState::Paused).await
}

/// Admits again.
#[utoipa::path(
    post,
    path = "/v1/admin/events/{event_id}/waitroom/resume",
    tag = "organizer",
    params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The event's waiting room as now set", body = SettingsView),
        StateChangeRefused, AdminKeyRefused,
    ),
    security(("admin_key" = [])),
)]
#[tracing::instrument(skip_all, fields(%event_id))]
async fn resume(_: Admin, State(state): State<AppState>, Path(event_id): Path<Uuid>) -> Result<Json<SettingsView>> {
    set_state(&state, event_id, EventState::Running).await
}

/// What pausing or resuming can be refused with, beyond [`AdminKeyRefused`].
struct StateChangeRefused;

impl IntoResponses for StateChangeRefused {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        refusals([
            ("400", "`bad_request`: the event id is not a UUID"),
            ("404", "`event_not_found`"),
            ("503", "`unavailable` (nothing was changed) or `outcome_unknown`"),
        ])
    }
}

/// PostgreSQL first, then Redis, in a task of its own. An event PostgreSQL does not
/// know but Redis does was configured before PostgreSQL kept settings: Redis alone is
/// updated, until the organizer's next PUT records it.
async fn set_state(state: &AppState, event_id: Uuid, new_state: EventState) -> Result<Json<SettingsView>> {
    let writer = state.clone();
    to_the_end(async move {
        let recorded = writer.restorer.ledger().set_state(event_id, new_state).await?;
        if !writer.store.set_state(event_id, new_state).await? {
            if recorded.is_none() {
                return Err(Error::NotFound("event"));
            }
            // Redis lost the event: rebuilt with the state just recorded.
            writer.restorer.rebuild(event_id).await?;
        }
        Ok(())
    })
    .await?;
    current(state, event_id).await
}

async fn current(state: &AppState, event_id: Uuid) -> Result<Json<SettingsView>> {
    let event = state.restorer.event(event_id).await?.ok_or(Error::NotFound("event"))?;
    Ok(Json(SettingsView::new(event_id, event)))
}
