//! Each event's rules (currency, order limit, hold lifetime, sections and prices), as
//! every order reads them, from a per-replica cache.
//!
//! Sections, seats and prices are fixed once an event exists, but the organizer may
//! change other rules later (D8 in the shared decisions): the order limit now, the
//! refund policy and sale state next. So a cached copy lives at most `max_age`
//! (`gateway.event_rules_max_age_ms`): every replica applies a change within that bound
//! of its commit, and rereads each event at most once per bound, which costs the
//! booking path nothing measurable.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, Result, What};
use crate::store::events::{self, EventRules};
use crate::Sales;

/// How many events' rules a replica keeps: far more than are on sale at once.
const CAPACITY: u64 = 10_000;

#[derive(Clone)]
pub struct EventRulesCache {
    cache: moka::future::Cache<Uuid, Arc<EventRules>>,
}

impl EventRulesCache {
    pub fn new(max_age: Duration) -> Self {
        Self { cache: moka::future::Cache::builder().max_capacity(CAPACITY).time_to_live(max_age).build() }
    }
}

impl Sales {
    /// The event's rules, from this replica's copy if it is younger than the bound.
    pub async fn event_rules(&self, event_id: Uuid) -> Result<Arc<EventRules>> {
        if let Some(rules) = self.rules.cache.get(&event_id).await {
            return Ok(rules);
        }
        let rules = self
            .db
            .read(move |conn| Box::pin(events::rules(conn, event_id)))
            .await?
            .map(Arc::new)
            .ok_or(Error::NotFound(What::Event))?;
        self.rules.cache.insert(event_id, rules.clone()).await;
        Ok(rules)
    }
}
