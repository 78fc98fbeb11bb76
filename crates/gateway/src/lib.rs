//! The booking gateway: the sale's face on the web. It checks who is calling (the
//! organizer's admin key, or a fan's access token from the waiting room), rate-limits,
//! and hands each request to the sale's use cases in the `sales` crate.
//!
//! - [`routes`]: HTTP only: extract, call the sale, map the result; each handler
//!   carries its OpenAPI description (`#[utoipa::path]`), served as `/openapi.json`.
//! - [`auth`]: the organizer (admin key) and the fan (access token, giving a
//!   [`sales::FanScope`]) as extractors.
//! - [`keys`]: the public keys read again from the key directory while serving.
//! - [`limits`]: rate limits per replica, client address and fan.
//! - [`revocations`]: the admissions the organizer revoked, polled from PostgreSQL and
//!   checked on every fan's request.
//! - [`distress`]: how long orders wait for a database connection, reported to the
//!   waiting room (back-pressure).
//! - [`error`]: every failure, the sale's included, and its status and code.
//! - [`state`]: what requests share; [`app`]: binding, serving, the limiter sweep and
//!   the revocation poll.
//! - [`config`]: the `[gateway]` settings; [`metrics`]: every metric it records.

pub mod app;
pub mod auth;
pub mod config;
pub mod distress;
pub mod error;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod revocations;
pub mod routes;
pub mod seat_stream;
pub mod state;

pub use app::Application;
pub use config::GatewayConfig;
pub use error::Error;
pub use state::AppState;
