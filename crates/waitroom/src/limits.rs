//! Abuse control on joins, per client address and per fan id.
//!
//! Governor keeps its buckets in this process, so each replica limits on its own:
//! fine for throttling a bot, and nothing that must hold across replicas (the
//! admission rate) depends on it.

use std::net::IpAddr;
use std::time::Duration;

use service_kit::rate_limit::{KeyedLimiter, RateLimit};

use crate::domain::fan::FanId;

pub struct JoinLimiter {
    per_address: KeyedLimiter<IpAddr>,
    per_fan: KeyedLimiter<String>,
}

impl JoinLimiter {
    pub fn new(per_address: RateLimit, per_fan: RateLimit) -> Self {
        Self { per_address: KeyedLimiter::new(per_address), per_fan: KeyedLimiter::new(per_fan) }
    }

    /// `Err(wait)` when the address or the fan has joined too often.
    pub fn check(&self, address: IpAddr, fan: Option<&FanId>) -> Result<(), Duration> {
        self.per_address.check(&address).inspect_err(|_| crate::metrics::rate_limited("address"))?;
        if let Some(fan) = fan {
            self.per_fan.check(&fan.as_str().to_owned()).inspect_err(|_| crate::metrics::rate_limited("fan"))?;
        }
        Ok(())
    }

    /// Forgets clients whose buckets are full again.
    pub fn forget_idle(&self) {
        self.per_address.forget_idle();
        self.per_fan.forget_idle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_fan_is_limited_across_addresses() {
        let limiter =
            JoinLimiter::new(RateLimit { per_second: 100, burst: 100 }, RateLimit { per_second: 1, burst: 1 });
        let fan = FanId::parse("fan-1").unwrap();
        assert!(limiter.check("10.0.0.1".parse().unwrap(), Some(&fan)).is_ok());
        assert!(limiter.check("10.0.0.2".parse().unwrap(), Some(&fan)).is_err());
    }
}
