use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct RedisConfig {
    /// `redis://host:port/db`; may carry a password, hence secret.
    pub url: SecretString,
    /// Every key boxoffice writes starts with this, so several deployments (or tests)
    /// can share one Redis.
    pub key_prefix: String,
}

impl RedisConfig {
    pub fn validate(&self) -> Result<(), String> {
        redis::Client::open(self.url.expose_secret()).map_err(|e| format!("redis.url is not a Redis URL: {e}"))?;
        if self.key_prefix.is_empty() || self.key_prefix.contains(['{', '}', ' ']) {
            return Err("redis.key_prefix must be non-empty without braces or spaces".into());
        }
        Ok(())
    }

    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.url.expose_secret())
    }
}
