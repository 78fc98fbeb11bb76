use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The `[waitroom]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct WaitroomConfig {
    pub listen: SocketAddr,
    /// Where `/metrics`, `/readyz` and `/healthz` answer: not the public listener
    /// (metrics name events; a readiness round costs a round trip). Loopback by
    /// default; Kubernetes sets `0.0.0.0:<port>` for the kubelet and Prometheus.
    pub management_listen: SocketAddr,
    /// Organizer endpoints require `Authorization: Bearer <admin_api_key>`.
    pub admin_api_key: SecretString,
    /// Key of the queue tickets' HMAC. Every replica needs the same one; changing it
    /// invalidates all outstanding tickets (fans re-join and keep their place).
    pub ticket_secret: SecretString,
    /// A waiting fan who has not polled for this long is skipped when their turn comes.
    /// It also sets how long admission pauses after Redis lost the queue (a third of
    /// it, the longest poll interval a fan is given, plus 2 s) and how long after that a
    /// fan's ticket can still put them back in their place (all of it).
    pub abandon_after_secs: u64,
    /// A queue ticket expires this long after it was issued. A fan who polls is given a
    /// fresh one each time, so only a ticket that leaked or was left unused expires; at
    /// least twice `abandon_after_secs`, so a fan who may still keep their place (or
    /// have it restored after a wipe) always holds a valid ticket.
    pub ticket_lifetime_secs: u64,
    /// How often each replica's admitter steps every event. The rate does not depend
    /// on it (owed admissions follow elapsed time); it sets how smooth admission is.
    pub admitter_tick_ms: u64,
    /// How long a closed event's Redis keys outlive its closing: late polls still
    /// learn it closed from Redis meanwhile, then from PostgreSQL (which keeps its
    /// settings, seed and admissions) through a rebuild that expires again. Also how long
    /// an idle-retired event's keys outlive its retirement (`idle_retention_secs`).
    pub closed_retention_secs: u64,
    /// An event never closed leaves the admitter's walk, and its Redis keys start to
    /// expire, once it has stayed this long opened with nobody in line and nobody
    /// admitted, untouched by the organizer (see `store/scripts/admit.lua`). A join
    /// brings it back; before its opening time it is never retired.
    pub idle_retention_secs: u64,
    /// Joins per client address (an IPv6 client's /64).
    pub join_limit_per_address: RateLimit,
    pub join_limit_per_fan: RateLimit,
    /// Polls and leaves per client address; checked before the ticket's signature, so
    /// garbage tickets cannot buy unlimited HMAC checks.
    pub poll_limit_per_address: RateLimit,
    /// Polls and leaves per ticket (a fan in one event's line). A fan who follows
    /// `poll_after_secs` (2 s at least) never meets it.
    pub poll_limit_per_ticket: RateLimit,
    /// Who the client is behind a proxy (`[waitroom.client_address]`): without a
    /// trusted proxy, the TCP peer; behind one not configured, every fan would share the
    /// proxy's address and its limit.
    pub client_address: ClientAddressConfig,
    /// When set, a fan id chosen by the client is accepted only with the organizer's
    /// signature (`fan_id_signature`, see `domain/vouched.rs`), so nobody can join as
    /// someone else. Unset, fans take the ids the waiting room issues, and a client's
    /// own is refused (taken as given only with the development switch).
    #[serde(default)]
    pub fan_id_secret: Option<SecretString>,
    /// The waiting room's own PostgreSQL pool (the rest of `[database]` applies): the
    /// organizer's writes, the admission records, rebuilds after a wipe. Small, since
    /// fans' requests never use it, and every replica holds one.
    pub database_max_connections: u32,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// How long clients may take (`[waitroom.http]`).
    pub http: HttpConfig,
    /// Admission by the sale's remaining places (`[waitroom.inventory]`).
    pub inventory: InventoryConfig,
    /// Freeing the admissions of fans who booked (`[waitroom.slot_release]`).
    pub slot_release: SlotReleaseConfig,
    /// Slowing admission while the gateways report distress (`[waitroom.backpressure]`).
    pub backpressure: BackpressureConfig,
    /// Proof of work at the door, for events that ask for it (`[waitroom.pow]`).
    pub pow: PowConfig,
    /// Fans' standing pushed over Server-Sent Events (`[waitroom.stream]`).
    pub stream: LineStreamConfig,
    /// The origins whose pages may call this API from a browser (CORS): the fan's pages
    /// are served by the gateway, on an origin of its own (README "Origins").
    #[serde(deserialize_with = "service_kit::settings::list_of_strings")]
    pub page_origins: Vec<String>,
    /// Handed over by the loader: with the `development` switch, development secrets
    /// are accepted on any listener, and without a `fan_id_secret` a client's own fan
    /// id is taken as given.
    #[serde(skip)]
    pub deployment: Deployment,
}

/// `[waitroom.inventory]`: admission that knows what the sale has left (issue 18,
/// `crate::inventory`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InventoryConfig {
    /// Off: admission follows the organizer's rate and `max_active` only.
    pub enabled: bool,
    /// How often each replica reads the seats' change feed, per event it steps.
    pub refresh_ms: u64,
    /// Counts not read for this long are not used: admission goes on at the
    /// organizer's rate (the feed stopped, PostgreSQL is unreachable).
    pub stale_after_ms: u64,
    /// Admitted fans allowed per place still for sale (see `domain::budget`).
    pub shoppers_per_place: f64,
}

impl InventoryConfig {
    fn validate(&self) -> Result<(), String> {
        if !(50..=10_000).contains(&self.refresh_ms) {
            return Err("waitroom.inventory.refresh_ms must be 50-10000".into());
        }
        if self.stale_after_ms < 2 * self.refresh_ms {
            return Err("waitroom.inventory.stale_after_ms must be at least twice refresh_ms".into());
        }
        if !(self.shoppers_per_place.is_finite() && (0.1..=100.0).contains(&self.shoppers_per_place)) {
            return Err("waitroom.inventory.shoppers_per_place must be 0.1-100".into());
        }
        Ok(())
    }
}

/// `[waitroom.stream]`: `GET /v1/events/{event}/queue/{ticket}/stream` (issue 17,
/// `crate::streams`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct LineStreamConfig {
    /// How often each replica reads an event's line for every fan streaming it (one
    /// Redis call per event and replica); a fan is sent an update at most this often.
    pub tick_ms: u64,
    /// Streams this replica serves at once; more are refused with `503 too_many_streams`.
    pub max_streams: usize,
    /// A stream ends after this; the page reconnects with its latest ticket.
    pub max_stream_secs: u64,
    /// A comment line at least this often, so proxies keep an idle stream open.
    pub keep_alive_secs: u64,
    /// An event nobody streams for this long stops being read.
    pub idle_secs: u64,
}

impl LineStreamConfig {
    fn validate(&self) -> Result<(), String> {
        let checks = [
            ("tick_ms", (50..=10_000).contains(&self.tick_ms), "50-10000"),
            ("max_streams", (1..=1_000_000).contains(&self.max_streams), "1-1000000"),
            ("max_stream_secs", (1..=86_400).contains(&self.max_stream_secs), "1-86400"),
            ("keep_alive_secs", (1..=300).contains(&self.keep_alive_secs), "1-300"),
            ("idle_secs", (1..=3_600).contains(&self.idle_secs), "1-3600"),
        ];
        match checks.iter().find(|(_, ok, _)| !ok) {
            Some((key, _, range)) => Err(format!("waitroom.stream.{key} must be {range}")),
            None => Ok(()),
        }
    }
}

/// `[waitroom.pow]`: the challenges of events with a `pow_difficulty` (issue 18,
/// `crate::pow`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct PowConfig {
    /// PBKDF2-SHA-256 iterations per counter a solver tries: the work per attempt.
    pub cost: u32,
    /// A challenge must be solved and used within this long; its solution is then
    /// remembered (and refused a second time) until it expires.
    pub challenge_ttl_secs: u64,
    /// How long a replica uses an event's difficulty before reading it again.
    pub settings_max_age_ms: u64,
}

impl PowConfig {
    fn validate(&self) -> Result<(), String> {
        if !(1..=1_000_000).contains(&self.cost) {
            return Err("waitroom.pow.cost must be 1-1000000".into());
        }
        if !(1..=3_600).contains(&self.challenge_ttl_secs) {
            return Err("waitroom.pow.challenge_ttl_secs must be 1-3600".into());
        }
        if !(100..=60_000).contains(&self.settings_max_age_ms) {
            return Err("waitroom.pow.settings_max_age_ms must be 100-60000".into());
        }
        Ok(())
    }
}

/// `[waitroom.slot_release]`: a fan who booked stops counting under `max_active`
/// (issue 18, `crate::release`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SlotReleaseConfig {
    /// Off: a fan counts until they leave or their admission expires, and no
    /// `booking.confirmed` or `waitlist.joined` is kept for the waiting room.
    pub enabled: bool,
    /// How often each replica looks for bookings to release.
    pub poll_ms: u64,
    /// Deliveries claimed per statement, and at most released at once.
    pub batch: u32,
    /// How long a replica's claim keeps a delivery from the others.
    pub lease_ms: u64,
    /// How far the database's clock (a booking's time) and Redis' (an admission's)
    /// may disagree: an admission that began up to this long after the booking is
    /// still released.
    pub clock_skew_ms: u64,
}

impl SlotReleaseConfig {
    fn validate(&self) -> Result<(), String> {
        if !(10..=10_000).contains(&self.poll_ms) {
            return Err("waitroom.slot_release.poll_ms must be 10-10000".into());
        }
        if !(1..=10_000).contains(&self.batch) {
            return Err("waitroom.slot_release.batch must be 1-10000".into());
        }
        if !(100..=600_000).contains(&self.lease_ms) {
            return Err("waitroom.slot_release.lease_ms must be 100-600000".into());
        }
        if self.clock_skew_ms > 60_000 {
            return Err("waitroom.slot_release.clock_skew_ms must be at most 60000".into());
        }
        Ok(())
    }
}

/// `[waitroom.backpressure]`: the admission rate follows the gateways' distress (issue
/// 18, `crate::backpressure`).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BackpressureConfig {
    /// Off: the organizer's rate, whatever the gateways report.
    pub enabled: bool,
    /// How often each replica reads the gateways' reports.
    pub refresh_ms: u64,
    /// Reports not read for this long are not used (Redis unreachable): no distress.
    pub stale_after_ms: u64,
    /// The share of the organizer's rate left at full distress.
    pub min_rate_share: f64,
}

impl BackpressureConfig {
    fn validate(&self) -> Result<(), String> {
        if !(50..=10_000).contains(&self.refresh_ms) {
            return Err("waitroom.backpressure.refresh_ms must be 50-10000".into());
        }
        if self.stale_after_ms < 2 * self.refresh_ms {
            return Err("waitroom.backpressure.stale_after_ms must be at least twice refresh_ms".into());
        }
        if !(self.min_rate_share.is_finite() && (0.01..=1.0).contains(&self.min_rate_share)) {
            return Err("waitroom.backpressure.min_rate_share must be 0.01-1".into());
        }
        Ok(())
    }
}

use service_kit::client_address::ClientAddressConfig;
pub use service_kit::rate_limit::RateLimit;
use service_kit::serve::HttpConfig;
use service_kit::settings::{Deployment, Section};

impl Section for WaitroomConfig {
    const KEY: &'static str = "waitroom";

    fn set_deployment(&mut self, deployment: Deployment) {
        self.deployment = deployment;
    }

    fn validate(&self) -> Result<(), String> {
        if self.management_listen == self.listen && self.listen.port() != 0 {
            return Err("waitroom.management_listen must differ from waitroom.listen".into());
        }
        if self.admin_api_key.expose_secret().len() < 16 {
            return Err("waitroom.admin_api_key must be at least 16 characters".into());
        }
        self.http.validate("waitroom")?;
        self.stream.validate()?;
        if let Some(origin) = self.page_origins.iter().find(|origin| !service_kit::settings::is_origin(origin)) {
            return Err(format!(
                "waitroom.page_origins: {origin:?} is not an origin (scheme://host[:port], nothing after it)"
            ));
        }
        if self.ticket_secret.expose_secret().len() < 32 {
            return Err("waitroom.ticket_secret must be at least 32 characters".into());
        }
        if self.fan_id_secret.as_ref().is_some_and(|s| s.expose_secret().len() < 32) {
            return Err("waitroom.fan_id_secret must be at least 32 characters".into());
        }
        let listeners = [self.listen];
        let secrets = [
            ("waitroom.admin_api_key", Some(&self.admin_api_key)),
            ("waitroom.ticket_secret", Some(&self.ticket_secret)),
            ("waitroom.fan_id_secret", self.fan_id_secret.as_ref()),
        ];
        for (key, secret) in secrets {
            if let Some(secret) = secret {
                self.deployment.refuse_development_secret(key, secret.expose_secret(), &listeners)?;
            }
        }
        if self.abandon_after_secs == 0 {
            return Err("waitroom.abandon_after_secs must be at least 1".into());
        }
        if self.ticket_lifetime_secs < 2 * self.abandon_after_secs {
            return Err(format!(
                "waitroom.ticket_lifetime_secs must be at least twice waitroom.abandon_after_secs ({} s)",
                2 * self.abandon_after_secs
            ));
        }
        if self.database_max_connections == 0 {
            return Err("waitroom.database_max_connections must be at least 1".into());
        }
        if !(60..=90 * 24 * 3600).contains(&self.closed_retention_secs) {
            return Err("waitroom.closed_retention_secs must be 60-7776000 (90 days)".into());
        }
        // At least an hour: far longer than any pause, restore window or poll interval, so
        // only an event long over is retired (and a short-lived retirement would only
        // cost rebuilds).
        if !(3_600..=90 * 24 * 3600).contains(&self.idle_retention_secs) {
            return Err("waitroom.idle_retention_secs must be 3600-7776000 (1 hour to 90 days)".into());
        }
        if !(10..=1_000).contains(&self.admitter_tick_ms) {
            return Err("waitroom.admitter_tick_ms must be 10-1000".into());
        }
        self.join_limit_per_address.validate("waitroom.join_limit_per_address")?;
        self.join_limit_per_fan.validate("waitroom.join_limit_per_fan")?;
        self.poll_limit_per_address.validate("waitroom.poll_limit_per_address")?;
        self.poll_limit_per_ticket.validate("waitroom.poll_limit_per_ticket")?;
        self.client_address.validate("waitroom")?;
        self.inventory.validate()?;
        self.slot_release.validate()?;
        self.pow.validate()?;
        self.backpressure.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[waitroom]` as tests load it (see `test_support::config`).
    fn config() -> WaitroomConfig {
        test_support::config(&[], |_| {})
    }

    #[test]
    fn weak_secrets_and_zero_limits_are_refused_naming_the_key() {
        assert_eq!(config().validate(), Ok(()));
        let refused = |wrong: WaitroomConfig, key: &str| {
            let error = wrong.validate().unwrap_err();
            assert!(error.starts_with(key), "{key}: {error}");
        };
        refused(WaitroomConfig { ticket_secret: SecretString::from("short"), ..config() }, "waitroom.ticket_secret");
        refused(WaitroomConfig { admin_api_key: SecretString::from("short"), ..config() }, "waitroom.admin_api_key");
        let zero = RateLimit { per_second: 0, burst: 1 };
        refused(WaitroomConfig { join_limit_per_fan: zero, ..config() }, "waitroom.join_limit_per_fan");
        let everyone =
            ClientAddressConfig { trusted_proxies: vec!["::/0".parse().unwrap()], ..config().client_address };
        refused(WaitroomConfig { client_address: everyone, ..config() }, "waitroom.client_address.trusted_proxies");
        let short = Some(SecretString::from("short"));
        refused(WaitroomConfig { fan_id_secret: short, ..config() }, "waitroom.fan_id_secret");
        refused(WaitroomConfig { database_max_connections: 0, ..config() }, "waitroom.database_max_connections");
        refused(WaitroomConfig { poll_limit_per_ticket: zero, ..config() }, "waitroom.poll_limit_per_ticket");
        refused(WaitroomConfig { idle_retention_secs: 3_599, ..config() }, "waitroom.idle_retention_secs");
        refused(WaitroomConfig { idle_retention_secs: 90 * 24 * 3600 + 1, ..config() }, "waitroom.idle_retention_secs");
        let inventory = |change: fn(&mut InventoryConfig)| {
            let mut inventory = config().inventory;
            change(&mut inventory);
            WaitroomConfig { inventory, ..config() }
        };
        refused(inventory(|i| i.shoppers_per_place = f64::NAN), "waitroom.inventory.shoppers_per_place");
        refused(inventory(|i| i.shoppers_per_place = 0.0), "waitroom.inventory.shoppers_per_place");
        refused(inventory(|i| i.stale_after_ms = i.refresh_ms), "waitroom.inventory.stale_after_ms");
        refused(inventory(|i| i.refresh_ms = 0), "waitroom.inventory.refresh_ms");
        assert_eq!(config().idle_retention_secs, 3 * 24 * 3600, "config/default.toml's");
        let (abandon_after_secs, ticket_lifetime_secs) = (60, 119);
        refused(
            WaitroomConfig { abandon_after_secs, ticket_lifetime_secs, ..config() },
            "waitroom.ticket_lifetime_secs",
        );
    }

    #[test]
    fn development_secrets_are_refused_on_a_public_listener_naming_the_key() {
        let own = |secret: &str| SecretString::from(secret.to_owned());
        let public = || WaitroomConfig {
            listen: "0.0.0.0:8080".parse().unwrap(),
            admin_api_key: own("test-admin-key-0123456789"),
            ..config()
        };
        let refused = |wrong: WaitroomConfig, key: &str| {
            let error = wrong.validate().unwrap_err();
            assert!(error.starts_with(&format!("{key} is the development default")), "{key}: {error}");
        };
        refused(WaitroomConfig { admin_api_key: own("dev-admin-key-change-me"), ..public() }, "waitroom.admin_api_key");
        let ticket_secret = own("dev-ticket-secret-change-me-0123456789");
        refused(WaitroomConfig { ticket_secret: ticket_secret.clone(), ..public() }, "waitroom.ticket_secret");
        let fan_id_secret = Some(own("dev-fan-id-secret-change-me-0123456789"));
        refused(WaitroomConfig { fan_id_secret: fan_id_secret.clone(), ..public() }, "waitroom.fan_id_secret");
        assert_eq!(public().validate(), Ok(()), "the test secrets are not development defaults");
        let local = WaitroomConfig { ticket_secret: ticket_secret.clone(), fan_id_secret, ..config() };
        assert_eq!(local.validate(), Ok(()), "on loopback");
        let deployment = Deployment { development: true, ..Deployment::default() };
        let development = WaitroomConfig { ticket_secret, deployment, ..public() };
        assert_eq!(development.validate(), Ok(()), "with the development switch");
    }
}
