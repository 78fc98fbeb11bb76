use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use access_token::TokenVerifier;
use axum::body::Bytes;
use axum::extract::FromRef;
use axum::Router;
use service_kit::auth::AdminKey;
use service_kit::client_address::ClientAddressConfig;
use service_kit::postgres::Database;
use service_kit::rate_limit::ClientLimits;
use service_kit::serve::HttpConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::GatewayConfig;
use crate::error::{Error, Result};
use crate::store::events::{self, EventRules};

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Database,
    pub verifier: Arc<TokenVerifier>,
    pub admin_key: AdminKey,
    pub best_available_attempts: usize,
    pub limits: Arc<ClientLimits>,
    pub client_address: Arc<ClientAddressConfig>,
    pub create_event_timeout: Duration,
    /// Events never change once created, so their rules are read once per replica.
    event_rules: moka::future::Cache<Uuid, Arc<EventRules>>,
    /// Serialized seat maps, briefly (`seat_map_max_age_ms`); `None` reads every time.
    seat_maps: Option<moka::future::Cache<Uuid, Bytes>>,
}

impl AppState {
    pub fn new(config: &GatewayConfig, db: Database, verifier: TokenVerifier) -> Self {
        Self {
            db,
            verifier: Arc::new(verifier),
            admin_key: AdminKey(config.admin_api_key.clone()),
            best_available_attempts: config.best_available_attempts,
            limits: Arc::new(crate::limits::limits(config)),
            client_address: Arc::new(config.client_address.clone()),
            create_event_timeout: Duration::from_millis(config.create_event_timeout_ms),
            event_rules: moka::future::Cache::new(10_000),
            seat_maps: (config.seat_map_max_age_ms > 0).then(|| {
                moka::future::Cache::builder()
                    .max_capacity(1_000)
                    .time_to_live(Duration::from_millis(config.seat_map_max_age_ms))
                    .build()
            }),
        }
    }

    pub async fn event_rules(&self, event_id: Uuid) -> Result<Arc<EventRules>> {
        if let Some(rules) = self.event_rules.get(&event_id).await {
            return Ok(rules);
        }
        let rules =
            self.db.read(move |conn| Box::pin(events::rules(conn, event_id))).await?.ok_or(Error::NotFound("event"))?;
        self.event_rules.insert(event_id, rules.clone()).await;
        Ok(rules)
    }

    /// The event's seat map as a JSON body. Concurrent requests for an expired copy
    /// wait for one read instead of each walking every seat.
    pub async fn seat_map_json(&self, event_id: Uuid) -> Result<Bytes> {
        let Some(cache) = &self.seat_maps else {
            return self.read_seat_map(event_id).await;
        };
        match cache.try_get_with(event_id, self.read_seat_map(event_id)).await {
            Ok(json) => Ok(json),
            // The shared error cannot be moved out; read again for this request's own.
            Err(_) => self.read_seat_map(event_id).await,
        }
    }

    async fn read_seat_map(&self, event_id: Uuid) -> Result<Bytes> {
        self.event_rules(event_id).await?;
        let seats = self.db.read(move |conn| Box::pin(events::seat_map(conn, event_id))).await?;
        let body = serde_json::json!({ "event_id": event_id, "seats": seats });
        Ok(Bytes::from(body.to_string()))
    }
}

impl FromRef<AppState> for AdminKey {
    fn from_ref(state: &AppState) -> Self {
        state.admin_key.clone()
    }
}

impl FromRef<AppState> for Arc<ClientAddressConfig> {
    fn from_ref(state: &AppState) -> Self {
        state.client_address.clone()
    }
}

/// The gateway bound to its port, ready to serve. Tests build it on port 0.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: Arc<ClientLimits>,
    grace: Duration,
    http: HttpConfig,
}

impl Application {
    pub async fn build(config: &GatewayConfig, db: Database, verifier: TokenVerifier) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        service_kit::metrics::watch_pool(db.pool());
        crate::metrics::register();
        let state = AppState::new(config, db, verifier);
        let limits = state.limits.clone();
        let router = crate::routes::router(state);
        Ok(Self { listener, router, limits, grace: Duration::from_secs(config.shutdown_grace_secs), http: config.http })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.limits.spawn_sweeper(shutdown.clone());
        service_kit::serve("gateway", self.listener, self.router, shutdown, self.grace, &self.http).await
    }
}
