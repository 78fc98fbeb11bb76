//! Abuse control: a ceiling per replica, per client address and per fan. Checked
//! before anything touches the database.

use std::net::IpAddr;
use std::time::Duration;

use service_kit::rate_limit::{GlobalLimiter, KeyedLimiter};

use crate::config::GatewayConfig;
use crate::error::Error;
use crate::metrics;

pub struct Limits {
    global: GlobalLimiter,
    per_address: KeyedLimiter<IpAddr>,
    per_fan: KeyedLimiter<String>,
}

impl Limits {
    pub fn new(config: &GatewayConfig) -> Self {
        Self {
            global: GlobalLimiter::new(config.limit_global),
            per_address: KeyedLimiter::new(config.limit_per_address),
            per_fan: KeyedLimiter::new(config.limit_per_fan),
        }
    }

    /// Every request, before routing.
    pub fn check_request(&self, address: IpAddr) -> Result<(), Error> {
        refuse("global", self.global.check())?;
        refuse("address", self.per_address.check(&address))
    }

    /// Every fan request, once the token names the fan.
    pub fn check_fan(&self, fan_id: &str) -> Result<(), Error> {
        refuse("fan", self.per_fan.check(&fan_id.to_owned()))
    }

    pub fn forget_idle(&self) {
        self.per_address.forget_idle();
        self.per_fan.forget_idle();
    }
}

fn refuse(limit: &'static str, checked: Result<(), Duration>) -> Result<(), Error> {
    checked.map_err(|wait| {
        metrics::rate_limited(limit);
        Error::RateLimited(wait)
    })
}
