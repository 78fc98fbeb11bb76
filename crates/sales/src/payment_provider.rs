//! The payment provider, as the sale sees it: create and read payment intents, create
//! refunds. The Stripe-compatible client (`crates/stripe-client`) implements it; the
//! sale never sees HTTP, form encoding or signatures.
//!
//! Every call that creates something carries an idempotency key of the caller's own: a
//! payment attempt's id for its intent, a refund's id for the refund. A retried call with
//! the same key answers with what the first one created, so no call made twice charges
//! or refunds twice.

use std::collections::BTreeMap;

use futures::future::BoxFuture;

/// A payment intent to create: `amount_minor` of `currency` for one payment attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// Minor units (cents), > 0.
    pub amount_minor: i64,
    /// ISO 4217, upper case as the sale stores it; the client sends it as the provider
    /// expects.
    pub currency: String,
    /// The payment attempt's id: one key per attempt, never per hold or order, so a new
    /// attempt after a decline is a new intent.
    pub idempotency_key: String,
    pub description: String,
    /// Echoed back on the intent and in its webhooks (event, hold, payment ids).
    pub metadata: BTreeMap<String, String>,
}

/// A payment intent as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub id: String,
    pub status: IntentStatus,
    pub amount_minor: i64,
    /// Upper case.
    pub currency: String,
    /// What the fan's browser needs to pay (Stripe.js, or the sandbox's page).
    pub client_secret: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// Why the last attempt to pay failed (a decline code), if it did.
    pub last_payment_error: Option<String>,
}

/// Stripe's PaymentIntent statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

/// A refund to create on a succeeded intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub payment_intent: String,
    pub amount_minor: i64,
    /// The refund row's id: a retry after a timeout never refunds twice.
    pub idempotency_key: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub payment_intent: String,
    pub amount_minor: i64,
    pub status: RefundStatus,
    /// The provider's reason when the refund failed.
    pub failure_reason: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Stripe's Refund statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

/// Why a provider call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached, timed out, or answered 5xx / 429: the call may
    /// or may not have taken effect, and retrying with the same idempotency key is safe.
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (4xx): retrying the same request will not help.
    #[error("the payment provider refused the request ({code}): {message}")]
    Refused { code: String, message: String },
}

/// What the sale needs from a payment provider. Every call is bounded in time by the
/// implementation.
pub trait PaymentProvider: Send + Sync + 'static {
    fn create_intent(&self, intent: NewIntent) -> BoxFuture<'_, Result<Intent, ProviderError>>;
    fn retrieve_intent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Intent, ProviderError>>;
    fn create_refund(&self, refund: NewRefund) -> BoxFuture<'_, Result<Refund, ProviderError>>;
    /// The refund as the provider has it now (a pending one settles later).
    fn retrieve_refund<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Refund, ProviderError>>;
}

/// A provider's webhook event, verified and parsed by the client crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEvent {
    /// The provider's event id (`evt_…`): applying one twice must change nothing.
    pub id: String,
    pub kind: ProviderEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderEventKind {
    /// `payment_intent.succeeded`, `.payment_failed`, `.canceled`, `.processing`: the
    /// intent as it was when the event was sent.
    Intent(Intent),
    /// `refund.created`, `refund.updated`, `refund.failed`.
    Refund(Refund),
    /// Any other type: acknowledged and ignored.
    Other(String),
}
