//! A local payment provider speaking a subset of Stripe's wire format, as a real HTTP
//! server: for tests (spawned on a free port), rehearsals and `boxoffice
//! payments-sandbox`. No real money moves and nothing is kept across restarts.
//!
//! - `config.rs`: [`SandboxConfig`], the webhook [`RetryPolicy`] and the [`Faults`].
//! - `api.rs`: `/v1/payment_intents`, `/v1/refunds`, `/v1/events` (form bodies,
//!   Bearer key, `Idempotency-Key`, Stripe's error envelope).
//! - `page.rs`: the hosted payment page, `/pay/{intent}`, where Stripe's test card
//!   numbers decide the outcome.
//! - `webhooks.rs`: signed delivery, at least once, retried with backoff, with the
//!   delay / duplicate / drop / reorder faults.
//! - `control.rs`: `POST /_sandbox/faults`, `GET /_sandbox/events`.
//! - `state.rs`: the objects and events in memory, behind one mutex.

mod api;
mod config;
mod control;
mod page;
mod state;
mod webhooks;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{Faults, InvalidFaults, RetryPolicy, SandboxConfig, WebhookEndpoint};
pub use page::card_outcome;
pub use state::{DeliveryAttempt, EventRecord, PaymentError, API_VERSION};
pub use webhooks::signature_header;

/// What the handlers and delivery tasks share.
pub(crate) struct Shared {
    state: Mutex<State>,
    secret_key: String,
    retry: RetryPolicy,
    delivery_timeout: Duration,
    http: reqwest::Client,
    cancel: CancellationToken,
}

use state::State;

impl Shared {
    /// The state. A handler that panicked mid-way leaves it as it was at that point,
    /// which is no worse than a crash of a real provider's worker: carry on.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("invalid faults: {0}")]
    Faults(#[from] InvalidFaults),
    #[error("cannot build the webhook HTTP client: {0}")]
    Client(String),
}

/// A running sandbox. Dropping it stops it (server and deliveries); [`Sandbox::shutdown`]
/// stops it and waits for the server to finish.
pub struct Sandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

/// Starts a sandbox on `addr` (`127.0.0.1:0` for a free port; [`Sandbox::url`] says
/// which).
pub async fn spawn(addr: SocketAddr, config: SandboxConfig) -> Result<Sandbox, SpawnError> {
    config.faults.validate()?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| SpawnError::Bind { addr, source })?;
    let addr = listener.local_addr().map_err(|source| SpawnError::Bind { addr, source })?;
    let http = reqwest::Client::builder()
        .connect_timeout(config.delivery_timeout)
        .timeout(config.delivery_timeout)
        .build()
        .map_err(|e| SpawnError::Client(e.to_string()))?;
    let (deliveries, events) = tokio::sync::mpsc::unbounded_channel();
    let cancel = CancellationToken::new();
    let shared = Arc::new(Shared {
        state: Mutex::new(State::new(config.faults, config.seed, config.webhook, deliveries)),
        secret_key: config.secret_key,
        retry: config.retry,
        delivery_timeout: config.delivery_timeout,
        http,
        cancel: cancel.clone(),
    });
    tokio::spawn(webhooks::dispatch(shared.clone(), events));
    let app = api::router()
        .merge(page::router())
        .merge(control::router())
        .fallback(api::unknown_route)
        .with_state(shared.clone());
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "payments sandbox server stopped");
        }
    });
    tracing::info!(%addr, "payments sandbox listening");
    Ok(Sandbox { addr, shared, server: Some(server) })
}

impl Sandbox {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL for API calls and the payment page.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The payment page of an intent.
    pub fn payment_page_url(&self, intent_id: &str, client_secret: &str) -> String {
        let query: String =
            form_urlencoded::Serializer::new(String::new()).append_pair("client_secret", client_secret).finish();
        format!("{}/pay/{intent_id}?{query}", self.url())
    }

    /// Pays an intent as a fan's browser would, posting the payment page's form (for
    /// tests and the load test): the page's HTTP status, 200 paid, 402 declined.
    pub async fn pay(&self, intent_id: &str, client_secret: &str, card_number: &str) -> Result<u16, reqwest::Error> {
        let answer = self
            .shared
            .http
            .post(format!("{}/pay/{intent_id}", self.url()))
            .header("accept", "application/json")
            .form(&[("client_secret", client_secret), ("card_number", card_number)])
            .send()
            .await?;
        Ok(answer.status().as_u16())
    }

    /// Where events of every type go from now on (and retries of earlier ones).
    pub fn set_webhook_endpoint(&self, url: impl Into<String>, secret: impl Into<String>) {
        self.set_webhook(WebhookEndpoint::new(url, secret));
    }

    /// Where events go from now on, and which types.
    pub fn set_webhook(&self, endpoint: WebhookEndpoint) {
        self.shared.lock().webhook = Some(endpoint);
    }

    /// How many times objects of `kind` (`payment_intent`, `refund`, `event`) were
    /// retrieved through the API.
    pub fn retrievals(&self, kind: &str) -> u64 {
        self.shared.lock().retrievals.get(kind).copied().unwrap_or(0)
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), InvalidFaults> {
        faults.validate()?;
        self.shared.lock().faults = faults;
        Ok(())
    }

    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Every event so far, oldest first, with its delivery attempts.
    pub fn events(&self) -> Vec<EventRecord> {
        self.shared.lock().events.clone()
    }

    /// Polls [`Sandbox::events`] every 10 ms until `done` holds, for at most `timeout`;
    /// then the events either way (`Err` when it never held).
    pub async fn wait_for_events(
        &self,
        timeout: Duration,
        done: impl Fn(&[EventRecord]) -> bool,
    ) -> Result<Vec<EventRecord>, Vec<EventRecord>> {
        let started = tokio::time::Instant::now();
        loop {
            let events = self.events();
            if done(&events) {
                return Ok(events);
            }
            if started.elapsed() >= timeout {
                return Err(events);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops serving and delivering, and waits (at most 5 s) for the server to finish.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
