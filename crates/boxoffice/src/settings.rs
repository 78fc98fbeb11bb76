//! The whole configuration: embedded defaults (`config/default.toml`), then an
//! optional file, then `BOXOFFICE__SECTION__KEY` environment variables; checked
//! before anything starts.

use std::path::{Path, PathBuf};

use anyhow::Context;
use gateway::GatewayConfig;
use serde::Deserialize;
use service_kit::postgres::PostgresConfig;
use service_kit::redis_conn::RedisConfig;
use service_kit::telemetry::LogConfig;

const DEFAULTS: &str = include_str!("../../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: PostgresConfig,
    pub redis: RedisConfig,
    pub log: LogConfig,
    pub tokens: TokenKeys,
    pub gateway: GatewayConfig,
}

/// Where the access-token keys live.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenKeys {
    pub keys_dir: PathBuf,
    /// The key the waiting room signs with: `<keys_dir>/<signing_kid>.private.pem`.
    pub signing_kid: String,
}

impl Settings {
    /// Loads and validates the configuration; the error says which key is wrong.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder
            .add_source(config::Environment::with_prefix("BOXOFFICE").prefix_separator("__").separator("__"))
            .build()
            .and_then(config::Config::try_deserialize)
            .context("invalid configuration")?;
        settings.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        self.database.validate()?;
        self.redis.validate()?;
        self.gateway.validate()?;
        if self.tokens.signing_kid.is_empty() {
            return Err("tokens.signing_kid must not be empty".into());
        }
        Ok(())
    }
}
