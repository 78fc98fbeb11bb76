//! The `[redis]` settings and the one Redis handle a service uses.
//!
//! # Why a lazy `ConnectionManager`, and why no retries
//!
//! A service must start, and stay up, while Redis is down: it answers `/healthz`,
//! reports itself not ready, answers `503` to what needs Redis, and serves again by
//! itself once Redis is back. redis 1.x builds a [`ConnectionManager`] without
//! connecting ([`ConnectionManager::new_lazy_with_config`]); its first command connects,
//! and a connection that fails or drops is replaced on the next command. That is
//! everything needed, so there is no wrapper of our own around it.
//!
//! Every wait is bounded by the settings: a command waits at most
//! `command_timeout_ms` for its reply, a connection attempt (TCP and handshake) at
//! most `connect_timeout_ms`, so one call waits at most their sum (1.5 s by default;
//! 0.5 s on an established connection; a script Redis lost in a restart adds two
//! round trips, `SCRIPT LOAD` and the repeated `EVALSHA`). The manager makes **one**
//! attempt per reconnection (no retries): the client's default (6 retries with
//! exponential backoff) kept every request waiting 8–9.5 s while Redis was down, only
//! to fail. Retries are not lost: the next command (a request, the admitter's next
//! tick, a readiness probe) triggers the next attempt.
//!
//! A command that times out does not close its connection (the reply may still
//! come; a multiplexed connection matches replies in order), so during a partition
//! each command fails after `command_timeout_ms` and the same connection serves again
//! when the network heals. So a timeout is not a rollback: the command may still run
//! when its bytes get through.

use std::time::Duration;

use crate::settings::Section;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Longest `command_timeout_ms` or `connect_timeout_ms` accepted: beyond a minute a
/// request would wait longer than any client does.
const MAX_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    /// `redis://host:port/db`; may carry a password, hence secret.
    pub url: SecretString,
    /// Every key boxoffice writes starts with this, so several deployments (or tests)
    /// can share one Redis.
    pub key_prefix: String,
    /// How long one command (or script call) waits for its reply before it fails and
    /// the request answers `503 unavailable`.
    pub command_timeout_ms: u64,
    /// How long one connection attempt (TCP connect and handshake) may take.
    pub connect_timeout_ms: u64,
}

impl Section for RedisConfig {
    const KEY: &'static str = "redis";

    fn validate(&self) -> Result<(), String> {
        redis::Client::open(self.url.expose_secret()).map_err(|e| format!("redis.url is not a Redis URL: {e}"))?;
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return Err("redis.key_prefix must be non-empty without braces or spaces".into());
        }
        for (key, value) in
            [("command_timeout_ms", self.command_timeout_ms), ("connect_timeout_ms", self.connect_timeout_ms)]
        {
            if !(1..=MAX_TIMEOUT_MS).contains(&value) {
                return Err(format!("redis.{key} must be between 1 and {MAX_TIMEOUT_MS}"));
            }
        }
        Ok(())
    }
}

impl RedisConfig {
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.url.expose_secret())
    }

    /// The bounded timeouts and single-attempt reconnection described in the module
    /// documentation.
    pub fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_millis(self.command_timeout_ms)))
            .set_connection_timeout(Some(Duration::from_millis(self.connect_timeout_ms)))
            .set_number_of_retries(0)
    }

    /// A connection manager that has not connected yet: it connects on first use, so
    /// building a service never waits for (or fails on) Redis. Must be called within
    /// a Tokio runtime.
    pub fn connection_manager(&self) -> redis::RedisResult<ConnectionManager> {
        ConnectionManager::new_lazy_with_config(self.client()?, self.manager_config())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[redis]` of `config/default.toml`.
    fn config() -> RedisConfig {
        crate::settings::layers(None).build().and_then(|c| c.get("redis")).unwrap()
    }

    #[test]
    fn the_defaults_of_config_default_toml_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn timeouts_out_of_range_are_refused_naming_the_key() {
        let mut zero_command = config();
        zero_command.command_timeout_ms = 0;
        assert_eq!(zero_command.validate(), Err("redis.command_timeout_ms must be between 1 and 60000".into()));
        let mut huge_connect = config();
        huge_connect.connect_timeout_ms = 60_001;
        assert_eq!(huge_connect.validate(), Err("redis.connect_timeout_ms must be between 1 and 60000".into()));
    }

    #[test]
    fn the_manager_uses_the_configured_timeouts_and_does_not_retry() {
        let manager = config().manager_config();
        assert_eq!(manager.response_timeout(), Some(Duration::from_millis(500)));
        assert_eq!(manager.connection_timeout(), Some(Duration::from_millis(1000)));
        assert_eq!(manager.number_of_retries(), 0);
    }

    #[tokio::test]
    async fn building_the_manager_does_not_connect() {
        // Nothing listens on port 1: a manager that connected eagerly would fail here.
        let mut unreachable = config();
        unreachable.url = SecretString::from("redis://127.0.0.1:1");
        let mut manager = unreachable.connection_manager().expect("a lazy manager builds without Redis");
        let error = redis::cmd("PING").query_async::<String>(&mut manager).await.unwrap_err();
        assert!(error.is_connection_refusal(), "{error}");
    }
}
