use std::net::SocketAddr;

use sales::store::invariants::Scope;
use serde::Deserialize;
use service_kit::serve::HttpConfig;
use service_kit::settings::Section;

/// The `[scheduler]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` answer.
    pub listen: SocketAddr,
    /// Expired holds count as free the moment they expire; the sweep only tidies
    /// their rows, so this can be seconds, not milliseconds.
    pub release_expired_holds_every_secs: u64,
    /// Holds ended per transaction; small batches keep each transaction's locks short.
    pub release_batch: i64,
    pub purge_idempotency_keys_every_secs: u64,
    /// How long a retry with the same `Idempotency-Key` still finds the first answer.
    pub idempotency_key_retention_hours: i32,
    /// Keys (and token revocations) deleted per statement; the purges loop until a
    /// batch comes back short, so however many rows piled up, no statement locks or
    /// writes more than this.
    pub purge_batch: i64,
    /// How often token revocations that cover no valid token any more (a day and five
    /// minutes after they were written) are deleted.
    pub purge_token_revocations_every_secs: u64,
    /// How often the seat feed's old changes are deleted.
    pub prune_seat_changes_every_secs: u64,
    /// How long the seat feed keeps a change: a reader further behind (a replica that
    /// was away longer) takes a snapshot instead.
    pub seat_change_retention_secs: u64,
    /// How often the oversell watchdog re-reads the inventory invariants. A run that
    /// finds the previous one still going skips (each job runs once at a time per replica).
    pub check_invariants_every_secs: u64,
    /// The watchdog checks an event until this long after it starts, so its cost
    /// follows the events on sale, not the whole history.
    pub check_invariants_after_start_hours: i32,
    /// The watchdog checks an event without a start date until this many days after it
    /// was created: nothing else says when its sale is over (the schema has no sale
    /// state yet), and checking it forever made every run scan all its seats.
    pub check_invariants_undated_days: i32,
    /// How long one watchdog run's statements may take: checking a large event during
    /// its sale takes seconds, more than the services' `database.statement_timeout_ms`.
    pub check_invariants_timeout_secs: u64,
    pub reconcile_payments_every_secs: u64,
    /// An attempt the provider has not settled for this long is asked about.
    pub reconcile_unsettled_after_secs: u64,
    pub reconcile_batch: i64,
    /// How often the ticket keys (`tickets.keys_dir`) are read again while confirmation
    /// emails are on: a signing key mounted late, or a new one, is in use within this.
    pub key_reload_interval_secs: u64,
    /// How long probe clients may take (`[scheduler.http]`).
    pub http: HttpConfig,
    /// The outbox relay to organizer webhooks (`[scheduler.outbox_relay]`).
    pub outbox_relay: RelayConfig,
    /// The SMTP server confirmation emails go through (`[scheduler.smtp]`); its `url`
    /// unset or empty turns them off.
    pub smtp: SmtpConfig,
    /// How the confirmation emails' sender drains its deliveries
    /// (`[scheduler.confirmation_emails]`).
    pub confirmation_emails: EmailConfig,
}

/// `[scheduler.smtp]`: where confirmation emails are sent from and through.
#[derive(Debug, Clone, Deserialize)]
pub struct SmtpConfig {
    /// `smtp://host:port` (plain; STARTTLS if the server offers it with
    /// `?tls=opportunistic`, required with `?tls=required`), or `smtps://host:port`
    /// (TLS from the start); credentials as `smtp://user:password@host`. Empty or absent:
    /// no emails are sent (the default for local runs).
    #[serde(default)]
    pub url: Option<secrecy::SecretString>,
    /// The `From` of every email, `Name <address>` or a bare address.
    pub from: String,
    /// Bound on connecting to the server, and on each of its answers.
    pub connect_timeout_ms: u64,
    /// Bound on one whole email: connecting, the envelope, the data, the server's verdict.
    pub send_timeout_ms: u64,
}

impl SmtpConfig {
    /// The server's URL, if emails are on.
    pub fn url(&self) -> Option<&str> {
        use secrecy::ExposeSecret;
        self.url.as_ref().map(|u| u.expose_secret().trim()).filter(|u| !u.is_empty())
    }

    fn validate(&self) -> Result<(), String> {
        let key = |name: &str| format!("scheduler.smtp.{name}");
        if let Some(url) = self.url() {
            if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                return Err(format!("{} must start with smtp:// or smtps:// (or be empty: no emails)", key("url")));
            }
            if self.from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!("{} must be an address, or `Name <address>`", key("from")));
            }
        }
        if self.connect_timeout_ms == 0 || self.send_timeout_ms == 0 {
            return Err(format!("{} and send_timeout_ms must be at least 1", key("connect_timeout_ms")));
        }
        if self.send_timeout_ms < self.connect_timeout_ms {
            return Err(format!("{} must be at least connect_timeout_ms", key("send_timeout_ms")));
        }
        Ok(())
    }
}

/// `[scheduler.confirmation_emails]`: the sender's runs, as [`RelayConfig`]'s.
#[derive(Debug, Clone, Deserialize)]
pub struct EmailConfig {
    pub every_secs: u64,
    /// Deliveries claimed per statement.
    pub batch: i64,
    /// Emails in flight at once within a batch.
    pub concurrency: usize,
    pub max_batches_per_run: u32,
    /// How long a claim keeps a delivery from other senders: at least
    /// `scheduler.smtp.send_timeout_ms` + 5 s (checked).
    pub lease_ms: u64,
    /// Multiplies the retry schedule (the relay's: 5 s … 24 h); tiny in tests.
    pub retry_scale: f64,
    /// The fan's page for the booking, linked from the email: `{event_id}`,
    /// `{booking_id}` and `{link}` (the booking's capability link) are filled in.
    pub booking_page_url: String,
    /// The fan's page for a waitlist offer, linked from its email: `{event_id}`,
    /// `{hold_id}` and `{link}` (the offer's capability link) are filled in.
    pub offer_page_url: String,
}

impl EmailConfig {
    fn validate(&self, smtp: &SmtpConfig) -> Result<(), String> {
        let key = |name: &str| format!("scheduler.confirmation_emails.{name}");
        check_runs(&key, self.every_secs, self.batch, self.concurrency, self.max_batches_per_run, self.retry_scale)?;
        if self.lease_ms < smtp.send_timeout_ms + RECORD_MARGIN_MS {
            return Err(format!(
                "{} must be at least scheduler.smtp.send_timeout_ms + {RECORD_MARGIN_MS}",
                key("lease_ms")
            ));
        }
        for (name, url) in [("booking_page_url", &self.booking_page_url), ("offer_page_url", &self.offer_page_url)] {
            if !url.contains("{link}") {
                return Err(format!("{} must contain {{link}}", key(name)));
            }
        }
        Ok(())
    }
}

/// `[scheduler.outbox_relay]`: how the relay drains the outbox to webhook endpoints.
#[derive(Debug, Clone, Deserialize)]
pub struct RelayConfig {
    /// How often a run starts; a run drains every due delivery (up to
    /// `max_batches_per_run`) before it ends.
    pub every_secs: u64,
    /// Deliveries claimed per statement (at most one per (endpoint, event) stream).
    pub batch: i64,
    /// Requests in flight at once within a batch.
    pub concurrency: usize,
    /// Batches per run at most, so one run ends even while messages keep coming.
    pub max_batches_per_run: u32,
    /// How long a claim keeps a delivery from other relays. Longer than a request may
    /// take (checked), so only a relay that died loses its claim; then the delivery is
    /// due again after this: a crash delays delivery by up to this much.
    pub lease_ms: u64,
    /// Bounds on one request to a receiver: connecting, and the whole exchange.
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// Multiplies Standard Webhooks' retry schedule (5 s … 24 h after each failure);
    /// 1 in production, tiny in tests so retries come in milliseconds.
    pub retry_scale: f64,
    /// The longest wait a receiver's `Retry-After` can ask for; longer asks are cut to it.
    pub max_retry_after_secs: u64,
    /// An Ed25519 private key (`<kid>.private.pem`, as `boxoffice keygen` writes) of the
    /// relay's own: when set, every request also carries a `v1a` signature. Absent by
    /// default: only `v1` (HMAC) is sent.
    #[serde(default)]
    pub v1a_key_file: Option<std::path::PathBuf>,
    /// Connect to receivers at loopback, private, link-local, unique-local, unspecified
    /// or multicast addresses (an IP literal, or what a name resolves to at each
    /// connection). Off in production (SSRF, DNS rebinding); on where receivers listen
    /// on loopback, as `gateway.webhooks.allow_private_urls`.
    pub allow_private_addresses: bool,
}

impl RelayConfig {
    fn validate(&self) -> Result<(), String> {
        let key = |name: &str| format!("scheduler.outbox_relay.{name}");
        check_runs(&key, self.every_secs, self.batch, self.concurrency, self.max_batches_per_run, self.retry_scale)?;
        if self.connect_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(format!("{} and request_timeout_ms must be at least 1", key("connect_timeout_ms")));
        }
        // Recording the outcome takes a database round trip after the request: a lease
        // shorter than the request plus that margin would hand a live claim to another relay.
        if self.lease_ms < self.request_timeout_ms + RECORD_MARGIN_MS {
            return Err(format!("{} must be at least request_timeout_ms + {RECORD_MARGIN_MS}", key("lease_ms")));
        }
        if self.max_retry_after_secs > 86_400 {
            return Err(format!("{} must be at most 86400", key("max_retry_after_secs")));
        }
        Ok(())
    }
}

/// The bounds every outbox consumer's runs share (`key` names a key of its section).
fn check_runs(
    key: &dyn Fn(&str) -> String,
    every_secs: u64,
    batch: i64,
    concurrency: usize,
    max_batches_per_run: u32,
    retry_scale: f64,
) -> Result<(), String> {
    if every_secs == 0 {
        return Err(format!("{} must be at least 1", key("every_secs")));
    }
    if !(1..=1_000).contains(&batch) {
        return Err(format!("{} must be 1-1000", key("batch")));
    }
    if !(1..=256).contains(&concurrency) {
        return Err(format!("{} must be 1-256", key("concurrency")));
    }
    if max_batches_per_run == 0 {
        return Err(format!("{} must be at least 1", key("max_batches_per_run")));
    }
    if !(retry_scale.is_finite() && retry_scale > 0.0 && retry_scale <= 1.0) {
        return Err(format!("{} must be more than 0 and at most 1", key("retry_scale")));
    }
    Ok(())
}

/// How much longer than a request a lease lasts at least (see [`RelayConfig::lease_ms`]).
pub const RECORD_MARGIN_MS: u64 = 5_000;

impl Section for SchedulerConfig {
    const KEY: &'static str = "scheduler";

    fn validate(&self) -> Result<(), String> {
        let intervals = [
            self.release_expired_holds_every_secs,
            self.purge_idempotency_keys_every_secs,
            self.purge_token_revocations_every_secs,
            self.prune_seat_changes_every_secs,
            self.seat_change_retention_secs,
            self.check_invariants_every_secs,
            self.reconcile_payments_every_secs,
            self.reconcile_unsettled_after_secs,
            self.key_reload_interval_secs,
        ];
        self.http.validate("scheduler")?;
        if intervals.contains(&0) {
            return Err("scheduler intervals must be at least 1 second".into());
        }
        if !(1..=10_000).contains(&self.release_batch) {
            return Err("scheduler.release_batch must be 1-10000".into());
        }
        if self.idempotency_key_retention_hours < 1 {
            return Err("scheduler.idempotency_key_retention_hours must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.purge_batch) {
            return Err("scheduler.purge_batch must be 1-10000".into());
        }
        if self.check_invariants_after_start_hours < 0 {
            return Err("scheduler.check_invariants_after_start_hours must not be negative".into());
        }
        if self.check_invariants_undated_days < 1 {
            return Err("scheduler.check_invariants_undated_days must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.reconcile_batch) {
            return Err("scheduler.reconcile_batch must be 1-10000".into());
        }
        if self.check_invariants_timeout_secs == 0 {
            return Err("scheduler.check_invariants_timeout_secs must be at least 1".into());
        }
        self.outbox_relay.validate()?;
        self.smtp.validate()?;
        self.confirmation_emails.validate(&self.smtp)
    }
}

impl SchedulerConfig {
    /// The events each watchdog run checks.
    pub fn invariant_scope(&self) -> Scope {
        Scope {
            after_start_hours: self.check_invariants_after_start_hours,
            undated_days: self.check_invariants_undated_days,
            time_limit: std::time::Duration::from_secs(self.check_invariants_timeout_secs),
            payment_window: std::time::Duration::from_secs(
                self.reconcile_unsettled_after_secs + self.reconcile_payments_every_secs,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[scheduler]` as tests load it (see `test_support::config`).
    fn config() -> SchedulerConfig {
        test_support::config(&[], |_| {})
    }

    #[test]
    fn bounds_are_checked_naming_the_key() {
        assert_eq!(config().validate(), Ok(()));
        assert_eq!(config().invariant_scope(), Scope::default());
        type Change = fn(&mut SchedulerConfig);
        let wrong: [(Change, &str); 13] = [
            (|c| c.smtp.url = Some("http://mail".into()), "scheduler.smtp.url"),
            (
                |c| {
                    c.smtp.url = Some("smtp://127.0.0.1:2525".into());
                    c.smtp.from = "not an address".into();
                },
                "scheduler.smtp.from",
            ),
            (|c| c.confirmation_emails.lease_ms = c.smtp.send_timeout_ms, "scheduler.confirmation_emails.lease_ms"),
            (|c| c.confirmation_emails.booking_page_url = "http://x/".into(), "scheduler.confirmation_emails"),
            (
                |c| c.confirmation_emails.offer_page_url = "http://x/".into(),
                "scheduler.confirmation_emails.offer_page_url",
            ),
            (|c| c.outbox_relay.batch = 0, "scheduler.outbox_relay.batch"),
            (|c| c.outbox_relay.lease_ms = c.outbox_relay.request_timeout_ms, "scheduler.outbox_relay.lease_ms"),
            (|c| c.outbox_relay.retry_scale = 0.0, "scheduler.outbox_relay.retry_scale"),
            (|c| c.outbox_relay.retry_scale = f64::NAN, "scheduler.outbox_relay.retry_scale"),
            (|c| c.purge_batch = 0, "scheduler.purge_batch"),
            (|c| c.purge_batch = 10_001, "scheduler.purge_batch"),
            (|c| c.check_invariants_undated_days = 0, "scheduler.check_invariants_undated_days"),
            (|c| c.check_invariants_undated_days = -1, "scheduler.check_invariants_undated_days"),
        ];
        for (change, key) in wrong {
            let mut c = config();
            change(&mut c);
            let error = c.validate().unwrap_err();
            assert!(error.starts_with(key), "{error}");
        }
    }
}
