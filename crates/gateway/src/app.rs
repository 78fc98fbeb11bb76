//! Wiring: the gateway bound to its ports (public and management), its routers and its
//! background work: the limiter sweep, the revocation poll, the key reload and the
//! distress report.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use access_token::TokenVerifier;
use axum::Router;
use chrono::{DateTime, Utc};
use sales::tickets::TicketKeys;
use sales::Sales;
use service_kit::distress::{DistressThresholds, PoolPressure};
use service_kit::postgres::Database;
use service_kit::rate_limit::ClientLimits;
use service_kit::serve::HttpConfig;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::GatewayConfig;
use crate::distress::{ReportTo, Reporter};
use crate::revocations::Revocations;
use crate::seat_stream::SeatStreams;
use crate::state::AppState;

/// The gateway bound to its ports, ready to serve. Tests build it on port 0.
pub struct Application {
    listener: TcpListener,
    router: Router,
    management_listener: TcpListener,
    management_router: Router,
    limits: Arc<ClientLimits>,
    seat_streams: Arc<SeatStreams>,
    revocations: Arc<Revocations>,
    /// Where the revocation poll goes on from: the first read's, if it succeeded.
    revocations_read: Option<DateTime<Utc>>,
    sales: Sales,
    verifier: Arc<TokenVerifier>,
    key_reload: Option<(PathBuf, Duration)>,
    /// The ticket keys' directory, signing key id and how often to read them again.
    ticket_key_reload: Option<(PathBuf, String, Duration)>,
    /// How long work waits for a database connection, measured by the pool's every
    /// acquire, and where the distress it makes is reported.
    pressure: Arc<PoolPressure>,
    distress: DistressThresholds,
    report_distress_to: Option<ReportTo>,
    grace: Duration,
    http: HttpConfig,
}

/// How long [`Application::build`] waits for the first read of the revocations. A
/// replica that cannot reach its database still starts within it, refusing fans (and
/// not ready) until its poll reads them.
const FIRST_REVOCATIONS_READ_WAIT: Duration = Duration::from_secs(2);

impl Application {
    /// Binds both listeners and reads the revocations once (see [`crate::revocations`]).
    /// Without `tickets` (the ticket keys), bookings still get their tickets, but their
    /// secrets cannot be shown or checked here (`503 tickets_unavailable`).
    pub async fn build(
        config: &GatewayConfig,
        db: Database,
        verifier: TokenVerifier,
        tickets: Option<Arc<TicketKeys>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let management_listener = TcpListener::bind(config.management_listen).await?;
        service_kit::metrics::watch_pool(db.pool());
        crate::metrics::register();
        let pressure = Arc::new(PoolPressure::default());
        let db = db.with_pressure(pressure.clone());
        let provider = stripe_client::StripeClient::new(config.payments.stripe()).map_err(std::io::Error::other)?;
        let mut sales = Sales::new(db, config.sales_settings(), Arc::new(provider));
        if let Some(keys) = tickets {
            sales = sales.with_ticket_keys(keys);
        }
        let webhook_keys = match &config.webhooks.v1a_public_keys_dir {
            Some(dir) => access_token::keys::read_public_keys(dir).map_err(|e| {
                std::io::Error::other(format!("gateway.webhooks.v1a_public_keys_dir ({}): {e}", dir.display()))
            })?,
            None => Vec::new(),
        };
        let state = AppState::new(config, sales, verifier, &webhook_keys);
        let (limits, seat_streams) = (state.limits.clone(), state.seat_streams.clone());
        let (revocations, sales, verifier) = (state.revocations.clone(), state.sales.clone(), state.verifier.clone());
        let routers = crate::routes::router(state);
        let first_read = tokio::time::timeout(FIRST_REVOCATIONS_READ_WAIT, revocations.refresh(&sales, None));
        let revocations_read = first_read.await.unwrap_or_else(|_| {
            tracing::warn!("reading token revocations is slow; refusing fans until a read succeeds");
            None
        });
        Ok(Self {
            listener,
            router: routers.public,
            management_listener,
            management_router: routers.management,
            limits,
            seat_streams,
            revocations,
            revocations_read,
            sales,
            verifier,
            key_reload: None,
            ticket_key_reload: None,
            pressure,
            distress: config.distress,
            report_distress_to: None,
            grace: Duration::from_secs(config.shutdown_grace_secs),
            http: config.http,
        })
    }

    /// Reads the public keys in `dir` again every `every` while serving (see
    /// [`crate::keys`]); without this the keys given to [`Application::build`] stay.
    pub fn reload_keys_from(mut self, dir: PathBuf, every: Duration) -> Self {
        self.key_reload = Some((dir, every));
        self
    }

    /// Reads the ticket keys (`<dir>/<signing_kid>.private.pem` and every public key in
    /// `dir`) again every `every` while serving (see [`crate::keys`]).
    pub fn reload_ticket_keys_from(mut self, dir: PathBuf, signing_kid: String, every: Duration) -> Self {
        self.ticket_key_reload = Some((dir, signing_kid, every));
        self
    }

    /// Reports this replica's distress to the waiting room through `to` while serving
    /// (see [`crate::distress`]); without it, the level only shows in the metrics.
    pub fn report_distress_to(mut self, to: ReportTo) -> Self {
        self.report_distress_to = Some(to);
        self
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where `/metrics`, `/readyz` and `/healthz` answer.
    pub fn management_addr(&self) -> SocketAddr {
        self.management_listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves both listeners until `shutdown` is cancelled, then drains in-flight
    /// requests.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.limits.spawn_sweeper(shutdown.clone());
        self.seat_streams.end_all_on(shutdown.clone());
        let sales = self.sales.clone();
        service_kit::rate_limit::spawn_sweeps(shutdown.clone(), move || sales.forget_idle_provider_checks());
        if let Some((dir, kid, every)) = self.ticket_key_reload {
            self.sales.ticket_keyring().spawn_reloader(dir, kid, every, shutdown.clone());
        }
        self.revocations.spawn_poller(self.sales, self.revocations_read, shutdown.clone());
        Reporter::new(self.pressure, self.distress, self.report_distress_to).spawn(shutdown.clone());
        if let Some((dir, every)) = self.key_reload {
            crate::keys::spawn_reloader(self.verifier, dir, every, shutdown.clone());
        }
        service_kit::serve::serve_with_management(
            "gateway",
            (self.listener, self.router),
            (self.management_listener, self.management_router),
            shutdown,
            self.grace,
            &self.http,
        )
        .await
    }
}
