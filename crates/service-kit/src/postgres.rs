use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

#[derive(Debug, Clone, Deserialize)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database`; may carry a password, hence secret.
    pub url: SecretString,
    pub max_connections: u32,
    /// How long a request waits for a free connection before it is answered 503.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when a service starts.
    pub migrate_on_start: bool,
}

impl PostgresConfig {
    pub fn validate(&self) -> Result<(), String> {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err("database.url must start with postgres:// or postgresql://".into());
        }
        self.connect_options().map_err(|e| format!("database.url is not a PostgreSQL URL: {e}"))?;
        if self.max_connections == 0 {
            return Err("database.max_connections must be at least 1".into());
        }
        if self.acquire_timeout_ms == 0 {
            return Err("database.acquire_timeout_ms must be at least 1".into());
        }
        Ok(())
    }

    /// Connection settings. Every boxoffice statement is a short index lookup whose
    /// best plan does not depend on its parameters, so connections use generic plans:
    /// a prepared statement is planned once per connection instead of on every call
    /// (the booking statement's planning cost more than its execution: +50% bookings/s).
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        let options: PgConnectOptions = self.url.expose_secret().parse()?;
        Ok(options.options([("plan_cache_mode", "force_generic_plan")]))
    }

    /// A lazily connecting pool: services start even while the database is still coming
    /// up, and `/readyz` reports it until it is reachable.
    pub fn pool(&self) -> Result<PgPool, sqlx::Error> {
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            // A broken connection fails its request and is dropped; pinging every
            // connection before every use would add a round trip to each order.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_millis(self.acquire_timeout_ms))
            .connect_lazy_with(self.connect_options()?))
    }
}
