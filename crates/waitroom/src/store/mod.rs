//! Redis: every key and every script of the waiting room.
//!
//! Per event, under the configured prefix and one hash tag (so an event's keys stay
//! together on one Redis Cluster slot and a script may touch them all):
//!
//! - `<prefix>:wr:{<event>}:settings` hash: the organizer's settings, the shuffle seed
//!   and its hash (copies of PostgreSQL's, see [`crate::ledger`]), whether the sale has
//!   opened, the epoch, and when the event was last rebuilt after a wipe.
//! - `…:counters` hash: arrival sequence numbers, admission clock and fractional
//!   carry, totals, the measured-rate state.
//! - `…:queue` sorted set: waiting fans. Arrivals after the opening time score their
//!   arrival sequence number (`epoch << 40` + 1, 2, …); fans who join before it score
//!   their shuffle draw minus 2^52, a negative number, so the pre-queue stands ahead
//!   of everyone in shuffled order from the start and opening the sale moves nobody.
//! - `…:seen` hash: fan → last poll (ms), for skipping abandoned fans.
//! - `…:admitted` sorted set: fan → admission expiry (ms); its live size is "active".
//!
//! `<prefix>:wr:events` is the set of configured events the admitter walks.
//!
//! All times are Redis server time (`TIME` inside scripts), so replicas with skewed
//! clocks still agree on elapsed time and abandonment.
//!
//! Redis may lose all of this (a restart without persistence, a `FLUSHALL`, an
//! asynchronous failover). `restore.lua` rebuilds an event from PostgreSQL, and
//! `locate.lua` puts each fan back at the place their ticket names as they poll.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use uuid::Uuid;

use crate::domain::fan::FanId;
use crate::domain::settings::{EventState, Settings, WaitroomEvent};
use crate::error::{Error, Result};

static LOCATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/locate.lua")));
static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/admit.lua")));
static PUT_SETTINGS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/put_settings.lua")));
static SET_STATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/set_state.lua")));
static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/stats.lua")));
static LEAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/leave.lua")));
static RESTORE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/restore.lua")));

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
}

/// Where a fan stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Joined before opening; the place is drawn but not told until the sale opens.
    PreQueue,
    /// In line; 1 is next.
    Waiting {
        position: u64,
    },
    Admitted {
        expires_at: DateTime<Utc>,
    },
}

/// The answer to a join or a poll.
#[derive(Debug, Clone)]
pub struct Located {
    pub placement: Placement,
    /// This call put the fan in line (a repeated join does not).
    pub joined: bool,
    /// This call put the fan back at the place their ticket named, after a wipe.
    pub restored: bool,
    /// The fan's queue score while waiting (after opening, pre-queue fans included).
    pub score: Option<i64>,
    /// Redis' clock when it answered, ms: the ticket's issue time.
    pub now_ms: i64,
    pub epoch: u64,
    /// When the event was last rebuilt from PostgreSQL, ms.
    pub restored_at_ms: Option<i64>,
    pub queue_length: u64,
    pub state: EventState,
    pub admit_rate: f64,
    pub measured_rate: Option<f64>,
    pub opens_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocateOutcome {
    UnknownEvent,
    /// A new join on a closed event.
    Closed,
    /// Polled, but the fan is not in line (left, skipped as abandoned, their admission
    /// expired, or Redis lost their place). `restored_at_ms`: when the event was last
    /// rebuilt after a wipe; `now_ms`: Redis' clock.
    NotFound {
        restored_at_ms: Option<i64>,
        now_ms: i64,
    },
}

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

/// What a settings write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The opening time cannot change once the sale has opened.
    AlreadyOpen,
    /// PostgreSQL had the event but Redis lost it: rebuild it instead.
    Lost,
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
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stats {
    pub state: EventState,
    pub queue_length: u64,
    pub active: u64,
    pub admitted_total: u64,
    pub skipped_total: u64,
    pub measured_rate: Option<f64>,
    /// When an admitter last stepped this event: a stale value means no admitter runs.
    pub last_admission_step_at: Option<DateTime<Utc>>,
    /// When the event's state was last rebuilt from PostgreSQL after Redis lost it;
    /// admission pauses for a while after it.
    pub restored_at: Option<DateTime<Utc>>,
}

/// An event's line and room as an admission step left them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Room {
    pub queue_length: u64,
    /// Admitted fans whose admission has not expired.
    pub active: u64,
    pub max_active: u64,
    /// The organizer's rate while the event is running, else 0.
    pub admit_rate: f64,
    /// This step opened the sale: the pre-queue's places count from now on.
    pub sale_opened: bool,
}

/// What one admission step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Admitted fans, in queue order.
    pub admitted: Vec<String>,
    /// The queue score each admitted fan was admitted from, in the same order.
    pub scores: Vec<i64>,
    /// When they were admitted, and when their admission expires (Redis time, ms).
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
    /// Abandoned fans dropped without using an admission.
    pub skipped: u64,
    pub room: Room,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Stepped(Step),
    /// Paused, closed or not yet open: nobody was admitted.
    Idle(Room),
    UnknownEvent,
}

impl Store {
    pub fn new(conn: ConnectionManager, key_prefix: &str) -> Self {
        Self { conn, prefix: key_prefix.into() }
    }

    fn key(&self, event_id: Uuid, name: &str) -> String {
        format!("{}:wr:{{{event_id}}}:{name}", self.prefix)
    }

    /// The keys every per-event script takes, in the order the scripts expect.
    fn keys(&self, event_id: Uuid) -> [String; 5] {
        ["settings", "counters", "queue", "seen", "admitted"].map(|name| self.key(event_id, name))
    }

    fn events_key(&self) -> String {
        format!("{}:wr:events", self.prefix)
    }

    /// The connection every call goes through, for the readiness check.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Writes the settings PostgreSQL has just recorded (`existing`: it had the event
    /// before this write).
    #[tracing::instrument(skip(self, settings, seed), fields(%event_id))]
    pub async fn put_settings(
        &self,
        event_id: Uuid,
        settings: &Settings,
        seed: &str,
        seed_sha256: &str,
        epoch: u64,
        existing: bool,
    ) -> Result<PutOutcome> {
        let mut conn = self.conn.clone();
        let mut invocation = PUT_SETTINGS.key(self.key(event_id, "settings"));
        invocation
            .arg(settings.state.as_str())
            .arg(settings.admit_rate.to_string())
            .arg(settings.max_active)
            .arg(u64::from(settings.token_lifetime_secs) * 1000)
            .arg(settings.opens_at.map_or(0, |t| t.timestamp_millis()))
            .arg(seed)
            .arg(seed_sha256)
            .arg(epoch)
            .arg(if existing { "1" } else { "0" });
        let outcome: String = timed("put_settings", invocation.invoke_async(&mut conn)).await?;
        match outcome.as_str() {
            "already_open" => return Ok(PutOutcome::AlreadyOpen),
            "unknown_event" => return Ok(PutOutcome::Lost),
            _ => {}
        }
        self.index(event_id).await?;
        Ok(PutOutcome::Written)
    }

    /// Adds the event to the index the admitter walks. Outside the scripts: the index
    /// is not under the event's hash tag.
    async fn index(&self, event_id: Uuid) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: () = conn.sadd(self.events_key(), event_id.to_string()).await?;
        Ok(())
    }

    /// The seed Redis holds for an event, if any: an event configured before its
    /// settings lived in PostgreSQL keeps the seed whose hash was published.
    pub async fn seed(&self, event_id: Uuid) -> Result<Option<String>> {
        let mut conn = self.conn.clone();
        Ok(conn.hget(self.key(event_id, "settings"), "seed").await?)
    }

    /// Whether Redis has the event's settings.
    pub async fn exists(&self, event_id: Uuid) -> Result<bool> {
        let mut conn = self.conn.clone();
        Ok(conn.exists(self.key(event_id, "settings")).await?)
    }

    /// Rebuilds a lost event from PostgreSQL's record (see `scripts/restore.lua`);
    /// `false` when Redis had it after all (another replica rebuilt it first).
    #[tracing::instrument(skip(self, rebuild), fields(%event_id, epoch = rebuild.epoch))]
    pub async fn restore(&self, event_id: Uuid, rebuild: &Rebuild) -> Result<bool> {
        let mut conn = self.conn.clone();
        let s = &rebuild.settings;
        let mut invocation = RESTORE.key(&self.keys(event_id));
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
            .arg(rebuild.created_at.timestamp_millis());
        let mut chunks = rebuild.live.chunks(RESTORE_CHUNK);
        for (fan, expires_at) in chunks.next().unwrap_or_default() {
            invocation.arg(fan).arg(expires_at.timestamp_millis());
        }
        let rebuilt: i64 = timed("restore", invocation.invoke_async(&mut conn)).await?;
        if rebuilt == 0 {
            return Ok(false);
        }
        // Admission stays paused for a while after the rebuild, so the rest of a large
        // admitted set can follow in short commands of their own.
        for chunk in chunks {
            let members: Vec<(i64, &str)> =
                chunk.iter().map(|(fan, expires_at)| (expires_at.timestamp_millis(), fan.as_str())).collect();
            let _: () = redis::cmd("ZADD")
                .arg(self.key(event_id, "admitted"))
                .arg("GT")
                .arg(members)
                .query_async(&mut conn)
                .await?;
        }
        self.index(event_id).await?;
        Ok(true)
    }

    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn event(&self, event_id: Uuid) -> Result<Option<WaitroomEvent>> {
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, String> = conn.hgetall(self.key(event_id, "settings")).await?;
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
        let mut invocation = SET_STATE.key(self.key(event_id, "settings"));
        invocation.arg(state.as_str());
        let found: i64 = timed("set_state", invocation.invoke_async(&mut conn)).await?;
        Ok(found == 1)
    }

    /// Joins, polls or restores a fan (see [`LocateMode`]); each refreshes the fan's
    /// last-seen time.
    #[tracing::instrument(skip(self), fields(%event_id, %fan))]
    pub async fn locate(
        &self,
        event_id: Uuid,
        fan: &FanId,
        mode: LocateMode,
    ) -> Result<std::result::Result<Located, LocateOutcome>> {
        let mut conn = self.conn.clone();
        let mut invocation = LOCATE.key(&self.keys(event_id));
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
        let reply: Vec<String> = timed(command, invocation.invoke_async(&mut conn)).await?;
        let corrupt = || Error::Corrupt(format!("locate reply {reply:?}"));
        let int = |i: usize| num(&reply, i).map(|n| n as i64).ok_or_else(corrupt);
        let placement = match reply.first().map(String::as_str) {
            Some("unknown_event") => return Ok(Err(LocateOutcome::UnknownEvent)),
            Some("closed") => return Ok(Err(LocateOutcome::Closed)),
            Some("not_found") => {
                let restored_at_ms = Some(int(13)?).filter(|&ms| ms > 0);
                return Ok(Err(LocateOutcome::NotFound { restored_at_ms, now_ms: int(11)? }));
            }
            Some("pre_queue") => Placement::PreQueue,
            Some("waiting") => Placement::Waiting { position: int(2)? as u64 },
            Some("admitted") => Placement::Admitted { expires_at: millis(int(4)?).ok_or_else(corrupt)? },
            _ => return Err(corrupt()),
        };
        let joined = reply.get(1).map(String::as_str);
        Ok(Ok(Located {
            placement,
            joined: joined == Some("1"),
            restored: joined == Some("2"),
            score: reply.get(10).filter(|s| !s.is_empty()).map(|_| int(10)).transpose()?,
            now_ms: int(11)?,
            epoch: int(12)? as u64,
            restored_at_ms: Some(int(13)?).filter(|&ms| ms > 0),
            queue_length: int(3)? as u64,
            state: reply.get(5).and_then(|s| EventState::parse(s)).ok_or_else(corrupt)?,
            admit_rate: num(&reply, 6).ok_or_else(corrupt)?,
            measured_rate: measured_rate(num(&reply, 7), num(&reply, 8)),
            opens_at: millis(int(9)?),
        }))
    }

    /// Removes a fan from the event; `None` when the event is unknown, else whether
    /// the fan held a place.
    #[tracing::instrument(skip(self), fields(%event_id, %fan))]
    pub async fn leave(&self, event_id: Uuid, fan: &FanId) -> Result<Option<bool>> {
        let mut conn = self.conn.clone();
        let mut invocation = LEAVE.key(&self.keys(event_id));
        invocation.arg(fan.as_str());
        let removed: i64 = timed("leave", invocation.invoke_async(&mut conn)).await?;
        Ok((removed >= 0).then_some(removed > 0))
    }

    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn stats(&self, event_id: Uuid) -> Result<Option<Stats>> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> = timed("stats", STATS.key(&self.keys(event_id)).invoke_async(&mut conn)).await?;
        if reply.is_empty() {
            return Ok(None);
        }
        let corrupt = || Error::Corrupt(format!("stats reply {reply:?}"));
        let count = |i| num(&reply, i).map(|n| n as u64).ok_or_else(corrupt);
        Ok(Some(Stats {
            state: EventState::parse(&reply[0]).ok_or_else(corrupt)?,
            queue_length: count(1)?,
            active: count(2)?,
            admitted_total: count(3)?,
            skipped_total: count(4)?,
            measured_rate: measured_rate(num(&reply, 5), num(&reply, 6)),
            last_admission_step_at: millis(count(7)? as i64),
            restored_at: millis(count(8)? as i64),
        }))
    }

    /// Every event with waiting-room settings in Redis.
    pub async fn events(&self) -> Result<Vec<Uuid>> {
        let mut conn = self.conn.clone();
        let members: Vec<String> = conn.smembers(self.events_key()).await?;
        Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
    }

    /// One atomic admission step for `event_id` (see `scripts/admit.lua`); nobody is
    /// admitted within `pause_after_restore_ms` of a rebuild.
    #[tracing::instrument(level = "debug", skip(self), fields(%event_id))]
    pub async fn admit_step(
        &self,
        event_id: Uuid,
        abandon_after_ms: u64,
        pause_after_restore_ms: u64,
    ) -> Result<StepOutcome> {
        let mut conn = self.conn.clone();
        let mut invocation = ADMIT.key(&self.keys(event_id));
        invocation
            .arg(abandon_after_ms)
            .arg(MAX_CATCH_UP_MS)
            .arg(MAX_SCAN_PER_STEP)
            .arg(RATE_TAU_MS)
            .arg(pause_after_restore_ms);
        let reply: Vec<redis::Value> = timed("admit", invocation.invoke_async(&mut conn)).await?;
        let corrupt = || Error::Corrupt(format!("admit reply {reply:?}"));
        let int = |i: usize| reply.get(i).and_then(|v| redis::from_redis_value_ref::<i64>(v).ok()).ok_or_else(corrupt);
        let count = |i: usize| int(i).map(|n| n.max(0) as u64);
        let code = int(0)?;
        if code == -1 {
            return Ok(StepOutcome::UnknownEvent);
        }
        let admit_rate = reply
            .get(6)
            .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
            .and_then(|rate| rate.parse().ok())
            .ok_or_else(corrupt)?;
        let room = Room {
            queue_length: count(3)?,
            active: count(4)?,
            max_active: count(5)?,
            admit_rate,
            sale_opened: int(1)? == 1,
        };
        if code == 0 {
            return Ok(StepOutcome::Idle(room));
        }
        let pairs = reply.get(9..).ok_or_else(corrupt)?;
        if pairs.len() % 2 != 0 {
            return Err(corrupt());
        }
        let text = |v: &redis::Value| redis::from_redis_value_ref::<String>(v).map_err(|_| corrupt());
        let (mut admitted, mut scores) = (Vec::with_capacity(pairs.len() / 2), Vec::with_capacity(pairs.len() / 2));
        for pair in pairs.chunks_exact(2) {
            admitted.push(text(&pair[0])?);
            // Scores come back as Redis formats doubles; every queue score is an
            // integer well inside 2^53, so the conversion is exact.
            scores.push(text(&pair[1])?.parse::<f64>().map_err(|_| corrupt())? as i64);
        }
        Ok(StepOutcome::Stepped(Step {
            admitted,
            scores,
            admitted_at_ms: int(7)?,
            expires_at_ms: int(8)?,
            skipped: count(2)?,
            room,
        }))
    }
}

/// Runs one script call, recording its round trip for the Redis latency histogram.
async fn timed<T>(command: &'static str, call: impl Future<Output = redis::RedisResult<T>>) -> redis::RedisResult<T> {
    let started = Instant::now();
    let result = call.await;
    crate::metrics::redis_command(command, started.elapsed());
    result
}

fn num(reply: &[String], index: usize) -> Option<f64> {
    reply.get(index)?.parse().ok()
}

/// Zero means "not set" in the stored millisecond fields.
fn millis(ms: i64) -> Option<DateTime<Utc>> {
    (ms > 0).then(|| Utc.timestamp_millis_opt(ms).single()).flatten()
}

/// Admissions per second from the script's weighted average and its weight; `None`
/// until there is at least a moment of observation to go on.
fn measured_rate(ewma: Option<f64>, weight: Option<f64>) -> Option<f64> {
    match (ewma, weight) {
        (Some(ewma), Some(weight)) if weight > 0.01 => Some(ewma / weight),
        _ => None,
    }
}
