//! `boxoffice`: one binary for every service. See `boxoffice --help`.

mod commands;
mod settings;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use service_kit::settings::Section;
use settings::Settings;

/// A request allocates many small buffers; under glibc malloc a queue join spent about a
/// quarter of its CPU time in the allocator (perf, `scripts/bench-waitroom`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// boxoffice: a virtual waiting room and booking gateway that sells every seat once.
///
/// Configuration comes from config/default.toml (built in), then --config FILE, then
/// environment variables such as BOXOFFICE__DATABASE__URL or BOXOFFICE__GATEWAY__LISTEN.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// A TOML file overriding the built-in defaults.
    #[arg(long, global = true, env = "BOXOFFICE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the waiting room, the gateway and the scheduler in one process (for local use
    /// and demos).
    All,
    /// Run the booking gateway (events, holds, bookings).
    Gateway,
    /// Run the waiting room (queues, admission, access tokens) with its admitter.
    Waitroom,
    /// Run the scheduler (releases expired holds, purges old idempotency keys).
    Scheduler,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Write a new access-token key pair (<kid>.private.pem, <kid>.public.pem).
    Keygen {
        /// Key id; tokens name it so keys can rotate.
        #[arg(long, default_value = "dev")]
        kid: String,
        /// Directory to write into (default: tokens.keys_dir from the configuration).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing key pair of the same id.
        #[arg(long)]
        force: bool,
    },
    /// Rehearse a flash sale against running services: a crowd of fans queues, gets
    /// admitted and books; then the database is checked for oversell. Exits non-zero
    /// if anything was sold twice, oversold, or answered 5xx. Loopback only.
    Loadtest(Box<commands::LoadtestArgs>),
    /// Run the payments sandbox: a local, Stripe-shaped payment provider with a hosted
    /// payment page and signed webhooks (no real money; for local runs and rehearsals).
    PaymentsSandbox(commands::PaymentsSandboxArgs),
    /// Print an access token signed with the local key, for trying the gateway without
    /// the waiting room (development only).
    Token {
        /// The event the fan is admitted to.
        #[arg(long)]
        event: uuid::Uuid,
        /// The fan's id.
        #[arg(long, default_value = "fan-1")]
        fan: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 900)]
        ttl: i64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("boxoffice: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let serves: &[&str] = match cli.command {
        Command::All => settings::ALL_SERVICES,
        Command::Gateway => &[gateway::GatewayConfig::KEY],
        Command::Waitroom => &[waitroom::WaitroomConfig::KEY],
        Command::Scheduler => &[scheduler::SchedulerConfig::KEY],
        Command::Migrate
        | Command::Keygen { .. }
        | Command::Loadtest(_)
        | Command::Token { .. }
        | Command::PaymentsSandbox(_) => &[],
    };
    let settings = Settings::load(cli.config.as_deref(), serves)?;
    service_kit::telemetry::init(&settings.log);
    service_kit::metrics::install();
    // Only where it serves: a tool's output (`loadtest --json` on stdout, with the logs)
    // must stay what it says it is.
    if settings.development && !serves.is_empty() {
        tracing::warn!(
            "development = true: development secrets are accepted on any listener and, without \
             waitroom.fan_id_secret, fans may join under any id they choose; never in front of real fans"
        );
    }
    match cli.command {
        Command::All => commands::all(&settings).await,
        Command::Gateway => commands::gateway(&settings).await,
        Command::Waitroom => commands::waitroom(&settings).await,
        Command::Scheduler => commands::scheduler(&settings).await,
        Command::Migrate => commands::migrate(&settings).await,
        Command::Keygen { kid, out, force } => {
            commands::keygen(&kid, out.as_deref().unwrap_or(&settings.tokens.keys_dir), force)
        }
        Command::Token { event, fan, ttl } => commands::token(&settings, event, &fan, ttl),
        Command::Loadtest(args) => commands::loadtest(&settings, *args).await,
        Command::PaymentsSandbox(args) => commands::payments_sandbox(args).await,
    }
}
