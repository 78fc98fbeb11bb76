//! What each subcommand does: build the services from settings and run them until
//! SIGTERM or Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Duration;

use access_token::{AccessClaims, KeyError, KeyPair, TokenSigner, TokenVerifier};
use anyhow::Context;
use secrecy::ExposeSecret;
use service_kit::postgres::{Database, PostgresConfig};
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

pub async fn gateway(settings: &Settings) -> anyhow::Result<()> {
    let gateway = build_gateway(settings, database(settings).await?).await?;
    gateway.run(shutdown_on_signal()).await?;
    Ok(())
}

pub async fn waitroom(settings: &Settings) -> anyhow::Result<()> {
    let waitroom = build_waitroom(settings).await?;
    let shutdown = shutdown_on_signal();
    let admitter = tokio::spawn(waitroom::run_admitter(waitroom.admitter(), shutdown.clone()));
    // Beside serving, not spawned: the migrator's future is not `Send`.
    let migrate = async {
        if settings.database.migrate_on_start {
            migrate_when_reachable(settings, &shutdown).await;
        }
    };
    let (served, ()) = tokio::join!(waitroom.run(shutdown.clone()), migrate);
    served?;
    admitter.await?;
    Ok(())
}

pub async fn scheduler(settings: &Settings) -> anyhow::Result<()> {
    let db = database(settings).await?;
    let payments = Some(payments(settings, db.clone())?);
    let scheduler = start_scheduler(settings, db, payments).await?;
    scheduler.run(shutdown_on_signal()).await?;
    Ok(())
}

/// The sale with the payment provider of `[gateway.payments]`, for the scheduler's
/// reconciliation: the scheduler talks to the same provider as the gateways.
fn payments(settings: &Settings, db: Database) -> anyhow::Result<sales::Sales> {
    let provider = stripe_client::StripeClient::new(settings.gateway.payments.stripe())?;
    Ok(sales::Sales::new(db, settings.gateway.sales_settings(), std::sync::Arc::new(provider)))
}

/// Every service in one process, stopping together: for local use and demos.
pub async fn all(settings: &Settings) -> anyhow::Result<()> {
    let db = database(settings).await?;
    let gateway = build_gateway(settings, db.clone()).await?;
    let waitroom = build_waitroom(settings).await?;
    let payments = Some(payments(settings, db.clone())?);
    let scheduler = start_scheduler(settings, db.clone(), payments).await?;
    let shutdown = shutdown_on_signal();
    let admitter = tokio::spawn(waitroom::run_admitter(waitroom.admitter(), shutdown.clone()));
    let (gateway, waitroom, scheduler) =
        tokio::join!(gateway.run(shutdown.clone()), waitroom.run(shutdown.clone()), scheduler.run(shutdown.clone()));
    shutdown.cancel();
    admitter.await?;
    gateway?;
    waitroom?;
    scheduler?;
    Ok(())
}

async fn build_gateway(settings: &Settings, db: Database) -> anyhow::Result<gateway::Application> {
    let public_keys = access_token::keys::read_public_keys(&settings.tokens.keys_dir)
        .context("the gateway needs the waiting room's public keys (run `boxoffice keygen`)")?;
    let verifier = TokenVerifier::new(&public_keys, settings.gateway.token_leeway_secs);
    let gateway = gateway::Application::build(&settings.gateway, db, verifier, ticket_keys(settings)?)
        .await
        .with_context(|| format!("gateway cannot listen on {}", settings.gateway.listen))?;
    let every = settings.gateway.key_reload_interval();
    let tickets = &settings.tickets;
    // The waiting room's Redis carries the gateways' distress to its admitter; connected
    // lazily, so a gateway starts and sells while Redis is down.
    let report_to = gateway::distress::ReportTo {
        redis: settings.redis.connection_manager().context("redis.url")?,
        prefix: settings.redis.key_prefix.clone(),
    };
    Ok(gateway
        .reload_keys_from(settings.tokens.keys_dir.clone(), every)
        .reload_ticket_keys_from(tickets.keys_dir.clone(), tickets.signing_kid.clone(), every)
        .report_distress_to(report_to))
}

/// The scheduler, with the ticket keys its confirmation emails sign with (D6: the
/// process that mails tickets issues them) when emails are on, read again while it runs.
async fn start_scheduler(
    settings: &Settings,
    db: Database,
    payments: Option<sales::Sales>,
) -> anyhow::Result<scheduler::Scheduler> {
    let emails_on = settings.scheduler.smtp.url().is_some();
    let keys = if emails_on { ticket_keys(settings)? } else { None };
    let scheduler = scheduler::Scheduler::start(&settings.scheduler, db, payments, keys).await?;
    let files = &settings.tickets;
    Ok(scheduler.reload_ticket_keys_from(files.keys_dir.clone(), files.signing_kid.clone()))
}

/// The ticket keys of `[tickets]`: with the signing key when its file is there, else the
/// public keys alone (they verify scans; nothing is signed until the private key's file
/// appears and is read again), else None; each with a warning. A bad file is an error.
fn ticket_keys(settings: &Settings) -> anyhow::Result<Option<std::sync::Arc<sales::tickets::TicketKeys>>> {
    let files = &settings.tickets;
    let private = files.keys_dir.join(format!("{}.private.pem", files.signing_kid));
    let keygen = format!("boxoffice keygen --kid {} --out {}", files.signing_kid, files.keys_dir.display());
    let keys = match sales::tickets::TicketKeys::read(&files.keys_dir, &files.signing_kid) {
        Err(KeyError::NoPublicKeys(_) | KeyError::Read { .. }) if !private.exists() => {
            tracing::warn!(path = %private.display(), "no ticket keys: tickets cannot be shown or checked (run `{keygen}`)");
            return Ok(None);
        }
        read => read.with_context(|| format!("reading the ticket keys in {}", files.keys_dir.display()))?,
    };
    if keys.signer().is_none() {
        tracing::warn!(
            path = %private.display(),
            "no ticket signing key: scans are checked with the public keys, but no ticket can be shown or mailed \
             until this file is there (run `{keygen}`)"
        );
    }
    Ok(Some(std::sync::Arc::new(keys)))
}

/// Starts whether or not Redis and PostgreSQL are up: both connect on first use (see
/// `service_kit::redis_conn`, `PostgresConfig::database`), so until Redis answers the
/// waiting room serves `/healthz`, reports `/readyz` 503 naming redis and answers `503
/// unavailable`, and until PostgreSQL has answered once `/readyz` names postgres; then
/// it serves without a restart. Its pool is its own, of
/// `waitroom.database_max_connections`.
async fn build_waitroom(settings: &Settings) -> anyhow::Result<waitroom::Application> {
    let redis = settings.redis.connection_manager().context("redis.url")?;
    let database =
        PostgresConfig { max_connections: settings.waitroom.database_max_connections, ..settings.database.clone() }
            .database()
            .context("database.url")?;
    let signing = KeyPair::read_private(&settings.tokens.signing_key_path())
        .context("the waiting room needs a signing key (run `boxoffice keygen`)")?;
    let public_keys = access_token::keys::read_public_keys(&settings.tokens.keys_dir)?;
    let receipts = &settings.receipts;
    let receipt_keys = if receipts.keys_dir.join(format!("{}.private.pem", receipts.signing_kid)).exists() {
        let keys = waitroom::domain::receipt::ReceiptKeys::read(&receipts.keys_dir, &receipts.signing_kid)
            .with_context(|| format!("reading the receipt keys in {}", receipts.keys_dir.display()))?;
        Some(std::sync::Arc::new(keys))
    } else {
        tracing::warn!(
            "no receipt signing key: admission receipts and the admission log answer 503 (run `boxoffice keygen \
             --kid {} --out {}`)",
            receipts.signing_kid,
            receipts.keys_dir.display()
        );
        None
    };
    waitroom::Application::build(
        &settings.waitroom,
        redis,
        &settings.redis.key_prefix,
        database,
        TokenSigner::new(&signing),
        &public_keys,
        receipt_keys,
    )
    .await
    .with_context(|| format!("waiting room cannot listen on {}", settings.waitroom.listen))
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    apply_migrations(settings).await?;
    tracing::info!("migrations applied");
    Ok(())
}

/// On a connection of its own, without the services' statement timeout.
async fn apply_migrations(settings: &Settings) -> anyhow::Result<()> {
    let mut conn =
        settings.database.migration_connect_options()?.connect().await.context("connecting to PostgreSQL")?;
    schema::MIGRATOR.run(&mut conn).await.context("applying migrations")?;
    conn.close().await?;
    Ok(())
}

/// How long `boxoffice waitroom` waits between attempts to apply the migrations.
const MIGRATE_RETRY: Duration = Duration::from_secs(2);
/// One attempt's bound: a partitioned PostgreSQL would otherwise hold it forever.
const MIGRATE_ATTEMPT: Duration = Duration::from_secs(30);

/// `boxoffice waitroom` must start while PostgreSQL is down (fans' joins and polls do
/// not need it), so with `database.migrate_on_start` it applies the migrations in the
/// background as soon as PostgreSQL answers; `/readyz` names postgres until its tables
/// exist. Several replicas may try at once: the migrator serialises them with an
/// advisory lock.
async fn migrate_when_reachable(settings: &Settings, shutdown: &CancellationToken) {
    let mut failures = 0u64;
    loop {
        let attempt = tokio::time::timeout(MIGRATE_ATTEMPT, apply_migrations(settings)).await;
        match attempt.unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {MIGRATE_ATTEMPT:?}"))) {
            Ok(()) => {
                tracing::info!(failures, "migrations applied");
                return;
            }
            Err(e) if failures == 0 => {
                tracing::warn!(error = format!("{e:#}"), "cannot apply migrations yet; retrying")
            }
            Err(_) => {}
        }
        failures += 1;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(MIGRATE_RETRY) => {}
        }
    }
}

pub fn keygen(kid: &str, dir: &Path, force: bool) -> anyhow::Result<()> {
    let private = dir.join(format!("{kid}.private.pem"));
    if private.exists() && !force {
        anyhow::bail!("{} exists; pass --force to replace it", private.display());
    }
    let (private, public) = KeyPair::generate(kid)?.write_to_dir(dir)?;
    println!("wrote {} and {}", private.display(), public.display());
    Ok(())
}

pub fn token(settings: &Settings, event: uuid::Uuid, fan: &str, ttl: i64) -> anyhow::Result<()> {
    let pair = KeyPair::read_private(&settings.tokens.signing_key_path())?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    println!("{}", TokenSigner::new(&pair).sign(&AccessClaims::new(fan, event, now, ttl)));
    Ok(())
}

async fn database(settings: &Settings) -> anyhow::Result<Database> {
    if settings.database.migrate_on_start {
        apply_migrations(settings).await.context("at start-up")?;
    }
    Ok(settings.database.database()?)
}

/// Cancelled on SIGTERM or Ctrl-C: every service stops accepting and drains.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM; Ctrl-C still works");
                let _ = ctrl_c.await;
                cancel.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// `boxoffice loadtest`: the scenario from a file and/or flags (flags win).
#[derive(clap::Args)]
pub struct LoadtestArgs {
    /// A scenario file (see crates/simulator/scenarios/).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Waiting-room base URLs, used in turn (repeat or comma-separate for replicas).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    waitroom: Vec<String>,
    /// Gateway base URLs, used in turn.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8081")]
    gateway: Vec<String>,
    #[arg(long)]
    fans: Option<u32>,
    /// Reserved seating as ROWSxSEATS, e.g. 10x20.
    #[arg(long, value_parser = parse_rows)]
    rows: Option<(u32, u32)>,
    /// General-admission places.
    #[arg(long)]
    general_admission: Option<u32>,
    /// all-at-once, ramp or pre-queue.
    #[arg(long)]
    arrival: Option<String>,
    #[arg(long)]
    admit_rate: Option<f64>,
    #[arg(long)]
    max_seconds: Option<u64>,
    #[arg(long)]
    concurrency: Option<usize>,
    /// The share of fans who wait in line on the standing stream (SSE) rather than
    /// polling.
    #[arg(long)]
    stream_share: Option<f64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Faults injected during the sale (`NAME START END` lines, Unix seconds), read
    /// when it is over: the report gives each one's recovery (scripts/rehearse --chaos).
    #[arg(long)]
    faults_file: Option<PathBuf>,
    /// The payments sandbox the gateways pay through (`boxoffice payments-sandbox`):
    /// the rehearsal sets its webhook faults (below) through its control route.
    #[arg(long)]
    payments_sandbox: Option<String>,
    /// The sandbox's secret key (default: gateway.payments.secret_key, the one the
    /// gateways use).
    #[arg(long, env = "BOXOFFICE_LOADTEST_SANDBOX_KEY", hide_env_values = true)]
    payments_sandbox_key: Option<String>,
    /// The price of every place in cents (0: a free event, nothing paid).
    #[arg(long)]
    price_minor: Option<u32>,
    /// The share of paying fans whose first card is declined (they retry once).
    #[arg(long)]
    decline_rate: Option<f64>,
    /// Every webhook's first delivery waits this long (needs --payments-sandbox).
    #[arg(long)]
    webhook_delay_ms: Option<u64>,
    /// The chance that a webhook is late by --webhook-late-ms (needs --payments-sandbox).
    #[arg(long)]
    webhook_late_rate: Option<f64>,
    #[arg(long)]
    webhook_late_ms: Option<u64>,
    /// The chance that a webhook is delivered twice (needs --payments-sandbox).
    #[arg(long)]
    webhook_duplicate_rate: Option<f64>,
    /// The chance that a webhook is never delivered (needs --payments-sandbox).
    #[arg(long)]
    webhook_drop_rate: Option<f64>,
    /// How long, after the crowd, to wait for payments taken but not yet booked or
    /// refunded before judging them.
    #[arg(long)]
    settle_secs: Option<u64>,
}

fn parse_rows(raw: &str) -> Result<(u32, u32), String> {
    let (rows, seats) = raw.split_once('x').ok_or("expected ROWSxSEATS, e.g. 10x20")?;
    Ok((rows.parse().map_err(|e| format!("{e}"))?, seats.parse().map_err(|e| format!("{e}"))?))
}

impl LoadtestArgs {
    fn scenario(&self) -> anyhow::Result<simulator::Scenario> {
        let mut scenario = match &self.scenario {
            Some(path) => simulator::Scenario::from_file(path)?,
            None => simulator::Scenario::default(),
        };
        if let Some(fans) = self.fans {
            scenario.fans = fans;
        }
        if let Some((rows, seats)) = self.rows {
            (scenario.rows, scenario.seats_per_row) = (rows, seats);
        }
        if let Some(places) = self.general_admission {
            scenario.general_admission = places;
        }
        if let Some(arrival) = &self.arrival {
            scenario.arrival = serde_json::from_value(serde_json::Value::String(arrival.clone()))
                .map_err(|_| anyhow::anyhow!("--arrival must be all-at-once, ramp or pre-queue"))?;
        }
        if let Some(rate) = self.admit_rate {
            scenario.admit_rate = rate;
        }
        if let Some(seconds) = self.max_seconds {
            scenario.max_seconds = seconds;
        }
        if let Some(concurrency) = self.concurrency {
            scenario.concurrency = concurrency;
        }
        if let Some(share) = self.stream_share {
            scenario.stream_share = share;
        }
        if let Some(price) = self.price_minor {
            scenario.price_minor = price;
        }
        let payments = &mut scenario.payments;
        if let Some(rate) = self.decline_rate {
            payments.decline_rate = rate;
        }
        if let Some(delay) = self.webhook_delay_ms {
            payments.webhook_delay_ms = delay;
        }
        if let Some(rate) = self.webhook_late_rate {
            payments.webhook_late_rate = rate;
        }
        if let Some(late) = self.webhook_late_ms {
            payments.webhook_late_ms = late;
        }
        if let Some(rate) = self.webhook_duplicate_rate {
            payments.webhook_duplicate_rate = rate;
        }
        if let Some(rate) = self.webhook_drop_rate {
            payments.webhook_drop_rate = rate;
        }
        if let Some(settle) = self.settle_secs {
            payments.settle_secs = settle;
        }
        scenario.validate()?;
        Ok(scenario)
    }
}

pub async fn loadtest(settings: &Settings, args: LoadtestArgs) -> anyhow::Result<()> {
    let scenario = args.scenario()?;
    let targets = simulator::Targets {
        waitrooms: args.waitroom.clone(),
        gateways: args.gateway.clone(),
        waitroom_admin_key: settings.waitroom.admin_api_key.expose_secret().to_owned(),
        gateway_admin_key: settings.gateway.admin_api_key.expose_secret().to_owned(),
        database_url: settings.database.url.expose_secret().to_owned(),
        faults_file: args.faults_file.clone(),
        payments_sandbox: args.payments_sandbox.clone().map(|url| simulator::api::Sandbox {
            url,
            secret_key: args
                .payments_sandbox_key
                .clone()
                .unwrap_or_else(|| settings.gateway.payments.secret_key.expose_secret().to_owned()),
        }),
    };
    let report = simulator::run(&scenario, targets, !args.quiet).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    anyhow::ensure!(report.broken.is_empty(), "the sale broke: {}", report.broken.join("; "));
    Ok(())
}

/// `boxoffice payments-sandbox`: every default is the local one `scripts/run` uses.
#[derive(clap::Args)]
pub struct PaymentsSandboxArgs {
    /// Where the sandbox listens (its API, payment page and control routes).
    #[arg(long, env = "BOXOFFICE_PAYMENTS_SANDBOX_LISTEN", default_value = "127.0.0.1:12111")]
    listen: std::net::SocketAddr,
    /// The secret key API calls must carry (`Authorization: Bearer …`).
    #[arg(
        long,
        env = "BOXOFFICE_PAYMENTS_SANDBOX_SECRET_KEY",
        default_value = "sk_test_boxoffice_sandbox_change-me",
        hide_env_values = true
    )]
    secret_key: String,
    /// Where events are delivered (the gateway's webhook route).
    #[arg(
        long,
        env = "BOXOFFICE_PAYMENTS_SANDBOX_WEBHOOK_URL",
        default_value = "http://127.0.0.1:8081/v1/payments/webhooks"
    )]
    webhook_url: String,
    /// The webhook signing secret (`whsec_…`).
    #[arg(
        long,
        env = "BOXOFFICE_PAYMENTS_SANDBOX_WEBHOOK_SECRET",
        default_value = "whsec_boxoffice_sandbox_change-me",
        hide_env_values = true
    )]
    webhook_secret: String,
    /// The event types sent to the endpoint, comma-separated (`*`: all), as a Stripe
    /// endpoint's `enabled_events`; by default the ones boxoffice acts on.
    #[arg(long, env = "BOXOFFICE_PAYMENTS_SANDBOX_ENABLED_EVENTS", default_value_t = stripe_client::EVENTS_TO_SUBSCRIBE.join(","))]
    enabled_events: String,
    /// Faults to start with, as the JSON `POST /_sandbox/faults` takes, e.g.
    /// '{"webhook_delay_ms": 30000, "webhook_drop_probability": 0.01}'.
    #[arg(long, env = "BOXOFFICE_PAYMENTS_SANDBOX_FAULTS")]
    faults: Option<String>,
    /// Seeds the fault decisions, so a rehearsal repeats.
    #[arg(long, env = "BOXOFFICE_PAYMENTS_SANDBOX_SEED", default_value_t = 0)]
    seed: u64,
    /// First webhook retry after this many milliseconds, then multiplied by
    /// --retry-factor up to --retry-max-delay-ms, for --retry-attempts attempts in all.
    #[arg(long, default_value_t = 1_000)]
    retry_base_ms: u64,
    #[arg(long, default_value_t = 2.0)]
    retry_factor: f64,
    #[arg(long, default_value_t = 60_000)]
    retry_max_delay_ms: u64,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    retry_attempts: u32,
    /// One webhook delivery attempt's bound, in milliseconds.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    delivery_timeout_ms: u64,
}

pub async fn payments_sandbox(args: PaymentsSandboxArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.retry_factor.is_finite() && args.retry_factor >= 1.0, "--retry-factor must be at least 1");
    let faults = match &args.faults {
        Some(json) => serde_json::from_str(json).context("--faults is not the faults JSON")?,
        None => payments_sandbox::Faults::default(),
    };
    let mut config = payments_sandbox::SandboxConfig::new(args.secret_key);
    let enabled: Vec<&str> = args.enabled_events.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    anyhow::ensure!(!enabled.is_empty(), "--enabled-events names no event type");
    config.webhook =
        Some(payments_sandbox::WebhookEndpoint::new(args.webhook_url.clone(), args.webhook_secret).only(&enabled));
    config.faults = faults;
    config.seed = args.seed;
    config.retry = payments_sandbox::RetryPolicy {
        base: Duration::from_millis(args.retry_base_ms),
        factor: args.retry_factor,
        max_delay: Duration::from_millis(args.retry_max_delay_ms),
        max_attempts: args.retry_attempts,
    };
    config.delivery_timeout = Duration::from_millis(args.delivery_timeout_ms);
    if !args.listen.ip().is_loopback() {
        tracing::warn!(listen = %args.listen, "the payments sandbox takes no real money but answers anyone who can reach it");
    }
    let sandbox = payments_sandbox::spawn(args.listen, config).await?;
    tracing::info!(url = %sandbox.url(), webhook = %args.webhook_url, "payments sandbox running");
    shutdown_on_signal().cancelled().await;
    sandbox.shutdown().await;
    Ok(())
}
