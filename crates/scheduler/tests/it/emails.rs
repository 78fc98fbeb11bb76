//! Confirmation emails against a real gateway (bookings made over HTTP), a real
//! PostgreSQL and a real SMTP server on a free port (`test_support::smtp_sink`): the
//! received email is parsed as MIME (mail-parser), each QR image decoded from its PNG
//! (image, rqrr) and its secret verified with the gateway's published JWKS, as a
//! scanner would (DECISIONS.md D11).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sales::consumer::Drained;
use sales::domain::ticket_secret::{self, TicketFields};
use sales::tickets::{TicketKeyring, TicketKeys};
use scheduler::emails::Sender;
use scheduler::SchedulerConfig;
use serde_json::{json, Value};
use service_kit::postgres::Database;
use sqlx::PgPool;
use test_support::smtp_sink::{Received, SmtpSink};
use test_support::{TestDatabase, TestKeys};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ADMIN_KEY: &str = "test-admin-key-0123456789";
const FAN_EMAIL: &str = "fan@example.com";

/// A gateway on a free port over a fresh database, with confirmation emails turned on
/// (their subscriber written, as the scheduler does at start-up when `smtp.url` is set).
struct Sale {
    gateway: SocketAddr,
    pool: PgPool,
    db: Database,
    tokens: TestKeys,
    tickets: Arc<TicketKeys>,
    http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Sale {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A booking as the gateway answered it.
struct Booking {
    id: Uuid,
}

impl Sale {
    async fn start(emails_on: bool) -> Self {
        let test_db = TestDatabase::new(&schema::MIGRATOR, 6).await.unwrap();
        let db = test_db.service_database(4);
        if emails_on {
            sales::confirmations::set_enabled(&db, true).await.unwrap();
        }
        let tokens = TestKeys::new();
        let pair = access_token::KeyPair::generate("tickets-email-test").unwrap();
        let tickets = Arc::new(TicketKeys::new(pair, Vec::new()));
        let config: gateway::GatewayConfig = test_support::config(&[("admin_api_key", ADMIN_KEY)], |_| {});
        let app =
            gateway::Application::build(&config, db.clone(), tokens.verifier(), Some(tickets.clone())).await.unwrap();
        let gateway = app.local_addr();
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run(shutdown.clone()));
        Self { gateway, pool: test_db.pool, db, tokens, tickets, http: reqwest::Client::new(), shutdown }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }

    /// A free event, "Hall & <Friends>" (HTML must escape it), with four numbered seats
    /// and a two-tier refund policy.
    async fn event(&self) -> Uuid {
        let body = json!({
            "name": "Hall & <Friends>",
            "max_per_order": 4,
            "refund_policy": [{ "before_hours": 24, "refund_percent": 100 }, { "before_hours": 4, "refund_percent": 50 }],
            "sections": [{ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 4 }]
        });
        let reply = self.http.post(self.url("/v1/events")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
        assert_eq!(reply.status(), 201);
        reply.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap()
    }

    /// Books `seats` of `event` in one step as `fan`, giving `email` if any (carried to
    /// the `booking.confirmed` message as `data.email`).
    async fn book(&self, event: Uuid, fan: &str, seats: &[&str], email: Option<&str>) -> Booking {
        let token = self.tokens.token(fan, event);
        let mut body = json!({ "seats": seats });
        if let Some(email) = email {
            body["email"] = json!(email);
        }
        let reply = self
            .http
            .post(self.url(&format!("/v1/events/{event}/bookings")))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 201);
        let id = reply.json::<Value>().await.unwrap()["id"].as_str().unwrap().parse().unwrap();
        Booking { id }
    }

    /// A free event, "Hall & <Friends>", with two numbered seats and its waitlist on
    /// (offers last 10 minutes): its id and its section's.
    async fn waitlisted_event(&self) -> (Uuid, Uuid) {
        let body = json!({
            "name": "Hall & <Friends>", "max_per_order": 4, "waitlist_enabled": true, "waitlist_offer_ttl_secs": 600,
            "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }],
            "sections": [{ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "seats": 2 }]
        });
        let reply = self.http.post(self.url("/v1/events")).bearer_auth(ADMIN_KEY).json(&body).send().await.unwrap();
        assert_eq!(reply.status(), 201);
        let event: Value = reply.json().await.unwrap();
        let id = |v: &Value| v["id"].as_str().unwrap().parse().unwrap();
        (id(&event), id(&event["sections"][0]))
    }

    /// `method path` as `fan` (with their access token): status and body.
    async fn as_fan(
        &self,
        method: reqwest::Method,
        event: Uuid,
        fan: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, self.url(&format!("/v1/events/{event}{path}")))
            .bearer_auth(self.tokens.token(fan, event));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = request.send().await.unwrap();
        (reply.status().as_u16(), reply.json().await.unwrap_or(Value::Null))
    }

    /// A sender through `smtp` (an `smtp://` URL), retrying after 4 % of the schedule
    /// (the first retry 200 ms later: not within the same run), linking to this
    /// gateway's tickets route.
    fn sender(&self, smtp: &str) -> Sender {
        let config = self.scheduler_config(smtp, |_| {});
        let keys = TicketKeyring::new(Some(self.tickets.clone()));
        Sender::new(smtp, &config.smtp, config.confirmation_emails, keys, self.db.clone()).unwrap()
    }

    /// The scheduler's settings for sending through `smtp` as [`Sale::sender`] does,
    /// changed by `adjust`.
    fn scheduler_config(&self, smtp: &str, adjust: impl FnOnce(&mut SchedulerConfig)) -> SchedulerConfig {
        test_support::config(&[("smtp.url", smtp)], |c: &mut SchedulerConfig| {
            c.smtp.connect_timeout_ms = 2_000;
            c.smtp.send_timeout_ms = 5_000;
            c.confirmation_emails.retry_scale = 0.04;
            c.confirmation_emails.booking_page_url =
                format!("http://{}/v1/events/{{event_id}}/bookings/{{booking_id}}/tickets?link={{link}}", self.gateway);
            c.confirmation_emails.offer_page_url =
                format!("http://{}/v1/events/{{event_id}}/holds/{{hold_id}}?link={{link}}", self.gateway);
            adjust(c);
        })
    }

    /// The email delivery of `booking`: (status, attempts).
    async fn delivery(&self, booking: &Booking) -> (String, i32) {
        sqlx::query_as(
            "SELECT d.status::text, d.attempts
             FROM outbox_deliveries d JOIN outbox_messages m ON m.id = d.message_id
             WHERE d.subscriber_id = $1 AND m.payload->'data'->>'booking_id' = $2::text",
        )
        .bind(sales::confirmations::SUBSCRIBER_ID)
        .bind(booking.id)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// The attempt log of `booking`'s email: (reply code, error) per attempt.
    async fn attempts(&self, booking: &Booking) -> Vec<(Option<i16>, Option<String>)> {
        sqlx::query_as(
            "SELECT a.response_status, a.error
             FROM outbox_delivery_attempts a JOIN outbox_messages m ON m.id = a.message_id
             WHERE a.subscriber_id = $1 AND m.payload->'data'->>'booking_id' = $2::text
             ORDER BY a.id",
        )
        .bind(sales::confirmations::SUBSCRIBER_ID)
        .bind(booking.id)
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    async fn outbox_message_id(&self, booking: &Booking) -> Uuid {
        sqlx::query_scalar(
            "SELECT message_id FROM outbox_messages
             WHERE topic = 'booking.confirmed' AND payload->'data'->>'booking_id' = $1::text",
        )
        .bind(booking.id)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// Verifies `secret` with the ticket keys of the gateway's JWKS only.
fn verify_with_jwks(jwks: &Value, secret: &str) -> Result<TicketFields, String> {
    ticket_secret::verify(secret, |kid, message, signature| {
        let jwk = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid && k["boxoffice_purpose"] == "ticket")?;
        let x: [u8; 32] = URL_SAFE_NO_PAD.decode(jwk["x"].as_str()?).ok()?.try_into().ok()?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&x).ok()?;
        Some(key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature)).is_ok())
    })
    .map_err(|e| e.to_string())
}

/// The text a PNG's one QR code carries, read by rqrr.
fn decode_qr(png: &[u8]) -> String {
    let image = image::load_from_memory_with_format(png, image::ImageFormat::Png).unwrap().to_luma8();
    let mut prepared =
        rqrr::PreparedImage::prepare_from_greyscale(image.width() as usize, image.height() as usize, |x, y| {
            image.get_pixel(x as u32, y as u32)[0]
        });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code per image");
    grids[0].decode().unwrap().1
}

/// What an email shows: its text and HTML bodies, and its PNG parts by Content-ID.
struct Shown {
    subject: String,
    to: String,
    message_id: String,
    text: String,
    html: String,
    images: Vec<(String, Vec<u8>)>,
}

fn show(received: &Received) -> Shown {
    use mail_parser::MimeHeaders;
    let message = mail_parser::MessageParser::default().parse(&received.data).expect("a MIME message");
    let images = message
        .parts
        .iter()
        .filter(|p| p.content_type().is_some_and(|t| t.ctype() == "image" && t.subtype() == Some("png")))
        .map(|p| (p.content_id().unwrap_or_default().to_owned(), p.contents().to_vec()))
        .collect();
    Shown {
        subject: message.subject().unwrap_or_default().to_owned(),
        to: message.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        text: message.body_text(0).unwrap_or_default().into_owned(),
        html: message.body_html(0).unwrap_or_default().into_owned(),
        images,
    }
}

fn drained(attempts: u64, delivered: u64, batches: u32) -> Drained {
    Drained { attempts, delivered, batches }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_confirmed_by_email_with_a_qr_code_per_ticket_that_verifies_from_the_jwks() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    let event = sale.event().await;
    let booking = sale.book(event, "fan-1", &["2", "3"], Some(FAN_EMAIL)).await;

    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(1, 1, 1));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].from.as_str(), received[0].to.as_slice()),
        ("tickets@boxoffice.invalid", &[FAN_EMAIL.to_owned()][..])
    );
    let email = show(&received[0]);
    assert_eq!(email.subject, "Your booking for Hall & <Friends> is confirmed");
    assert_eq!(email.to, FAN_EMAIL);
    assert_eq!(email.message_id, format!("{}@boxoffice", sale.outbox_message_id(&booking).await));

    // The fan's tickets as the gateway shows them through the link in the email.
    let link_line = email.text.lines().find(|l| l.contains("?link=")).expect("the booking's link in the text");
    let shown: Value = sale.http.get(link_line.trim()).send().await.unwrap().json().await.unwrap();
    let tickets = shown["tickets"].as_array().expect("the link opens the booking's tickets");
    assert_eq!(tickets.len(), 2);

    // Each ticket's QR image, decoded, is its secret, and verifies from the JWKS alone.
    let jwks: Value = sale.http.get(sale.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(email.images.len(), 2);
    for (ticket, label) in tickets.iter().zip(["2", "3"]) {
        let id = ticket["id"].as_str().unwrap();
        let (_, png) =
            email.images.iter().find(|(cid, _)| cid == &format!("ticket-{id}@boxoffice")).expect("its image");
        let secret = decode_qr(png);
        assert_eq!(secret, ticket["secret"].as_str().unwrap(), "the QR code is the secret the gateway shows");
        let fields = verify_with_jwks(&jwks, &secret).unwrap();
        assert_eq!((fields.ticket_id.to_string().as_str(), fields.event_id, fields.issue), (id, event, 1));
        assert_eq!(fields.place_text, label);
        assert!(email.html.contains(&format!("src=\"cid:ticket-{id}@boxoffice\"")), "the HTML shows it inline");
        assert!(email.text.contains(&format!("- {label} (Stalls), ticket {id}")), "{}", email.text);
    }

    // The rest of what it says, in both bodies; the HTML escapes the event's name.
    let policy = "Cancel at least 24 hours before the start for a 100% refund; cancel at least 4 hours before the \
                  start for a 50% refund; later, you may still cancel, with nothing refunded.";
    for body in [&email.text, &email.html] {
        assert!(body.contains(policy), "{body}");
        assert!(body.contains("0.00 EUR"), "{body}");
        assert!(body.contains(&booking.id.to_string()), "{body}");
    }
    assert!(email.text.contains("Your booking for Hall & <Friends> is confirmed."), "{}", email.text);
    assert!(email.html.contains("Hall &amp; &lt;Friends&gt;") && !email.html.contains("<Friends>"), "{}", email.html);

    assert_eq!(sale.delivery(&booking).await, ("delivered".to_owned(), 1));
    assert_eq!(sale.attempts(&booking).await, [(Some(250), None)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_smtp_server_is_down_the_email_is_retried_and_sent_once_it_is_back() {
    let sale = Sale::start(true).await;
    let down = SmtpSink::free_address().await;
    let sender = sale.sender(&format!("smtp://{down}"));
    let event = sale.event().await;
    let booking = sale.book(event, "fan-1", &["1"], Some(FAN_EMAIL)).await;

    assert_eq!(sender.run().await.unwrap(), drained(1, 0, 1));
    assert_eq!(sale.delivery(&booking).await, ("pending".to_owned(), 1));
    let attempts = sale.attempts(&booking).await;
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].1.as_deref().is_some_and(|e| e.contains("Connection refused")), "{attempts:?}");

    // Not due again yet: a run now sends nothing.
    assert_eq!(sender.run().await.unwrap(), drained(0, 0, 0));
    // Back on the same port: the retry (due 200 ms after the failure) sends it, once.
    let sink = SmtpSink::start_on(down).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sender.run().await.unwrap(), drained(1, 1, 1));
    assert_eq!(sink.received().len(), 1);
    assert_eq!(show(&sink.received()[0]).to, FAN_EMAIL);
    assert_eq!(sale.delivery(&booking).await, ("delivered".to_owned(), 2));
    assert_eq!(sale.attempts(&booking).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_without_an_email_address_sends_nothing_and_its_delivery_is_done() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    let event = sale.event().await;
    let booking = sale.book(event, "fan-1", &["1"], None).await;

    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(1, 1, 1));
    assert_eq!((sink.received().len(), sink.connections()), (0, 0), "not even a connection");
    assert_eq!(sale.delivery(&booking).await, ("delivered".to_owned(), 1));
    let why = "nothing to send: the fan gave no email address".to_owned();
    assert_eq!(sale.attempts(&booking).await, [(None, Some(why))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_booking_gets_exactly_one_email_however_many_senders_run_however_often() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    let event = sale.event().await;
    let mut bookings = Vec::new();
    for (fan, seat) in [("fan-1", "1"), ("fan-2", "2"), ("fan-3", "3"), ("fan-4", "4")] {
        bookings.push(sale.book(event, fan, &[seat], Some(&format!("{fan}@example.com"))).await);
    }
    // Two senders at once (two scheduler replicas), each claiming one at a time.
    let (one, other) = (sale.sender(&sink.url()), sale.sender(&sink.url()));
    let (a, b) = tokio::join!(one.run(), other.run());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.delivered + b.delivered, 4, "{a:?} {b:?}");
    assert_eq!(a.attempts + b.attempts, 4, "no delivery was attempted twice: {a:?} {b:?}");
    // Later runs find nothing to send.
    assert_eq!(one.run().await.unwrap(), drained(0, 0, 0));
    assert_eq!(other.run().await.unwrap(), drained(0, 0, 0));

    let mut to: Vec<String> = sink.received().iter().map(|r| r.to.join(",")).collect();
    to.sort();
    assert_eq!(to, ["fan-1@example.com", "fan-2@example.com", "fan-3@example.com", "fan-4@example.com"]);
    for booking in &bookings {
        assert_eq!(sale.delivery(booking).await, ("delivered".to_owned(), 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_the_server_refuses_for_good_is_given_up_without_retries() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    sink.refuse_with(Some("550 5.1.1 no such user"));
    let event = sale.event().await;
    let booking = sale.book(event, "fan-1", &["1"], Some("nobody@example.com")).await;

    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(1, 0, 1));
    assert_eq!(sale.delivery(&booking).await, ("abandoned".to_owned(), 1));
    let attempts = sale.attempts(&booking).await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].0, Some(550));
    assert!(attempts[0].1.as_deref().is_some_and(|e| e.contains("no such user")), "{attempts:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(0, 0, 0), "no retry of a 550");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_emails_off_no_delivery_is_written_and_turning_them_off_stops_new_ones() {
    let sale = Sale::start(false).await;
    let event = sale.event().await;
    sale.book(event, "fan-1", &["1"], None).await;
    let deliveries = || sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox_deliveries").fetch_one(&sale.pool);
    assert_eq!(deliveries().await.unwrap(), 0);

    sales::confirmations::set_enabled(&sale.db, true).await.unwrap();
    sale.book(event, "fan-2", &["2"], None).await;
    assert_eq!(deliveries().await.unwrap(), 1);
    sales::confirmations::set_enabled(&sale.db, false).await.unwrap();
    sale.book(event, "fan-3", &["3"], None).await;
    assert_eq!(deliveries().await.unwrap(), 1, "an email subscriber turned off hears nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_scheduler_holds_emails_until_its_signing_key_is_mounted_then_signs_with_it() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    let dir = std::env::temp_dir().join(format!("bo-email-ticket-keys-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let late = access_token::KeyPair::generate("tickets-late").unwrap();
    std::fs::write(dir.join("tickets-late.public.pem"), late.public_pem()).unwrap();
    let public_only = TicketKeys::read(&dir, "tickets-late").unwrap();
    assert!(public_only.signer().is_none());
    let config = sale.scheduler_config(&sink.url(), |c| {
        c.key_reload_interval_secs = 1;
        c.confirmation_emails.every_secs = 1;
        c.confirmation_emails.retry_scale = 0.001;
    });
    let scheduler = scheduler::Scheduler::start(&config, sale.db.clone(), None, Some(Arc::new(public_only)))
        .await
        .unwrap()
        .reload_ticket_keys_from(dir.clone(), "tickets-late".to_owned());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(scheduler.run(shutdown.clone()));
    let event = sale.event().await;
    let booking = sale.book(event, "fan-1", &["1"], Some(FAN_EMAIL)).await;

    let attempts = eventually(|| sale.attempts(&booking), |a| !a.is_empty()).await;
    assert!(attempts[0].1.as_deref().is_some_and(|e| e.contains("signing key is not there yet")), "{attempts:?}");
    assert_eq!(sink.received().len(), 0);

    late.write_to_dir(&dir).unwrap();
    let delivery = eventually(|| sale.delivery(&booking), |d| d.0 == "delivered").await;
    assert!(delivery.1 >= 2, "sent on a later attempt: {delivery:?}");
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let shown = show(&received[0]);
    assert_eq!(shown.images.len(), 1);
    let secret = decode_qr(&shown.images[0].1);
    let fields = ticket_secret::verify(&secret, |kid, message, signature| {
        (kid == "tickets-late").then(|| late.public_key().verify_raw(message, signature))
    })
    .unwrap();
    assert_eq!(fields.kid, "tickets-late");
    shutdown.cancel();
    running.await.unwrap().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `read`'s value once `done` says so, read every 100 ms for at most 20 s.
async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    read: impl Fn() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let mut value = read().await;
    for _ in 0..200 {
        if done(&value) {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        value = read().await;
    }
    panic!("not reached within 20 s: {value:?}")
}

#[tokio::test]
async fn the_scheduler_refuses_to_send_emails_without_the_ticket_signing_key() {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
    let config: SchedulerConfig = test_support::config(&[("smtp.url", "smtp://127.0.0.1:2525")], |_| {});
    let refused = scheduler::Scheduler::start(&config, db.service_database(2), None, None).await.err().unwrap();
    assert!(refused.to_string().contains("need the ticket signing key"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_and_webhooks_drain_their_own_deliveries_and_a_failing_webhook_holds_back_no_email() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    // An organizer's endpoint where nothing listens: every webhook attempt fails.
    let nowhere = SmtpSink::free_address().await;
    let endpoint = json!({ "url": format!("http://{nowhere}/hook") });
    let reply = sale.http.post(sale.url("/v1/admin/webhooks")).bearer_auth(ADMIN_KEY).json(&endpoint).send().await;
    assert_eq!(reply.unwrap().status(), 201);
    let event = sale.event().await;
    let booking = sale.book(event, "fan-1", &["1"], Some(FAN_EMAIL)).await;
    let webhook_attempts = || {
        sqlx::query_scalar::<_, i32>(
            "SELECT d.attempts FROM outbox_deliveries d JOIN outbox_subscribers s ON s.id = d.subscriber_id
             WHERE s.kind = 'webhook'",
        )
        .fetch_one(&sale.pool)
    };

    // The webhook fails first: the email does not wait for it.
    let config: SchedulerConfig = test_support::config(&[], |_| {});
    let relay = scheduler::relay::Relay::new(config.outbox_relay, None).unwrap();
    assert_eq!(relay.run(&sale.db).await.unwrap(), drained(1, 0, 1));
    assert_eq!(sale.delivery(&booking).await, ("pending".to_owned(), 0), "the relay leaves the email alone");

    // The sender takes only the email's delivery, never the webhook's.
    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(1, 1, 1));
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sale.delivery(&booking).await, ("delivered".to_owned(), 1));
    assert_eq!(webhook_attempts().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_given_with_a_hold_gets_the_email_once_the_hold_is_confirmed() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    let event = sale.event().await;
    let token = sale.tokens.token("fan-1", event);
    let hold: Value = sale
        .http
        .post(sale.url(&format!("/v1/events/{event}/holds")))
        .bearer_auth(&token)
        .json(&json!({ "seats": ["4"], "email": FAN_EMAIL }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let confirm = format!("/v1/events/{event}/holds/{}/confirm", hold["id"].as_str().unwrap());
    let confirmed = sale.http.post(sale.url(&confirm)).bearer_auth(&token).send().await.unwrap();
    assert_eq!(confirmed.status(), 201);

    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(1, 1, 1));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let email = show(&received[0]);
    assert_eq!(email.to, FAN_EMAIL);
    assert!(email.text.contains("- 4 (Stalls), ticket "), "{}", email.text);
    assert_eq!(email.images.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waitlist_offer_is_emailed_with_a_link_that_takes_it_and_an_offer_ended_first_sends_nothing() {
    let sale = Sale::start(true).await;
    let sink = SmtpSink::start().await;
    let (event, section) = sale.waitlisted_event().await;
    let booking = sale.book(event, "buyer", &["1", "2"], None).await;
    for fan in ["w1", "w2"] {
        let body = json!({ "quantity": 1, "section_ids": [section], "email": format!("{fan}@example.com") });
        assert_eq!(sale.as_fan(reqwest::Method::POST, event, fan, "/waitlist", Some(body)).await.0, 201);
    }
    let cancelled =
        sale.as_fan(reqwest::Method::POST, event, "buyer", &format!("/bookings/{}/cancel", booking.id), None).await;
    assert_eq!(cancelled.0, 200, "{}", cancelled.1);
    // w2 declines before any email went out: theirs has nothing left to say.
    let (_, w2) = sale.as_fan(reqwest::Method::GET, event, "w2", "/waitlist/me", None).await;
    let declined = format!("/holds/{}", w2["offer"]["hold_id"].as_str().unwrap());
    assert_eq!(sale.as_fan(reqwest::Method::DELETE, event, "w2", &declined, None).await.0, 200);

    // The buyer's confirmation (no address) and the two offers: one event's stream, so
    // one message at a time, in order.
    assert_eq!(sale.sender(&sink.url()).run().await.unwrap(), drained(3, 3, 3));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["w1@example.com".to_owned()]);
    let email = show(&received[0]);
    assert_eq!(email.subject, "Places for Hall & <Friends> are kept for you");
    let (_, w1) = sale.as_fan(reqwest::Method::GET, event, "w1", "/waitlist/me", None).await;
    let seat: String = sqlx::query_scalar(
        "SELECT s.label FROM hold_seats h JOIN seats s ON s.id = h.seat_id WHERE h.hold_id = $1::text::uuid",
    )
    .bind(w1["offer"]["hold_id"].as_str().unwrap())
    .fetch_one(&sale.pool)
    .await
    .unwrap();
    assert!(email.text.contains(&format!("- {seat} (Stalls)")), "{}", email.text);
    assert!(email.html.contains("Hall &amp; &lt;Friends&gt;") && !email.html.contains("<Friends>"), "{}", email.html);
    for body in [&email.text, &email.html] {
        assert!(body.contains("0.00 EUR"), "{body}");
    }

    // The link in the email shows the offer and takes it, with no access token.
    let link =
        email.text.lines().find(|l| l.contains("?link=")).expect("the offer's link in the text").trim().to_owned();
    let shown: Value = sale.http.get(&link).send().await.unwrap().json().await.unwrap();
    assert_eq!((&shown["id"], &shown["status"]), (&w1["offer"]["hold_id"], &json!("active")));
    let (path, query) = link.split_once('?').unwrap();
    let taken = sale.http.post(format!("{path}/confirm?{query}")).send().await.unwrap();
    assert_eq!(taken.status(), 201);

    let outcomes: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT m.payload->'data'->>'email', a.error
         FROM outbox_delivery_attempts a JOIN outbox_messages m ON m.id = a.message_id
         WHERE a.subscriber_id = $1 AND m.topic = 'waitlist.offer_made' ORDER BY m.id",
    )
    .bind(sales::confirmations::SUBSCRIBER_ID)
    .fetch_all(&sale.pool)
    .await
    .unwrap();
    assert_eq!(
        outcomes,
        [
            ("w1@example.com".to_owned(), None),
            ("w2@example.com".to_owned(), Some("nothing to send: the offer was taken, declined or lapsed".to_owned())),
        ]
    );
}
