//! The fan emails' sender: an outbox consumer (DECISIONS.md D4) that drains the
//! `confirmation_email` subscriber's deliveries as the webhook relay drains its own
//! ([`sales::consumer`]), and sends by SMTP to the address the fan gave (`data.email`):
//! each booking's confirmation (`booking.confirmed`), and each waitlist offer with the
//! link that takes or declines it (`waitlist.offer_made`).
//!
//! - No address in the message (the fan gave none, or a message written before the
//!   field existed): nothing to send; the delivery is done, counted as `no_address`.
//! - A booking cancelled, or an offer that ended (taken, declined, lapsed), before its
//!   email went out: nothing to send either (`booking_cancelled`, `offer_ended`).
//! - The server refuses for good (a `5xx` reply, or an address that is not one): given
//!   up at once, no retry can help. Anything else (refused or lost connection, a `4xx`,
//!   a timeout, the database unreachable) is retried on the relay's schedule times
//!   `retry_scale`, and given up after the last attempt.
//!
//! The secrets in the QR codes are signed here with the ticket key: the process that
//! sends the emails holds `[tickets]`'s private key, as the gateway that shows tickets
//! does (D6). Each email's `Message-ID` is its outbox message's id, so the rare repeat
//! (a sender that dies after the server took the email, before recording it) is
//! recognisable as the same email.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sales::outbox::{BookingConfirmed, WaitlistOfferMade};
use sales::states::SubscriberKind;
use sales::store::deliveries::{Attempt, Claimed};
use sales::tickets::{TicketKeyring, TicketSigner};
use serde::Deserialize;
use service_kit::postgres::Database;

use crate::config::{EmailConfig, SmtpConfig};
use crate::mail::Templates;
use crate::metrics;
use crate::relay::RETRY_SCHEDULE;
use sales::consumer::{self, Consumer, Drained, Limits, Outcome};

/// The sender: an SMTP client with bounded waits, the templates, the ticket keys.
/// Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    send_timeout: Duration,
    config: Arc<EmailConfig>,
    templates: Arc<Templates>,
    keys: TicketKeyring,
    db: Database,
}

/// Why the sender cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    #[error("scheduler.smtp.url: {0}")]
    Url(#[from] lettre::transport::smtp::Error),
    #[error("scheduler.smtp.from: {0}")]
    From(#[from] lettre::address::AddressError),
}

/// A message as the sender reads it: its `data`.
#[derive(Deserialize)]
struct Document<T> {
    data: T,
}

/// What comes before sending: the email, or the attempt's end without one.
type Prepared = Result<lettre::Message, Sent>;

impl Sender {
    /// A sender through the server at `url` (see [`SmtpConfig::url`]).
    pub fn new(
        url: &str,
        smtp: &SmtpConfig,
        config: EmailConfig,
        keys: TicketKeyring,
        db: Database,
    ) -> Result<Self, SenderError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
            .timeout(Some(Duration::from_millis(smtp.connect_timeout_ms)))
            .build();
        Ok(Self {
            transport,
            from: smtp.from.parse()?,
            send_timeout: Duration::from_millis(smtp.send_timeout_ms),
            config: Arc::new(config),
            templates: Arc::new(Templates::default()),
            keys,
            db,
        })
    }

    /// Sends every confirmation due ([`consumer::drain`]).
    pub async fn run(&self) -> Result<Drained, sales::Error> {
        consumer::drain(&self.db, self).await
    }

    /// Makes the message's email and sends it: what came of it, with the server's reply
    /// code and the error text for the attempt log.
    async fn send(&self, claimed: &Claimed) -> Sent {
        let (prepared, counter) = match claimed.topic.as_str() {
            "waitlist.offer_made" => (self.offer_email(claimed).await, metrics::OFFER_EMAILS),
            _ => (self.confirmation_email(claimed).await, metrics::CONFIRMATION_EMAILS),
        };
        let email = match prepared {
            Ok(email) => email,
            Err(sent) => return sent,
        };
        match tokio::time::timeout(self.send_timeout, self.transport.send(email)).await {
            Ok(Ok(response)) => {
                ::metrics::counter!(counter, "result" => "sent").increment(1);
                Sent { outcome: Outcome::Delivered, status: Some(reply_code(response.code())), error: None }
            }
            Ok(Err(e)) => {
                let status = e.status().map(reply_code);
                if e.is_permanent() {
                    Sent::abandoned("rejected", status, error_text(&e))
                } else if e.is_transient() {
                    Sent::failed("deferred", status, error_text(&e))
                } else if e.is_timeout() {
                    Sent::failed("timeout", status, error_text(&e))
                } else {
                    Sent::failed("transport", status, error_text(&e))
                }
            }
            Err(_) => Sent::failed("timeout", None, format!("no answer within {:?}", self.send_timeout)),
        }
    }

    /// The ticket signing key in use; until there is one (its file not there yet), every
    /// email waits and is tried again.
    fn signer(&self) -> Result<Arc<TicketSigner>, Sent> {
        self.keys.load().and_then(|keys| keys.signer().cloned()).ok_or_else(|| {
            Sent::failed("no_signing_key", None, "the ticket signing key is not there yet; trying again".into())
        })
    }

    /// The confirmation of the booking a `booking.confirmed` message names.
    async fn confirmation_email(&self, claimed: &Claimed) -> Prepared {
        let data = match serde_json::from_str::<Document<BookingConfirmed>>(&claimed.body) {
            Ok(document) => document.data,
            Err(e) => return Err(Sent::abandoned("malformed", None, format!("not a booking.confirmed message: {e}"))),
        };
        let to = recipient(data.email.as_deref(), metrics::CONFIRMATION_EMAILS)?;
        let signer = self.signer()?;
        let confirmation =
            match sales::confirmations::confirmation(&self.db, &signer, claimed.event_id, data.booking_id).await {
                Ok(Some(confirmation)) => confirmation,
                Ok(None) => {
                    ::metrics::counter!(metrics::CONFIRMATION_EMAILS, "result" => "booking_cancelled").increment(1);
                    return Err(Sent::nothing("nothing to send: the booking was cancelled"));
                }
                Err(e) => return Err(Sent::failed("database", None, format!("reading the booking: {e}"))),
            };
        let url = self
            .config
            .booking_page_url
            .replace("{event_id}", &confirmation.event_id.to_string())
            .replace("{booking_id}", &confirmation.booking_id.to_string())
            .replace("{link}", &confirmation.link);
        self.templates.confirmation(&self.from, to, &confirmation, &url, claimed.message_id).map_err(render_failed)
    }

    /// The offer a `waitlist.offer_made` message names, while it is still open.
    async fn offer_email(&self, claimed: &Claimed) -> Prepared {
        let data = match serde_json::from_str::<Document<WaitlistOfferMade>>(&claimed.body) {
            Ok(document) => document.data,
            Err(e) => {
                return Err(Sent::abandoned("malformed", None, format!("not a waitlist.offer_made message: {e}")))
            }
        };
        let to = recipient(data.email.as_deref(), metrics::OFFER_EMAILS)?;
        let signer = self.signer()?;
        let offer =
            match sales::confirmations::offer(&self.db, &signer, claimed.event_id, data.hold_id, data.total).await {
                Ok(Some(offer)) => offer,
                Ok(None) => {
                    ::metrics::counter!(metrics::OFFER_EMAILS, "result" => "offer_ended").increment(1);
                    return Err(Sent::nothing("nothing to send: the offer was taken, declined or lapsed"));
                }
                Err(e) => return Err(Sent::failed("database", None, format!("reading the offer: {e}"))),
            };
        let url = self
            .config
            .offer_page_url
            .replace("{event_id}", &offer.event_id.to_string())
            .replace("{hold_id}", &offer.hold_id.to_string())
            .replace("{link}", &offer.link);
        self.templates.offer(&self.from, to, &offer, &url, claimed.message_id).map_err(render_failed)
    }
}

/// The fan's address from the message; none given is nothing to send, counted on
/// `counter` as `no_address`.
fn recipient(address: Option<&str>, counter: &'static str) -> Result<Mailbox, Sent> {
    let Some(address) = address.map(str::trim).filter(|a| !a.is_empty()) else {
        ::metrics::counter!(counter, "result" => "no_address").increment(1);
        return Err(Sent::nothing("nothing to send: the fan gave no email address"));
    };
    address.parse().map_err(|e| Sent::abandoned("bad_address", None, format!("the fan's address: {e}")))
}

fn render_failed(error: crate::mail::MailError) -> Sent {
    tracing::error!(%error, "an email could not be made");
    Sent::failed("render", None, error.to_string())
}

/// What one attempt came to, for the delivery and its attempt log.
struct Sent {
    outcome: Outcome,
    /// The server's reply code, if it answered.
    status: Option<u16>,
    /// Why it failed, or why nothing was sent (the attempt log names one or the other).
    error: Option<String>,
}

impl Sent {
    fn nothing(why: &str) -> Self {
        Self { outcome: Outcome::Delivered, status: None, error: Some(why.to_owned()) }
    }

    fn failed(reason: &'static str, status: Option<u16>, error: String) -> Self {
        Self { outcome: Outcome::Failed { retry_after: None, reason }, status, error: Some(error) }
    }

    fn abandoned(reason: &'static str, status: Option<u16>, error: String) -> Self {
        Self { outcome: Outcome::Abandoned { reason }, status, error: Some(error) }
    }
}

/// An SMTP reply code as a number (`250`).
fn reply_code(code: lettre::transport::smtp::response::Code) -> u16 {
    code.to_string().parse().unwrap_or(0)
}

impl Consumer for Sender {
    const KIND: SubscriberKind = SubscriberKind::ConfirmationEmail;
    const DELIVERIES: &'static str = metrics::CONFIRMATION_EMAIL_DELIVERIES;
    const FAILURES: &'static str = metrics::CONFIRMATION_EMAIL_FAILURES;

    fn limits(&self) -> Limits {
        Limits {
            batch: self.config.batch,
            lease: Duration::from_millis(self.config.lease_ms),
            concurrency: self.config.concurrency,
            max_batches_per_run: self.config.max_batches_per_run,
        }
    }

    #[tracing::instrument(skip_all, fields(message = %claimed.message_id, attempt = claimed.attempt))]
    async fn attempt(&self, claimed: &Claimed) -> (Attempt, Outcome) {
        let started = Instant::now();
        let sent = self.send(claimed).await;
        // The attempt log keeps a reply code only where it may (100-599).
        let response_status = sent.status.filter(|code| (100..600).contains(code));
        (Attempt { duration: started.elapsed(), response_status, error: sent.error }, sent.outcome)
    }

    fn retry_delay(&self, attempt: i32, _retry_after: Option<Duration>) -> Option<Duration> {
        consumer::scheduled_retry(&RETRY_SCHEDULE, self.config.retry_scale, attempt, None, Duration::ZERO)
    }
}

/// An SMTP error and its causes, shortened for the attempt log.
fn error_text(error: &lettre::transport::smtp::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    service_kit::invalid::shortened(&text, 300)
}
