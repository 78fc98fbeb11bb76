//! The organizer's webhook endpoints: the outbox's first kind of subscriber
//! (`migrations/*_webhook_endpoints.sql`). Registering one draws its signing secret,
//! shown once; the relay in the scheduler delivers to it (see `scheduler::relay`), and
//! the delivery log says what became of each message.

use std::fmt;
use std::net::IpAddr;

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use service_kit::Invalid;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{Error, Result, What};
use crate::outbox::TOPICS;
use crate::store::webhooks;
use crate::Sales;

/// `boxoffice_purpose` of the outbox relay's `v1a` keys in the gateway's JWKS.
pub const V1A_KEY_PURPOSE: &str = "webhook";

/// The longest URL accepted: past it, some receivers' proxies refuse the request line.
pub const MAX_URL_LEN: usize = 2048;
/// Random bytes in a secret: Standard Webhooks asks for 24 to 64.
const SECRET_BYTES: usize = 32;

/// An endpoint's address: absolute `http` or `https`, with a host, no credentials
/// (they would show in every listing) and no fragment (never sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = |m: &str| Invalid::new("invalid_webhook_url", m);
        if raw.len() > MAX_URL_LEN {
            return Err(invalid("url must be at most 2048 bytes"));
        }
        let url = url::Url::parse(raw).map_err(|_| invalid("url must be an absolute http or https URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("url must use http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("url must name a host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("url must not carry credentials"));
        }
        if url.fragment().is_some() {
            return Err(invalid("url must not have a fragment"));
        }
        // Normalising may lengthen it (percent-encoding); the table's CHECK must still hold.
        if url.as_str().len() > MAX_URL_LEN {
            return Err(invalid("url must be at most 2048 bytes"));
        }
        Ok(Self(url.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Refuses a URL whose host is `localhost` (or a name under it) or an IP literal
    /// that is not a public address ([`is_non_public`]): a webhook must not be a way to
    /// make our relay call the services beside it (SSRF). Names that resolve to such
    /// addresses are refused by the relay when it connects (DNS can change after
    /// registering).
    pub fn refuse_private(&self) -> Result<(), Invalid> {
        let url = url::Url::parse(&self.0).map_err(|_| Invalid::new("invalid_webhook_url", "url is not valid"))?;
        let private = match url.host() {
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => is_non_public(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => is_non_public(IpAddr::V6(ip)),
            None => true,
        };
        if private {
            return Err(Invalid::new(
                "invalid_webhook_url",
                "url must not name localhost or a loopback, private, link-local, unique-local, unspecified or \
                 multicast address",
            ));
        }
        Ok(())
    }
}

/// True for addresses a webhook must not reach unless allowed: loopback, private
/// (10/8, 172.16/12, 192.168/16), link-local (169.254/16, fe80::/10: cloud metadata
/// services live there), unique-local (fc00::/7), unspecified and "this network"
/// (0/8, ::), multicast and broadcast; an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`)
/// as its IPv4 address. The standard library's classifications, not range tables of
/// our own.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.octets()[0] == 0
                || v4.is_multicast()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_non_public(IpAddr::V4(v4)),
            None => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || v6.is_multicast()
            }
        },
    }
}

/// A Standard Webhooks symmetric secret: `whsec_` + base64 of random bytes. Its `Debug`
/// hides it; only the answer to registering shows it, once.
#[derive(Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A new secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// What the organizer asks for: where, and which messages (every event's and every
/// topic when left out).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: WebhookUrl,
    pub event_id: Option<Uuid>,
    pub topics: Option<Vec<String>>,
}

impl NewWebhook {
    /// Checks the URL and the topic filter: known topics, at least one, each once.
    pub fn new(url: &str, event_id: Option<Uuid>, topics: Option<Vec<String>>) -> Result<Self, Invalid> {
        let url = WebhookUrl::parse(url)?;
        if let Some(topics) = &topics {
            if topics.is_empty() {
                return Err(Invalid::new("invalid_topics", "topics must name at least one topic, or be left out"));
            }
            if let Some(unknown) = topics.iter().find(|t| !TOPICS.contains(&t.as_str())) {
                let known = TOPICS.join(", ");
                return Err(Invalid::new(
                    "invalid_topics",
                    format!("unknown topic {}; the topics are {known}", service_kit::quoted(unknown)),
                ));
            }
            let mut sorted = topics.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != topics.len() {
                return Err(Invalid::new("invalid_topics", "topics must name each topic once"));
            }
        }
        Ok(Self { url, event_id, topics })
    }
}

/// A registered endpoint, as listed (never with its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    /// Only this event's messages; null for every event's.
    pub event_id: Option<Uuid>,
    /// Only these topics; null for every topic.
    pub topics: Option<Vec<String>>,
    /// False once disabled (e.g. it answered `410 Gone`): no new deliveries.
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

/// The answer to registering: the endpoint, and its secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RegisteredWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// Verifies the `webhook-signature` header (Standard Webhooks `v1`); not shown again.
    pub secret: WebhookSecret,
}

/// The answer to rotating a secret: the endpoint, and its new secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The new secret; not shown again.
    pub secret: WebhookSecret,
    /// Until then every request carries two `v1` signatures, the old secret's and the
    /// new one's; after it, only the new one's.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// The reason an endpoint the organizer turned off carries.
pub const DISABLED_BY_ORGANIZER: &str = "disabled by the organizer";

/// `outbox_delivery_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "outbox_delivery_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet: due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up: retries ran out, or the endpoint was disabled.
    Abandoned,
}

/// One message's delivery to one endpoint, with its latest attempt.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema, PartialEq)]
pub struct DeliveryLogEntry {
    /// The `webhook-id` header: the receiver's idempotency key.
    pub message_id: Uuid,
    pub event_id: Uuid,
    pub topic: String,
    pub status: DeliveryStatus,
    /// Attempts started so far.
    pub attempts: i32,
    /// When the message was written.
    pub created_at: DateTime<Utc>,
    /// While pending: when it is tried next (or, during an attempt, when its lease ends);
    /// null while the endpoint is turned off (nothing is tried until it is on again).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The status code the receiver last answered; null if it did not answer.
    pub last_response_status: Option<i16>,
    /// Why the last attempt failed without an answer (timeout, connection refused, …).
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i32>,
}

impl Sales {
    /// Registers an endpoint with a new secret. An event filter must name an event.
    #[tracing::instrument(skip(self, new), fields(kind = "register_webhook"))]
    pub async fn register_webhook(&self, new: NewWebhook) -> Result<RegisteredWebhook> {
        if let Some(event_id) = new.event_id {
            match self.event_rules(event_id).await {
                Err(Error::NotFound(What::Event)) => {
                    return Err(Invalid::new("unknown_event", "event_id names no event").into())
                }
                other => drop(other?),
            }
        }
        if !self.settings.webhook_private_urls_allowed {
            new.url.refuse_private()?;
        }
        let secret = WebhookSecret::generate();
        let id = Uuid::now_v7();
        let for_store = secret.clone();
        let webhook = self
            .db
            .write(move |conn| Box::pin(async move { webhooks::insert(conn, id, &new, &for_store).await }))
            .await?;
        Ok(RegisteredWebhook { webhook, secret })
    }

    /// Turns an endpoint on or off. Off: nothing is sent to it, and its messages wait
    /// (those pending, and those written meanwhile). On: each of its streams resumes,
    /// in order, at the message where it stopped; its URL must still pass the rule
    /// registering does ([`WebhookUrl::refuse_private`]).
    #[tracing::instrument(skip(self), fields(kind = "set_webhook_enabled"))]
    pub async fn set_webhook_enabled(&self, id: Uuid, enabled: bool) -> Result<Webhook> {
        let check_url = enabled && !self.settings.webhook_private_urls_allowed;
        let changed = self
            .db
            .write(move |conn| {
                Box::pin(async move {
                    if !enabled {
                        return webhooks::disable(conn, id, DISABLED_BY_ORGANIZER).await;
                    }
                    if check_url {
                        let Some(webhook) = webhooks::get(conn, id).await? else { return Ok(None) };
                        WebhookUrl::parse(&webhook.url)?.refuse_private()?;
                    }
                    webhooks::enable(conn, id).await
                })
            })
            .await?;
        changed.ok_or(Error::NotFound(What::Webhook))
    }

    /// Draws a new secret for an endpoint; the old one still signs (beside it) for
    /// `webhook_secret_grace`.
    #[tracing::instrument(skip(self), fields(kind = "rotate_webhook_secret"))]
    pub async fn rotate_webhook_secret(&self, id: Uuid) -> Result<RotatedSecret> {
        let secret = WebhookSecret::generate();
        let (for_store, grace) = (secret.clone(), self.settings.webhook_secret_grace);
        let rotated = self
            .db
            .write(move |conn| Box::pin(async move { webhooks::rotate_secret(conn, id, &for_store, grace).await }))
            .await?;
        let (webhook, previous_secret_expires_at) = rotated.ok_or(Error::NotFound(What::Webhook))?;
        Ok(RotatedSecret { webhook, secret, previous_secret_expires_at })
    }

    /// Deletes an endpoint: nothing more is sent to it, its pending deliveries are
    /// dropped, and it is gone from every read; its delivery log stays in the database.
    #[tracing::instrument(skip(self), fields(kind = "delete_webhook"))]
    pub async fn delete_webhook(&self, id: Uuid) -> Result<()> {
        let deleted = self.db.write(move |conn| Box::pin(async move { webhooks::delete(conn, id).await })).await?;
        if deleted {
            Ok(())
        } else {
            Err(Error::NotFound(What::Webhook))
        }
    }

    /// Every endpoint, oldest first.
    #[tracing::instrument(skip(self), fields(kind = "list_webhooks"))]
    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        self.db.read(|conn| Box::pin(webhooks::list(conn))).await
    }

    /// The endpoint's deliveries, newest message first; 404 if no such endpoint.
    #[tracing::instrument(skip(self), fields(kind = "webhook_deliveries"))]
    pub async fn webhook_deliveries(&self, id: Uuid, limit: i64, offset: i64) -> Result<Vec<DeliveryLogEntry>> {
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    if !webhooks::exists(conn, id).await? {
                        return Err(Error::NotFound(What::Webhook));
                    }
                    webhooks::deliveries(conn, id, limit, offset).await
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host_and_no_credentials() {
        for good in ["https://example.com/hooks", "http://127.0.0.1:8080/x?y=1", "https://[::1]/"] {
            assert!(WebhookUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "example.com/hooks",
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "https://example.com/#top",
            "javascript:alert(1)",
            "http://",
        ] {
            assert_eq!(WebhookUrl::parse(bad).map_err(|e| e.code), Err("invalid_webhook_url"), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn localhost_and_non_public_ip_literals_are_refused_public_hosts_pass() {
        for private in [
            "http://localhost:8080/",
            "http://LOCALHOST./x",
            "http://hooks.localhost/",
            "http://127.0.0.1/",
            "http://127.9.9.9/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://0.0.0.0/",
            "http://0.1.2.3/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://[ff02::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            let url = WebhookUrl::parse(private).unwrap();
            assert_eq!(url.refuse_private().map_err(|e| e.code), Err("invalid_webhook_url"), "{private}");
        }
        for public in [
            "https://hooks.example.com/",
            "https://localhost.example.com/",
            "http://8.8.8.8/",
            "http://172.32.0.1/",
            "http://192.169.0.1/",
            "http://[2001:4860:4860::8888]/",
            "http://[::ffff:8.8.8.8]/",
        ] {
            assert_eq!(WebhookUrl::parse(public).unwrap().refuse_private().map_err(|e| e.code), Ok(()), "{public}");
        }
    }

    #[test]
    fn topic_filters_name_known_topics_once() {
        let new = |topics: Option<Vec<&str>>| {
            NewWebhook::new("https://example.com/", None, topics.map(|t| t.into_iter().map(String::from).collect()))
                .map(|n| n.topics)
                .map_err(|e| e.code)
        };
        assert_eq!(new(None), Ok(None));
        assert_eq!(new(Some(vec!["booking.confirmed"])), Ok(Some(vec!["booking.confirmed".to_owned()])));
        assert_eq!(new(Some(vec![])), Err("invalid_topics"));
        assert_eq!(new(Some(vec!["booking.exploded"])), Err("invalid_topics"));
        assert_eq!(new(Some(vec!["hold.expired", "hold.expired"])), Err("invalid_topics"));
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_32_random_bytes_and_never_debug_printed() {
        let secret = WebhookSecret::generate();
        let encoded = secret.expose().strip_prefix("whsec_").unwrap();
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(encoded).unwrap().len(), 32);
        assert_ne!(secret, WebhookSecret::generate());
        assert_eq!(format!("{secret:?}"), "WebhookSecret(…)");
    }
}
