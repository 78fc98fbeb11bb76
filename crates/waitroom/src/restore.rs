//! Surviving Redis losing its data: noticing that an event's Redis state is gone,
//! and rebuilding it from PostgreSQL.
//!
//! Redis answers `unknown_event` for an event whose settings it lost. If PostgreSQL
//! knows the event, [`Restorer::rebuild`] bumps its epoch in PostgreSQL and runs
//! `restore.lua`, which puts back the settings and seed, the admitted set (from the
//! live admissions recorded) and an arrival counter above every ticket issued before,
//! and pauses admission for a while. Fans then come back one poll at a time, each put
//! back at the place their ticket names (see [`crate::queue`]).
//!
//! Who notices: the admitter, which walks the events PostgreSQL knows (cached for
//! [`DIRECTORY_MAX_AGE`]; less the closed and idle-retired ones, see
//! [`crate::admitter`]) besides the Redis index the wipe took with it; and any join,
//! poll, leave or organizer request that meets `unknown_event`, so the first fan back
//! does not wait for a tick.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::domain::settings::WaitroomEvent;
use crate::error::{Error, Result};
use crate::ledger::{Ledger, Listing};
use crate::recorder::Recorder;
use crate::store::Store;

/// How stale the list of PostgreSQL's events may be for the admitter's walk.
pub const DIRECTORY_MAX_AGE: Duration = Duration::from_secs(1);
/// How stale it may be when it does not list an event Redis says it does not know:
/// the event may have been created since (and Redis wiped right after). Re-reading at
/// most this often keeps unknown event ids (typos, bots) from costing a database query
/// each.
const DIRECTORY_MISS_MAX_AGE: Duration = Duration::from_millis(100);

/// Shared by the request handlers and the admitter of one process.
pub struct Restorer {
    store: Store,
    ledger: Ledger,
    recorder: Arc<Recorder>,
    directory: Mutex<Option<Directory>>,
    /// One directory read at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// A background read of the directory is under way.
    refresh_spawned: AtomicBool,
    /// One rebuild at a time in this process; rebuilds are rare, and serialising them
    /// means at most one epoch bump per process per wipe.
    rebuilding: tokio::sync::Mutex<()>,
    /// Events the admitter is rebuilding in the background.
    in_flight: Mutex<HashSet<Uuid>>,
    /// Events whose retirement (or return) the admitter is recording in PostgreSQL.
    recording_retirement: Mutex<HashSet<Uuid>>,
    /// When a rebuild last failed: for [`REBUILD_BACKOFF`] after, requests that need one
    /// are told `503` at once instead of each waiting out PostgreSQL in turn.
    failed_at: Mutex<Option<Instant>>,
}

/// See [`Restorer::failed_at`]; the admitter retries on its next tick after it anyway.
const REBUILD_BACKOFF: Duration = Duration::from_secs(1);

/// The events PostgreSQL knows, as last read.
#[derive(Clone)]
struct Directory {
    read_at: Instant,
    /// `None` when the last attempt failed and nothing was ever read.
    events: Option<Arc<HashMap<Uuid, Listing>>>,
}

impl Restorer {
    pub fn new(store: Store, ledger: Ledger, recorder: Arc<Recorder>) -> Self {
        Self {
            store,
            ledger,
            recorder,
            directory: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            refresh_spawned: AtomicBool::new(false),
            rebuilding: tokio::sync::Mutex::new(()),
            in_flight: Mutex::default(),
            recording_retirement: Mutex::default(),
            failed_at: Mutex::default(),
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.recorder
    }

    fn cached(&self) -> Option<Directory> {
        self.directory.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The events PostgreSQL knows, read again if the copy is older than `max_age`.
    /// While PostgreSQL cannot be read, the last copy (if any) stands, and it is tried
    /// again at most once per `max_age`.
    async fn directory(&self, max_age: Duration) -> Result<Arc<HashMap<Uuid, Listing>>> {
        let fresh = |d: &Directory| d.read_at.elapsed() < max_age;
        if let Some(Directory { events: Some(events), .. }) = self.cached().filter(fresh) {
            return Ok(events);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(cached) = self.cached().filter(fresh) {
            return cached.events.ok_or(Error::DatabaseUnavailable);
        }
        let read = self.ledger.events().await;
        let mut directory = self.directory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let read_at = Instant::now();
        match read {
            Ok(events) => {
                let events = Arc::new(events.into_iter().collect::<HashMap<_, _>>());
                *directory = Some(Directory { read_at, events: Some(events.clone()) });
                Ok(events)
            }
            Err(e) => {
                let previous = directory.as_ref().and_then(|d| d.events.clone());
                *directory = Some(Directory { read_at, events: previous.clone() });
                previous.ok_or(e)
            }
        }
    }

    /// The last copy of the directory without waiting for PostgreSQL; a stale copy
    /// starts a read in the background for the next caller.
    pub fn directory_now(self: &Arc<Self>) -> Option<Arc<HashMap<Uuid, Listing>>> {
        let cached = self.cached();
        let stale = cached.as_ref().is_none_or(|d| d.read_at.elapsed() >= DIRECTORY_MAX_AGE);
        if stale && !self.refresh_spawned.swap(true, Ordering::SeqCst) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.directory(DIRECTORY_MAX_AGE).await {
                    tracing::debug!(error = %e, "cannot read the waiting room's events from PostgreSQL");
                }
                this.refresh_spawned.store(false, Ordering::SeqCst);
            });
        }
        cached.and_then(|d| d.events)
    }

    /// The events PostgreSQL knows, read now (waiting on PostgreSQL: not for the
    /// admitter's tick).
    pub async fn directory_fresh(&self) -> Result<Arc<HashMap<Uuid, Listing>>> {
        self.directory(Duration::ZERO).await
    }

    /// Records in PostgreSQL, in the background, that Redis retired the event for
    /// idleness or that a join brought it back (see `scripts/admit.lua`), unless such
    /// a write for it is under way. The admitter calls this whenever its step and the
    /// directory disagree, so a write that failed is tried again on a later tick.
    pub fn record_retirement_in_background(self: &Arc<Self>, event_id: Uuid, retired: bool) {
        let lock = || self.recording_retirement.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !lock().insert(event_id) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match this.ledger.set_retired(event_id, retired).await {
                Ok(()) => {
                    this.patch_directory(event_id, retired);
                    if retired {
                        tracing::info!(%event_id, "idle event retired: out of the admitter's walk, its keys expiring");
                    }
                }
                Err(e) => {
                    crate::metrics::admitter_error();
                    tracing::debug!(%event_id, retired, error = %e, "cannot record a retirement yet; retrying next tick");
                }
            }
            this.recording_retirement.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&event_id);
        });
    }

    /// The cached directory with the retirement just written, so the walk does not
    /// write it again before the next read.
    fn patch_directory(&self, event_id: Uuid, retired: bool) {
        let mut directory = self.directory.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(Directory { events: Some(events), .. }) = directory.as_mut() {
            if events.get(&event_id).is_some_and(|listing| listing.retired != retired) {
                if let Some(listing) = Arc::make_mut(events).get_mut(&event_id) {
                    listing.retired = retired;
                }
            }
        }
    }

    /// Makes sure Redis has the event, rebuilding it from PostgreSQL if Redis lost it.
    /// `Ok(false)` when PostgreSQL does not know the event either.
    pub async fn rebuild_if_known(&self, event_id: Uuid) -> Result<bool> {
        let known = self.directory(DIRECTORY_MAX_AGE).await?.contains_key(&event_id)
            || self.directory(DIRECTORY_MISS_MAX_AGE).await?.contains_key(&event_id);
        if !known {
            return Ok(false);
        }
        self.rebuild(event_id).await
    }

    /// Rebuilds the event's Redis state from PostgreSQL unless Redis has it (see the
    /// module documentation); `Ok(false)` when PostgreSQL does not know the event.
    #[tracing::instrument(skip(self), fields(%event_id))]
    pub async fn rebuild(&self, event_id: Uuid) -> Result<bool> {
        let _one_at_a_time = self.rebuilding.lock().await;
        if self.store.exists(event_id).await? {
            return Ok(true);
        }
        let failed_at = *self.failed_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if failed_at.is_some_and(|at| at.elapsed() < REBUILD_BACKOFF) {
            return Err(Error::DatabaseUnavailable);
        }
        let outcome = self.rebuild_now(event_id).await;
        *self.failed_at.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = outcome.is_err().then(Instant::now);
        outcome
    }

    async fn rebuild_now(&self, event_id: Uuid) -> Result<bool> {
        // Admissions this process made but has not recorded yet must count towards
        // the rebuilt admitted set; if PostgreSQL cannot take them, it cannot serve
        // the rebuild either.
        self.recorder.flush().await?;
        let Some(rebuild) = self.ledger.begin_rebuild(event_id).await? else {
            return Ok(false);
        };
        if self.store.restore(event_id, &rebuild).await? {
            crate::metrics::rebuilt(event_id);
            tracing::warn!(
                epoch = rebuild.epoch,
                live_admissions = rebuild.live.len(),
                admitted_total = rebuild.admitted_total,
                "Redis had lost this event: rebuilt it from PostgreSQL; admission pauses while fans come back"
            );
        }
        Ok(true)
    }

    /// Starts [`rebuild`](Self::rebuild) in the background, unless one for this event
    /// is already under way: the admitter must not wait on PostgreSQL.
    pub fn rebuild_in_background(self: &Arc<Self>, event_id: Uuid) {
        if !self.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(event_id) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.rebuild(event_id).await {
                crate::metrics::admitter_error();
                tracing::warn!(%event_id, error = %e, "cannot rebuild a lost event yet; retrying next tick");
            }
            this.in_flight.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&event_id);
        });
    }

    /// The event's settings and shuffle commitment: from Redis, or from PostgreSQL when
    /// Redis has lost them or cannot be reached, so the published commitment can be
    /// read whatever happened to Redis.
    pub async fn event(&self, event_id: Uuid) -> Result<Option<WaitroomEvent>> {
        let from_redis = match self.store.event(event_id).await {
            Ok(Some(event)) => return Ok(Some(event)),
            Ok(None) => None,
            Err(e @ Error::Unavailable(_)) => Some(e),
            Err(e) => return Err(e),
        };
        match self.ledger.event(event_id).await {
            Ok(event) => Ok(event.map(|event| event.view(chrono::Utc::now()))),
            Err(e) => Err(from_redis.unwrap_or(e)),
        }
    }
}
