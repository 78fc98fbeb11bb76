//! Helpers for tests that run against the real PostgreSQL and Redis.
//!
//! Each test gets its own database (created fresh and migrated) and its own Redis key
//! prefix, so tests run in parallel without seeing each other. The databases are
//! named `bo_test_*`; `scripts/test` drops the leftovers of earlier runs.
//!
//! - [`chaos`]: a TCP proxy that injects network faults between a service and
//!   PostgreSQL or Redis (partitions, dropped connections, latency, a pause at a chosen
//!   PostgreSQL message).
//! - [`openapi`]: reading a service's `/openapi.json`: its operations, its refusals,
//!   whether an answer fits a schema.
//! - [`python`]: running the Python scripts that check our formats with other
//!   people's libraries (DECISIONS.md D11).
//! - [`redis_server`]: a `redis-server` of the test's own, to stop, restart or flush.
//! - [`smtp_sink`]: an SMTP server on a port of its own that keeps what it is sent (and
//!   can be stopped, restarted, or made to refuse).
//! - [`RedisKeys`]: a test's key prefix on the shared Redis, deleted when dropped.
//! - [`config`]: a service's configuration as the binary loads it (`config/default.toml`
//!   and the test's overrides), validated.
//! - [`Reply`]: what a service answered (status, headers, JSON body, error code).

pub mod chaos;
pub mod openapi;
pub mod python;
mod redis_keys;
pub mod redis_server;
mod reply;
mod settings;
pub mod smtp_sink;
pub mod sse;

pub use redis_keys::RedisKeys;
pub use reply::Reply;
pub use settings::config;

use access_token::{AccessClaims, KeyPair, TokenSigner, TokenVerifier};
use chaos::ChaosProxy;
use service_kit::postgres::{Database, PostgresConfig};
use service_kit::redis_conn::RedisConfig;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

/// Where tests create their databases: `BOXOFFICE_TEST_DATABASE_URL`, by default the
/// local server's `postgres` database.
pub fn admin_database_url() -> String {
    std::env::var("BOXOFFICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `BOXOFFICE_TEST_REDIS_URL`, by default the local server.
pub fn redis_url() -> String {
    std::env::var("BOXOFFICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// How a service connects to the Redis at `url` (a test's own server, see
/// [`redis_server`]): `config/default.toml` with a key prefix no other test uses. On
/// the shared Redis, use [`RedisKeys`], which deletes its keys.
pub fn redis_config(url: &str) -> RedisConfig {
    config(&[("url", url), ("key_prefix", &redis_prefix())], |_| {})
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("bo_test_{}", Uuid::new_v4().simple())
}

/// How a service connects to `url`: `config/default.toml`, a pool of
/// `max_connections`, no migrations (the test database has them).
pub fn postgres_config(url: &str, max_connections: u32) -> PostgresConfig {
    config(&[("url", url), ("max_connections", &max_connections.to_string()), ("migrate_on_start", "false")], |_| {})
}

/// A freshly created database with every migration applied.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    pub async fn new(migrator: &Migrator, max_connections: u32) -> anyhow::Result<Self> {
        let admin: PgConnectOptions = admin_database_url().parse()?;
        let name = format!("bo_test_{}", Uuid::new_v4().simple());
        let mut conn = admin.connect().await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        conn.close().await?;
        let options = admin.database(&name);
        let url = options.to_url_lossy().to_string();
        let pool = PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        migrator.run(&pool).await?;
        Ok(Self { name, url, pool })
    }

    /// The database as a service reaches it (see [`postgres_config`]).
    pub fn service_database(&self, max_connections: u32) -> Database {
        postgres_config(&self.url, max_connections).database().expect("a valid test database URL")
    }

    /// A [`ChaosProxy`] in front of this database, and the URL that reaches the
    /// database through it.
    pub async fn behind_proxy(&self) -> anyhow::Result<(ChaosProxy, String)> {
        let direct: PgConnectOptions = self.url.parse()?;
        let proxy = ChaosProxy::start(format!("{}:{}", direct.get_host(), direct.get_port()).parse()?).await?;
        let proxied = direct.host("127.0.0.1").port(proxy.addr().port()).to_url_lossy().to_string();
        Ok((proxy, proxied))
    }
}

/// Writes an event with one general-admission section of `places` places straight to
/// the database, for tests of what runs beside the gateway (sweeps, the watchdog).
/// Returns the event's id.
pub async fn general_admission_event(pool: &PgPool, places: i32) -> anyhow::Result<Uuid> {
    let (event, section) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(
        "INSERT INTO events (id, name, currency, max_per_order, hold_ttl_seconds) VALUES ($1, 'Test', 'EUR', 10, 60)",
    )
    .bind(event)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO sections (id, event_id, position, name, kind, price_minor, capacity)
         VALUES ($1, $2, 0, 'Floor', 'general_admission', 100, $3)",
    )
    .bind(section)
    .bind(event)
    .bind(places)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO seats (event_id, section_id, row_rank, seat_number, sort_key)
         SELECT $1, $2, 0, g, g FROM generate_series(1, $3) g",
    )
    .bind(event)
    .bind(section)
    .bind(places)
    .execute(pool)
    .await?;
    Ok(event)
}

/// A signing key and the matching verifier, as the waiting room and gateway would hold.
pub struct TestKeys {
    pub pair: KeyPair,
    pub signer: TokenSigner,
}

impl TestKeys {
    pub fn new() -> Self {
        let pair = KeyPair::generate("test").expect("a fixed valid kid");
        let signer = TokenSigner::new(&pair);
        Self { pair, signer }
    }

    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(&[self.pair.public_key()], 0)
    }

    /// A token admitting `fan_id` to `event_id` for five minutes.
    pub fn token(&self, fan_id: &str, event_id: Uuid) -> String {
        self.signer.sign(&AccessClaims::new(fan_id, event_id, unix_now(), 300))
    }

    /// A `waitlist`-scoped token: the fan may join the event's waitlist, nothing else.
    pub fn waitlist_token(&self, fan_id: &str, event_id: Uuid) -> String {
        let claims = AccessClaims::new(fan_id, event_id, unix_now(), 300);
        self.signer.sign(&claims.with_scope(access_token::TokenScope::Waitlist))
    }

    /// A token for `event_id` that expired ten minutes ago.
    pub fn expired_token(&self, fan_id: &str, event_id: Uuid) -> String {
        self.signer.sign(&AccessClaims::new(fan_id, event_id, unix_now() - 900, 300))
    }
}

impl Default for TestKeys {
    fn default() -> Self {
        Self::new()
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
