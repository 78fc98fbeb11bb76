//! SQL, and nothing else. Each function is one transaction step or one read; the
//! orchestration of a whole request lives in [`crate::orders`].

pub mod bookings;
pub mod events;
pub mod holds;
pub mod idempotency;
pub mod invariants;
pub mod inventory;
