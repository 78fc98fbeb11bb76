//! Abuse control with governor token buckets.
//!
//! Governor keeps its buckets in this process, so each replica limits on its own: fine
//! for slowing a bot down; nothing that must hold across replicas (the admission rate)
//! depends on it.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;

/// A token bucket: `per_second` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// `name` is the configuration key, for the message.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.per_second == 0 || self.burst == 0 {
            return Err(format!("{name}.per_second and {name}.burst must be at least 1"));
        }
        Ok(())
    }

    fn quota(self) -> Quota {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Quota::per_second(nonzero(self.per_second)).allow_burst(nonzero(self.burst))
    }
}

/// One bucket per key (client address, fan id).
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    buckets: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(limit: RateLimit) -> Self {
        Self { buckets: RateLimiter::keyed(limit.quota()), clock: DefaultClock::default() }
    }

    /// `Err(wait)` when `key` has used up its bucket.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.buckets.check_key(key).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets keys whose buckets are full again, so memory follows recent clients
    /// rather than every client ever seen.
    pub fn forget_idle(&self) {
        self.buckets.retain_recent();
    }
}

/// One bucket for everything: a ceiling on what one replica accepts.
pub struct GlobalLimiter {
    bucket: DefaultDirectRateLimiter,
    clock: DefaultClock,
}

impl GlobalLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self { bucket: RateLimiter::direct(limit.quota()), clock: DefaultClock::default() }
    }

    pub fn check(&self) -> Result<(), Duration> {
        self.bucket.check().map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait_per_key() {
        let limiter = KeyedLimiter::new(RateLimit { per_second: 1, burst: 3 });
        for _ in 0..3 {
            assert!(limiter.check(&"a").is_ok());
        }
        let wait = limiter.check(&"a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.check(&"b").is_ok(), "other keys are not affected");
    }

    #[test]
    fn the_global_bucket_refuses_past_its_burst() {
        let limiter = GlobalLimiter::new(RateLimit { per_second: 1, burst: 2 });
        assert!(limiter.check().is_ok() && limiter.check().is_ok());
        assert!(limiter.check().is_err());
    }
}
