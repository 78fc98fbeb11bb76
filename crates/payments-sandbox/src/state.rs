//! Everything a sandbox holds, in memory behind one mutex: intents, refunds, events and
//! their delivery attempts, idempotency records, the faults and their seeded RNG.
//!
//! Every handler runs start to end under the lock with no `.await` inside, so two
//! requests with one idempotency key, or two payments of one intent, never interleave.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::distributions::Alphanumeric;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::{Faults, WebhookEndpoint};

/// The API version events are stamped with.
pub const API_VERSION: &str = "2024-06-20";

pub(crate) struct State {
    pub intents: HashMap<String, PaymentIntent>,
    pub refunds: HashMap<String, Refund>,
    pub events: Vec<EventRecord>,
    pub event_index: HashMap<String, usize>,
    pub idempotency: HashMap<String, IdempotentResult>,
    /// How many times objects of each kind (`payment_intent`, `refund`, `event`) were
    /// retrieved: what a client's polling costs the provider.
    pub retrievals: HashMap<String, u64>,
    pub faults: Faults,
    /// API failure decisions, in the order calls arrive: seeded.
    pub api_rng: StdRng,
    /// Webhook drop and duplicate decisions, drawn by the one dispatcher in the order
    /// events happened: seeded apart from the API's, so a run with the same events
    /// repeats whatever API calls interleave.
    pub webhook_rng: StdRng,
    pub webhook: Option<WebhookEndpoint>,
    /// Event ids to the delivery task; unbounded so no API answer waits on deliveries.
    pub deliveries: UnboundedSender<String>,
}

impl State {
    pub fn new(
        faults: Faults,
        seed: u64,
        webhook: Option<WebhookEndpoint>,
        deliveries: UnboundedSender<String>,
    ) -> Self {
        Self {
            intents: HashMap::new(),
            refunds: HashMap::new(),
            events: Vec::new(),
            event_index: HashMap::new(),
            idempotency: HashMap::new(),
            retrievals: HashMap::new(),
            faults,
            api_rng: StdRng::seed_from_u64(seed),
            webhook_rng: StdRng::seed_from_u64(seed ^ 0x5eed_0f3b_400c),
            webhook,
            deliveries,
        }
    }
}

/// True with probability `p` (0 never draws, so adding a fault later does not shift the
/// decisions of a run without it).
pub fn chance(rng: &mut StdRng, p: f64) -> bool {
    p > 0.0 && rng.gen::<f64>() < p
}

impl State {
    /// Records an event about `object` and queues it for delivery, unless the endpoint
    /// does not take its type. Events emitted before an endpoint is set wait for one.
    pub fn emit(&mut self, kind: &str, object: Value, request: RequestInfo) {
        let id = new_id("evt");
        let delivered = self.webhook.as_ref().is_none_or(|endpoint| endpoint.wants(kind));
        let event = Event {
            id: id.clone(),
            object: "event",
            api_version: API_VERSION,
            created: now_secs(),
            data: EventData { object },
            livemode: false,
            pending_webhooks: u32::from(self.webhook.is_some() && delivered),
            request,
            kind: kind.to_owned(),
        };
        // Serialized once: every attempt and every copy sends the same bytes.
        let body = serde_json::to_string(&event).unwrap_or_default();
        self.event_index.insert(id.clone(), self.events.len());
        self.events.push(EventRecord {
            id: id.clone(),
            kind: kind.to_owned(),
            created: event.created,
            body,
            dropped: false,
            copies: 0,
            delivered: false,
            attempts: Vec::new(),
        });
        // The receiver lives as long as the sandbox; if it is gone, the sandbox is
        // shutting down and nothing is delivered anyway.
        if delivered {
            let _ = self.deliveries.send(id);
        }
    }

    pub fn event(&self, id: &str) -> Option<&EventRecord> {
        self.event_index.get(id).and_then(|&i| self.events.get(i))
    }

    pub fn event_mut(&mut self, id: &str) -> Option<&mut EventRecord> {
        self.event_index.get(id).and_then(|&i| self.events.get_mut(i))
    }
}

/// What answered a POST with an `Idempotency-Key` the first time.
pub(crate) struct IdempotentResult {
    /// `POST /v1/payment_intents`: a key is bound to one endpoint and one set of
    /// parameters.
    pub endpoint: String,
    pub parameters: Vec<(String, String)>,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentIntent {
    pub id: String,
    pub object: &'static str,
    pub amount: i64,
    pub amount_received: i64,
    pub currency: String,
    pub status: IntentStatus,
    pub client_secret: String,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub last_payment_error: Option<PaymentError>,
    pub latest_charge: Option<String>,
    pub canceled_at: Option<i64>,
    pub cancellation_reason: Option<String>,
    pub capture_method: &'static str,
    pub confirmation_method: &'static str,
    pub payment_method_types: Vec<&'static str>,
    pub created: i64,
    pub livemode: bool,
    /// Not a Stripe field: kept out of the JSON, used to refuse over-refunds.
    #[serde(skip)]
    pub amount_refunded: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    RequiresPaymentMethod,
    Canceled,
    Succeeded,
}

/// Stripe's `last_payment_error` for a declined card.
#[derive(Debug, Clone, Serialize)]
pub struct PaymentError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'static str,
    pub decline_code: Option<&'static str>,
    pub message: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Refund {
    pub id: String,
    pub object: &'static str,
    pub amount: i64,
    pub currency: String,
    pub payment_intent: String,
    pub charge: Option<String>,
    pub status: &'static str,
    pub reason: Option<String>,
    /// Why it failed; null unless `status` is `failed`.
    pub failure_reason: Option<&'static str>,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
}

#[derive(Debug, Clone, Serialize)]
struct Event {
    id: String,
    object: &'static str,
    api_version: &'static str,
    created: i64,
    data: EventData,
    livemode: bool,
    pending_webhooks: u32,
    request: RequestInfo,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Clone, Serialize)]
struct EventData {
    object: Value,
}

/// The API request that caused an event (`null` id for the payment page).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestInfo {
    pub id: Option<String>,
    pub idempotency_key: Option<String>,
}

/// An event and what became of its delivery, as `GET /_sandbox/events` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub created: i64,
    /// The exact body every delivery sends.
    #[serde(skip)]
    pub body: String,
    /// The drop fault chose never to deliver it.
    pub dropped: bool,
    /// How many copies are delivered (1 without the duplicate fault; 0 until scheduled
    /// or when dropped).
    pub copies: u32,
    /// At least one copy was answered 2xx.
    pub delivered: bool,
    pub attempts: Vec<DeliveryAttempt>,
}

impl EventRecord {
    /// The event as `GET /v1/events/{id}` answers it.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// One delivery attempt of one copy of an event.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryAttempt {
    /// 0 for the original, 1.. for duplicates.
    pub copy: u32,
    /// 1-based, per copy.
    pub attempt: u32,
    /// Unix milliseconds when it was sent.
    pub at_ms: u64,
    /// The endpoint's status, if it answered.
    pub status: Option<u16>,
    /// Why it failed without an answer (connection, timeout, no endpoint).
    pub error: Option<String>,
}

impl DeliveryAttempt {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// `prefix_` and 24 random characters. From the thread RNG, not the seeded one: a
/// restarted sandbox must never hand out an id a database already holds.
pub fn new_id(prefix: &str) -> String {
    let tail: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
    format!("{prefix}_{tail}")
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

pub fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
