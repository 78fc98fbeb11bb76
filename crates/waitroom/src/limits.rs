//! Abuse control on joins, per client address and per fan id.
//!
//! Governor keeps its buckets in this process, so each replica limits on its own:
//! fine for throttling a bot, and nothing that must hold across replicas (the
//! admission rate) depends on it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;
use crate::domain::fan::FanId;

pub struct JoinLimiter {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    per_fan: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl JoinLimiter {
    pub fn new(per_address: RateLimit, per_fan: RateLimit) -> Self {
        Self {
            per_address: RateLimiter::keyed(quota(per_address)),
            per_fan: RateLimiter::keyed(quota(per_fan)),
            clock: DefaultClock::default(),
        }
    }

    /// `Err(wait)` when the address or the fan has joined too often.
    pub fn check(&self, address: IpAddr, fan: Option<&FanId>) -> Result<(), Duration> {
        if let Err(not_until) = self.per_address.check_key(&address) {
            crate::metrics::rate_limited("address");
            return Err(not_until.wait_time_from(self.clock.now()));
        }
        if let Some(fan) = fan {
            if let Err(not_until) = self.per_fan.check_key(&fan.as_str().to_owned()) {
                crate::metrics::rate_limited("fan");
                return Err(not_until.wait_time_from(self.clock.now()));
            }
        }
        Ok(())
    }

    /// Forgets keys whose buckets are full again, so memory follows recent clients
    /// rather than every client ever seen.
    pub fn forget_idle(&self) {
        self.per_address.retain_recent();
        self.per_fan.retain_recent();
    }
}

fn quota(limit: RateLimit) -> Quota {
    let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(nonzero(limit.per_second)).allow_burst(nonzero(limit.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_and_then_refused_with_a_wait() {
        let limiter = JoinLimiter::new(RateLimit { per_second: 1, burst: 3 }, RateLimit { per_second: 1, burst: 100 });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(ip, None).is_ok());
        }
        let wait = limiter.check(ip, None).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limiter.check("10.0.0.2".parse().unwrap(), None).is_ok(), "other addresses are not affected");
    }

    #[test]
    fn one_fan_is_limited_across_addresses() {
        let limiter =
            JoinLimiter::new(RateLimit { per_second: 100, burst: 100 }, RateLimit { per_second: 1, burst: 1 });
        let fan = FanId::parse("fan-1").unwrap();
        assert!(limiter.check("10.0.0.1".parse().unwrap(), Some(&fan)).is_ok());
        assert!(limiter.check("10.0.0.2".parse().unwrap(), Some(&fan)).is_err());
    }
}
