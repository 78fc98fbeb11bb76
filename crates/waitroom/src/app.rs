use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use access_token::keys::PublicKey;
use access_token::TokenSigner;
use axum::extract::FromRef;
use axum::Router;
use redis::aio::ConnectionManager;
use serde_json::{json, Value};
use service_kit::auth::AdminKey;
use service_kit::client_address::ClientAddressConfig;
use service_kit::postgres::Database;
use service_kit::rate_limit::ClientLimits;
use service_kit::serve::HttpConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admitter::Admitter;
use crate::backpressure::Backpressure;
use crate::config::WaitroomConfig;
use crate::domain::receipt::ReceiptKeys;
use crate::domain::ticket::TicketKey;
use crate::domain::vouched::ClientFanIds;
use crate::inventory::Inventory;
use crate::ledger::Ledger;
use crate::pow::Door;
use crate::queue::Queue;
use crate::receipts::Receipts;
use crate::recorder::Recorder;
use crate::release::SlotRelease;
use crate::restore::Restorer;
use crate::store::Store;
use crate::streams::LineStreams;
use crate::tokens::AdmissionTokens;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    /// PostgreSQL's record, and rebuilding what Redis lost from it.
    pub restorer: Arc<Restorer>,
    pub queue: Queue,
    /// Fans' standing pushed over Server-Sent Events.
    pub line_streams: Arc<LineStreams>,
    /// What the sale has left, per event (the admission budget and the sale's state).
    pub inventory: Inventory,
    /// The gateways' distress, and the share of the organizer's rate it leaves.
    pub backpressure: Backpressure,
    /// Joins per client address and per fan.
    pub join_limits: Arc<ClientLimits>,
    /// Polls and leaves per client address and per ticket.
    pub poll_limits: Arc<ClientLimits>,
    pub admin_key: AdminKey,
    pub client_address: Arc<ClientAddressConfig>,
    /// Which fan ids a client may choose: signed ones, any (development), or none.
    pub client_fan_ids: ClientFanIds,
    /// Admission receipts and the admission log.
    pub receipts: Receipts,
    /// Built once: the keys only change with a restart.
    pub jwks: Arc<Value>,
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

/// The waiting room bound to its port, ready to serve. Tests build it on port 0.
pub struct Application {
    listener: TcpListener,
    router: Router,
    management_listener: TcpListener,
    management_router: Router,
    join_limits: Arc<ClientLimits>,
    poll_limits: Arc<ClientLimits>,
    admitter: Admitter,
    inventory: Inventory,
    backpressure: Backpressure,
    line_streams: Arc<LineStreams>,
    grace: Duration,
    http: HttpConfig,
}

impl Application {
    /// `public_keys` are published at `/.well-known/jwks.json`: the signer's key and
    /// any older keys whose tokens may still be live; so are `receipt_keys`' (a purpose
    /// of their own), which sign admission receipts (without them, receipts and the
    /// admission log answer 503). Neither `redis` nor `database`
    /// need be connected (`RedisConfig::connection_manager` and
    /// `PostgresConfig::database` connect lazily): until Redis answers, the waiting
    /// room serves `/healthz`, reports `/readyz` 503 and answers `503 unavailable`;
    /// until PostgreSQL has answered once, `/readyz` is 503 too (see
    /// `routes::postgres_reached`).
    pub async fn build(
        config: &WaitroomConfig,
        redis: ConnectionManager,
        key_prefix: &str,
        database: Database,
        signer: TokenSigner,
        public_keys: &[PublicKey],
        receipt_keys: Option<Arc<ReceiptKeys>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let management_listener = TcpListener::bind(config.management_listen).await?;
        crate::metrics::register();
        let store = Store::new(redis.clone(), key_prefix)
            .with_closed_retention(Duration::from_secs(config.closed_retention_secs))
            .with_idle_retention(Duration::from_secs(config.idle_retention_secs));
        let inventory = Inventory::new(database.clone(), config.inventory);
        let slot_release = SlotRelease::new(store.clone(), database.clone(), config.slot_release);
        let backpressure = Backpressure::new(redis.clone(), key_prefix, config.backpressure);
        let ledger = Ledger::new(database, config.slot_release);
        let receipts = Receipts::new(receipt_keys, ledger.clone());
        let mut jwks: Vec<Value> = public_keys.iter().map(PublicKey::jwk).collect();
        jwks.extend(receipts.jwks());
        let restorer = Arc::new(Restorer::new(store.clone(), ledger.clone(), Arc::new(Recorder::new(ledger))));
        let join_limits = Arc::new(ClientLimits::new(
            crate::metrics::RATE_LIMITED,
            config.join_limit_per_address,
            config.join_limit_per_fan,
        ));
        let poll_limits = Arc::new(ClientLimits::new(
            crate::metrics::RATE_LIMITED,
            config.poll_limit_per_address,
            config.poll_limit_per_ticket,
        ));
        let admitter = Admitter::new(
            store.clone(),
            restorer.clone(),
            inventory.clone(),
            backpressure.clone(),
            slot_release,
            config,
        );
        let queue = Queue::new(
            store.clone(),
            restorer.clone(),
            TicketKey::new(config.ticket_secret.clone(), Duration::from_secs(config.ticket_lifetime_secs)),
            AdmissionTokens::new(signer),
            inventory.clone(),
            Door::new(store.clone(), restorer.clone(), config.pow, &config.ticket_secret),
            config.abandon_after_secs,
        );
        let line_streams = Arc::new(LineStreams::new(
            queue.clone(),
            store.clone(),
            inventory.clone(),
            config.stream,
            config.abandon_after_secs,
        ));
        let state = AppState {
            queue,
            line_streams: line_streams.clone(),
            inventory,
            backpressure,
            store,
            restorer,
            join_limits: join_limits.clone(),
            poll_limits: poll_limits.clone(),
            admin_key: AdminKey::new(config.admin_api_key.clone()),
            client_address: Arc::new(config.client_address.clone()),
            client_fan_ids: ClientFanIds::new(config.fan_id_secret.clone(), config.deployment.development),
            receipts,
            jwks: Arc::new(json!({ "keys": jwks })),
        };
        let (inventory, backpressure) = (state.inventory.clone(), state.backpressure.clone());
        let routers = crate::routes::router(state, &config.page_origins);
        Ok(Self {
            listener,
            router: routers.public,
            management_listener,
            management_router: routers.management,
            join_limits,
            poll_limits,
            admitter,
            inventory,
            backpressure,
            line_streams,
            grace: Duration::from_secs(config.shutdown_grace_secs),
            http: config.http,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where `/metrics`, `/readyz` and `/healthz` answer.
    pub fn management_addr(&self) -> SocketAddr {
        self.management_listener.local_addr().expect("a bound listener has an address")
    }

    /// An admitter on the same Redis, database and settings, to run with
    /// [`crate::run_admitter`].
    pub fn admitter(&self) -> Admitter {
        self.admitter.clone()
    }

    /// What the sale has left, as this replica reads it (tests refresh it directly).
    pub fn inventory(&self) -> Inventory {
        self.inventory.clone()
    }

    /// The gateways' distress, as this replica reads it (tests refresh it directly).
    pub fn backpressure(&self) -> Backpressure {
        self.backpressure.clone()
    }

    /// Serves both listeners until `shutdown` is cancelled, then drains in-flight
    /// requests.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.join_limits.spawn_sweeper(shutdown.clone());
        self.poll_limits.spawn_sweeper(shutdown.clone());
        self.line_streams.end_all_on(shutdown.clone());
        service_kit::serve::serve_with_management(
            "waitroom",
            (self.listener, self.router),
            (self.management_listener, self.management_router),
            shutdown,
            self.grace,
            &self.http,
        )
        .await
    }
}
