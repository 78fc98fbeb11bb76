//! The virtual waiting room: fans queue per event in Redis and are let in at the
//! organizer's rate, however many replicas run, with an access token the booking
//! gateway verifies. What a Redis wipe must not lose (settings, the shuffle seed,
//! every admission) is kept in PostgreSQL, and each fan's place in their signed ticket.
//!
//! - [`routes`]: HTTP only: extract, call, map; each handler carries its OpenAPI
//!   description (`#[utoipa::path]`), served as `/openapi.json`.
//! - [`queue`]: the fan's use cases (join, poll, leave).
//! - [`tokens`]: admitted fans' access tokens, one per admission.
//! - [`pow`]: proof of work at the door, for events that ask for it.
//! - [`receipts`]: admission receipts and the published admission log (auditable
//!   FIFO), signed with a key of their own.
//! - [`admitter`]: the background task that admits fans, one atomic step at a time.
//! - [`backpressure`]: the gateways' distress, read from Redis, slowing admission.
//! - [`inventory`]: what the sale has left, read from the seats' change feed: the
//!   admission budget and the sale's state (`on_sale`, `all_held`, `sold_out`).
//! - [`domain`]: rules with no I/O: fan ids, tickets, settings, the auditable
//!   pre-queue shuffle, ETA.
//! - [`store`]: Redis keys and Lua scripts; all the atomicity lives there.
//! - [`ledger`]: PostgreSQL, the source of truth for settings, seeds and admissions.
//! - [`recorder`]: writes admissions to PostgreSQL in batches, off the admission path.
//! - [`refresh`]: one background read at a time, at most every interval (the
//!   inventory's and the back-pressure's).
//! - [`release`]: fans who booked or joined the waitlist stop counting under
//!   `max_active` (the outbox's `booking.confirmed` and `waitlist.joined`, delivered to
//!   the waiting room).
//! - [`restore`]: notices an event Redis lost and rebuilds it from PostgreSQL.
//! - [`error`]: every failure and its status and code.
//! - [`metrics`]: every metric name.

pub mod admitter;
pub mod app;
pub mod backpressure;
pub mod config;
pub mod domain;
pub mod error;
pub mod inventory;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod pow;
pub mod queue;
pub mod receipts;
pub mod recorder;
pub mod refresh;
pub mod release;
pub mod restore;
pub mod routes;
pub mod store;
pub mod streams;
pub mod tokens;

pub use admitter::{run_admitter, Admitter};
pub use app::{AppState, Application};
pub use config::{RateLimit, WaitroomConfig};
pub use error::Error;
