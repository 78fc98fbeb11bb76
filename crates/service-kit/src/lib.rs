//! What every boxoffice service shares, so each service crate holds only its own rules.
//!
//! - [`auth`]: bearer tokens and the admin API key.
//! - [`error_body`]: the one JSON error envelope, `{"error":{"code","message"}}`.
//! - [`extract`]: `Json`, `Path` and `Query` whose rejections use that envelope.
//! - [`invalid`]: a broken input rule, as services' domain modules report it.
//! - [`serve`]: runs a router until the shared shutdown token fires, then drains.
//! - [`health`]: `/healthz` (alive) and `/readyz` (dependencies reachable).
//! - [`metrics`]: `/metrics` for Prometheus, request spans and latency, pool and
//!   process metrics.
//! - [`postgres`] / [`redis_conn`]: connection settings and pools.
//! - [`rate_limit`]: governor token buckets, per key or global.
//! - [`telemetry`]: tracing set-up, pretty or JSON.

pub mod auth;
pub mod error_body;
pub mod extract;
pub mod health;
pub mod invalid;
pub mod metrics;
pub mod postgres;
pub mod rate_limit;
pub mod redis_conn;
pub mod serve;
pub mod telemetry;

pub use error_body::error_response;
pub use invalid::Invalid;
pub use serve::serve;
