//! PostgreSQL: the waiting room's durable record, the source of truth for what a Redis
//! wipe must not change or forget (`migrations/*_waitroom_durable.sql`):
//!
//! - `waitroom_events`: each event's settings, its shuffle seed and commitment, the
//!   epoch its Redis state was last rebuilt in, and whether the admitter retired it for
//!   idleness (`migrations/*_waitroom_idle_retirement.sql`);
//! - `waitroom_admissions`: every admission, and when a fan let in left early, written
//!   in batches by the recorder ([`crate::recorder`]).
//!
//! Each function is one unit of cancel-safe, deadline-bounded work
//! ([`service_kit::postgres::Database`]). Fans' joins and polls never come here, except
//! the first poll of each fan after a wipe; the organizer's writes and the admitter's
//! records do.

use chrono::{DateTime, TimeZone, Utc};
use service_kit::postgres::Database;
use sqlx::Row;
use uuid::Uuid;

use crate::config::SlotReleaseConfig;
use crate::domain::fan::FanId;
use crate::domain::receipt::{RecordedAdmission, RecordedSkip};
use crate::domain::settings::{EventState, Settings, SettingsWrite, WaitroomEvent};
use crate::domain::shuffle;
use crate::error::{Error, Result};
use crate::store::Rebuild;

#[derive(Clone)]
pub struct Ledger {
    db: Database,
    slot_release: SlotReleaseConfig,
}

/// An event as PostgreSQL records it.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerEvent {
    pub settings: Settings,
    pub seed: String,
    pub seed_sha256: String,
    pub epoch: u64,
    pub created_at: DateTime<Utc>,
}

impl LedgerEvent {
    /// Whether the sale counts as opened at `now`: its opening time has passed (or it
    /// had none). A rebuild marks the sale opened by this rule, so the seed is published
    /// after a wipe exactly when it would have been without one.
    pub fn opened_by(&self, now: DateTime<Utc>) -> bool {
        self.settings.opens_at.is_none_or(|at| at <= now)
    }

    /// The event as the API shows it when only PostgreSQL can be read (Redis down, or
    /// not yet rebuilt): the seed once the opening time has passed.
    pub fn view(self, now: DateTime<Utc>) -> WaitroomEvent {
        let opened = self.opened_by(now);
        WaitroomEvent {
            opened_at: opened.then(|| self.settings.opens_at.unwrap_or(self.created_at)),
            seed: opened.then_some(self.seed),
            seed_sha256: self.seed_sha256,
            settings: self.settings,
        }
    }
}

/// An event as the admitter's walk reads it from PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    pub state: EventState,
    /// Retired for idleness (`retired_at` set): not walked unless Redis' index lists it.
    pub retired: bool,
}

/// One admission, as the admitter records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub event_id: Uuid,
    pub fan_id: String,
    /// The queue score the fan was admitted from.
    pub score: i64,
    /// Redis time, ms.
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
}

/// An admitted fan who left the waiting room before their admission expired; the
/// admission is the fan's one that expires at `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    pub event_id: Uuid,
    pub fan_id: String,
    pub expires_at_ms: i64,
    /// Redis time, ms.
    pub left_at_ms: i64,
}

/// A fan dropped from the line as abandoned when their turn came (they had stopped
/// polling), never admitted from that place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub event_id: Uuid,
    pub fan_id: String,
    /// The queue score the fan was dropped from.
    pub score: i64,
    /// Redis time, ms.
    pub skipped_at_ms: i64,
}

/// What the recorder writes: admissions, departures from them, and places in line
/// dropped as abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Admitted(Admission),
    Left(Departure),
    Skipped(Skip),
}

/// The columns of `waitroom_events` every query below returns, in this order.
const EVENT_COLUMNS: &str = "state::text AS state, admit_rate, max_active, token_lifetime_secs, opens_at, seed, \
                             seed_sha256, epoch, created_at, pow_difficulty";

impl Ledger {
    /// `slot_release`: whether fans who booked or joined the waitlist stop counting
    /// (`crate::release`), so a rebuild leaves their admissions out too.
    pub fn new(db: Database, slot_release: SlotReleaseConfig) -> Self {
        Self { db, slot_release }
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Records the organizer's settings in one transaction: creates the event with
    /// `new_seed` (and its commitment), or updates it keeping the seed it has. Changing
    /// the opening time once it has passed is refused ([`Error::AlreadyOpen`]). Returns
    /// the event as recorded and whether this write created it.
    #[tracing::instrument(skip(self, settings, new_seed), fields(%event_id))]
    pub async fn put_settings(
        &self,
        event_id: Uuid,
        settings: &Settings,
        new_seed: String,
    ) -> Result<(LedgerEvent, SettingsWrite)> {
        let settings = settings.clone();
        self.db
            .transaction(move |conn| {
                Box::pin(async move {
                    // Locks the row, so two organizers' writes cannot interleave the check
                    // and the update.
                    let refused: Option<bool> = sqlx::query_scalar(
                        "SELECT (opens_at IS NULL OR opens_at <= now()) AND opens_at IS DISTINCT FROM $2
                         FROM waitroom_events WHERE event_id = $1 FOR UPDATE",
                    )
                    .bind(event_id)
                    .bind(settings.opens_at)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if refused == Some(true) {
                        return Err(Error::AlreadyOpen);
                    }
                    let commitment = shuffle::commitment(&new_seed);
                    let row = sqlx::query(&format!(
                        "INSERT INTO waitroom_events
                             (event_id, state, admit_rate, max_active, token_lifetime_secs, opens_at, seed, seed_sha256,
                              pow_difficulty)
                         VALUES ($1, $2::waitroom_state, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (event_id) DO UPDATE SET
                             state = EXCLUDED.state, admit_rate = EXCLUDED.admit_rate,
                             max_active = EXCLUDED.max_active, token_lifetime_secs = EXCLUDED.token_lifetime_secs,
                             opens_at = EXCLUDED.opens_at, pow_difficulty = EXCLUDED.pow_difficulty,
                             updated_at = now(), retired_at = NULL
                         RETURNING {EVENT_COLUMNS}"
                    ))
                    .bind(event_id)
                    .bind(settings.state.as_str())
                    .bind(settings.admit_rate)
                    .bind(settings.max_active as i32)
                    .bind(settings.token_lifetime_secs as i32)
                    .bind(settings.opens_at)
                    .bind(&new_seed)
                    .bind(&commitment)
                    .bind(settings.pow_difficulty.map(|d| d as i32))
                    .fetch_one(&mut *conn)
                    .await?;
                    let write = if refused.is_some() { SettingsWrite::Updated } else { SettingsWrite::Created };
                    Ok((event_from_row(&row)?, write))
                })
            })
            .await
    }

    /// Sets an event's state (an event retired for idleness is walked again, as after
    /// any organizer write); `None` when PostgreSQL does not know the event.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn set_state(&self, event_id: Uuid, state: EventState) -> Result<Option<LedgerEvent>> {
        self.db
            .write(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(&format!(
                        "UPDATE waitroom_events SET state = $2::waitroom_state, updated_at = now(), retired_at = NULL
                         WHERE event_id = $1 RETURNING {EVENT_COLUMNS}"
                    ))
                    .bind(event_id)
                    .bind(state.as_str())
                    .fetch_optional(conn)
                    .await?;
                    row.as_ref().map(event_from_row).transpose()
                })
            })
            .await
    }

    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn event(&self, event_id: Uuid) -> Result<Option<LedgerEvent>> {
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(&format!("SELECT {EVENT_COLUMNS} FROM waitroom_events WHERE event_id = $1"))
                        .bind(event_id)
                        .fetch_optional(conn)
                        .await?;
                    row.as_ref().map(event_from_row).transpose()
                })
            })
            .await
    }

    /// Every event the waiting room was configured for, with its state and whether it
    /// was retired for idleness.
    pub async fn events(&self) -> Result<Vec<(Uuid, Listing)>> {
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    let rows = sqlx::query(
                        "SELECT event_id, state::text AS state, retired_at IS NOT NULL AS retired FROM waitroom_events",
                    )
                    .fetch_all(conn)
                    .await?;
                    rows.iter()
                        .map(|row| {
                            let state: String = row.try_get("state")?;
                            let state = EventState::parse(&state).ok_or_else(|| Error::Corrupt(state.clone()))?;
                            Ok((row.try_get("event_id")?, Listing { state, retired: row.try_get("retired")? }))
                        })
                        .collect()
                })
            })
            .await
    }

    /// Records that the admitter retired the event for idleness (`retired`), or that a
    /// join brought it back (see `scripts/admit.lua`): Redis decides, and this follows.
    /// A retirement keeps the time it was first recorded.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn set_retired(&self, event_id: Uuid, retired: bool) -> Result<()> {
        self.db
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "UPDATE waitroom_events SET retired_at = CASE WHEN $2 THEN coalesce(retired_at, now()) END
                         WHERE event_id = $1",
                    )
                    .bind(event_id)
                    .bind(retired)
                    .execute(conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Starts a rebuild of an event Redis lost: bumps its epoch (so new arrivals sort
    /// after every ticket issued before) and reads what the rebuild needs, in one
    /// transaction. `None` when PostgreSQL does not know the event.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn begin_rebuild(&self, event_id: Uuid) -> Result<Option<Rebuild>> {
        let released = self.slot_release.enabled;
        let skew_secs = self.slot_release.clock_skew_ms as f64 / 1000.0;
        self.db
            .transaction(move |conn| {
                Box::pin(async move {
                    let Some(row) = sqlx::query(&format!(
                        "UPDATE waitroom_events SET epoch = epoch + 1, updated_at = now()
                         WHERE event_id = $1 RETURNING {EVENT_COLUMNS}, retired_at IS NOT NULL AS retired"
                    ))
                    .bind(event_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    else {
                        return Ok(None);
                    };
                    let event = event_from_row(&row)?;
                    let retired: bool = row.try_get("retired")?;
                    // A fan admitted twice (expired, joined again) counts once, with the
                    // later expiry. One who left is gone. One who booked or joined the waitlist since being let
                    // in was done, and their place freed (`crate::release`, by the same
                    // rule): rebuilt, they would hold it again until it expired, and
                    // with the admission budget the line would wait behind them.
                    let live: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
                        "SELECT a.fan_id, max(a.expires_at) FROM waitroom_admissions a
                         WHERE a.event_id = $1 AND a.expires_at > now() AND a.left_at IS NULL
                           AND NOT ($2 AND (
                               EXISTS (SELECT 1 FROM bookings b
                                       WHERE b.event_id = a.event_id AND b.fan_id = a.fan_id
                                         AND b.created_at >= a.admitted_at - make_interval(secs => $3))
                               OR EXISTS (SELECT 1 FROM waitlist_entries w
                                          WHERE w.event_id = a.event_id AND w.fan_id = a.fan_id
                                            AND w.created_at >= a.admitted_at - make_interval(secs => $3))))
                         GROUP BY a.fan_id",
                    )
                    .bind(event_id)
                    .bind(released)
                    .bind(skew_secs)
                    .fetch_all(&mut *conn)
                    .await?;
                    let admitted_total: i64 =
                        sqlx::query_scalar("SELECT count(*) FROM waitroom_admissions WHERE event_id = $1")
                            .bind(event_id)
                            .fetch_one(&mut *conn)
                            .await?;
                    Ok(Some(Rebuild {
                        settings: event.settings,
                        seed: event.seed,
                        seed_sha256: event.seed_sha256,
                        epoch: event.epoch,
                        created_at: event.created_at,
                        admitted_total: admitted_total as u64,
                        live,
                        retired,
                    }))
                })
            })
            .await
    }

    /// Records admissions, departures and skips in one transaction, the admissions
    /// first (a departure always follows its admission in the recorder's order). An
    /// admission or skip already recorded (a retry after an unknown outcome) is not
    /// written again; a departure is recorded once, on the admission it ended.
    pub async fn record(&self, records: Vec<Record>) -> Result<()> {
        let n = records.len();
        let (mut events, mut fans, mut scores, mut at, mut until) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let (mut left_events, mut left_fans, mut left_expiries, mut left_at) = (vec![], vec![], vec![], vec![]);
        let (mut skip_events, mut skip_fans, mut skip_scores, mut skipped_at) = (vec![], vec![], vec![], vec![]);
        for record in records {
            match record {
                Record::Admitted(a) => {
                    events.push(a.event_id);
                    fans.push(a.fan_id);
                    scores.push(a.score);
                    at.push(timestamp(a.admitted_at_ms));
                    until.push(timestamp(a.expires_at_ms));
                }
                Record::Left(d) => {
                    left_events.push(d.event_id);
                    left_fans.push(d.fan_id);
                    left_expiries.push(timestamp(d.expires_at_ms));
                    left_at.push(timestamp(d.left_at_ms));
                }
                Record::Skipped(k) => {
                    skip_events.push(k.event_id);
                    skip_fans.push(k.fan_id);
                    skip_scores.push(k.score);
                    skipped_at.push(timestamp(k.skipped_at_ms));
                }
            }
        }
        self.db
            .transaction(move |conn| {
                Box::pin(async move {
                    if !events.is_empty() {
                        sqlx::query(
                            "INSERT INTO waitroom_admissions (event_id, fan_id, join_score, admitted_at, expires_at)
                             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[], $5::timestamptz[])
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(events)
                        .bind(fans)
                        .bind(scores)
                        .bind(at)
                        .bind(until)
                        .execute(&mut *conn)
                        .await?;
                    }
                    if !left_events.is_empty() {
                        sqlx::query(
                            "UPDATE waitroom_admissions a SET left_at = d.left_at
                             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[])
                                  AS d (event_id, fan_id, expires_at, left_at)
                             WHERE a.event_id = d.event_id AND a.fan_id = d.fan_id AND a.expires_at = d.expires_at
                               AND a.left_at IS NULL",
                        )
                        .bind(left_events)
                        .bind(left_fans)
                        .bind(left_expiries)
                        .bind(left_at)
                        .execute(&mut *conn)
                        .await?;
                    }
                    if !skip_events.is_empty() {
                        sqlx::query(
                            "INSERT INTO waitroom_skips (event_id, fan_id, join_score, skipped_at)
                             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::timestamptz[])
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(skip_events)
                        .bind(skip_fans)
                        .bind(skip_scores)
                        .bind(skipped_at)
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    /// The fan's latest recorded admission to the event: what their receipt attests.
    #[tracing::instrument(skip(self, fan), fields(%event_id))]
    pub async fn latest_admission(&self, event_id: Uuid, fan: &FanId) -> Result<Option<RecordedAdmission>> {
        let fan = fan.as_str().to_owned();
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    let row = sqlx::query(
                        "SELECT fan_id, join_score, admitted_at, expires_at, left_at FROM waitroom_admissions
                         WHERE event_id = $1 AND fan_id = $2
                         ORDER BY admitted_at DESC LIMIT 1",
                    )
                    .bind(event_id)
                    .bind(fan)
                    .fetch_optional(conn)
                    .await?;
                    row.as_ref().map(recorded_from_row).transpose()
                })
            })
            .await
    }

    /// Every recorded admission to the event, and every place in its line dropped as
    /// abandoned, each in the order they were made (then by place in line): the
    /// admission log's lines. One snapshot for both, so a recorder batch (which writes
    /// its admissions and skips together) is in the log whole or not at all.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn admission_log(&self, event_id: Uuid) -> Result<(Vec<RecordedAdmission>, Vec<RecordedSkip>)> {
        self.db
            .transaction(move |conn| {
                Box::pin(async move {
                    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                        .execute(&mut *conn)
                        .await?;
                    let rows = sqlx::query(
                        "SELECT fan_id, join_score, admitted_at, expires_at, left_at FROM waitroom_admissions
                         WHERE event_id = $1
                         ORDER BY admitted_at, join_score",
                    )
                    .bind(event_id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let admissions = rows.iter().map(recorded_from_row).collect::<Result<_>>()?;
                    let skips: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(
                        "SELECT fan_id, join_score, skipped_at FROM waitroom_skips
                         WHERE event_id = $1
                         ORDER BY skipped_at, join_score",
                    )
                    .bind(event_id)
                    .fetch_all(&mut *conn)
                    .await?;
                    let skips = skips
                        .into_iter()
                        .map(|(fan_id, join_score, at)| RecordedSkip {
                            fan_id,
                            join_score,
                            skipped_at_ms: at.timestamp_millis(),
                        })
                        .collect();
                    Ok((admissions, skips))
                })
            })
            .await
    }

    /// Whether `fan` was admitted to `event_id` at or after `since_ms` (Redis time): a
    /// ticket issued before such an admission names a place already used.
    pub async fn admitted_since(&self, event_id: Uuid, fan: &FanId, since_ms: i64) -> Result<bool> {
        let fan = fan.as_str().to_owned();
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    Ok(sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM waitroom_admissions
                                        WHERE event_id = $1 AND fan_id = $2 AND admitted_at >= $3)",
                    )
                    .bind(event_id)
                    .bind(fan)
                    .bind(timestamp(since_ms))
                    .fetch_one(conn)
                    .await?)
                })
            })
            .await
    }
}

fn timestamp(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn recorded_from_row(row: &sqlx::postgres::PgRow) -> Result<RecordedAdmission> {
    let millis = |at: DateTime<Utc>| at.timestamp_millis();
    Ok(RecordedAdmission {
        fan_id: row.try_get("fan_id")?,
        join_score: row.try_get("join_score")?,
        admitted_at_ms: millis(row.try_get("admitted_at")?),
        expires_at_ms: millis(row.try_get("expires_at")?),
        left_at_ms: row.try_get::<Option<DateTime<Utc>>, _>("left_at")?.map(millis),
    })
}

fn event_from_row(row: &sqlx::postgres::PgRow) -> Result<LedgerEvent> {
    let state: String = row.try_get("state")?;
    let corrupt = || Error::Corrupt(format!("waitroom_events row with state {state:?}"));
    let max_active: i32 = row.try_get("max_active")?;
    let lifetime: i32 = row.try_get("token_lifetime_secs")?;
    let epoch: i64 = row.try_get("epoch")?;
    Ok(LedgerEvent {
        settings: Settings {
            admit_rate: row.try_get("admit_rate")?,
            max_active: max_active.try_into().map_err(|_| corrupt())?,
            token_lifetime_secs: lifetime.try_into().map_err(|_| corrupt())?,
            opens_at: row.try_get("opens_at")?,
            state: EventState::parse(&state).ok_or_else(corrupt)?,
            pow_difficulty: row.try_get::<Option<i32>, _>("pow_difficulty")?.map(|d| d as u32),
        },
        seed: row.try_get("seed")?,
        seed_sha256: row.try_get("seed_sha256")?,
        epoch: epoch.try_into().map_err(|_| corrupt())?,
        created_at: row.try_get("created_at")?,
    })
}
