//! The HTTP calls a fan and an organizer make, each timed and counted by endpoint.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::error::Error;
use crate::scenario::Scenario;
use crate::targets::Replicas;

/// One answer: its status, and the body (`Null` when it was not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error code, or `ok` for a success.
    pub fn code(&self) -> &str {
        if self.ok() {
            return "ok";
        }
        self.body["error"]["code"].as_str().unwrap_or("no_error_code")
    }

    pub fn text(&self, field: &str) -> Option<&str> {
        self.body[field].as_str()
    }
}

/// The event as the gateway created it.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub id: Uuid,
    pub reserved: Option<Uuid>,
    pub general_admission: Option<Uuid>,
}

/// The waiting room's own counts at one moment of the rehearsal.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionSample {
    pub at: Duration,
    pub admitted_total: u64,
    pub queue_length: u64,
}

/// Latency and outcomes per endpoint, shared by every fan.
#[derive(Default)]
pub struct Traffic {
    latency: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    /// Time requests spent waiting for one of the simulator's connections.
    slot_wait: Mutex<Option<Histogram<u64>>>,
    outcomes: Mutex<BTreeMap<(&'static str, String), u64>>,
    requests: AtomicU64,
    server_errors: AtomicU64,
    unanswered: AtomicU64,
    refused: AtomicU64,
    shed: AtomicU64,
    /// When the rehearsal began, for [`Traffic::answers_over_time`].
    origin: OnceLock<Instant>,
    /// Every fan request: when it was answered (ms since `origin`), the endpoint and the
    /// status (0 for no answer).
    timeline: Mutex<Vec<(u32, &'static str, u16)>>,
}

/// The timeline's status for a connection refused (then sent to the next replica).
pub const REFUSED: u16 = 1;

/// One request in the timeline.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    pub at_ms: u32,
    pub endpoint: &'static str,
    /// 0 when no answer came (connection reset, timeout); [`REFUSED`] when the
    /// replica refused the connection and the request went to the next one.
    pub status: u16,
}

impl Answered {
    /// Which service answered: `waitroom`, `gateway` or `payments` (the provider's
    /// payment page).
    pub fn service(&self) -> &'static str {
        match self.endpoint {
            "join" | "poll" | "stream" | "leave" | "open_waitroom" => "waitroom",
            "pay" => "payments",
            _ => "gateway",
        }
    }

    /// A 5xx or no answer at all: what a fault looks like to a fan.
    pub fn failed(&self) -> bool {
        self.status == 0 || self.status >= 500
    }
}

impl Traffic {
    /// Starts the clock of the timeline; requests before it count at 0.
    pub fn start_clock(&self, at: Instant) {
        let _ = self.origin.set(at);
    }

    fn timeline_push(&self, endpoint: &'static str, status: u16) {
        let at = self.origin.get().map_or(Duration::ZERO, Instant::elapsed);
        let at_ms = at.as_millis().min(u128::from(u32::MAX)) as u32;
        self.timeline.lock().unwrap_or_else(|e| e.into_inner()).push((at_ms, endpoint, status));
    }

    /// Every request, in no particular order.
    pub fn timeline(&self) -> Vec<Answered> {
        let timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
        timeline.iter().map(|&(at_ms, endpoint, status)| Answered { at_ms, endpoint, status }).collect()
    }

    fn record(&self, endpoint: &'static str, took: Duration, answer: Option<&Answer>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.timeline_push(endpoint, answer.map_or(0, |a| a.status));
        let code = answer.map_or("transport_error".to_owned(), |a| a.code().to_owned());
        match answer.map(|a| a.status) {
            // Overload answered as designed: "try again shortly".
            Some(503) => _ = self.shed.fetch_add(1, Ordering::Relaxed),
            Some(status) if status < 500 => {}
            Some(_) => _ = self.server_errors.fetch_add(1, Ordering::Relaxed),
            None => _ = self.unanswered.fetch_add(1, Ordering::Relaxed),
        }
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        latency.entry(endpoint).or_insert_with(new_histogram).saturating_record(micros(took));
        *self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).entry((endpoint, code)).or_default() += 1;
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Answers with a 5xx status other than 503.
    pub fn server_errors(&self) -> u64 {
        self.server_errors.load(Ordering::Relaxed)
    }

    /// Requests that got no answer (reset, timeout), refused connections not counted.
    pub fn unanswered(&self) -> u64 {
        self.unanswered.load(Ordering::Relaxed)
    }

    /// Connections a replica refused (down): the request went to the next replica.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// `503 unavailable`: the service shed load (no database connection in time).
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }

    fn record_slot_wait(&self, waited: Duration) {
        let mut slot_wait = self.slot_wait.lock().unwrap_or_else(|e| e.into_inner());
        slot_wait.get_or_insert_with(new_histogram).saturating_record(micros(waited));
    }

    pub fn latency(&self) -> BTreeMap<&'static str, Histogram<u64>> {
        self.latency.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How long requests queued in the simulator before being sent.
    pub fn slot_wait(&self) -> Histogram<u64> {
        self.slot_wait.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_else(new_histogram)
    }

    pub fn outcomes(&self) -> BTreeMap<(&'static str, String), u64> {
        self.outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Microsecond resolution up to ten minutes.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn micros(took: Duration) -> u64 {
    took.as_micros().min(u128::from(u64::MAX)) as u64
}

/// Which replica a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Always the first: the organizer's calls.
    First,
    /// The next in turn, skipping those that refuse connections: the fans' calls.
    Next,
}

/// How a fan shows a hold is theirs: their access token, or a waitlist offer's
/// capability link (`?link=`), which needs no token.
#[derive(Debug, Clone, Copy)]
pub enum Holder<'a> {
    Token(&'a str),
    OfferLink(&'a str),
}

impl<'a> Holder<'a> {
    /// `path` as this holder asks for it, and the bearer token to send.
    fn on(self, path: String) -> (String, Option<&'a str>) {
        match self {
            Self::Token(token) => (path, Some(token)),
            Self::OfferLink(link) => (format!("{path}?link={link}"), None),
        }
    }
}

/// A fan's standing stream, as its Server-Sent Events arrive.
pub struct StandingStream {
    events: Pin<Box<dyn Stream<Item = Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>> + Send>>,
}

impl StandingStream {
    /// The next `status` event's view of the fan, as an answer; `None` once the stream
    /// ends, breaks, or sends an `error` event (the room refused to go on).
    pub async fn next(&mut self) -> Option<Answer> {
        while let Some(event) = self.events.next().await {
            let event = event.ok()?;
            match event.event.as_str() {
                "status" => {
                    let body = serde_json::from_str(&event.data).unwrap_or(Value::Null);
                    return Some(Answer { status: 200, body });
                }
                "error" => return None,
                _ => {}
            }
        }
        None
    }
}

/// The organizer's keys for each service.
pub struct AdminKeys {
    pub waitroom: String,
    pub gateway: String,
}

pub struct Api {
    http: reqwest::Client,
    /// For standing streams: no overall timeout (a stream lasts while its fan waits,
    /// bounded by the rehearsal's deadline), no pooling.
    streams: reqwest::Client,
    /// Bounds requests in flight, hence sockets: fans waiting in line cost a task, not
    /// a connection.
    in_flight: tokio::sync::Semaphore,
    waitrooms: Replicas,
    gateways: Replicas,
    admin_keys: AdminKeys,
    /// The payments sandbox, when known: where to pay if a gateway names no payment
    /// page (as with Stripe, whose form the fan app embeds).
    sandbox: Option<Sandbox>,
    pub traffic: Traffic,
}

impl Api {
    pub fn new(
        waitrooms: Replicas,
        gateways: Replicas,
        admin_keys: AdminKeys,
        connections: usize,
    ) -> Result<Self, Error> {
        // Idle connections are dropped well before the services close them (their
        // `http.header_read_timeout_ms`, 5 s by default): a request sent on a connection
        // the server is closing at that moment gets no answer.
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .pool_idle_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()?;
        let streams =
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).pool_max_idle_per_host(0).build()?;
        let in_flight = tokio::sync::Semaphore::new(connections);
        Ok(Self {
            http,
            streams,
            in_flight,
            waitrooms,
            gateways,
            admin_keys,
            sandbox: None,
            traffic: Traffic::default(),
        })
    }

    /// Knows the payments sandbox: its faults can be set, and its page found.
    pub fn with_sandbox(self, sandbox: Option<Sandbox>) -> Self {
        Self { sandbox, ..self }
    }

    /// The sandbox's page for an intent, for a checkout that named no page.
    pub fn sandbox_page(&self, intent: &str) -> Option<String> {
        self.sandbox.as_ref().map(|s| format!("{}/pay/{intent}", s.url.trim_end_matches('/')))
    }

    pub fn replicas(&self) -> (usize, usize) {
        (self.waitrooms.count(), self.gateways.count())
    }

    /// Sends to the next replica of `service`. A replica that refuses the connection
    /// (down, restarting) is skipped for the next one, as a load balancer would: the
    /// request never reached it, so sending it elsewhere is safe. The refusal is still
    /// counted as a request that got no answer.
    async fn call(
        &self,
        endpoint: &'static str,
        method: Method,
        service: (&Replicas, Pick),
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer, Error> {
        // Waiting for a free connection is the simulator's queue, not the service's
        // time: measured apart, so the report can say when the crowd outran the machine.
        let queued = Instant::now();
        let _permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
        self.traffic.record_slot_wait(queued.elapsed());
        let (replicas, pick) = service;
        let mut tries = if pick == Pick::First { 1 } else { replicas.count() };
        loop {
            let base = if pick == Pick::First { replicas.first() } else { replicas.next() };
            let mut request = self.http.request(method.clone(), format!("{base}{path}"));
            if let Some(token) = bearer {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request.json(body);
            }
            let started = Instant::now();
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let body = response.json().await.unwrap_or(Value::Null);
                    let answer = Answer { status, body };
                    self.traffic.record(endpoint, started.elapsed(), Some(&answer));
                    return Ok(answer);
                }
                Err(e) => {
                    tries -= 1;
                    if !e.is_connect() || tries == 0 {
                        self.traffic.record(endpoint, started.elapsed(), None);
                        return Err(e.into());
                    }
                    self.traffic.refused.fetch_add(1, Ordering::Relaxed);
                    self.traffic.timeline_push(endpoint, REFUSED);
                }
            }
        }
    }

    /// Creates the event on the gateway: one reserved section and/or one GA floor.
    pub async fn create_event(&self, scenario: &Scenario) -> Result<Event, Error> {
        let price = json!({ "amount_minor": scenario.price_minor, "currency": "EUR" });
        let mut sections = Vec::new();
        if scenario.reserved_capacity() > 0 {
            let rows: Vec<Value> = (0..scenario.rows)
                .map(|r| json!({ "label": format!("R{r}"), "seats": scenario.seats_per_row }))
                .collect();
            sections.push(json!({ "name": "Stalls", "kind": "reserved", "price": price, "rows": rows }));
        }
        if scenario.general_admission > 0 {
            sections.push(json!({ "name": "Floor", "kind": "general_admission", "price": price,
                                  "capacity": scenario.general_admission }));
        }
        let body = json!({ "name": "Rehearsal", "max_per_order": scenario.quantity.max(1),
                           "hold_ttl_seconds": scenario.hold_ttl_secs, "sections": sections,
                           // Fans who cancel get everything back until the start.
                           "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }],
                           "waitlist_enabled": scenario.waitlist.enabled,
                           "waitlist_offer_ttl_secs": scenario.waitlist.offer_ttl_secs });
        let (gateway, key) = ((&self.gateways, Pick::First), Some(self.admin_keys.gateway.as_str()));
        let answer = self.call("create_event", Method::POST, gateway, "/v1/events", key, Some(body)).await?;
        if answer.status != 201 {
            return Err(Error::Setup(format!("creating the event: {} {}", answer.status, answer.body)));
        }
        let id = uuid_of(&answer.body["id"])?;
        let section = |kind: &str| {
            answer.body["sections"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["kind"] == kind)
                .map(|s| uuid_of(&s["id"]))
        };
        Ok(Event {
            id,
            reserved: section("reserved").transpose()?,
            general_admission: section("general_admission").transpose()?,
        })
    }

    /// Opens the event's waiting room (at `opens_at`, or at once).
    pub async fn open_waitroom(
        &self,
        event: Uuid,
        scenario: &Scenario,
        opens_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), Error> {
        let body = json!({ "admit_rate": scenario.admit_rate, "max_active": scenario.max_active,
                           "token_lifetime_secs": scenario.token_lifetime_secs, "opens_at": opens_at });
        let path = format!("/v1/admin/events/{event}/waitroom");
        let (waitroom, key) = ((&self.waitrooms, Pick::First), Some(self.admin_keys.waitroom.as_str()));
        let answer = self.call("open_waitroom", Method::PUT, waitroom, &path, key, Some(body)).await?;
        if !answer.ok() {
            return Err(Error::Setup(format!("opening the waiting room: {} {}", answer.status, answer.body)));
        }
        Ok(())
    }

    /// The organizer's live stats; not counted as fan traffic.
    pub async fn admission_sample(&self, event: Uuid, at: Duration) -> Result<AdmissionSample, Error> {
        let url = format!("{}/v1/admin/events/{event}/waitroom/stats", self.waitrooms.first());
        let stats: Value =
            self.http.get(url).bearer_auth(&self.admin_keys.waitroom).send().await?.error_for_status()?.json().await?;
        let count = |field: &str| stats[field].as_u64().unwrap_or(0);
        Ok(AdmissionSample { at, admitted_total: count("admitted_total"), queue_length: count("queue_length") })
    }

    pub async fn join(&self, event: Uuid) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/queue");
        self.call("join", Method::POST, (&self.waitrooms, Pick::Next), &path, None, None).await
    }

    pub async fn poll(&self, event: Uuid, ticket: &str) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/queue/{ticket}");
        self.call("poll", Method::GET, (&self.waitrooms, Pick::Next), &path, None, None).await
    }

    /// Opens the fan's standing stream on the next waiting room, counted as `stream`
    /// (its latency: until the answer's headers). It takes no connection slot: it holds
    /// its socket while the fan waits, as a browser's EventSource does. `Err` carries
    /// the answer of a room that refused it.
    pub async fn standing_stream(&self, event: Uuid, ticket: &str) -> Result<Result<StandingStream, Answer>, Error> {
        let url = format!("{}/v1/events/{event}/queue/{ticket}/stream", self.waitrooms.next());
        let started = Instant::now();
        let response = match self.streams.get(url).send().await {
            Ok(response) => response,
            Err(e) => {
                self.traffic.record("stream", started.elapsed(), None);
                return Err(e.into());
            }
        };
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let refused = Answer { status, body: response.json().await.unwrap_or(Value::Null) };
            self.traffic.record("stream", started.elapsed(), Some(&refused));
            return Ok(Err(refused));
        }
        self.traffic.record("stream", started.elapsed(), Some(&Answer { status, body: Value::Null }));
        Ok(Ok(StandingStream { events: Box::pin(response.bytes_stream().eventsource()) }))
    }

    pub async fn leave(&self, event: Uuid, ticket: &str) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/queue/{ticket}");
        self.call("leave", Method::DELETE, (&self.waitrooms, Pick::Next), &path, None, None).await
    }

    pub async fn seat_map(&self, event: Uuid) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/seats");
        self.call("seat_map", Method::GET, (&self.gateways, Pick::Next), &path, None, None).await
    }

    pub async fn hold(&self, event: Uuid, token: &str, order: Value) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/holds");
        self.call("hold", Method::POST, (&self.gateways, Pick::Next), &path, Some(token), Some(order)).await
    }

    pub async fn confirm(&self, event: Uuid, holder: Holder<'_>, hold: &str) -> Result<Answer, Error> {
        let (path, token) = holder.on(format!("/v1/events/{event}/holds/{hold}/confirm"));
        self.call("confirm", Method::POST, (&self.gateways, Pick::Next), &path, token, None).await
    }

    /// Gives the hold's places back (declines an offer).
    pub async fn release(&self, event: Uuid, holder: Holder<'_>, hold: &str) -> Result<Answer, Error> {
        let (path, token) = holder.on(format!("/v1/events/{event}/holds/{hold}"));
        self.call("release", Method::DELETE, (&self.gateways, Pick::Next), &path, token, None).await
    }

    pub async fn join_waitlist(&self, event: Uuid, token: &str, request: Value) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/waitlist");
        self.call("join_waitlist", Method::POST, (&self.gateways, Pick::Next), &path, Some(token), Some(request)).await
    }

    pub async fn waitlist_entry(&self, event: Uuid, token: &str) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/waitlist/me");
        self.call("waitlist_entry", Method::GET, (&self.gateways, Pick::Next), &path, Some(token), None).await
    }

    pub async fn book(&self, event: Uuid, token: &str, order: Value) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/bookings");
        self.call("book", Method::POST, (&self.gateways, Pick::Next), &path, Some(token), Some(order)).await
    }

    pub async fn cancel(&self, event: Uuid, token: &str, booking: &str) -> Result<Answer, Error> {
        let path = format!("/v1/events/{event}/bookings/{booking}/cancel");
        self.call("cancel", Method::POST, (&self.gateways, Pick::Next), &path, Some(token), None).await
    }

    pub async fn checkout(&self, event: Uuid, holder: Holder<'_>, hold: &str) -> Result<Answer, Error> {
        let (path, token) = holder.on(format!("/v1/events/{event}/holds/{hold}/checkout"));
        self.call("checkout", Method::POST, (&self.gateways, Pick::Next), &path, token, None).await
    }

    /// The hold's payment; the gateway first asks the provider about a pending attempt.
    pub async fn payment(&self, event: Uuid, holder: Holder<'_>, hold: &str) -> Result<Answer, Error> {
        let (path, token) = holder.on(format!("/v1/events/{event}/holds/{hold}/payment"));
        self.call("payment", Method::GET, (&self.gateways, Pick::Next), &path, token, None).await
    }

    /// Pays on the provider's hosted page as the fan's browser would (the form post,
    /// asking for JSON): `page` is the checkout's `payment_page_url`. The sandbox
    /// answers the intent (200) or Stripe's `card_error` (402).
    pub async fn pay(&self, page: &str, client_secret: &str, card: &str) -> Result<Answer, Error> {
        let mut url = reqwest::Url::parse(page).map_err(|e| Error::Setup(format!("payment page {page}: {e}")))?;
        // The simulator sends nothing off this machine, whatever a gateway answers.
        crate::targets::require_loopback(&url)?;
        url.set_query(None);
        let queued = Instant::now();
        let _permit = self.in_flight.acquire().await.expect("the semaphore is never closed");
        self.traffic.record_slot_wait(queued.elapsed());
        let started = Instant::now();
        let sent = self
            .http
            .post(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[("client_secret", client_secret), ("card_number", card)])
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                let answer = Answer { status, body };
                self.traffic.record("pay", started.elapsed(), Some(&answer));
                Ok(answer)
            }
            Err(e) => {
                self.traffic.record("pay", started.elapsed(), None);
                Err(e.into())
            }
        }
    }

    /// Replaces the sandbox's faults (its control route, with its secret key): the
    /// scenario's webhook faults for this rehearsal.
    pub async fn set_sandbox_faults(&self, faults: Value) -> Result<(), Error> {
        let Some(sandbox) = &self.sandbox else {
            return Err(Error::Setup("webhook faults need the payments sandbox's URL (--payments-sandbox)".into()));
        };
        let url = format!("{}/_sandbox/faults", sandbox.url.trim_end_matches('/'));
        crate::targets::require_loopback(
            &reqwest::Url::parse(&url).map_err(|e| Error::Setup(format!("payments sandbox {url}: {e}")))?,
        )?;
        let answer = self.http.post(url).bearer_auth(&sandbox.secret_key).json(&faults).send().await?;
        let status = answer.status();
        if !status.is_success() {
            let body = answer.text().await.unwrap_or_default();
            return Err(Error::Setup(format!("setting the payments sandbox's faults: {status} {body}")));
        }
        Ok(())
    }
}

/// The payments sandbox the gateways pay through: its base URL and secret key (its
/// control route needs the key, as its API does).
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub url: String,
    pub secret_key: String,
}

fn uuid_of(value: &Value) -> Result<Uuid, Error> {
    value.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| Error::Setup(format!("expected an id, got {value}")))
}
