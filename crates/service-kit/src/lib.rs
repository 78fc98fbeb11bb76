//! What every boxoffice service shares, so each service crate holds only its own rules.
//!
//! - [`auth`]: bearer tokens, and the organizer (admin API key) as an extractor.
//! - [`client_address`]: who is calling, believing a forwarding header only from the
//!   trusted proxies of the configuration.
//! - [`compression`]: gzip for large public answers, on the way out or made once for a
//!   cached copy.
//! - [`distress`]: back-pressure: how long a gateway's work waits for a database
//!   connection, reported through Redis to the waiting room's admitter.
//! - [`error_body`]: the one JSON error envelope, `{"error":{"code","message"}}`.
//! - [`extract`]: `Json`, `Path` and `Query` whose rejections use that envelope.
//! - [`invalid`]: a broken input rule, as services' domain modules report it, and
//!   the caller's values it repeats, cut short.
//! - [`serve`]: runs a router until the shared shutdown token fires, then drains.
//! - [`health`]: `/healthz` (alive) and `/readyz` (dependencies reachable).
//! - [`metrics`]: `/metrics` for Prometheus, request spans and latency, pool and
//!   process metrics.
//! - [`periodic`]: background work repeated on an interval until shutdown.
//! - [`openapi`]: what every service's OpenAPI description shares: the envelope's
//!   schema, the admin key's security scheme, the refusals many routes give.
//! - [`postgres`] / [`redis_conn`]: connection settings and pools.
//! - [`rate_limit`]: governor token buckets, per key or global, and the limits every
//!   service puts on its callers (per address, per fan, per replica).
//! - [`router`]: the skeleton of every service's router: probes, metrics,
//!   `/openapi.json`, the JSON 404 and 405.
//! - [`settings`]: the configuration's layers (built-in defaults, a file, overrides)
//!   and the [`settings::Section`] each service's settings implement.
//! - [`telemetry`]: tracing set-up, pretty or JSON.

pub mod auth;
pub mod client_address;
pub mod compression;
pub mod distress;
pub mod error_body;
pub mod extract;
pub mod health;
pub mod invalid;
pub mod metrics;
pub mod openapi;
pub mod periodic;
pub mod postgres;
pub mod rate_limit;
pub mod redis_conn;
pub mod router;
pub mod serve;
pub mod settings;
pub mod telemetry;

pub use error_body::{error_response, internal_error, ErrorBody};
pub use invalid::{quoted, Invalid};
pub use serve::serve;
