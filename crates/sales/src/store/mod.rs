//! SQL, and nothing else. Each function is one transaction step or one read; the
//! orchestration of a whole use case lives in [`crate::orders`] and [`crate::catalog`].
//! Store functions on fans' rows take a [`crate::FanScope`] and filter by it.
//!
//! - [`inventory`]: taking seats (the locking) and the order statements' contract.
//! - [`holds`], [`bookings`]: their order statements, reads and endings.
//! - [`events`]: events, sections and seat rows; the rules every order reads.
//! - [`idempotency`]: keys that make a retried order answer as its first attempt.
//! - [`payments`], [`refunds`]: payment attempts and the money going back.
//! - [`outbox`]: outbox messages and their deliveries, written in the change's transaction.
//! - [`webhooks`]: organizer webhook endpoints and their delivery log.
//! - [`deliveries`]: the consumers' side of the outbox: claiming due deliveries,
//!   recording each attempt's outcome, disabling an endpoint that is gone.
//! - [`confirmations`]: the confirmation emails' subscriber, and the booking an email
//!   describes.
//! - [`invariants`]: the oversell watchdog's checks.
//! - [`revocations`]: revoked admissions, written by the organizer, polled by gateways.
//! - [`tickets`]: tickets (written by the booking statements), reissues, the revocation
//!   feed, scanner keys and check-ins.

pub mod bookings;
pub mod confirmations;
pub mod deliveries;
pub mod events;
pub mod holds;
pub mod idempotency;
pub mod invariants;
pub mod inventory;
pub mod outbox;
pub mod payments;
pub mod refunds;
pub mod revocations;
pub mod tickets;
pub mod waitlist;
pub mod webhooks;
