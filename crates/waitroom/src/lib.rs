//! The virtual waiting room: fans queue per event in Redis and are let in at the
//! organizer's rate, however many replicas run, with an access token the booking
//! gateway verifies.
//!
//! - [`routes`]: HTTP only: extract, call, map.
//! - [`queue`]: the fan's use cases (join, poll, leave) and token signing.
//! - [`admitter`]: the background task that admits fans, one atomic step at a time.
//! - [`domain`]: rules with no I/O: fan ids, tickets, settings, the auditable
//!   pre-queue shuffle, ETA.
//! - [`store`]: Redis keys and Lua scripts; all the atomicity lives there.
//! - [`limits`]: per-address and per-fan join limits.
//! - [`auth`]: the organizer (admin key) as an extractor.
//! - [`error`]: every failure and its status and code.
//! - [`metrics`]: every metric name.

pub mod admitter;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod routes;
pub mod store;

pub use admitter::{run_admitter, Admitter};
pub use app::{AppState, Application};
pub use config::{RateLimit, WaitroomConfig};
pub use error::Error;
