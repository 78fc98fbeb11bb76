//! A small Stripe-compatible client over `reqwest`, implementing the sale's
//! [`PaymentProvider`](sales::payment_provider::PaymentProvider), and the webhook side:
//! `Stripe-Signature` verification and event parsing.
//!
//! - `client.rs`: [`StripeClient`] and its [`StripeConfig`] (base URL, secret key,
//!   timeouts); network errors, timeouts, 429 and 5xx are `Unavailable`, other 4xx
//!   `Refused` with Stripe's error code.
//! - `signature.rs`: [`verify_signature`] (constant time, several `v1` values and
//!   secrets, a tolerance both ways).
//! - `event.rs`: [`parse_event`], a verified body to a
//!   [`ProviderEvent`](sales::payment_provider::ProviderEvent).
//! - `wire.rs`: Stripe's objects as far as we read them.
//!
//! Hand-written rather than `async-stripe`: that crate generates the whole Stripe API
//! (hundreds of modules; its 1.0, split into smaller crates, is still an alpha), a
//! large compile and a weekly-regenerated dependency for three calls and a signature
//! check, while this is a few hundred lines we test against the sandbox and the
//! official Python library.

mod client;
mod event;
mod signature;
mod wire;

pub use client::{BuildError, StripeClient, StripeConfig};
pub use event::{parse_event, EventError};
pub use signature::{sign, verify_signature, SignatureError, DEFAULT_TOLERANCE};

/// The event types boxoffice acts on: a webhook endpoint at the provider needs these
/// (Stripe's `enabled_events`) and no others. Any other type is answered `200` and
/// ignored, but costs a request each.
pub const EVENTS_TO_SUBSCRIBE: &[&str] = &[
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "refund.created",
    "refund.updated",
    "refund.failed",
];
