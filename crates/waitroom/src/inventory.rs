//! What the sale has left, as the waiting room sees it (issue 18): each replica keeps,
//! per event it steps, the places that can still be sold and those in someone's
//! basket, from the seats' change feed (DECISIONS.md D3, the `seat-feed` crate): a
//! snapshot once, then only the rows that changed, every `refresh_ms`.
//!
//! The admitter reads it without waiting: a refresh runs in the background, at most one
//! per event at a time, and a step uses what the last one found. When the feed cannot
//! be read for `stale_after_ms` (PostgreSQL down, a slow database), the budget is
//! dropped and admission carries on at the organizer's rate, as it did before the
//! waiting room knew the inventory; `boxoffice_waitroom_inventory_stale` says so. An
//! event the sale does not know (no sections: a waiting room used on its own) has no
//! budget either. Events no longer stepped are forgotten after ten times
//! `stale_after_ms`, so the counts held grow with the events on sale, not with every
//! event ever sold.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use seat_feed::store::{self as feed, Read};
use seat_feed::{Availability, EventCounts, EventWaitlist, Position};
use service_kit::postgres::Database;
use uuid::Uuid;

use crate::config::InventoryConfig;
use crate::domain::budget::{Budget, SaleState};
use crate::error::{Error, Result};
use crate::refresh::RefreshTurn;

/// Change rows read per refresh at most; a reader further behind takes a snapshot.
const MAX_CHANGES_PER_READ: i64 = 20_000;
/// An event not refreshed for this many times `stale_after_ms` is no longer stepped and
/// is forgotten (read again from a snapshot if it comes back).
const FORGET_AFTER_STALE: u32 = 10;

#[derive(Clone)]
pub struct Inventory {
    db: Database,
    config: InventoryConfig,
    events: Arc<Mutex<HashMap<Uuid, Watched>>>,
}

/// One event's counts as this replica last read them.
#[derive(Default)]
struct Watched {
    counts: EventCounts,
    /// Where the next read starts; None before the first snapshot.
    position: Option<Position>,
    waitlist: EventWaitlist,
    /// When a read last succeeded.
    read_at: Option<Instant>,
    /// At most one refresh at a time, every `refresh_ms` at most.
    turn: RefreshTurn,
}

impl Watched {
    /// Read successfully within `stale_after`.
    fn fresh(&self, stale_after: Duration) -> bool {
        self.read_at.is_some_and(|at| at.elapsed() <= stale_after)
    }
}

impl Inventory {
    pub fn new(db: Database, config: InventoryConfig) -> Self {
        Self { db, config, events: Arc::default() }
    }

    /// What the event's sale allows now: None when the feed is off, stale, not read
    /// yet, or the sale does not know the event.
    pub fn budget(&self, event_id: Uuid) -> Option<Budget> {
        if !self.config.enabled {
            return None;
        }
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let watched = events.get(&event_id)?;
        if !watched.fresh(self.config.stale_after()) || watched.counts.sections.is_empty() {
            return None;
        }
        let availability = watched.counts.availability(Utc::now(), &watched.waitlist.kept_for_waitlist);
        Some(Budget::new(availability, self.config.shoppers_per_place))
    }

    /// Whether the event's counts are too old to use (the feed could not be read).
    pub fn stale(&self, event_id: Uuid) -> bool {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.get(&event_id).is_some_and(|watched| !watched.fresh(self.config.stale_after()))
    }

    /// Starts a refresh of the event's counts in the background if the last one is
    /// older than `refresh_ms` and none is running.
    pub fn refresh_in_background(&self, event_id: Uuid) {
        if !self.config.enabled {
            return;
        }
        {
            let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
            if !events.contains_key(&event_id) {
                // Events no longer stepped (closed, retired) are forgotten, so the map
                // holds only what the admitter walks; a new event is the moment to look.
                let forget_after = self.config.stale_after() * FORGET_AFTER_STALE;
                events.retain(|_, watched| watched.turn.started_within(forget_after));
            }
            let watched = events.entry(event_id).or_default();
            if !watched.turn.take(self.config.refresh()) {
                return;
            }
        }
        let inventory = self.clone();
        tokio::spawn(async move {
            let outcome = inventory.refresh(event_id).await;
            let mut events = inventory.events.lock().unwrap_or_else(|e| e.into_inner());
            let watched = events.entry(event_id).or_default();
            watched.turn.finished();
            if let Err(e) = outcome {
                crate::metrics::inventory_read_failed();
                tracing::debug!(%event_id, error = ?e, "the seat feed could not be read");
            }
        });
    }

    /// Reads the event's changes since the last read (or a snapshot when there was
    /// none, or it is too far behind) and applies them.
    pub async fn refresh(&self, event_id: Uuid) -> Result<Availability> {
        let position = self.position(event_id);
        let read = match position {
            Some(since) => {
                self.db
                    .read(move |conn| {
                        Box::pin(async move {
                            let read = feed::changes_since(conn, event_id, since, MAX_CHANGES_PER_READ).await?;
                            Ok::<_, Error>((read, feed::waitlist(conn, event_id).await?))
                        })
                    })
                    .await?
            }
            None => (Read::Behind, EventWaitlist::default()),
        };
        match read {
            (Read::Changes { changes, watermark }, waitlist) => Ok(self.update(event_id, |watched| {
                // Another refresh (tests call this directly) may have moved on meanwhile.
                if watched.position == position {
                    changes.iter().for_each(|change| watched.counts.apply(change));
                    watched.position = Some(watermark);
                    watched.waitlist = waitlist;
                }
            })),
            (Read::Behind, _) => {
                let (counts, watermark, waitlist) = self
                    .db
                    .transaction(move |tx| {
                        Box::pin(async move {
                            let (counts, watermark) = feed::snapshot(tx, event_id).await?;
                            Ok::<_, Error>((counts, watermark, feed::waitlist(tx, event_id).await?))
                        })
                    })
                    .await?;
                Ok(self.update(event_id, |watched| {
                    watched.counts = counts;
                    watched.position = Some(watermark);
                    watched.waitlist = waitlist;
                }))
            }
        }
    }

    /// Records a successful read with `apply`; the event's availability after it.
    fn update(&self, event_id: Uuid, apply: impl FnOnce(&mut Watched)) -> Availability {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        let watched = events.entry(event_id).or_default();
        apply(watched);
        watched.read_at = Some(Instant::now());
        watched.counts.availability(Utc::now(), &watched.waitlist.kept_for_waitlist)
    }

    fn position(&self, event_id: Uuid) -> Option<Position> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).get(&event_id).and_then(|w| w.position)
    }

    /// The sale's state for fans: None when there is no budget to go by.
    pub fn sale_state(&self, event_id: Uuid) -> Option<SaleState> {
        self.budget(event_id).map(|budget| budget.sale_state())
    }

    /// Whether fans may join the event's waitlist, as last read.
    pub fn waitlist_enabled(&self, event_id: Uuid) -> bool {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.get(&event_id).is_some_and(|watched| watched.waitlist.enabled)
    }
}

impl InventoryConfig {
    fn refresh(&self) -> Duration {
        Duration::from_millis(self.refresh_ms)
    }

    fn stale_after(&self) -> Duration {
        Duration::from_millis(self.stale_after_ms)
    }
}
