use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use service_kit::client_address::ClientAddressConfig;
use service_kit::distress::DistressThresholds;
use service_kit::rate_limit::RateLimit;
use service_kit::serve::HttpConfig;
use service_kit::settings::{Deployment, Section};

/// The `[gateway]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Where `/metrics`, `/readyz` and `/healthz` answer: not the public listener
    /// (metrics name events; a readiness round costs a round trip). Loopback by
    /// default; Kubernetes sets `0.0.0.0:<port>` for the kubelet and Prometheus.
    pub management_listen: SocketAddr,
    /// Organizer endpoints require `Authorization: Bearer <admin_api_key>`.
    pub admin_api_key: SecretString,
    /// Seconds of clock skew tolerated between the waiting room and the gateway.
    pub token_leeway_secs: u64,
    /// How many disjoint best-available choices one request tries before it answers
    /// `seat_contended`.
    pub best_available_attempts: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// The public seat map is served from a per-replica copy at most this old (0: read
    /// every time). Thousands of fans reload it during a sale and each read walks every
    /// seat; a seat taken meanwhile is refused as `seat_unavailable` at hold time.
    pub seat_map_max_age_ms: u64,
    /// The longest a fan's hold keeps its seats in all, from its creation: its first
    /// time (an event's longer `hold_ttl_seconds` is cut to it), the open page's
    /// heartbeats and the checkout's payment window together. Waitlist offers are not
    /// capped (the organizer times them) and are not extended.
    pub hold_max_lifetime_secs: u64,
    /// Creating an event writes a row per seat (100,000 seats take seconds), so it may
    /// run this long instead of `database.work_deadline_ms`.
    pub create_event_timeout_ms: u64,
    /// How long a replica answers from its copy of an event's rules; a change the
    /// organizer makes reaches every replica within it.
    pub event_rules_max_age_ms: u64,
    /// Everything this replica accepts, so a flood is refused before it reaches the
    /// database pool.
    pub limit_global: RateLimit,
    /// Per client address (an IPv6 client's /64).
    pub limit_per_address: RateLimit,
    /// Public reads (event details, seat map: no token needed, a seat map walks every
    /// seat) per client address, a second bucket on top of `limit_per_address`; lower
    /// than it, or it never refuses anything.
    pub limit_public_reads_per_address: RateLimit,
    /// Who the client is behind a proxy (`[gateway.client_address]`).
    pub client_address: ClientAddressConfig,
    /// Per fan (access-token subject), across addresses.
    pub limit_per_fan: RateLimit,
    /// How often each replica reads new token revocations: a revoked token is refused
    /// by every replica within about this. Each read is one indexed query over the
    /// last few minutes' revocations.
    pub revocation_poll_interval_ms: u64,
    /// How often the binary reads the public keys in `tokens.keys_dir` again: a new
    /// key is trusted within about this.
    pub key_reload_interval_secs: u64,
    /// How long clients may take (`[gateway.http]`).
    pub http: HttpConfig,
    /// The payment provider and checkout (`[gateway.payments]`).
    pub payments: PaymentsConfig,
    /// The organizer's webhook endpoints (`[gateway.webhooks]`).
    pub webhooks: WebhooksConfig,
    /// When this replica counts itself in distress, and how often it tells the waiting
    /// room (`[gateway.distress]`, `crate::distress`).
    pub distress: DistressThresholds,
    /// The live seat map's streams (`[gateway.seat_stream]`, `crate::seat_stream`).
    pub seat_stream: SeatStreamConfig,
    /// The pages (`[gateway.pages]`, `crate::routes::pages`).
    pub pages: PagesConfig,
    /// Handed over by the loader: with the `development` switch, the development admin
    /// key is accepted on any listener.
    #[serde(skip)]
    pub deployment: Deployment,
}

/// `[gateway.webhooks]`: what the organizer's webhook endpoints may be.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhooksConfig {
    /// Endpoints may name `localhost` or a loopback, private, link-local, unique-local,
    /// unspecified or multicast address. Off in production: a webhook would let whoever
    /// holds the admin key make the relay call the services beside it (SSRF). Local
    /// runs and tests, whose receivers listen on loopback, turn it on (the relay's
    /// `scheduler.outbox_relay.allow_private_addresses` with it).
    pub allow_private_urls: bool,
    /// After a secret is rotated, requests carry the old secret's `v1` signature beside
    /// the new one's this long, so receivers can switch without refusing a message.
    pub secret_rotation_grace_ms: u64,
    /// Where the outbox relay's `v1a` public keys are (`<kid>.public.pem`, beside
    /// `scheduler.outbox_relay.v1a_key_file`): published in `/.well-known/jwks.json`
    /// with `boxoffice_purpose: "webhook"`, so receivers fetch the key that verifies
    /// `v1a` signatures. None: no webhook key is published.
    #[serde(default)]
    pub v1a_public_keys_dir: Option<std::path::PathBuf>,
}

/// `[gateway.pages]`: what the fans' pages need to know beyond this gateway.
#[derive(Debug, Clone, Deserialize)]
pub struct PagesConfig {
    /// The waiting room's origin as browsers reach it: the waiting page joins and waits
    /// there, and the pages' `Content-Security-Policy` allows connecting to it alone.
    pub waitroom_origin: String,
}

/// `[gateway.seat_stream]`: the live seat map (`GET /v1/events/{event}/seats/stream`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SeatStreamConfig {
    /// How often a replica reads an event's changes while anyone watches it: the
    /// coalescing of bursts (at most one update per this) and most of the delivery
    /// delay. One indexed read per event per replica, however many watch.
    pub poll_ms: u64,
    /// Updates kept per event for clients that reconnect with `Last-Event-ID`; a client
    /// further behind gets a snapshot.
    pub history: usize,
    /// Updates queued per client; a client that falls further behind (a slow
    /// connection) is sent a snapshot instead, so it never holds more memory than this.
    pub client_queue: usize,
    /// Streams this replica serves at once; more are refused with `503 too_many_streams`.
    pub max_streams: usize,
    /// A stream ends after this, and the client reconnects with `Last-Event-ID`: no
    /// connection is held forever, and a rebalanced replica set evens out.
    pub max_stream_secs: u64,
    /// A comment line at least this often, so proxies keep an idle stream open.
    pub keep_alive_secs: u64,
    /// An event nobody has watched for this long stops being read.
    pub idle_secs: u64,
    /// Change rows read at once at most; a replica further behind starts again from a
    /// snapshot.
    pub max_changes_per_read: i64,
}

impl SeatStreamConfig {
    fn validate(&self) -> Result<(), String> {
        let checks = [
            ("poll_ms", (50..=10_000).contains(&self.poll_ms), "50-10000"),
            ("history", (1..=10_000).contains(&self.history), "1-10000"),
            ("client_queue", (1..=10_000).contains(&self.client_queue), "1-10000"),
            ("max_streams", (1..=1_000_000).contains(&self.max_streams), "1-1000000"),
            ("max_stream_secs", (1..=86_400).contains(&self.max_stream_secs), "1-86400"),
            ("keep_alive_secs", (1..=300).contains(&self.keep_alive_secs), "1-300"),
            ("idle_secs", (1..=3_600).contains(&self.idle_secs), "1-3600"),
            ("max_changes_per_read", (1..=1_000_000).contains(&self.max_changes_per_read), "1-1000000"),
        ];
        match checks.iter().find(|(_, ok, _)| !ok) {
            Some((key, _, range)) => Err(format!("gateway.seat_stream.{key} must be {range}")),
            None => Ok(()),
        }
    }

    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    pub fn max_stream(&self) -> Duration {
        Duration::from_secs(self.max_stream_secs)
    }

    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_secs)
    }

    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs)
    }
}

/// The longest rotation grace window: a week.
const MAX_SECRET_ROTATION_GRACE_MS: u64 = 7 * 86_400_000;

impl WebhooksConfig {
    fn validate(&self) -> Result<(), String> {
        if self.secret_rotation_grace_ms > MAX_SECRET_ROTATION_GRACE_MS {
            return Err(format!(
                "gateway.webhooks.secret_rotation_grace_ms must be at most {MAX_SECRET_ROTATION_GRACE_MS} (a week)"
            ));
        }
        Ok(())
    }
}

/// `[gateway.payments]`: the Stripe-compatible provider and the checkout's timings.
#[derive(Debug, Clone, Deserialize)]
pub struct PaymentsConfig {
    pub api_base: String,
    pub secret_key: SecretString,
    /// A TOML list, or one comma-separated string (for environment variables).
    #[serde(deserialize_with = "secret_list")]
    pub webhook_secrets: Vec<SecretString>,
    pub webhook_tolerance_secs: u64,
    pub request_timeout_ms: u64,
    pub checkout_extension_secs: u64,
    pub payment_page_url: String,
    pub refund_retry_first_ms: u64,
    pub refund_retry_max_ms: u64,
    pub provider_check_interval_ms: u64,
}

fn secret_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(service_kit::settings::list_of_strings(deserializer)?.into_iter().map(SecretString::from).collect())
}

/// The longest payment window a checkout may add to a hold: seats held longer are seats
/// kept off sale for a fan who may never pay.
const MAX_CHECKOUT_EXTENSION_SECS: u64 = 3600;

impl PaymentsConfig {
    fn validate(&self, listeners: &[SocketAddr], deployment: Deployment) -> Result<(), String> {
        if !(self.api_base.starts_with("http://") || self.api_base.starts_with("https://")) {
            return Err("gateway.payments.api_base must be an http:// or https:// URL".into());
        }
        let secret_key = self.secret_key.expose_secret();
        if !secret_key.starts_with("sk_") {
            return Err("gateway.payments.secret_key must be a secret key (sk_…)".into());
        }
        deployment.refuse_development_secret("gateway.payments.secret_key", secret_key, listeners)?;
        if self.webhook_secrets.is_empty() {
            return Err("gateway.payments.webhook_secrets must name at least one secret".into());
        }
        for secret in &self.webhook_secrets {
            let secret = secret.expose_secret();
            if !secret.starts_with("whsec_") {
                return Err("gateway.payments.webhook_secrets must be webhook signing secrets (whsec_…)".into());
            }
            // Anyone could sign a webhook with a development secret, and a forged
            // `payment_intent.succeeded` would book seats nobody paid for.
            deployment.refuse_development_secret("gateway.payments.webhook_secrets", secret, listeners)?;
        }
        if !(1..=3600).contains(&self.webhook_tolerance_secs) {
            return Err("gateway.payments.webhook_tolerance_secs must be 1-3600".into());
        }
        if !(1..=60_000).contains(&self.request_timeout_ms) {
            return Err("gateway.payments.request_timeout_ms must be 1-60000".into());
        }
        if !(1..=MAX_CHECKOUT_EXTENSION_SECS).contains(&self.checkout_extension_secs) {
            return Err(format!("gateway.payments.checkout_extension_secs must be 1-{MAX_CHECKOUT_EXTENSION_SECS}"));
        }
        if !(1..=60_000).contains(&self.provider_check_interval_ms) {
            return Err("gateway.payments.provider_check_interval_ms must be 1-60000".into());
        }
        if self.refund_retry_first_ms == 0 || self.refund_retry_max_ms < self.refund_retry_first_ms {
            return Err(
                "gateway.payments.refund_retry_first_ms must be at least 1 and at most refund_retry_max_ms".into()
            );
        }
        Ok(())
    }

    /// The provider client's settings: every call bounded by `request_timeout_ms`.
    pub fn stripe(&self) -> stripe_client::StripeConfig {
        let request_timeout = Duration::from_millis(self.request_timeout_ms);
        stripe_client::StripeConfig {
            base_url: self.api_base.clone(),
            secret_key: self.secret_key.clone(),
            request_timeout,
            connect_timeout: request_timeout.min(Duration::from_secs(3)),
        }
    }

    /// Where the fan pays this intent, if the provider has a page of its own.
    pub fn payment_page(&self, intent_id: &str, client_secret: &str) -> Option<String> {
        (!self.payment_page_url.is_empty())
            .then(|| self.payment_page_url.replace("{intent_id}", intent_id).replace("{client_secret}", client_secret))
    }
}

impl Section for GatewayConfig {
    const KEY: &'static str = "gateway";

    fn set_deployment(&mut self, deployment: Deployment) {
        self.deployment = deployment;
    }

    fn validate(&self) -> Result<(), String> {
        if self.management_listen == self.listen && self.listen.port() != 0 {
            return Err("gateway.management_listen must differ from gateway.listen".into());
        }
        if self.admin_api_key.expose_secret().len() < 16 {
            return Err("gateway.admin_api_key must be at least 16 characters".into());
        }
        let listeners = [self.listen];
        let admin_api_key = self.admin_api_key.expose_secret();
        self.deployment.refuse_development_secret("gateway.admin_api_key", admin_api_key, &listeners)?;
        self.distress.validate()?;
        if self.token_leeway_secs > 300 {
            return Err("gateway.token_leeway_secs must be at most 300".into());
        }
        if !(1..=20).contains(&self.best_available_attempts) {
            return Err("gateway.best_available_attempts must be 1-20".into());
        }
        if !(1..=300_000).contains(&self.event_rules_max_age_ms) {
            return Err("gateway.event_rules_max_age_ms must be 1-300000".into());
        }
        self.limit_global.validate("gateway.limit_global")?;
        self.limit_per_address.validate("gateway.limit_per_address")?;
        self.limit_public_reads_per_address.validate("gateway.limit_public_reads_per_address")?;
        self.limit_per_fan.validate("gateway.limit_per_fan")?;
        if !(1..=60_000).contains(&self.revocation_poll_interval_ms) {
            return Err("gateway.revocation_poll_interval_ms must be 1-60000".into());
        }
        if !(1..=3_600).contains(&self.key_reload_interval_secs) {
            return Err("gateway.key_reload_interval_secs must be 1-3600".into());
        }
        self.client_address.validate("gateway")?;
        self.http.validate("gateway")?;
        self.payments.validate(&listeners, self.deployment)?;
        self.webhooks.validate()?;
        self.seat_stream.validate()?;
        if !service_kit::settings::is_origin(&self.pages.waitroom_origin) {
            return Err(
                "gateway.pages.waitroom_origin must be an origin (scheme://host[:port], nothing after it)".into()
            );
        }
        if !(60..=86_400).contains(&self.hold_max_lifetime_secs)
            || self.hold_max_lifetime_secs < self.payments.checkout_extension_secs
        {
            return Err(
                "gateway.hold_max_lifetime_secs must be 60-86400 and at least gateway.payments.checkout_extension_secs"
                    .into(),
            );
        }
        if self.create_event_timeout_ms == 0 || self.create_event_timeout_ms >= self.http.request_timeout_ms {
            return Err(
                "gateway.create_event_timeout_ms must be at least 1 and shorter than gateway.http.request_timeout_ms"
                    .into(),
            );
        }
        Ok(())
    }
}

impl GatewayConfig {
    pub fn revocation_poll_interval(&self) -> Duration {
        Duration::from_millis(self.revocation_poll_interval_ms)
    }

    pub fn key_reload_interval(&self) -> Duration {
        Duration::from_secs(self.key_reload_interval_secs)
    }

    /// What the sale's use cases need to know of this configuration.
    pub fn sales_settings(&self) -> sales::Settings {
        sales::Settings {
            best_available_attempts: self.best_available_attempts,
            create_event_timeout: Duration::from_millis(self.create_event_timeout_ms),
            event_rules_max_age: Duration::from_millis(self.event_rules_max_age_ms),
            checkout_extension: Duration::from_secs(self.payments.checkout_extension_secs),
            hold_max_lifetime: Duration::from_secs(self.hold_max_lifetime_secs),
            refund_retry_first: Duration::from_millis(self.payments.refund_retry_first_ms),
            refund_retry_max: Duration::from_millis(self.payments.refund_retry_max_ms),
            provider_check_interval: Duration::from_millis(self.payments.provider_check_interval_ms),
            webhook_secret_grace: Duration::from_millis(self.webhooks.secret_rotation_grace_ms),
            webhook_private_urls_allowed: self.webhooks.allow_private_urls,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[gateway]` as tests load it (see `test_support::config`), with the development
    /// admin key of `config/default.toml`.
    fn config() -> GatewayConfig {
        test_support::config(&[], |_| {})
    }

    #[test]
    fn the_poll_and_reload_intervals_are_bounded_naming_the_key() {
        assert_eq!(config().revocation_poll_interval(), Duration::from_secs(1));
        assert_eq!(config().key_reload_interval(), Duration::from_secs(10));
        type Change = fn(&mut GatewayConfig);
        let wrong: [(Change, &str); 4] = [
            (|c| c.revocation_poll_interval_ms = 0, "gateway.revocation_poll_interval_ms must be 1-60000"),
            (|c| c.revocation_poll_interval_ms = 60_001, "gateway.revocation_poll_interval_ms must be 1-60000"),
            (|c| c.key_reload_interval_secs = 0, "gateway.key_reload_interval_secs must be 1-3600"),
            (|c| c.key_reload_interval_secs = 3_601, "gateway.key_reload_interval_secs must be 1-3600"),
        ];
        for (change, message) in wrong {
            let mut c = config();
            change(&mut c);
            assert_eq!(c.validate(), Err(message.to_owned()));
        }
    }

    #[test]
    fn the_development_admin_key_is_refused_on_a_public_listener_naming_the_key() {
        let public = GatewayConfig { listen: "0.0.0.0:8081".parse().unwrap(), ..config() };
        let error = public.validate().unwrap_err();
        assert!(error.starts_with("gateway.admin_api_key is the development default"), "{error}");
        assert!(error.contains("BOXOFFICE__GATEWAY__ADMIN_API_KEY"), "{error}");

        for loopback in ["127.0.0.1:8081", "[::1]:8081"] {
            let local = GatewayConfig { listen: loopback.parse().unwrap(), ..config() };
            assert_eq!(local.validate(), Ok(()), "{loopback}");
        }
        let development =
            GatewayConfig { deployment: Deployment { development: true, ..Deployment::default() }, ..public.clone() };
        assert_eq!(development.validate(), Ok(()), "with the development switch");
        let own_key = GatewayConfig { admin_api_key: SecretString::from("a-real-admin-key-0123456789"), ..public };
        let error = own_key.validate().unwrap_err();
        assert!(error.starts_with("gateway.payments.secret_key is the development default"), "{error}");
        let mut own_secrets = own_key.clone();
        own_secrets.payments.secret_key = SecretString::from("sk_live_of_our_own");
        let error = own_secrets.validate().unwrap_err();
        assert!(error.starts_with("gateway.payments.webhook_secrets is the development default"), "{error}");
        own_secrets.payments.webhook_secrets = vec![SecretString::from("whsec_of_our_own")];
        assert_eq!(own_secrets.validate(), Ok(()));
    }
}
