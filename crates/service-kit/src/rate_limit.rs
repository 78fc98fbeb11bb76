//! Abuse control with governor token buckets.
//!
//! Governor keeps its buckets in this process, so each replica limits on its own: fine
//! for slowing a bot down; nothing that must hold across replicas (the admission rate)
//! depends on it.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::client_address::ClientAddress;

/// How often idle buckets are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

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

    /// One call per `period` per key, no burst (a zero period is taken as 1 ms).
    pub fn once_per(period: Duration) -> Self {
        let quota =
            Quota::with_period(period.max(Duration::from_millis(1))).unwrap_or(Quota::per_second(NonZeroU32::MIN));
        Self { buckets: RateLimiter::keyed(quota), clock: DefaultClock::default() }
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

/// Runs `forget_idle` (of keyed limiters) every minute until `shutdown`.
pub fn spawn_sweeps(shutdown: CancellationToken, forget_idle: impl Fn() + Send + 'static) {
    tokio::spawn(async move {
        let mut sweeps = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = sweeps.tick() => forget_idle(),
            }
        }
    });
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

/// Which limit refused a request: the `limit` label of every service's rate-limited
/// counter, so one dashboard query reads both services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Global,
    Address,
    /// The lower per-address bucket of unauthenticated reads (the gateway's seat map
    /// and event details).
    PublicRead,
    Fan,
}

impl Limit {
    pub const LABEL: &'static str = "limit";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Address => "address",
            Self::PublicRead => "public_read",
            Self::Fan => "fan",
        }
    }
}

/// What a service limits its callers by: the client's address (its bucket: an IPv6
/// client's /64), the fan, and optionally everything the replica accepts. Each refusal
/// is counted in the service's `refusals` counter, labelled by [`Limit`].
pub struct ClientLimits {
    refusals: &'static str,
    global: Option<GlobalLimiter>,
    per_address: KeyedLimiter<IpAddr>,
    public_reads_per_address: Option<KeyedLimiter<IpAddr>>,
    per_fan: KeyedLimiter<String>,
}

impl ClientLimits {
    pub fn new(refusals: &'static str, per_address: RateLimit, per_fan: RateLimit) -> Self {
        let limits = Self {
            refusals,
            global: None,
            per_address: KeyedLimiter::new(per_address),
            public_reads_per_address: None,
            per_fan: KeyedLimiter::new(per_fan),
        };
        limits.count_from_zero(Limit::Address);
        limits.count_from_zero(Limit::Fan);
        limits
    }

    /// Adds a ceiling on everything this replica accepts.
    pub fn with_global(mut self, limit: RateLimit) -> Self {
        self.global = Some(GlobalLimiter::new(limit));
        self.count_from_zero(Limit::Global);
        self
    }

    /// Adds a second, lower bucket per address for public reads, checked by
    /// [`ClientLimits::check_public_read`] on top of the address's own.
    pub fn with_public_reads(mut self, limit: RateLimit) -> Self {
        self.public_reads_per_address = Some(KeyedLimiter::new(limit));
        self.count_from_zero(Limit::PublicRead);
        self
    }

    /// `Err(wait)` when the client's public-read bucket is empty (never without one).
    /// Checked after [`ClientLimits::check_address`] and before the replica's ceiling,
    /// so a read it refuses takes nothing from the ceiling either.
    pub fn check_public_read(&self, client: &ClientAddress) -> Result<(), Duration> {
        let Some(limiter) = &self.public_reads_per_address else { return Ok(()) };
        limiter.check(&client.bucket()).inspect_err(|_| self.refused(Limit::PublicRead))
    }

    /// `Err(wait)` when the replica is over its ceiling (never without one). Check the
    /// client's own limit first: a request that limit refuses must not spend the
    /// ceiling, or one client flooding past its limit would use it up for everyone.
    pub fn check_global(&self) -> Result<(), Duration> {
        self.global.as_ref().map_or(Ok(()), GlobalLimiter::check).inspect_err(|_| self.refused(Limit::Global))
    }

    /// `Err(wait)` when the client's bucket is empty.
    pub fn check_address(&self, client: &ClientAddress) -> Result<(), Duration> {
        self.per_address.check(&client.bucket()).inspect_err(|_| self.refused(Limit::Address))
    }

    /// `Err(wait)` when the fan has used up their bucket, whatever address they use.
    pub fn check_fan(&self, fan_id: &str) -> Result<(), Duration> {
        self.per_fan.check(&fan_id.to_owned()).inspect_err(|_| self.refused(Limit::Fan))
    }

    /// Forgets, every minute until `shutdown`, the clients whose buckets are full again.
    pub fn spawn_sweeper(self: &Arc<Self>, shutdown: CancellationToken) {
        let limits = Arc::clone(self);
        spawn_sweeps(shutdown, move || limits.forget_idle());
    }

    fn forget_idle(&self) {
        self.per_address.forget_idle();
        if let Some(limiter) = &self.public_reads_per_address {
            limiter.forget_idle();
        }
        self.per_fan.forget_idle();
    }

    fn refused(&self, limit: Limit) {
        metrics::counter!(self.refusals, Limit::LABEL => limit.as_str()).increment(1);
    }

    /// Creates the counter at 0, so its first increment shows in `rate()` and an idle
    /// panel reads 0 rather than "no data".
    fn count_from_zero(&self, limit: Limit) {
        metrics::counter!(self.refusals, Limit::LABEL => limit.as_str()).increment(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> ClientAddress {
        ClientAddress(address.parse().unwrap())
    }

    #[test]
    fn one_fan_is_limited_across_addresses() {
        let limits = ClientLimits::new(
            "test_rate_limited_total",
            RateLimit { per_second: 100, burst: 100 },
            RateLimit { per_second: 1, burst: 1 },
        );
        assert!(limits.check_address(&client("10.0.0.1")).is_ok() && limits.check_fan("fan-1").is_ok());
        assert!(limits.check_address(&client("10.0.0.2")).is_ok());
        assert!(limits.check_fan("fan-1").is_err());
        assert!(limits.check_fan("fan-2").is_ok());
    }

    #[test]
    fn addresses_of_one_ipv6_64_share_a_bucket() {
        let one = RateLimit { per_second: 1, burst: 1 };
        let limits = ClientLimits::new("test_rate_limited_total", one, one);
        assert!(limits.check_address(&client("2001:db8:0:1::1")).is_ok());
        assert!(limits.check_address(&client("2001:db8:0:1::2")).is_err());
        assert!(limits.check_address(&client("2001:db8:0:2::1")).is_ok());
    }

    #[test]
    fn public_reads_have_their_own_bucket_per_address_on_top_of_the_address_limit() {
        let many = RateLimit { per_second: 100, burst: 100 };
        let limits = ClientLimits::new("test_rate_limited_total", many, many)
            .with_public_reads(RateLimit { per_second: 1, burst: 2 });
        let (a, b) = (client("10.0.0.1"), client("10.0.0.2"));
        assert!(limits.check_public_read(&a).is_ok() && limits.check_public_read(&a).is_ok());
        assert!(limits.check_public_read(&a).is_err());
        assert!(limits.check_address(&a).is_ok(), "the address's own bucket is another");
        assert!(limits.check_public_read(&b).is_ok());
        let without = ClientLimits::new("test_rate_limited_total", many, many);
        assert!((0..10).all(|_| without.check_public_read(&a).is_ok()));
    }

    #[test]
    fn without_a_ceiling_the_global_check_always_passes() {
        let one = RateLimit { per_second: 1, burst: 1 };
        let unbounded = ClientLimits::new("test_rate_limited_total", one, one);
        assert!((0..10).all(|_| unbounded.check_global().is_ok()));
        let bounded = ClientLimits::new("test_rate_limited_total", one, one).with_global(one);
        assert!(bounded.check_global().is_ok() && bounded.check_global().is_err());
    }

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
