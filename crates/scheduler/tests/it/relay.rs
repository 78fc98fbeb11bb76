//! The outbox relay against a real PostgreSQL and a real HTTP receiver on a free port:
//! signatures, order per (endpoint, event), a failing head blocking only its stream,
//! 410, a relay dropped mid-batch, two relays at once, retries, Retry-After.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sales::consumer::Drained;
use sales::outbox::{HoldExpired, Message};
use sales::webhooks::{NewWebhook, WebhookSecret};
use scheduler::relay::Relay;
use scheduler::SchedulerConfig;
use service_kit::postgres::Database;
use sqlx::PgPool;
use test_support::TestDatabase;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What the receiver got: one request.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    pub webhook_id: String,
    pub event_id: Uuid,
    /// The message's place in its event (`data.quantity`, see [`enqueue`]).
    pub seq: i64,
}

/// How the receiver answers, changeable while it runs.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// Events whose messages get `500`.
    pub failing_events: HashSet<Uuid>,
    /// Paths answered with this status instead (e.g. 410, or 429 with `retry_after`).
    pub status_by_path: HashMap<String, u16>,
    pub retry_after: Option<&'static str>,
    /// How long each answer takes.
    pub delay: Duration,
}

#[derive(Default)]
struct Seen {
    receipts: Vec<Receipt>,
    in_flight: HashMap<String, u32>,
    /// Requests that arrived while another with the same `webhook-id` was in flight.
    overlaps: u32,
    /// (path, event, seq) answered 2xx.
    acknowledged: HashSet<(String, Uuid, i64)>,
    /// Requests that arrived before the previous message of their event (to the same
    /// path) was acknowledged: order broken.
    early: u32,
}

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Seen>>,
    rule: Arc<Mutex<Rule>>,
}

/// A webhook receiver on a free port, answering by its [`Rule`].
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    shared: Shared,
    shutdown: CancellationToken,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn receive(State(shared): State<Shared>, Path(path): Path<String>, headers: HeaderMap, body: String) -> Response {
    let document: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    let event_id = document["data"]["event_id"].as_str().and_then(|e| e.parse().ok()).expect("data.event_id");
    let seq = document["data"]["quantity"].as_i64().expect("data.quantity");
    let webhook_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    {
        let mut seen = shared.seen.lock().unwrap();
        let in_flight = seen.in_flight.entry(webhook_id.clone()).or_default();
        *in_flight += 1;
        if *in_flight > 1 {
            seen.overlaps += 1;
        }
        if seq > 0 && !seen.acknowledged.contains(&(path.clone(), event_id, seq - 1)) {
            seen.early += 1;
        }
        let receipt = Receipt {
            path: path.clone(),
            headers: headers.clone(),
            body,
            webhook_id: webhook_id.clone(),
            event_id,
            seq,
        };
        seen.receipts.push(receipt);
    }
    let rule = shared.rule.lock().unwrap().clone();
    tokio::time::sleep(rule.delay).await;
    let status = match rule.status_by_path.get(&path) {
        Some(status) => StatusCode::from_u16(*status).unwrap(),
        None if rule.failing_events.contains(&event_id) => StatusCode::INTERNAL_SERVER_ERROR,
        None => StatusCode::NO_CONTENT,
    };
    {
        let mut seen = shared.seen.lock().unwrap();
        *seen.in_flight.get_mut(&webhook_id).unwrap() -= 1;
        if status.is_success() {
            seen.acknowledged.insert((path, event_id, seq));
        }
    }
    match rule.retry_after {
        Some(wait) => (status, [("retry-after", wait)]).into_response(),
        None => status.into_response(),
    }
}

impl Receiver {
    pub async fn start() -> Self {
        let shared = Shared { seen: Arc::default(), rule: Arc::default() };
        let app = axum::Router::new().route("/{path}", axum::routing::post(receive)).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await.unwrap()
        });
        Self { addr, shared, shutdown }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    pub fn set(&self, change: impl FnOnce(&mut Rule)) {
        change(&mut self.shared.rule.lock().unwrap());
    }

    pub fn receipts(&self) -> Vec<Receipt> {
        self.shared.seen.lock().unwrap().receipts.clone()
    }

    fn overlaps(&self) -> u32 {
        self.shared.seen.lock().unwrap().overlaps
    }

    /// Requests sent before the previous message of their stream was acknowledged.
    fn early(&self) -> u32 {
        self.shared.seen.lock().unwrap().early
    }
}

/// Registers an endpoint at `url` hearing every event and topic; returns its id and
/// secret.
pub async fn endpoint(pool: &PgPool, url: &str, event: Option<Uuid>) -> (Uuid, WebhookSecret) {
    let new = NewWebhook::new(url, event, None).unwrap();
    let secret = WebhookSecret::generate();
    let mut conn = pool.acquire().await.unwrap();
    let webhook = sales::store::webhooks::insert(&mut conn, Uuid::now_v7(), &new, &secret).await.unwrap();
    (webhook.id, secret)
}

/// One message of `event`, numbered `seq` (its `quantity`), in a transaction of its
/// own as an order writes it.
pub async fn enqueue(pool: &PgPool, event: Uuid, seq: i32) {
    let message = Message::HoldExpired(HoldExpired {
        event_id: event,
        hold_id: Uuid::new_v4(),
        fan_id: format!("fan-{seq}"),
        quantity: seq,
    });
    let mut tx = pool.begin().await.unwrap();
    sales::store::outbox::enqueue(&mut tx, &[message]).await.unwrap();
    tx.commit().await.unwrap();
}

/// Relay settings for tests: the spec's schedule shrunk ten thousand times (the first
/// retry after 0.5 ms, the fifth after 1.8 s), short request timeouts.
pub fn relay_config(adjust: impl FnOnce(&mut SchedulerConfig)) -> SchedulerConfig {
    test_support::config(&[], |c: &mut SchedulerConfig| {
        c.outbox_relay.retry_scale = 0.0001;
        c.outbox_relay.request_timeout_ms = 2_000;
        c.outbox_relay.connect_timeout_ms = 1_000;
        c.outbox_relay.lease_ms = 7_000;
        adjust(c);
    })
}

pub fn relay(adjust: impl FnOnce(&mut SchedulerConfig)) -> Relay {
    Relay::new(relay_config(adjust).outbox_relay, None).unwrap()
}

/// Runs the relay until no delivery is pending, within 20 s.
pub async fn drain(relay: &Relay, db: &Database, pool: &PgPool) -> Drained {
    let mut total = Drained::default();
    for _ in 0..400 {
        let run = relay.run(db).await.unwrap();
        total.attempts += run.attempts;
        total.delivered += run.delivered;
        total.batches += run.batches;
        if pending(pool).await == 0 {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("deliveries still pending after 20 s: {}", pending(pool).await);
}

/// Pending deliveries to enabled endpoints (those of a disabled one wait, paused).
async fn pending(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox_deliveries d JOIN outbox_subscribers s ON s.id = d.subscriber_id
         WHERE d.status = 'pending' AND s.active",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Each event's messages in the order the receipts first show them (a redelivery does
/// not move a message).
fn first_seen_order(receipts: &[Receipt]) -> BTreeMap<Uuid, Vec<i64>> {
    let mut seen = HashSet::new();
    let mut order: BTreeMap<Uuid, Vec<i64>> = BTreeMap::new();
    for r in receipts {
        if seen.insert(r.webhook_id.clone()) {
            order.entry(r.event_id).or_default().push(r.seq);
        }
    }
    order
}

fn verify(secret: &WebhookSecret, receipt: &Receipt) -> Result<(), standardwebhooks::WebhookError> {
    standardwebhooks::Webhook::new(secret.expose())?.verify(receipt.body.as_bytes(), &receipt.headers)
}

/// (status, attempts) of every delivery to `subscriber`, by message order.
async fn deliveries(pool: &PgPool, subscriber: Uuid) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT status::text, attempts FROM outbox_deliveries WHERE subscriber_id = $1 ORDER BY message_id")
        .bind(subscriber)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_are_delivered_signed_once_each_in_order_per_event_to_each_subscriber() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (one, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (all, all_secret) = endpoint(&db.pool, &receiver.url("all"), None).await;
    let (only_one, only_one_secret) = endpoint(&db.pool, &receiver.url("one"), Some(one)).await;
    for seq in 0..5 {
        enqueue(&db.pool, one, seq).await;
        enqueue(&db.pool, other, seq).await;
    }
    // Slow answers: a relay sending a stream's next message before its previous one was
    // acknowledged would show.
    receiver.set(|rule| rule.delay = Duration::from_millis(20));

    let run = drain(&relay(|_| {}), &db.service_database(4), &db.pool).await;

    assert_eq!(receiver.early(), 0, "a message was sent before its predecessor was acknowledged");
    assert_eq!((run.attempts, run.delivered), (15, 15));
    let receipts = receiver.receipts();
    let (to_all, to_one): (Vec<Receipt>, Vec<Receipt>) = receipts.into_iter().partition(|r| r.path == "all");
    assert_eq!(first_seen_order(&to_all), BTreeMap::from([(one, vec![0, 1, 2, 3, 4]), (other, vec![0, 1, 2, 3, 4])]));
    assert_eq!(first_seen_order(&to_one), BTreeMap::from([(one, vec![0, 1, 2, 3, 4])]));
    assert_eq!((to_all.len(), to_one.len()), (10, 5), "each message once per subscriber");
    for r in &to_all {
        assert_eq!(verify(&all_secret, r).map_err(|e| e.to_string()), Ok(()));
        assert!(verify(&only_one_secret, r).is_err(), "another endpoint's secret does not verify it");
    }
    for r in &to_one {
        assert_eq!(verify(&only_one_secret, r).map_err(|e| e.to_string()), Ok(()));
    }
    // The body is the message's document; webhook-id is its message id, the same for
    // every subscriber.
    let ids: HashSet<&str> = to_all.iter().map(|r| r.webhook_id.as_str()).collect();
    let stored: Vec<(Uuid, serde_json::Value)> =
        sqlx::query_as("SELECT message_id, payload FROM outbox_messages").fetch_all(&db.pool).await.unwrap();
    let stored_ids: Vec<String> = stored.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(ids, stored_ids.iter().map(String::as_str).collect());
    for r in &to_all {
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let (_, payload) = stored.iter().find(|(id, _)| id.to_string() == r.webhook_id).unwrap();
        assert_eq!(&body, payload);
        assert_eq!((&body["type"], &body["version"]), (&serde_json::json!("hold.expired"), &serde_json::json!(1)));
        assert_eq!(r.headers["content-type"], "application/json");
    }
    assert!(to_one.iter().all(|r| ids.contains(r.webhook_id.as_str())));
    assert_eq!(deliveries(&db.pool, all).await, vec![("delivered".to_owned(), 1); 10]);
    assert_eq!(deliveries(&db.pool, only_one).await, vec![("delivered".to_owned(), 1); 5]);
    let attempts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_delivery_attempts WHERE response_status = 204 AND error IS NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(attempts, 15);
}

#[tokio::test]
async fn a_failing_head_blocks_only_its_events_stream_which_resumes_in_order_when_it_recovers() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (failing, healthy) = (Uuid::new_v4(), Uuid::new_v4());
    let (subscriber, _) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    receiver.set(|rule| {
        rule.failing_events.insert(failing);
    });
    for seq in 0..3 {
        enqueue(&db.pool, failing, seq).await;
        enqueue(&db.pool, healthy, seq).await;
    }
    let (relay, service) = (relay(|_| {}), db.service_database(4));

    // Runs until the healthy event is through: its stream never waits for the other.
    for _ in 0..5 {
        relay.run(&service).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let receipts = receiver.receipts();
    assert_eq!(first_seen_order(&receipts).get(&healthy), Some(&vec![0, 1, 2]));
    let failing_seqs: HashSet<i64> = receipts.iter().filter(|r| r.event_id == failing).map(|r| r.seq).collect();
    assert_eq!(failing_seqs, HashSet::from([0]), "only the failing stream's head was tried");
    let failed_attempts = receipts.iter().filter(|r| r.event_id == failing).count();
    assert!(failed_attempts >= 2, "the head was retried: {failed_attempts}");
    let states = deliveries(&db.pool, subscriber).await;
    let pending = states.iter().filter(|(status, _)| status == "pending").count();
    assert_eq!(pending, 3, "{states:?}");
    let log: (i16, String) =
        sqlx::query_as("SELECT response_status, error FROM outbox_delivery_attempts ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(log, (500, "answered 500 Internal Server Error".to_owned()));

    receiver.set(|rule| rule.failing_events.clear());
    drain(&relay, &service, &db.pool).await;

    let receipts = receiver.receipts();
    assert_eq!(first_seen_order(&receipts), BTreeMap::from([(failing, vec![0, 1, 2]), (healthy, vec![0, 1, 2])]));
    let deliveries = deliveries(&db.pool, subscriber).await;
    assert!(deliveries.iter().all(|(status, _)| status == "delivered"), "{deliveries:?}");
    // Every attempt was one request, and every request one attempt.
    let attempts: i32 = deliveries.iter().map(|(_, a)| a).sum();
    assert_eq!(receipts.len(), attempts as usize);
    assert_eq!(attempts as usize, 5 + failed_attempts + 1);
}

#[tokio::test]
async fn an_endpoint_answering_410_is_disabled_and_its_deliveries_wait_paused_new_ones_included() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let event = Uuid::new_v4();
    let (gone, _) = endpoint(&db.pool, &receiver.url("gone"), None).await;
    let (kept, _) = endpoint(&db.pool, &receiver.url("kept"), None).await;
    receiver.set(|rule| {
        rule.status_by_path.insert("gone".into(), 410);
    });
    for seq in 0..3 {
        enqueue(&db.pool, event, seq).await;
    }

    drain(&relay(|_| {}), &db.service_database(4), &db.pool).await;

    let to_gone: Vec<i64> = receiver.receipts().iter().filter(|r| r.path == "gone").map(|r| r.seq).collect();
    assert_eq!(to_gone, vec![0], "one attempt, the head's, then nothing more");
    assert_eq!(
        paused(&db.pool, gone).await,
        vec![("pending".to_owned(), 1, true), ("pending".into(), 0, true), ("pending".into(), 0, true)]
    );
    assert_eq!(deliveries(&db.pool, kept).await, vec![("delivered".to_owned(), 1); 3]);
    let (active, reason): (bool, Option<String>) = sqlx::query_as(
        "SELECT s.active, e.disabled_reason FROM outbox_subscribers s JOIN webhook_endpoints e ON e.subscriber_id = s.id
         WHERE s.id = $1",
    )
    .bind(gone)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((active, reason.as_deref()), (false, Some(sales::consumer::GONE_REASON)));
    // New messages wait for it too, paused; the relay sends it nothing.
    enqueue(&db.pool, event, 3).await;
    assert_eq!(paused(&db.pool, gone).await.len(), 4);
    assert!(paused(&db.pool, gone).await.iter().all(|(status, _, paused)| status == "pending" && *paused));
    assert_eq!(deliveries(&db.pool, kept).await.len(), 4);
    drain(&relay(|_| {}), &db.service_database(4), &db.pool).await;
    assert_eq!(receiver.receipts().iter().filter(|r| r.path == "gone").count(), 1);
}

/// (status, attempts, paused) of every delivery to `subscriber`, by message order.
async fn paused(pool: &PgPool, subscriber: Uuid) -> Vec<(String, i32, bool)> {
    sqlx::query_as(
        "SELECT status::text, attempts, next_attempt_at = 'infinity' FROM outbox_deliveries
         WHERE subscriber_id = $1 ORDER BY message_id",
    )
    .bind(subscriber)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn enabling_a_disabled_endpoint_resumes_each_stream_where_it_stopped_with_what_arrived_meanwhile_in_order() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (one, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (hook, _) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    let (relay, service) = (relay(|_| {}), db.service_database(4));
    // Delivered before: 0 of each event.
    enqueue(&db.pool, one, 0).await;
    enqueue(&db.pool, other, 0).await;
    drain(&relay, &service, &db.pool).await;
    // Then it answers 410 to the next message and is disabled ...
    receiver.set(|rule| {
        rule.status_by_path.insert("hook".into(), 410);
    });
    enqueue(&db.pool, one, 1).await;
    drain(&relay, &service, &db.pool).await;
    // ... 1 of `other`, and 2 and 3 of both, arrive while it is disabled (so does one
    // more organizer's "off", which keeps the first reason).
    for (event, seq) in [(other, 1), (one, 2), (other, 2), (one, 3), (other, 3)] {
        enqueue(&db.pool, event, seq).await;
    }
    let mut conn = db.pool.acquire().await.unwrap();
    let off = sales::store::webhooks::disable(&mut conn, hook, "by hand").await.unwrap().unwrap();
    assert_eq!(off.disabled_reason.as_deref(), Some(sales::consumer::GONE_REASON));
    drain(&relay, &service, &db.pool).await;
    assert_eq!(receiver.receipts().len(), 3, "nothing sent while disabled");
    receiver.set(|rule| rule.status_by_path.clear());

    let on = sales::store::webhooks::enable(&mut conn, hook).await.unwrap().unwrap();
    assert!(on.active && on.disabled_at.is_none() && on.disabled_reason.is_none(), "{on:?}");
    drain(&relay, &service, &db.pool).await;

    let receipts = receiver.receipts();
    assert_eq!(first_seen_order(&receipts), BTreeMap::from([(one, vec![0, 1, 2, 3]), (other, vec![0, 1, 2, 3])]));
    assert_eq!(receiver.early(), 0, "a message was sent before its predecessor was acknowledged");
    // 0 of each; 1 of `one` refused with 410, then sent again first on its stream; the
    // five written while disabled once each.
    assert_eq!(receipts.len(), 2 + 1 + 1 + 5);
    assert_eq!(deliveries(&db.pool, hook).await.iter().filter(|(s, _)| s == "delivered").count(), 8);
}

#[tokio::test]
async fn a_delivery_written_paused_after_its_endpoint_was_enabled_again_is_resumed_by_the_next_run() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (hook, _) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    enqueue(&db.pool, Uuid::new_v4(), 0).await;
    // The race: an order read the endpoint as disabled and wrote its delivery paused,
    // but committed after the enabling (which resumed only what it saw).
    sqlx::query("UPDATE outbox_deliveries SET next_attempt_at = 'infinity' WHERE subscriber_id = $1")
        .bind(hook)
        .execute(&db.pool)
        .await
        .unwrap();

    let run = relay(|_| {}).run(&db.service_database(2)).await.unwrap();

    assert_eq!((run.attempts, run.delivered), (1, 1));
    assert_eq!(receiver.receipts().len(), 1);
}

#[tokio::test]
async fn a_relay_dropped_mid_batch_leaves_its_claims_leased_then_every_message_arrives_in_order() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (one, other) = (Uuid::new_v4(), Uuid::new_v4());
    let (subscriber, _) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    for seq in 0..4 {
        enqueue(&db.pool, one, seq).await;
        enqueue(&db.pool, other, seq).await;
    }
    let service = db.service_database(4);
    let relay = relay(|_| {});
    // The receiver takes its time; the relay is killed while both heads are in flight.
    receiver.set(|rule| rule.delay = Duration::from_secs(5));
    let killed = tokio::time::timeout(Duration::from_millis(500), relay.run(&service)).await;
    assert!(killed.is_err(), "the run was cut short");
    assert_eq!(receiver.receipts().len(), 2, "both heads were sent");

    // Leased: another relay takes nothing while the lease lasts.
    receiver.set(|rule| rule.delay = Duration::ZERO);
    assert_eq!(relay.run(&service).await.unwrap().attempts, 0);
    let leased: Vec<(i32, bool)> = sqlx::query_as(
        "SELECT attempts, next_attempt_at > now() + interval '5 seconds' FROM outbox_deliveries
         WHERE status = 'pending' AND attempts > 0",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(leased, vec![(1, true), (1, true)]);

    // The lease ends (backdated rather than waited for).
    sqlx::query("UPDATE outbox_deliveries SET next_attempt_at = now() WHERE attempts > 0 AND status = 'pending'")
        .execute(&db.pool)
        .await
        .unwrap();
    drain(&relay, &service, &db.pool).await;

    let receipts = receiver.receipts();
    assert_eq!(first_seen_order(&receipts), BTreeMap::from([(one, vec![0, 1, 2, 3]), (other, vec![0, 1, 2, 3])]));
    assert_eq!(receiver.early(), 0);
    assert_eq!(receipts.len(), 10, "the two heads twice (at least once), the rest once");
    let mut attempts: Vec<i32> = deliveries(&db.pool, subscriber).await.into_iter().map(|(_, a)| a).collect();
    attempts.sort();
    assert_eq!(attempts, [1, 1, 1, 1, 1, 1, 2, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_at_once_never_send_one_delivery_twice() {
    let db = TestDatabase::new(&schema::MIGRATOR, 10).await.unwrap();
    let receiver = Receiver::start().await;
    endpoint(&db.pool, &receiver.url("hook"), None).await;
    let events: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    // Event by event: without the one-head-per-stream rule a batch would hold several
    // messages of one stream.
    for event in &events {
        for seq in 0..5 {
            enqueue(&db.pool, *event, seq).await;
        }
    }
    receiver.set(|rule| rule.delay = Duration::from_millis(10));
    // Small batches, so the two relays interleave many claims.
    let relay = relay(|c| c.outbox_relay.batch = 7);
    let (a, b) = (db.service_database(4), db.service_database(4));

    let (ran_a, ran_b) = tokio::join!(drain(&relay, &a, &db.pool), drain(&relay, &b, &db.pool));

    let receipts = receiver.receipts();
    assert_eq!(receipts.len(), 100, "exactly one request per delivery");
    assert_eq!(ran_a.delivered + ran_b.delivered, 100);
    assert_eq!(receiver.overlaps(), 0);
    assert_eq!(receiver.early(), 0, "a message was sent before its predecessor was acknowledged");
    let expected: BTreeMap<Uuid, Vec<i64>> = events.iter().map(|e| (*e, vec![0, 1, 2, 3, 4])).collect();
    assert_eq!(first_seen_order(&receipts), expected);
}

#[tokio::test]
async fn a_delivery_failing_every_attempt_is_given_up_after_the_tenth_and_its_stream_moves_on() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let event = Uuid::new_v4();
    let (subscriber, _) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    receiver.set(|rule| {
        rule.failing_events.insert(event);
    });
    enqueue(&db.pool, event, 0).await;
    // A millionth of the schedule: ten attempts within about 0.3 s.
    let relay = relay(|c| c.outbox_relay.retry_scale = 0.000_001);

    drain(&relay, &db.service_database(4), &db.pool).await;

    assert_eq!(deliveries(&db.pool, subscriber).await, vec![("abandoned".to_owned(), 10)]);
    assert_eq!(receiver.receipts().len(), 10);
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_delivery_attempts WHERE response_status = 500")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(logged, 10);
    // The abandoned head no longer blocks its stream.
    receiver.set(|rule| rule.failing_events.clear());
    enqueue(&db.pool, event, 1).await;
    drain(&relay, &db.service_database(2), &db.pool).await;
    assert_eq!(deliveries(&db.pool, subscriber).await, vec![("abandoned".to_owned(), 10), ("delivered".into(), 1)]);
}

#[tokio::test]
async fn retry_after_is_honoured_when_longer_than_the_schedule() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    endpoint(&db.pool, &receiver.url("busy"), None).await;
    receiver.set(|rule| {
        rule.status_by_path.insert("busy".into(), 429);
        rule.retry_after = Some("120");
    });
    enqueue(&db.pool, Uuid::new_v4(), 0).await;

    let run = relay(|_| {}).run(&db.service_database(2)).await.unwrap();

    assert_eq!((run.attempts, run.delivered), (1, 0));
    let (attempts, wait): (i32, f64) =
        sqlx::query_as("SELECT attempts, extract(epoch FROM next_attempt_at - now())::float8 FROM outbox_deliveries")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 1);
    assert!((110.0..=120.0).contains(&wait), "due again in {wait} s");
}

/// Runs `tests/python/verify_webhook.py` (the `standardwebhooks` reference library) on
/// one request; true if it verifies. The library lives in the virtualenv
/// `scripts/ensure-python` makes (`target/python`; `scripts/test` runs it first).
fn verified_by_the_reference_library(secret: &str, receipt: &Receipt, body: &str) -> bool {
    let headers: serde_json::Map<String, serde_json::Value> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|name| (name.to_string(), serde_json::json!(receipt.headers[*name].to_str().unwrap())))
        .collect();
    let request = serde_json::json!({ "secret": secret, "headers": headers, "body": body });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/verify_webhook.py");
    let said = test_support::python::run(&script, &request.to_string());
    match said.code {
        Some(0) if said.stdout == "verified" => true,
        Some(1) if said.stdout.starts_with("rejected: ") => false,
        _ => panic!("verify_webhook.py failed: {} {}", said.stdout, said.stderr),
    }
}

#[tokio::test]
async fn the_standard_webhooks_reference_library_verifies_our_signatures_and_rejects_a_tampered_body() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    enqueue(&db.pool, Uuid::new_v4(), 7).await;
    drain(&relay(|_| {}), &db.service_database(2), &db.pool).await;
    let receipt = receiver.receipts().pop().unwrap();
    let tampered = receipt.body.replace("\"quantity\": 7", "\"quantity\": 8");
    assert_ne!(tampered, receipt.body);
    let other_secret = WebhookSecret::generate();

    let (genuine, forged, wrong_key) = tokio::task::spawn_blocking(move || {
        (
            verified_by_the_reference_library(secret.expose(), &receipt, &receipt.body),
            verified_by_the_reference_library(secret.expose(), &receipt, &tampered),
            verified_by_the_reference_library(other_secret.expose(), &receipt, &receipt.body),
        )
    })
    .await
    .unwrap();

    assert_eq!((genuine, forged, wrong_key), (true, false, false));
}

#[tokio::test]
async fn https_endpoints_are_reached_over_tls() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    // A plain-HTTP listener behind an https URL: the relay attempts a TLS handshake
    // (rather than refusing the scheme), which the listener cannot complete.
    let receiver = Receiver::start().await;
    endpoint(&db.pool, &format!("https://{}/hook", receiver.addr), None).await;
    enqueue(&db.pool, Uuid::new_v4(), 0).await;

    // The spec's schedule unscaled: the retry is 5 s away, after this run.
    let run = relay(|c| c.outbox_relay.retry_scale = 1.0).run(&db.service_database(2)).await.unwrap();

    assert_eq!((run.attempts, run.delivered), (1, 0));
    let (status, error): (Option<i16>, String) =
        sqlx::query_as("SELECT response_status, error FROM outbox_delivery_attempts")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, None);
    assert!(error.contains("InvalidContentType") || error.contains("corrupt message"), "{error}");
    assert!(receiver.receipts().is_empty());
}

#[tokio::test]
async fn a_delivery_written_for_an_endpoint_disabled_meanwhile_waits_unsent_until_it_is_enabled() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (subscriber, _) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    // The order's transaction fanned out to the endpoint (due now, not paused) before
    // its disabling committed.
    enqueue(&db.pool, Uuid::new_v4(), 0).await;
    sqlx::query("UPDATE outbox_subscribers SET active = false WHERE id = $1")
        .bind(subscriber)
        .execute(&db.pool)
        .await
        .unwrap();
    let (relay, service) = (relay(|_| {}), db.service_database(2));

    let run = relay.run(&service).await.unwrap();

    assert_eq!((run.attempts, run.delivered), (0, 0));
    assert!(receiver.receipts().is_empty());
    assert_eq!(deliveries(&db.pool, subscriber).await, vec![("pending".to_owned(), 0)]);
    // Not counted as lag while its endpoint is off.
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(sales::store::deliveries::lag(&mut conn).await.unwrap(), 0.0);

    sales::store::webhooks::enable(&mut conn, subscriber).await.unwrap().unwrap();
    assert_eq!(relay.run(&service).await.unwrap().delivered, 1);
    assert_eq!(deliveries(&db.pool, subscriber).await, vec![("delivered".to_owned(), 1)]);
}

/// The secret a rotation of `subscriber` draws, the old one kept for `grace`.
async fn rotate(pool: &PgPool, subscriber: Uuid, grace: Duration) -> WebhookSecret {
    let secret = WebhookSecret::generate();
    let mut conn = pool.acquire().await.unwrap();
    sales::store::webhooks::rotate_secret(&mut conn, subscriber, &secret, grace).await.unwrap().unwrap();
    secret
}

#[tokio::test]
async fn after_a_rotation_requests_verify_with_the_old_and_the_new_secret_until_the_grace_ends_then_only_the_new() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let (hook, old) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    let event = Uuid::new_v4();
    let new = rotate(&db.pool, hook, Duration::from_secs(3600)).await;
    assert_ne!(old, new);
    let (relay, service) = (relay(|_| {}), db.service_database(2));
    enqueue(&db.pool, event, 0).await;
    drain(&relay, &service, &db.pool).await;
    // The grace window ends (backdated rather than waited for).
    sqlx::query("UPDATE webhook_endpoints SET previous_secret_until = now() - interval '1 second'")
        .execute(&db.pool)
        .await
        .unwrap();
    enqueue(&db.pool, event, 1).await;
    drain(&relay, &service, &db.pool).await;
    let receipts = receiver.receipts();
    let (during, after) = (receipts[0].clone(), receipts[1].clone());
    let signatures = |r: &Receipt| r.headers["webhook-signature"].to_str().unwrap().split(' ').count();
    assert_eq!((signatures(&during), signatures(&after)), (2, 1));

    let checks = tokio::task::spawn_blocking(move || {
        [
            verified_by_the_reference_library(old.expose(), &during, &during.body),
            verified_by_the_reference_library(new.expose(), &during, &during.body),
            verified_by_the_reference_library(old.expose(), &after, &after.body),
            verified_by_the_reference_library(new.expose(), &after, &after.body),
            verified_by_the_reference_library(WebhookSecret::generate().expose(), &during, &during.body),
        ]
    })
    .await
    .unwrap();

    assert_eq!(checks, [true, true, false, true, false], "[old, new] during the window, [old, new] after, another");
}

#[tokio::test]
async fn without_private_addresses_allowed_loopback_literals_and_names_resolving_to_loopback_are_refused_and_logged() {
    let db = TestDatabase::new(&schema::MIGRATOR, 5).await.unwrap();
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let (literal, _) = endpoint(&db.pool, &format!("http://127.0.0.1:{port}/literal"), None).await;
    let (mapped, _) = endpoint(&db.pool, &format!("http://[::ffff:127.0.0.1]:{port}/mapped"), None).await;
    // A name: what it resolves to is checked when connecting (DNS rebinding).
    let (named, _) = endpoint(&db.pool, &format!("http://localhost:{port}/named"), None).await;
    enqueue(&db.pool, Uuid::new_v4(), 0).await;
    let strict = relay(|c| {
        c.outbox_relay.allow_private_addresses = false;
        c.outbox_relay.retry_scale = 1.0;
    });

    let run = strict.run(&db.service_database(2)).await.unwrap();

    assert_eq!((run.attempts, run.delivered), (3, 0));
    assert!(receiver.receipts().is_empty(), "no request reached the receiver");
    let error = |subscriber: Uuid| {
        let pool = db.pool.clone();
        async move {
            let row: (Option<i16>, String, String) = sqlx::query_as(
                "SELECT a.response_status, a.error, d.status::text FROM outbox_delivery_attempts a
                 JOIN outbox_deliveries d USING (subscriber_id, message_id) WHERE a.subscriber_id = $1",
            )
            .bind(subscriber)
            .fetch_one(&pool)
            .await
            .unwrap();
            row
        }
    };
    let (status, text, delivery) = error(literal).await;
    assert_eq!((status, delivery.as_str()), (None, "pending"), "a failed attempt, retried later");
    assert_eq!(
        text,
        "refused: 127.0.0.1 is not a public address (scheduler.outbox_relay.allow_private_addresses is off)"
    );
    let (_, text, _) = error(mapped).await;
    assert!(text.starts_with("refused: ::ffff:127.0.0.1 is not a public address"), "{text}");
    let (status, text, _) = error(named).await;
    assert_eq!(status, None);
    assert!(text.contains("localhost resolves only to non-public addresses ("), "{text}");
    assert!(text.contains("allow_private_addresses is off"), "{text}");

    // Allowed (as in tests and local runs), the same deliveries go through.
    sqlx::query("UPDATE outbox_deliveries SET next_attempt_at = now()").execute(&db.pool).await.unwrap();
    let run = relay(|_| {}).run(&db.service_database(2)).await.unwrap();
    assert_eq!(run.delivered, 3);
}

#[tokio::test]
async fn with_a_webhook_key_each_request_also_carries_a_v1a_ed25519_signature() {
    use base64::Engine;
    use ed25519_dalek::pkcs8::DecodePublicKey;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    let db = TestDatabase::new(&schema::MIGRATOR, 7).await.unwrap();
    let receiver = Receiver::start().await;
    let (_, secret) = endpoint(&db.pool, &receiver.url("hook"), None).await;
    enqueue(&db.pool, Uuid::new_v4(), 3).await;
    let key = access_token::KeyPair::generate("webhooks-2026").unwrap();
    let relay = Relay::new(relay_config(|_| {}).outbox_relay, Some(key.clone())).unwrap();

    drain(&relay, &db.service_database(2), &db.pool).await;

    let receipt = receiver.receipts().pop().unwrap();
    // v1 still verifies (the reference library skips the entries it does not know).
    assert_eq!(verify(&secret, &receipt).map_err(|e| e.to_string()), Ok(()));
    let header = receipt.headers["webhook-signature"].to_str().unwrap();
    let v1a: Vec<&str> = header.split(' ').filter_map(|s| s.strip_prefix("v1a,")).collect();
    assert_eq!(v1a.len(), 1, "{header}");
    let signature = base64::engine::general_purpose::STANDARD.decode(v1a[0]).unwrap();
    let signature = Signature::from_slice(&signature).unwrap();
    // The receiver's side: plain Ed25519 with the key the gateway publishes.
    let public = published_webhook_key(&db, &key).await;
    let signed = |body: &str| {
        let (id, timestamp) = (&receipt.headers["webhook-id"], &receipt.headers["webhook-timestamp"]);
        format!("{}.{}.{body}", id.to_str().unwrap(), timestamp.to_str().unwrap())
    };
    assert!(public.verify(signed(&receipt.body).as_bytes(), &signature).is_ok());
    let tampered = receipt.body.replace("\"quantity\": 3", "\"quantity\": 4");
    assert_ne!(tampered, receipt.body);
    assert!(public.verify(signed(&tampered).as_bytes(), &signature).is_err());
    let other = access_token::KeyPair::generate("other").unwrap();
    let other = VerifyingKey::from_public_key_pem(&other.public_pem()).unwrap();
    assert!(other.verify(signed(&receipt.body).as_bytes(), &signature).is_err());
}

/// The relay's public key as a receiver gets it: from the JWKS of a gateway given the
/// key's public file (`gateway.webhooks.v1a_public_keys_dir`), by `kid` and purpose.
async fn published_webhook_key(db: &TestDatabase, key: &access_token::KeyPair) -> ed25519_dalek::VerifyingKey {
    use base64::Engine;

    let dir = std::env::temp_dir().join(format!("bo-webhook-keys-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("webhooks-2026.public.pem"), key.public_pem()).unwrap();
    let config: gateway::GatewayConfig =
        test_support::config(&[("admin_api_key", "test-admin-key-0123456789")], |c: &mut gateway::GatewayConfig| {
            c.webhooks.v1a_public_keys_dir = Some(dir.clone());
        });
    let app =
        gateway::Application::build(&config, db.service_database(2), test_support::TestKeys::new().verifier(), None)
            .await
            .unwrap();
    let address = app.local_addr();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let jwks: serde_json::Value =
        reqwest::get(format!("http://{address}/.well-known/jwks.json")).await.unwrap().json().await.unwrap();
    shutdown.cancel();
    std::fs::remove_dir_all(&dir).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "webhooks-2026" && k["boxoffice_purpose"] == "webhook")
        .unwrap_or_else(|| panic!("the relay's key in the JWKS: {jwks}"));
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap()
}
