//! Revoked admissions, as this replica knows them: every unexpired revocation, read
//! from PostgreSQL by a background poll every `gateway.revocation_poll_interval_ms`
//! (a second by default), and checked on every fan's request after the token is
//! verified (or found in the verified-token cache), so a revoked token is refused by
//! every replica within about a poll interval of the organizer's request.
//!
//! Until its first read has succeeded, a replica knows no revocation at all, and a
//! token revoked before it started would pass: it fails closed instead. Fans' routes
//! answer `503 revocations_not_loaded` and `/readyz` names `revocations`, so a load
//! balancer sends fans elsewhere. [`crate::Application::build`] makes the first read,
//! so a replica that reaches its database serves fans from its first request.
//!
//! Held in memory: a token id per revoked token and an instant per revoked fan of an
//! event, each forgotten when no token it matches can still be valid (a day and five
//! minutes, `sales::store::revocations::LIFETIME`). The set is as large as the
//! revocations of the last day: the organizer's, a handful per fraud case.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use access_token::AccessClaims;
use chrono::{DateTime, Utc};
use sales::model::Revocation;
use sales::Sales;
use service_kit::health::ReadinessCheck;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Revocations {
    known: RwLock<Known>,
    /// Whether a read has succeeded: before it, no token can be checked.
    loaded: AtomicBool,
    /// How often the poll reads new revocations: the bound on how long a revoked token
    /// still works, plus one read.
    poll_every: Duration,
}

#[derive(Default)]
struct Known {
    /// Revoked token ids, each with when it can be forgotten.
    tokens: HashMap<Uuid, DateTime<Utc>>,
    /// Per event, per fan: tokens issued (`iat`) up to this Unix second are revoked.
    fans: HashMap<Uuid, HashMap<String, (i64, DateTime<Utc>)>>,
}

impl Revocations {
    /// Knowing nothing yet; [`Revocations::refresh`] reads.
    pub fn new(poll_every: Duration) -> Self {
        Self { known: RwLock::default(), loaded: AtomicBool::new(false), poll_every }
    }

    /// Whether a read has succeeded, so [`Revocations::is_revoked`] can be believed.
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// The poll interval: how long a client refused for [`Revocations::loaded`] being
    /// false should wait.
    pub fn poll_every(&self) -> Duration {
        self.poll_every
    }

    /// A `/readyz` check: failing until the first read has succeeded.
    pub fn readiness_check(self: &Arc<Self>) -> ReadinessCheck {
        let revocations = Arc::clone(self);
        Arc::new(move || {
            let loaded = revocations.loaded();
            Box::pin(async move {
                if loaded {
                    Ok(())
                } else {
                    Err("not read yet".to_owned())
                }
            })
        })
    }

    /// Whether the organizer revoked this token, or every token of its fan for its event
    /// issued up to the token's own issue time.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let known = self.known.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.tokens.contains_key(&claims.jti) {
            return true;
        }
        known
            .fans
            .get(&claims.evt)
            .and_then(|fans| fans.get(&claims.sub))
            .is_some_and(|&(revoked_at, _)| claims.iat <= revoked_at)
    }

    /// Adds what a poll read, and forgets what has expired by `now`.
    fn apply(&self, revocations: Vec<Revocation>, now: DateTime<Utc>) {
        let mut known = self.known.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        for r in revocations {
            match (r.jti, r.fan_id) {
                (Some(jti), _) => {
                    known.tokens.insert(jti, r.expires_at);
                }
                (None, Some(fan_id)) => {
                    known.fans.entry(r.event_id).or_default().insert(fan_id, (r.revoked_at.timestamp(), r.expires_at));
                }
                (None, None) => {}
            }
        }
        known.tokens.retain(|_, expires_at| *expires_at > now);
        known.fans.retain(|_, fans| {
            fans.retain(|_, (_, expires_at)| *expires_at > now);
            !fans.is_empty()
        });
    }

    /// Reads what was revoked since `previous` (every unexpired revocation for `None`,
    /// then those written since the previous read, with an overlap, see
    /// `sales::revocations::POLL_OVERLAP`) and returns the `previous` of the next read.
    /// A failed read is logged; what the replica knew stays.
    pub async fn refresh(&self, sales: &Sales, previous: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match sales.revocations_since(previous).await {
            Ok(read) => {
                self.apply(read.revocations, read.read_at);
                if !self.loaded.swap(true, Ordering::AcqRel) {
                    tracing::info!("token revocations read: serving fans");
                }
                Some(read.read_at)
            }
            Err(e) => {
                if self.loaded() {
                    tracing::warn!(error = %e, "reading token revocations failed; retrying");
                } else {
                    tracing::warn!(error = %e, "reading token revocations failed; refusing fans until a read succeeds");
                }
                previous
            }
        }
    }

    /// Reads every poll interval until `shutdown`, from `previous` (the
    /// [`Revocations::refresh`] made before, if any).
    pub fn spawn_poller(self: Arc<Self>, sales: Sales, previous: Option<DateTime<Utc>>, shutdown: CancellationToken) {
        tokio::spawn(async move {
            let mut previous = previous;
            let mut ticks = tokio::time::interval(self.poll_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            if previous.is_some() {
                ticks.tick().await; // the first tick is now: a read just succeeded
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                previous = self.refresh(&sales, previous).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(event_id: Uuid, jti: Option<Uuid>, fan_id: Option<&str>, revoked_at: i64) -> Revocation {
        let revoked_at = DateTime::from_timestamp(revoked_at, 0).unwrap();
        Revocation {
            event_id,
            jti,
            fan_id: fan_id.map(str::to_owned),
            revoked_at,
            expires_at: revoked_at + chrono::TimeDelta::seconds(3600),
        }
    }

    #[test]
    fn a_fan_revocation_covers_tokens_issued_up_to_it_and_every_revocation_expires() {
        let revocations = Revocations::new(Duration::from_secs(1));
        let event = Uuid::new_v4();
        let token = |fan: &str, iat: i64| AccessClaims::new(fan, event, iat, 300);
        let revoked = token("fan-1", 1_000);
        revocations.apply(
            vec![revocation(event, Some(revoked.jti), None, 1_000), revocation(event, None, Some("fan-2"), 2_000)],
            DateTime::from_timestamp(2_000, 0).unwrap(),
        );
        assert!(revocations.is_revoked(&revoked));
        assert!(!revocations.is_revoked(&token("fan-1", 1_000)), "another token of the fan");
        assert!(revocations.is_revoked(&token("fan-2", 2_000)));
        assert!(!revocations.is_revoked(&token("fan-2", 2_001)), "issued after the revocation");
        assert!(!revocations.is_revoked(&AccessClaims::new("fan-2", Uuid::new_v4(), 1_500, 300)), "another event");

        revocations.apply(vec![], DateTime::from_timestamp(1_000 + 3_600, 0).unwrap());
        assert!(!revocations.is_revoked(&revoked), "expired and forgotten");
        assert!(revocations.is_revoked(&token("fan-2", 2_000)));
        revocations.apply(vec![], DateTime::from_timestamp(2_000 + 3_600, 0).unwrap());
        assert!(!revocations.is_revoked(&token("fan-2", 2_000)));
    }
}
