//! Redis: every key and every script of the waiting room.
//!
//! - [`keys`]: where each event lives (public: the benchmark uses the same layout).
//! - [`scripts`]: the Lua scripts; all the atomicity lives there.
//! - [`replies`]: what each script answers, decoded by name.
//!
//! All times are Redis server time (`TIME` inside scripts), so replicas with skewed
//! clocks still agree on elapsed time and abandonment.
//!
//! Redis may lose all of this (a restart without persistence, a `FLUSHALL`, an
//! asynchronous failover). `restore.lua` rebuilds an event from PostgreSQL, and
//! `locate.lua` puts each fan back at the place their ticket names as they poll.

pub mod keys;
mod replies;
pub mod scripts;

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

pub use self::keys::{EventKey, EventKeys};
use self::replies::millis;
pub use self::replies::{
    Arrival, Left, LineWatch, Located, Location, Placement, PutOutcome, Room, Stats, Step, StepOutcome,
};
use crate::domain::fan::FanId;
use crate::domain::settings::{EventState, Settings, SettingsWrite, WaitroomEvent};
use crate::error::{Error, Result};

static LOCATE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LOCATE));
static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::ADMIT));
static PUT_SETTINGS: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::PUT_SETTINGS));
static SET_STATE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::SET_STATE));
static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::STATS));
static WATCH: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::WATCH));
static LEAVE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::LEAVE));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RELEASE));
static RESTORE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::RESTORE));
static REVIVED: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::REVIVED));

/// Most fans one admission step examines, so a run of abandoned fans cannot block
/// Redis for long; the rest are handled by the next step.
const MAX_SCAN_PER_STEP: u64 = 10_000;
/// After every admitter was down, at most this much elapsed time is made up at once.
const MAX_CATCH_UP_MS: u64 = 1_000;
/// Time constant of the measured admission rate: it follows changes within ~10 s.
const RATE_TAU_MS: u64 = 10_000;
/// Live admissions per call when rebuilding an event's admitted set: each call is one
/// short Redis command, never one long enough to hold everyone else up.
const RESTORE_CHUNK: usize = 5_000;
/// Arrival scores of epoch `e` start at `e << EPOCH_SHIFT`.
pub const EPOCH_SHIFT: u32 = 40;

#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    prefix: Arc<str>,
    /// How long a closed event's keys outlive its closing, and an idle-retired event's
    /// its retirement (`waitroom.closed_retention_secs`).
    closed_retention_ms: u64,
    /// How long an open event stays idle before an admission step retires it
    /// (`waitroom.idle_retention_secs`, see `scripts/admit.lua`).
    idle_retention_ms: u64,
}

/// [`Store::new`]'s retention of a closed event's keys, as `config/default.toml`'s.
pub const DEFAULT_CLOSED_RETENTION: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// [`Store::new`]'s idle time before an event is retired, as `config/default.toml`'s.
pub const DEFAULT_IDLE_RETENTION: std::time::Duration = std::time::Duration::from_secs(3 * 24 * 3600);

/// What a locate call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateMode {
    Join,
    Poll,
    /// A poll that, if the fan is not found, puts them back at `place` (see
    /// `scripts/locate.lua` for when it may).
    Restore {
        place: RestorePlace,
        issued_at_ms: i64,
        /// How long after the rebuild a ticket may still restore its place.
        window_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePlace {
    Score(i64),
    /// The fan's shuffle draw, recomputed from the seed.
    PreQueue,
}

/// What PostgreSQL holds for rebuilding an event's Redis state.
#[derive(Debug, Clone)]
pub struct Rebuild {
    pub settings: Settings,
    pub seed: String,
    pub seed_sha256: String,
    /// Already bumped for this rebuild.
    pub epoch: u64,
    pub created_at: DateTime<Utc>,
    /// Admissions recorded so far.
    pub admitted_total: u64,
    /// Fans whose admission has not expired, with its expiry.
    pub live: Vec<(String, DateTime<Utc>)>,
    /// PostgreSQL records the event as retired for idleness: it is rebuilt retired (its
    /// keys expire, it stays out of the admitter's index) until a join brings it back.
    pub retired: bool,
}

impl Store {
    pub fn new(conn: ConnectionManager, key_prefix: &str) -> Self {
        Self {
            conn,
            prefix: key_prefix.into(),
            closed_retention_ms: DEFAULT_CLOSED_RETENTION.as_millis() as u64,
            idle_retention_ms: DEFAULT_IDLE_RETENTION.as_millis() as u64,
        }
    }

    /// The same store, keeping a closed event's keys for `retention` after it closes
    /// (and an idle-retired event's after its retirement).
    pub fn with_closed_retention(self, retention: std::time::Duration) -> Self {
        Self { closed_retention_ms: retention.as_millis() as u64, ..self }
    }

    /// The same store, retiring an open event that stayed idle for `retention`.
    pub fn with_idle_retention(self, retention: std::time::Duration) -> Self {
        Self { idle_retention_ms: retention.as_millis() as u64, ..self }
    }

    fn keys(&self, event_id: Uuid) -> EventKeys<'_> {
        EventKeys::new(&self.prefix, event_id)
    }

    /// The connection every call goes through, for the readiness check.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Writes the settings PostgreSQL has just recorded, by `write`.
    #[tracing::instrument(skip(self, settings, seed), fields(%event_id))]
    pub async fn put_settings(
        &self,
        event_id: Uuid,
        settings: &Settings,
        seed: &str,
        seed_sha256: &str,
        epoch: u64,
        write: SettingsWrite,
    ) -> Result<PutOutcome> {
        let mut conn = self.conn.clone();
        let mut invocation = PUT_SETTINGS.key(&self.keys(event_id).script_keys());
        invocation
            .arg(settings.state.as_str())
            .arg(settings.admit_rate.to_string())
            .arg(settings.max_active)
            .arg(u64::from(settings.token_lifetime_secs) * 1000)
            .arg(settings.opens_at.map_or(0, |t| t.timestamp_millis()))
            .arg(seed)
            .arg(seed_sha256)
            .arg(epoch)
            .arg(if write == SettingsWrite::Updated { "1" } else { "0" })
            .arg(self.closed_retention_ms)
            .arg(settings.pow_difficulty.unwrap_or(0));
        let outcome = replies::put_outcome(timed("put_settings", invocation.invoke_async(&mut conn)).await?)?;
        if outcome == PutOutcome::Written {
            self.index(event_id, settings.state).await?;
        }
        Ok(outcome)
    }

    /// Adds the event to the index the admitter walks, or takes it out once closed.
    /// Outside the scripts: the index is not under the event's hash tag.
    async fn index(&self, event_id: Uuid, state: EventState) -> Result<()> {
        if state == EventState::Closed {
            return self.unindex(event_id).await;
        }
        let mut conn = self.conn.clone();
        let _: () = conn.sadd(keys::events_index(&self.prefix), event_id.to_string()).await?;
        Ok(())
    }

    /// Takes the event out of the index the admitter walks.
    pub async fn unindex(&self, event_id: Uuid) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.srem(keys::events_index(&self.prefix), event_id.to_string()).await?;
        Ok(())
    }

    /// Takes an event an admission step found retired out of the index; `false` if it
    /// was brought back meanwhile (its mark is no longer '1': a join or an organizer
    /// wrote to it, and may have put it in the index just before this took it out), in
    /// which case it is put back. Checking after the removal, not before, is what makes
    /// this safe against that race: whoever brings the event back clears the mark
    /// before adding it to the index.
    pub async fn unindex_retired(&self, event_id: Uuid) -> Result<bool> {
        self.unindex(event_id).await?;
        let mut conn = self.conn.clone();
        let (state, retired): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys(event_id).key(EventKey::Settings))
            .arg("state")
            .arg("retired")
            .query_async(&mut conn)
            .await?;
        if state.is_some() && retired.as_deref() != Some("1") {
            let _: () = conn.sadd(keys::events_index(&self.prefix), event_id.to_string()).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// The seed Redis holds for an event, if any: an event configured before its
    /// settings lived in PostgreSQL keeps the seed whose hash was published.
    pub async fn seed(&self, event_id: Uuid) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(self.keys(event_id).key(EventKey::Settings), "seed").await?)
    }

    /// Whether Redis has the event's settings.
    pub async fn exists(&self, event_id: Uuid) -> Result<bool> {
        let mut conn = self.conn.clone();
        Ok(conn.exists(self.keys(event_id).key(EventKey::Settings)).await?)
    }

    /// Rebuilds a lost event from PostgreSQL's record (see `scripts/restore.lua`);
    /// `false` when Redis had it after all (another replica rebuilt it first).
    #[tracing::instrument(skip(self, rebuild), fields(%event_id, epoch = rebuild.epoch))]
    pub async fn restore(&self, event_id: Uuid, rebuild: &Rebuild) -> Result<bool> {
        let mut conn = self.conn.clone();
        let s = &rebuild.settings;
        let mut invocation = RESTORE.key(&self.keys(event_id).script_keys());
        invocation
            .arg(s.state.as_str())
            .arg(s.admit_rate.to_string())
            .arg(s.max_active)
            .arg(u64::from(s.token_lifetime_secs) * 1000)
            .arg(s.opens_at.map_or(0, |t| t.timestamp_millis()))
            .arg(&rebuild.seed)
            .arg(&rebuild.seed_sha256)
            .arg(rebuild.epoch)
            .arg(rebuild.epoch << EPOCH_SHIFT)
            .arg(rebuild.admitted_total)
            .arg(rebuild.created_at.timestamp_millis())
            .arg(self.closed_retention_ms)
            .arg(if rebuild.retired { "1" } else { "0" })
            .arg(s.pow_difficulty.unwrap_or(0));
        let mut chunks = rebuild.live.chunks(RESTORE_CHUNK);
        for (fan, expires_at) in chunks.next().unwrap_or_default() {
            invocation.arg(fan).arg(expires_at.timestamp_millis());
        }
        if !replies::rebuilt(timed("restore", invocation.invoke_async(&mut conn)).await?) {
            return Ok(false);
        }
        // Admission stays paused for a while after the rebuild, so the rest of a large
        // admitted set can follow in short commands of their own.
        for chunk in chunks {
            let members: Vec<(i64, &str)> =
                chunk.iter().map(|(fan, expires_at)| (expires_at.timestamp_millis(), fan.as_str())).collect();
            let _: () = redis::cmd("ZADD")
                .arg(self.keys(event_id).key(EventKey::Admitted))
                .arg("GT")
                .arg(members)
                .query_async(&mut conn)
                .await?;
        }
        if rebuild.retired {
            self.unindex(event_id).await?;
        } else {
            self.index(event_id, s.state).await?;
        }
        Ok(true)
    }

    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn event(&self, event_id: Uuid) -> Result<Option<WaitroomEvent>> {
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, String> =
            conn.hgetall(self.keys(event_id).key(EventKey::Settings)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
        let corrupt = || Error::Corrupt(format!("settings of event {event_id}"));
        let opened = field("opened") == "1";
        let settings = Settings {
            admit_rate: field("rate").parse().map_err(|_| corrupt())?,
            max_active: field("max_active").parse().map_err(|_| corrupt())?,
            token_lifetime_secs: (field("lifetime_ms").parse::<u64>().map_err(|_| corrupt())? / 1000)
                .try_into()
                .map_err(|_| corrupt())?,
            opens_at: millis(field("opens_at_ms").parse().map_err(|_| corrupt())?),
            state: EventState::parse(field("state")).ok_or_else(corrupt)?,
            // Absent from events written before proof of work existed: none.
            pow_difficulty: field("pow").parse::<u32>().ok().filter(|&d| d > 0),
        };
        Ok(Some(WaitroomEvent {
            settings,
            seed_sha256: field("seed_sha256").to_owned(),
            seed: opened.then(|| field("seed").to_owned()),
            opened_at: field("opened_at_ms").parse().ok().and_then(millis),
        }))
    }

    /// Sets the state of an existing event; `false` when the event is unknown.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn set_state(&self, event_id: Uuid, state: EventState) -> Result<bool> {
        let mut conn = self.conn.clone();
        let mut invocation = SET_STATE.key(&self.keys(event_id).script_keys());
        invocation.arg(state.as_str()).arg(self.closed_retention_ms);
        let set = replies::state_set(timed("set_state", invocation.invoke_async(&mut conn)).await?);
        if set {
            self.index(event_id, state).await?;
        }
        Ok(set)
    }

    /// Joins, polls or restores a fan (see [`LocateMode`]); each refreshes the fan's
    /// last-seen time. A join (or a restored place) of an event retired for idleness
    /// brings it back into the admitter's index (see `scripts/locate.lua`).
    #[tracing::instrument(skip(self), fields(%event_id, %fan))]
    pub async fn locate(&self, event_id: Uuid, fan: &FanId, mode: LocateMode) -> Result<Location> {
        let mut conn = self.conn.clone();
        let mut invocation = LOCATE.key(&self.keys(event_id).script_keys());
        invocation.arg(fan.as_str());
        let command = match mode {
            LocateMode::Join => {
                invocation.arg("join");
                "join"
            }
            LocateMode::Poll => {
                invocation.arg("poll");
                "poll"
            }
            LocateMode::Restore { place, issued_at_ms, window_ms } => {
                let place = match place {
                    RestorePlace::Score(score) => score.to_string(),
                    RestorePlace::PreQueue => "pre".to_owned(),
                };
                invocation.arg("restore").arg(place).arg(issued_at_ms).arg(window_ms);
                "restore_place"
            }
        };
        let (location, reviving) = replies::location(timed(command, invocation.invoke_async(&mut conn)).await?)?;
        if reviving {
            // Index first, then clear the mark: if this fails in between, the mark
            // stays and the next call of any fan tries again.
            let _: () = conn.sadd(keys::events_index(&self.prefix), event_id.to_string()).await?;
            let cleared: i64 =
                timed("revived", REVIVED.key(self.keys(event_id).key(EventKey::Settings)).invoke_async(&mut conn))
                    .await?;
            tracing::info!(%event_id, cleared, "a join brought an idle-retired event back into the admitter's walk");
        }
        Ok(location)
    }

    /// Removes a fan from the event; `None` when the event is unknown.
    #[tracing::instrument(skip(self), fields(%event_id, %fan))]
    pub async fn leave(&self, event_id: Uuid, fan: &FanId) -> Result<Option<Left>> {
        let mut conn = self.conn.clone();
        let mut invocation = LEAVE.key(&self.keys(event_id).script_keys());
        invocation.arg(fan.as_str());
        Ok(replies::left(timed("leave", invocation.invoke_async(&mut conn)).await?))
    }

    /// Records that `fan` used the proof of work whose challenge carries
    /// `challenge_signature`, until `ttl_ms` from now: `true` if it was unused or used by
    /// this same fan (a retried join), `false` if someone else used it first. One
    /// command (`SET … NX GET`), so two joins racing with one proof cannot both win.
    #[tracing::instrument(skip(self, challenge_signature), fields(%event_id, %fan))]
    pub async fn claim_proof(
        &self,
        event_id: Uuid,
        challenge_signature: &str,
        fan: &FanId,
        ttl_ms: u64,
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        let key = self.keys(event_id).pow_claim(challenge_signature);
        let mut command = redis::cmd("SET");
        command.arg(key).arg(fan.as_str()).arg("NX").arg("GET").arg("PX").arg(ttl_ms.max(1));
        let earlier: Option<String> = timed("claim_proof", command.query_async(&mut conn)).await?;
        Ok(earlier.is_none_or(|earlier| earlier == fan.as_str()))
    }

    /// Stops counting the admission of a fan who booked at `booked_at_ms` (the
    /// database's clock), if it began before then, allowing `skew_ms` between the two
    /// clocks (`scripts/release.lua`); `None` when the event is unknown, else whether
    /// an admission was released.
    #[tracing::instrument(skip(self), fields(%event_id, %fan))]
    pub async fn release(&self, event_id: Uuid, fan: &FanId, booked_at_ms: i64, skew_ms: u64) -> Result<Option<bool>> {
        let mut conn = self.conn.clone();
        let mut invocation = RELEASE.key(&self.keys(event_id).script_keys());
        invocation.arg(fan.as_str()).arg(booked_at_ms).arg(skew_ms);
        Ok(replies::released(timed("release", invocation.invoke_async(&mut conn)).await?))
    }

    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn stats(&self, event_id: Uuid) -> Result<Option<Stats>> {
        let mut conn = self.conn.clone();
        let reply = timed("stats", STATS.key(&self.keys(event_id).script_keys()).invoke_async(&mut conn)).await?;
        replies::stats(reply)
    }

    /// The event's line for the fans streaming it, with the admissions expiring after
    /// `admitted_after_ms` (`scripts/watch.lua`); `None` for an unknown event.
    #[tracing::instrument(level = "debug", skip(self), fields(%event_id))]
    pub async fn watch(&self, event_id: Uuid, admitted_after_ms: i64) -> Result<Option<LineWatch>> {
        let mut conn = self.conn.clone();
        let mut invocation = WATCH.key(&self.keys(event_id).script_keys());
        invocation.arg(admitted_after_ms);
        replies::watch(timed("watch", invocation.invoke_async(&mut conn)).await?)
    }

    /// Every event with waiting-room settings in Redis.
    pub async fn events(&self) -> Result<Vec<Uuid>> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn.smembers(keys::events_index(&self.prefix)).await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    /// One atomic admission step for `event_id` (see `scripts/admit.lua`) at
    /// `rate_share` of the organizer's rate; nobody is admitted within
    /// `pause_after_restore_ms` of a rebuild. An event found idle for
    /// the idle retention is retired ([`StepOutcome::Retired`]).
    #[tracing::instrument(level = "debug", skip(self), fields(%event_id))]
    pub async fn admit_step(
        &self,
        event_id: Uuid,
        abandon_after_ms: u64,
        pause_after_restore_ms: u64,
        shopper_cap: Option<u64>,
        rate_share: f64,
    ) -> Result<StepOutcome> {
        let mut conn = self.conn.clone();
        let mut invocation = ADMIT.key(&self.keys(event_id).script_keys());
        invocation
            .arg(abandon_after_ms)
            .arg(MAX_CATCH_UP_MS)
            .arg(MAX_SCAN_PER_STEP)
            .arg(RATE_TAU_MS)
            .arg(pause_after_restore_ms)
            .arg(self.idle_retention_ms)
            .arg(self.closed_retention_ms)
            .arg(shopper_cap.map_or(-1, |cap| cap.min(i64::MAX as u64) as i64))
            .arg(rate_share.clamp(0.0, 1.0));
        replies::step(timed("admit", invocation.invoke_async(&mut conn)).await?)
    }
}

/// Runs one script call, recording its round trip for the Redis latency histogram.
async fn timed<T>(command: &'static str, call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    let started = Instant::now();
    let result = call.await;
    crate::metrics::redis_command(command, started.elapsed());
    result
}
