//! The booking gateway: events and their seat inventory in PostgreSQL, and the fan's
//! holds and bookings on it, each guarded by an access token from the waiting room.
//!
//! - [`routes`]: HTTP only: extract, call, map.
//! - [`orders`]: the fan's use cases, and [`catalog`] the organizer's and the public's:
//!   one unit of cancel-safe, deadline-bounded database work each.
//! - [`domain`]: rules with no I/O: valid events, what a fan may ask, best available.
//! - [`store`]: SQL, including the seat locking in [`store::inventory`].
//! - [`auth`]: the organizer (admin key) and the fan (access token) as extractors.
//! - [`limits`]: rate limits per replica, client address and fan.
//! - [`error`]: every failure and its status and code.
//!
//! The database schema and its invariants are in `migrations/` at the workspace root.

pub mod app;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod domain;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod orders;
pub mod routes;
pub mod store;

pub use app::{AppState, Application};
pub use config::GatewayConfig;
pub use error::Error;

/// The one migrator of the boxoffice schema, which lives in the `schema` crate (D1).
/// Re-exported because the gateway's, scheduler's and binary's tests name it here.
pub use schema::MIGRATOR;
