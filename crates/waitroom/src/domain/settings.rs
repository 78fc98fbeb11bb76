//! What an organizer chooses for an event's waiting room.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Invalid;

pub const MAX_ADMIT_RATE: f64 = 100_000.0;
pub const MAX_ACTIVE: u32 = 10_000_000;
pub const MAX_TOKEN_LIFETIME_SECS: u32 = 86_400;
/// The most work a join's proof may ask for (`migrations/*_waitroom_proof_of_work.sql`).
pub const MAX_POW_DIFFICULTY: u32 = 1_000_000;

/// Whether the waiting room lets fans in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// Fans join and are admitted at the set rate.
    Running,
    /// Fans may still join and keep their place, but nobody is admitted; used when
    /// the organizer needs to hold the sale (for example while the gateway recovers).
    Paused,
    /// The sale is over: no new joins; admitted fans keep their tokens until expiry.
    Closed,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Self::Running),
            "paused" => Some(Self::Paused),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Fans admitted per second, over all replicas; fractional rates such as 0.5 work.
    pub admit_rate: f64,
    /// Admitted fans whose admission has not expired, at most.
    pub max_active: u32,
    /// How long an admission (and its access token) lasts.
    pub token_lifetime_secs: u32,
    /// Fans who join before this are shuffled at this time; `None` opens at once.
    pub opens_at: Option<DateTime<Utc>>,
    pub state: EventState,
    /// Proof of work at the door: the largest counter a join's challenge may hide
    /// (`crate::pow`); `None`: joins need none.
    pub pow_difficulty: Option<u32>,
}

impl Settings {
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |m: String| Err(Invalid::new("invalid_settings", m));
        if !(self.admit_rate.is_finite() && self.admit_rate > 0.0 && self.admit_rate <= MAX_ADMIT_RATE) {
            return invalid(format!("admit_rate must be above 0 and at most {MAX_ADMIT_RATE} fans per second"));
        }
        if !(1..=MAX_ACTIVE).contains(&self.max_active) {
            return invalid(format!("max_active must be 1-{MAX_ACTIVE}"));
        }
        if !(1..=MAX_TOKEN_LIFETIME_SECS).contains(&self.token_lifetime_secs) {
            return invalid(format!("token_lifetime_secs must be 1-{MAX_TOKEN_LIFETIME_SECS}"));
        }
        if self.pow_difficulty.is_some_and(|d| !(1..=MAX_POW_DIFFICULTY).contains(&d)) {
            return invalid(format!("pow_difficulty must be 1-{MAX_POW_DIFFICULTY}, or absent for none"));
        }
        Ok(())
    }
}

/// What an organizer's write did in PostgreSQL. Redis must already know an event
/// PostgreSQL had: if it does not, Redis lost it, and the event is rebuilt from
/// PostgreSQL rather than its queue started afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsWrite {
    Created,
    Updated,
}

/// An event as the waiting room knows it: the organizer's settings and the shuffle
/// commitment, plus the seed once it may be published.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitroomEvent {
    pub settings: Settings,
    pub seed_sha256: String,
    /// Published only after opening, when it can no longer help anyone jump the queue.
    pub seed: Option<String>,
    pub opened_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            admit_rate: 0.5,
            max_active: 100,
            token_lifetime_secs: 600,
            opens_at: None,
            state: EventState::Running,
            pow_difficulty: None,
        }
    }

    #[test]
    fn fractional_rates_are_valid_and_silly_ones_are_not() {
        assert!(settings().validate().is_ok());
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY, MAX_ADMIT_RATE * 2.0] {
            assert!(Settings { admit_rate: rate, ..settings() }.validate().is_err(), "{rate}");
        }
        assert!(Settings { max_active: 0, ..settings() }.validate().is_err());
        assert!(Settings { token_lifetime_secs: 0, ..settings() }.validate().is_err());
        assert!(Settings { pow_difficulty: Some(0), ..settings() }.validate().is_err());
        assert!(Settings { pow_difficulty: Some(MAX_POW_DIFFICULTY + 1), ..settings() }.validate().is_err());
        assert!(Settings { pow_difficulty: Some(MAX_POW_DIFFICULTY), ..settings() }.validate().is_ok());
    }
}
