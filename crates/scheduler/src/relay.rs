//! The outbox relay: delivers outbox messages to the organizers' webhook endpoints,
//! signed per Standard Webhooks 1.0, at least once, in order per (endpoint, event).
//!
//! A run drains the webhook subscribers' deliveries as every outbox consumer does
//! ([`sales::consumer`]: claimed in leased batches, sent with no transaction open, each
//! outcome recorded in a statement of its own). Each request carries
//!
//! - `webhook-id`: the message's id, the receiver's idempotency key (the same on every
//!   attempt);
//! - `webhook-timestamp`: when this attempt was signed, Unix seconds;
//! - `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//!   with the endpoint's secret, base64-decoded after its `whsec_` prefix (the
//!   `standardwebhooks` crate, the reference implementation, signs).
//!
//! During a secret rotation's grace window, `webhook-signature` carries two `v1`
//! entries, space-separated: the new secret's, then the old one's.
//!
//! A `2xx` answer delivers; `410 Gone` disables the endpoint (its pending deliveries
//! wait, paused, until the organizer enables it again); anything else (another status,
//! a redirect, a timeout, a refused connection) is retried on [`RETRY_SCHEDULE`], or
//! after the receiver's `Retry-After` when that is longer, and given up after the last
//! attempt.
//!
//! Unless `allow_private_addresses` is on, the relay connects only to public addresses:
//! an IP literal that is not one, or a name that resolves only to such addresses
//! (checked at each connection, so a name rebound to 127.0.0.1 after registering is
//! caught), fails the attempt without a connection, logged as refused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use access_token::KeyPair;
use base64::Engine;

use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use sales::states::SubscriberKind;
use sales::store::deliveries::{self, Attempt, Claimed, Endpoint};
use service_kit::postgres::Database;

use crate::config::RelayConfig;
use crate::metrics;
use sales::consumer::{self, Consumer, Drained, Limits, Outcome};

/// Standard Webhooks' suggested waits after each failed attempt: 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (the first attempt is immediate). After the attempt
/// that follows the last wait, the delivery is given up: 10 attempts over about 3 days.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// What a receiver's error text may fill in the attempt log, in characters.
const ERROR_TEXT_MAX: usize = 300;

/// The relay: an HTTP client with bounded waits, its settings, and the key of its
/// optional `v1a` signatures. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    client: reqwest::Client,
    config: Arc<RelayConfig>,
    v1a_key: Option<Arc<KeyPair>>,
}

impl Relay {
    /// With `v1a_key`, every request carries an Ed25519 `v1a` signature beside `v1`.
    pub fn new(config: RelayConfig, v1a_key: Option<KeyPair>) -> Result<Self, reqwest::Error> {
        let mut client = reqwest::Client::builder();
        if !config.allow_private_addresses {
            client = client.dns_resolver(Arc::new(PublicAddressesOnly));
        }
        let client = client
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            // A redirect is not a delivery: the endpoint registered is the one we send to
            // (following one could also lead a signed request somewhere unintended).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("boxoffice-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, config: Arc::new(config), v1a_key: v1a_key.map(Arc::new) })
    }

    /// Drains the webhook deliveries ([`consumer::drain`]), then exports the outbox's
    /// lag.
    pub async fn run(&self, db: &Database) -> Result<Drained, sales::Error> {
        // Deliveries written paused by a transaction that read an endpoint as disabled
        // but committed after it was enabled again.
        let resumed = db.write(|conn| Box::pin(deliveries::resume(conn))).await?;
        if resumed > 0 {
            tracing::info!(resumed, "paused webhook deliveries of enabled endpoints resumed");
        }
        let run = consumer::drain(db, self).await?;
        let lag = db.read(|conn| Box::pin(deliveries::lag(conn))).await?;
        ::metrics::gauge!(metrics::OUTBOX_LAG).set(lag);
        Ok(run)
    }

    /// One signed POST of the message's JSON document to `endpoint`.
    async fn send(&self, claimed: &Claimed, endpoint: &Endpoint) -> (Attempt, Outcome) {
        let started = Instant::now();
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let failed = |error: String, reason| {
            let attempt = Attempt { duration: started.elapsed(), response_status: None, error: Some(error) };
            (attempt, Outcome::Failed { retry_after: None, reason })
        };
        if !self.config.allow_private_addresses {
            if let Some(ip) = non_public_ip_literal(&endpoint.url) {
                return failed(format!("refused: {}", PrivateAddress::Literal(ip)), "private_address");
            }
        }
        let id = claimed.message_id.to_string();
        let signature = match signature_header(
            &endpoint.secret,
            endpoint.previous_secret.as_deref(),
            self.v1a_key.as_deref(),
            &id,
            timestamp,
            &claimed.body,
        ) {
            Ok(signature) => signature,
            Err(e) => return failed(e.to_string(), "signing"),
        };
        let request = self
            .client
            .post(&endpoint.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", claimed.message_id.to_string())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(claimed.body.clone());
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let reason = if refused_as_private(&e) {
                    "private_address"
                } else if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "transport"
                };
                return failed(error_text(e), reason);
            }
        };
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(retry_after);
        drop(response);
        let attempt = Attempt {
            duration: started.elapsed(),
            response_status: Some(status.as_u16()),
            error: (!status.is_success()).then(|| format!("answered {status}")),
        };
        let outcome = if status.is_success() {
            Outcome::Delivered
        } else if status == StatusCode::GONE {
            Outcome::Gone
        } else {
            Outcome::Failed { retry_after, reason: "status" }
        };
        (attempt, outcome)
    }

    /// How long after failed attempt number `attempt` (1 for the first) the next one
    /// comes, or `None` when it was the last: the schedule's wait times
    /// `retry_scale`, or the receiver's `Retry-After` (up to `max_retry_after_secs`)
    /// when that is longer.
    pub fn retry_delay(&self, attempt: i32, retry_after: Option<Duration>) -> Option<Duration> {
        let max = Duration::from_secs(self.config.max_retry_after_secs);
        consumer::scheduled_retry(&RETRY_SCHEDULE, self.config.retry_scale, attempt, retry_after, max)
    }
}

impl Consumer for Relay {
    const KIND: SubscriberKind = SubscriberKind::Webhook;
    const DELIVERIES: &'static str = metrics::OUTBOX_DELIVERIES;
    const FAILURES: &'static str = metrics::WEBHOOK_FAILURES;

    fn limits(&self) -> Limits {
        Limits {
            batch: self.config.batch,
            lease: Duration::from_millis(self.config.lease_ms),
            concurrency: self.config.concurrency,
            max_batches_per_run: self.config.max_batches_per_run,
        }
    }

    async fn attempt(&self, claimed: &Claimed) -> (Attempt, Outcome) {
        match &claimed.endpoint {
            Some(endpoint) => self.send(claimed, endpoint).await,
            // Not claimed without one (see `deliveries::claim`); were it, it waits.
            None => {
                let attempt = Attempt {
                    duration: Duration::ZERO,
                    response_status: None,
                    error: Some("the webhook subscriber has no endpoint".into()),
                };
                (attempt, Outcome::Failed { retry_after: None, reason: "transport" })
            }
        }
    }

    fn retry_delay(&self, attempt: i32, retry_after: Option<Duration>) -> Option<Duration> {
        Relay::retry_delay(self, attempt, retry_after)
    }
}

/// Why a request could not be signed: an endpoint's stored secret is not `whsec_`
/// and base64 (the gateway draws them; only a damaged row is refused).
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot sign: {0}")]
    Secret(standardwebhooks::WebhookError),
    #[error("cannot sign with the previous secret: {0}")]
    PreviousSecret(standardwebhooks::WebhookError),
}

/// The `webhook-signature` header: the secret's `v1`; during a rotation's grace window
/// the previous secret's `v1` too, so a receiver still verifying with it accepts the
/// request; and the relay key's `v1a` when it has one. Space-separated.
pub fn signature_header(
    secret: &str,
    previous_secret: Option<&str>,
    v1a_key: Option<&KeyPair>,
    id: &str,
    timestamp: i64,
    body: &str,
) -> Result<String, SigningError> {
    let mut header = sign(secret, id, timestamp, body).map_err(SigningError::Secret)?;
    if let Some(previous) = previous_secret {
        header.push(' ');
        header.push_str(&sign(previous, id, timestamp, body).map_err(SigningError::PreviousSecret)?);
    }
    if let Some(key) = v1a_key {
        header.push(' ');
        header.push_str(&sign_v1a(key, id, timestamp, body));
    }
    Ok(header)
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with `secret` (`whsec_…`).
fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, standardwebhooks::WebhookError> {
    standardwebhooks::Webhook::new(secret)?.sign(id, timestamp, body.as_bytes())
}

/// `v1a,<base64 Ed25519 signature of "{id}.{timestamp}.{body}">`: the same signed
/// content as `v1`, signed with the relay's own key (Standard Webhooks' asymmetric
/// scheme). Receivers verify it with the key's public half; the reference libraries do
/// not verify `v1a` yet (the README has the recipe).
fn sign_v1a(key: &KeyPair, id: &str, timestamp: i64, body: &str) -> String {
    let signature = key.sign_raw(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1a,{}", base64::engine::general_purpose::STANDARD.encode(signature))
}

/// Why the relay refused to connect to a receiver.
#[derive(Debug, thiserror::Error)]
pub enum PrivateAddress {
    #[error("{0} is not a public address (scheduler.outbox_relay.allow_private_addresses is off)")]
    Literal(IpAddr),
    #[error(
        "{name} resolves only to non-public addresses ({address}) \
         (scheduler.outbox_relay.allow_private_addresses is off)"
    )]
    Resolved { name: String, address: IpAddr },
}

/// The URL's host, if it is an IP literal that is not a public address (names are
/// checked as they resolve, by [`PublicAddressesOnly`]: reqwest does not resolve
/// literals).
fn non_public_ip_literal(url: &str) -> Option<IpAddr> {
    let ip = match reqwest::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(ip) => IpAddr::V4(ip),
        url::Host::Ipv6(ip) => IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    sales::webhooks::is_non_public(ip).then_some(ip)
}

/// True if the request failed because [`PublicAddressesOnly`] refused the name.
fn refused_as_private(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<PrivateAddress>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Resolves receivers' names with the system resolver and keeps only their public
/// addresses: a name with none (`localhost`, a name rebound to 10.0.0.5 after it was
/// registered) fails the connection. Checked at each connection, not at registration,
/// so DNS rebinding cannot get around it.
struct PublicAddressesOnly;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|a| !sales::webhooks::is_non_public(a.ip()));
            match (public.is_empty(), private.first()) {
                (true, Some(first)) => {
                    let refused = PrivateAddress::Resolved { name, address: first.ip() };
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// `Retry-After` in seconds (RFC 9110 also allows an HTTP date; receivers asking for a
/// wait send seconds, and a date is ignored here: the schedule's wait applies).
fn retry_after(value: &HeaderValue) -> Option<Duration> {
    value.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// An error and its causes, shortened for the attempt log (the organizer reads it).
fn error_text(error: reqwest::Error) -> String {
    // Without the URL: the organizer knows it, and the log stays short.
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    service_kit::invalid::shortened(&text, ERROR_TEXT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(scale: f64) -> Relay {
        let mut config: crate::SchedulerConfig = test_support::config(&[], |_| {});
        config.outbox_relay.retry_scale = scale;
        Relay::new(config.outbox_relay, None).unwrap()
    }

    #[test]
    fn retries_follow_the_standard_webhooks_schedule_then_stop() {
        let relay = relay(1.0);
        let waits: Vec<Option<Duration>> = (1..=10).map(|n| relay.retry_delay(n, None)).collect();
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(
            waits,
            [
                secs(5),
                secs(300),
                secs(1800),
                secs(7200),
                secs(18000),
                secs(36000),
                secs(50400),
                secs(72000),
                secs(86400),
                None
            ]
        );
        assert_eq!(relay.retry_delay(0, None), None);
        assert_eq!(relay.retry_delay(-1, None), None);
    }

    #[test]
    fn the_scale_shrinks_the_schedule_and_retry_after_can_only_lengthen_it() {
        let relay = relay(0.001);
        assert_eq!(relay.retry_delay(1, None), Some(Duration::from_millis(5)));
        assert_eq!(relay.retry_delay(1, Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(relay.retry_delay(9, Some(Duration::from_secs(1))), Some(Duration::from_secs_f64(86.4)));
        // Capped at max_retry_after_secs (a day by default).
        assert_eq!(relay.retry_delay(1, Some(Duration::from_secs(10 * 86_400))), Some(Duration::from_secs(86_400)));
        assert_eq!(relay.retry_delay(10, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_dates_are_ignored() {
        assert_eq!(retry_after(&HeaderValue::from_static("120")), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&HeaderValue::from_static("-1")), None);
    }

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn signatures_match_the_specifications_example() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
