//! A sandbox on a free port, raw HTTP calls to it, and a webhook receiver.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use payments_sandbox::{RetryPolicy, Sandbox, SandboxConfig};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

pub const KEY: &str = "sk_test_sandbox_tests";
pub const WHSEC: &str = "whsec_sandbox_tests";

pub fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Fast retries: 5 ms doubling up to 40 ms, 5 attempts.
pub fn config() -> SandboxConfig {
    let mut config = SandboxConfig::new(KEY);
    config.retry = RetryPolicy {
        base: Duration::from_millis(5),
        factor: 2.0,
        max_delay: Duration::from_millis(40),
        max_attempts: 5,
    };
    config.delivery_timeout = Duration::from_secs(2);
    config
}

pub async fn sandbox() -> Sandbox {
    payments_sandbox::spawn(local(), config()).await.expect("the sandbox starts")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// A form POST with the key (and an idempotency key when given): status and JSON.
pub async fn post_form(
    sandbox: &Sandbox,
    path: &str,
    form: &[(&str, &str)],
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    post_raw(sandbox, path, body.into_bytes(), idempotency_key).await
}

pub async fn post_raw(sandbox: &Sandbox, path: &str, body: Vec<u8>, idempotency_key: Option<&str>) -> (u16, Value) {
    let mut request = http()
        .post(format!("{}{path}", sandbox.url()))
        .bearer_auth(KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    read(request.send().await.expect("the sandbox answers")).await
}

pub async fn get(sandbox: &Sandbox, path: &str) -> (u16, Value) {
    read(http().get(format!("{}{path}", sandbox.url())).bearer_auth(KEY).send().await.expect("the sandbox answers"))
        .await
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("a body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

pub async fn create_intent(sandbox: &Sandbox, amount: &str) -> Value {
    let (status, intent) =
        post_form(sandbox, "/v1/payment_intents", &[("amount", amount), ("currency", "EUR")], None).await;
    assert_eq!(status, 200, "{intent}");
    intent
}

/// Pays on the hosted page, asking for JSON.
pub async fn pay(sandbox: &Sandbox, intent: &Value, card: &str) -> (u16, Value) {
    let id = intent["id"].as_str().unwrap_or_default();
    let secret = intent["client_secret"].as_str().unwrap_or_default();
    let response = http()
        .post(format!("{}/pay/{id}", sandbox.url()))
        .header("accept", "application/json")
        .form(&[("client_secret", secret), ("card_number", card)])
        .send()
        .await
        .expect("the page answers");
    read(response).await
}

/// One delivery as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Hit {
    pub signature: String,
    pub body: Bytes,
    pub at: Instant,
}

impl Hit {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A webhook endpoint on a free port that records every delivery and answers with the
/// queued statuses, then 200.
pub struct Receiver {
    pub url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    _stop: DropGuard,
}

type ReceiverState = (Arc<Mutex<Vec<Hit>>>, Arc<Mutex<VecDeque<u16>>>);

impl Receiver {
    pub async fn start() -> Self {
        let hits = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(VecDeque::new()));
        let app = Router::new().route("/hook", post(receive)).with_state((hits.clone(), statuses.clone()));
        let listener = tokio::net::TcpListener::bind(local()).await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        let cancelled = stop.clone().cancelled_owned();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(cancelled).await });
        Self { url, hits, statuses, _stop: stop.drop_guard() }
    }

    pub fn answer_next_with(&self, statuses: &[u16]) {
        self.statuses.lock().expect("lock").extend(statuses);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    /// Waits (at most 5 s) until at least `n` deliveries arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let hits = self.hits();
            if hits.len() >= n || Instant::now() > until {
                return hits;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn receive(State((hits, statuses)): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    hits.lock().expect("lock").push(Hit { signature, body, at: Instant::now() });
    let status = statuses.lock().expect("lock").pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}
