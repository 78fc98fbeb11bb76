//! The sale: events and their seats, and the fans' holds and bookings on them, in
//! PostgreSQL. It knows nothing of HTTP: the gateway is its face on the web, the
//! scheduler runs its timed work, and both call the same use cases and store.
//!
//! - [`Sales`]: the handle every use case runs on: the database, the event-rules
//!   cache, the order settings and the payment provider.
//! - [`orders`]: the fan's use cases (hold, book, confirm, release, cancel, the fan's
//!   reads), and [`catalog`] the organizer's and the public's: one unit of cancel-safe,
//!   deadline-bounded database work each.
//! - [`checkout`]: paying for a hold, the provider's webhooks, late payments and
//!   refunds.
//! - [`outbox`]: the messages the sale tells the world, written in the transaction
//!   of the change they report.
//! - [`consumer`]: how every outbox consumer drains its deliveries (claim, attempt,
//!   record, retry), in the scheduler and the waiting room alike.
//! - [`confirmations`]: what a booking's confirmation email carries (tickets with
//!   their secrets, the booking link, the refund policy), and its outbox subscriber.
//! - [`webhooks`]: the organizer's webhook endpoints (the outbox's first subscribers)
//!   and their delivery log.
//! - [`payment_provider`]: the payment provider as the sale sees it (a trait; the
//!   Stripe-compatible client implements it).
//! - [`revocations`]: the organizer revoking admissions (one token or one fan's), and
//!   what each gateway replica polls to refuse them.
//! - [`waitlist`]: fans waiting for sold-out sections, and the offers freed places
//!   become for them before anyone else may buy them.
//! - [`tickets`]: e-tickets (secrets signed when shown, reissue, the revocation feed
//!   offline scanners follow, booking capability links) and check-in (scanner keys,
//!   scans recorded exactly once).
//! - [`scope`]: [`FanScope`], whose rows a fan's request may touch.
//! - [`domain`]: rules with no I/O: valid events, what a fan may ask, best available.
//! - [`store`]: SQL, including the seat locking in [`store::inventory`] and the
//!   watchdog's invariants in [`store::invariants`].
//! - [`model`]: what reads and orders return; [`states`]: the database's enums (each
//!   a `utoipa::ToSchema` too: a description of the type, used by the gateway's
//!   `/openapi.json`).
//! - [`rules`]: the per-replica cache of each event's rules, and how fresh it stays.
//! - [`error`]: every way a use case fails, in the sale's terms.
//!
//! The database schema and its invariants are in `migrations/` at the workspace root,
//! applied by `schema::MIGRATOR`.

pub mod catalog;
pub mod checkout;
pub mod confirmations;
pub mod consumer;
pub mod domain;
pub mod error;
pub mod model;
pub mod orders;
pub mod outbox;
pub mod payment_provider;
pub mod revocations;
pub mod rules;
pub mod scope;
pub mod states;
pub mod store;
pub mod tickets;
pub mod waitlist;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use service_kit::postgres::Database;
use service_kit::rate_limit::KeyedLimiter;

pub use error::{Error, Result, What};
use payment_provider::PaymentProvider;
pub use scope::FanScope;

/// How orders and event creation behave; the gateway fills it from its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How many disjoint best-available choices one order tries before it answers
    /// "seat contended".
    pub best_available_attempts: usize,
    /// How long creating an event may run (a row per seat takes seconds for 100,000).
    pub create_event_timeout: Duration,
    /// How long a replica may answer from its copy of an event's rules (see [`rules`]).
    pub event_rules_max_age: Duration,
    /// How long a hold lasts once its checkout starts (the payment window), at least.
    pub checkout_extension: Duration,
    /// The longest a fan's hold may keep its seats in all, from its creation: its first
    /// time, the open page's heartbeats and the checkout's payment window together.
    /// Waitlist offers are the organizer's to time and are not capped.
    pub hold_max_lifetime: Duration,
    /// A refund the provider did not confirm is retried after this, doubling up to
    /// `refund_retry_max`.
    pub refund_retry_first: Duration,
    pub refund_retry_max: Duration,
    /// A fan asking about a pending payment makes this replica ask the provider about
    /// the attempt at most once per this interval; the webhook is the usual way news
    /// arrives, and the provider limits API calls (Stripe: 100 a second in live mode).
    pub provider_check_interval: Duration,
    /// After a webhook endpoint's secret is rotated, requests carry the old secret's
    /// signature beside the new one's this long.
    pub webhook_secret_grace: Duration,
    /// Webhook endpoints may point at loopback, private, link-local and other
    /// non-public addresses (local development and tests only: see
    /// [`webhooks::WebhookUrl::refuse_private`]).
    pub webhook_private_urls_allowed: bool,
}

/// What the use cases need, and nothing more: the database, the event-rules cache and
/// the order settings. Cheap to clone.
#[derive(Clone)]
pub struct Sales {
    db: Database,
    rules: rules::EventRulesCache,
    settings: Settings,
    provider: Arc<dyn PaymentProvider>,
    /// When each payment attempt was last asked about at the provider for a fan.
    provider_checks: Arc<KeyedLimiter<uuid::Uuid>>,
    /// Signs ticket secrets and capability links, verifies scans ([`tickets`]); none in
    /// a process that only books (the scheduler), or until the keys' files are there.
    /// Shared by every clone, so a reload reaches them all.
    ticket_keys: tickets::TicketKeyring,
    /// Scanner keys found live, by their hash, with their event: for as long as an
    /// event's rules (`event_rules_max_age`), so a gate's scan costs one round trip,
    /// not two; None when that is zero. Keys not found are always looked up.
    scanner_keys: Option<moka::future::Cache<Vec<u8>, uuid::Uuid>>,
}

impl Sales {
    pub fn new(db: Database, settings: Settings, provider: Arc<dyn PaymentProvider>) -> Self {
        let scanner_keys = (!settings.event_rules_max_age.is_zero()).then(|| {
            moka::future::Cache::builder().max_capacity(10_000).time_to_live(settings.event_rules_max_age).build()
        });
        Self {
            rules: rules::EventRulesCache::new(settings.event_rules_max_age),
            provider_checks: Arc::new(KeyedLimiter::once_per(settings.provider_check_interval)),
            db,
            settings,
            provider,
            ticket_keys: tickets::TicketKeyring::default(),
            scanner_keys,
        }
    }

    /// Forgets the attempts not asked about for a while (call it now and then: the
    /// gateway does every minute).
    pub fn forget_idle_provider_checks(&self) {
        self.provider_checks.forget_idle();
    }

    pub fn database(&self) -> &Database {
        &self.db
    }
}
