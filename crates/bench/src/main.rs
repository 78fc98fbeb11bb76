//! `boxoffice-bench`: load against a running boxoffice, on loopback only.
//!
//! - `gateway`: booking throughput and latency per scenario and client count, next to
//!   the PostgreSQL ceiling for comparable SQL measured by pgbench in the same run.
//! - `race`: the classic oversell race, printed for people to watch.
//! - `waitroom`: joins and polls through the waiting room with a million fans in
//!   line, then polls again while the admitter lets fans in (and records each
//!   admission in PostgreSQL), next to redis-benchmark ceilings for the same Redis
//!   commands in the same run.
//! - `best-available`: the cost of one best-available order on a 100 x 1,000 and a
//!   1 x 100,000 seat section, beside the 5 ms ceiling (and the algorithm it replaced).
//! - `pow`: proof of work at the door: solve times per difficulty and the server's
//!   verification cost per join.

mod best_available;
mod chaos_proxy;
mod client;
mod gateway_bench;
mod http1;
mod line_stream_bench;
mod load;
mod pgbench;
mod pow_bench;
mod race;
mod redis_ceiling;
mod redis_queue;
mod seat_stream_bench;
mod server_cost;
mod waitroom_bench;
mod waitroom_client;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The load generator shares the machine with what it measures: the less CPU it burns
/// in the allocator, the more is left for the services.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Load generators for boxoffice (loopback only)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the gateway under test is and how to act as organizer and as admitted fans.
#[derive(clap::Args, Clone)]
pub struct Target {
    /// The gateway's base URL; must be on this machine.
    #[arg(long, default_value = "http://127.0.0.1:8081")]
    gateway: String,
    /// The organizer's admin API key.
    #[arg(long, env = "BOXOFFICE__GATEWAY__ADMIN_API_KEY", default_value = "dev-admin-key-change-me")]
    admin_key: String,
    /// A private key the gateway trusts, to sign fans' access tokens.
    #[arg(long, default_value = "keys/dev.private.pem")]
    signing_key: PathBuf,
    /// The gateway's process id: its CPU time is added to what an order costs the server
    /// (`gateway`), its memory is read (`seat-stream`).
    #[arg(long)]
    gateway_pid: Option<u32>,
}

/// Where the waiting room under test is, and the Redis it keeps its queues in.
#[derive(clap::Args, Clone)]
pub struct WaitroomTarget {
    /// The waiting room's base URL; must be on this machine.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    waitroom: String,
    /// The waiting room's management listener (`/metrics`); must be on this machine.
    #[arg(long, default_value = "http://127.0.0.1:9080")]
    waitroom_management: String,
    /// The organizer's admin API key for the waiting room.
    #[arg(long, env = "BOXOFFICE__WAITROOM__ADMIN_API_KEY", default_value = "dev-admin-key-change-me")]
    admin_key: String,
    /// The waiting room's Redis; must be on this machine.
    #[arg(long, env = "BOXOFFICE__REDIS__URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The waiting room's key prefix: one made for this run (`bench-…`), since
    /// everything under it is deleted afterwards.
    #[arg(long, env = "BOXOFFICE__REDIS__KEY_PREFIX")]
    key_prefix: String,
}

#[derive(Subcommand)]
enum Command {
    /// Measure booking throughput and latency against pgbench ceilings.
    Gateway {
        #[command(flatten)]
        target: Target,
        /// The gateway's database, for the pgbench ceilings and the oversell check.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/boxoffice_bench")]
        database_url: String,
        /// Client counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "8,32,64")]
        clients: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Scenarios to run: distinct, contended, hot-ga, hold-confirm, paid-checkout, checkins.
        #[arg(long, value_delimiter = ',', default_value = "distinct,contended,hot-ga")]
        scenarios: Vec<gateway_bench::Scenario>,
        /// Where the paid scenario's payments sandbox listens (the gateway's
        /// `gateway.payments.api_base`).
        #[arg(long, default_value = "127.0.0.1:18111")]
        sandbox_listen: std::net::SocketAddr,
        #[arg(long, default_value = "sk_test_bench")]
        sandbox_secret_key: String,
        #[arg(long, default_value = "whsec_bench")]
        sandbox_webhook_secret: String,
        /// Create every event with this `max_per_fan`, so each order runs the database's
        /// per-fan limit check; each client becomes a new fan every this many orders, so
        /// none is refused. Run with and without it to measure the check's cost (D9).
        #[arg(long)]
        max_per_fan: Option<u32>,
    },
    /// Measure joins and polls with a deep queue against redis-benchmark ceilings.
    Waitroom {
        #[command(flatten)]
        target: WaitroomTarget,
        /// Fans already in line before anything is measured.
        #[arg(long, default_value_t = 1_000_000)]
        fans: u64,
        /// Concurrent HTTP clients; each count is measured in turn.
        #[arg(long, value_delimiter = ',', default_value = "16,64")]
        clients: Vec<usize>,
        /// Seconds per HTTP measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Distinct deep-in-line fans the pollers poll.
        #[arg(long, default_value_t = 1_000)]
        tickets: usize,
        /// Requests per redis-benchmark run.
        #[arg(long, default_value_t = 200_000)]
        ceiling_requests: u64,
        /// Fans a second admitted during the last measurement (polls while admitting).
        #[arg(long, default_value_t = 5_000.0)]
        admit_rate: f64,
    },
    /// Fans streaming their standing: N streams open on one waiting room while the line
    /// is admitted; admission-to-token delivery and the Redis calls it costs.
    LineStream {
        #[command(flatten)]
        target: WaitroomTarget,
        /// Fan counts to measure, one after the other (each in an event of its own).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        fans: Vec<usize>,
        /// Fans a second admitted while measuring.
        #[arg(long, default_value_t = 200.0)]
        admit_rate: f64,
        /// Seconds of admission.
        #[arg(long, default_value_t = 10)]
        admit_secs: u64,
    },
    /// Ten fans race for five places; print who won.
    Race {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 5)]
        places: u32,
        #[arg(long, default_value_t = 10)]
        fans: usize,
    },
    /// Time one best-available order on 100 x 1,000 and 1 x 100,000 seats, in a
    /// database of its own (`BOXOFFICE_TEST_DATABASE_URL`, by default the local server).
    BestAvailable {
        /// Orders timed per layout.
        #[arg(long, default_value_t = 200)]
        orders: usize,
        /// Orders timed per layout with the algorithm before issue 19 (0: skip it).
        #[arg(long, default_value_t = 20)]
        before_orders: usize,
        /// Seats an order asks for.
        #[arg(long, default_value_t = 4)]
        quantity: u32,
    },
    /// What proof of work at the door costs: solve times per difficulty (native) and
    /// the server's verification per join. No services needed.
    Pow {
        /// Organizer difficulties to measure.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,5000")]
        difficulties: Vec<u32>,
        /// PBKDF2 iterations per counter tried (`waitroom.pow.cost`).
        #[arg(long, default_value_t = 100)]
        cost: u32,
        /// Challenges solved per difficulty.
        #[arg(long, default_value_t = 20)]
        challenges: usize,
        /// Proofs verified to time the server's side.
        #[arg(long, default_value_t = 2000)]
        verifications: usize,
        /// Instead: write challenges for a browser to solve (`scripts/bench-pow-browser`).
        #[arg(long)]
        write_browser_challenges: Option<PathBuf>,
        /// Instead: report a browser's solve times and verify its proofs.
        #[arg(long)]
        report_browser_solutions: Option<PathBuf>,
    },
    /// The live seat map's fan-out: viewers streaming one event from one gateway, a
    /// burst of seat changes, delivery from commit to viewer; snapshot and layout sizes.
    SeatStream {
        #[command(flatten)]
        target: Target,
        /// The gateway's database: the bench commits the seat changes itself.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/boxoffice_bench")]
        database_url: String,
        /// Viewer counts to measure, one after the other.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        viewers: Vec<usize>,
        #[arg(long, default_value_t = 50)]
        rows: u32,
        #[arg(long, default_value_t = 1000)]
        seats_per_row: u32,
        /// Seat changes in the burst, one statement each.
        #[arg(long, default_value_t = 200)]
        changes: usize,
        #[arg(long, default_value_t = 50)]
        changes_per_second: u64,
        /// Carry the viewers over HTTP/2 (h2c), this many streams on each connection, as
        /// an ingress speaking HTTP/2 to the gateway would; without it each viewer has an
        /// HTTP/1.1 connection of its own. The gateway takes up to 200 streams a connection.
        #[arg(long)]
        http2_streams_per_connection: Option<usize>,
    },
    /// A fault-injecting TCP proxy for scripts: forwards `--listen` to `--upstream`
    /// and obeys `freeze`, `thaw` and `drop`, one per line on stdin.
    ChaosProxy {
        /// Where to listen; loopback only.
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// Where to forward, e.g. PostgreSQL at 127.0.0.1:5432.
        #[arg(long)]
        upstream: std::net::SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Gateway {
            target,
            database_url,
            clients,
            seconds,
            scenarios,
            sandbox_listen,
            sandbox_secret_key,
            sandbox_webhook_secret,
            max_per_fan,
        } => {
            let duration = std::time::Duration::from_secs(seconds);
            let sandbox = gateway_bench::Sandbox {
                listen: sandbox_listen,
                secret_key: sandbox_secret_key,
                webhook_secret: sandbox_webhook_secret,
            };
            let options = gateway_bench::EventOptions { max_per_fan };
            gateway_bench::run(&target, &database_url, &scenarios, &clients, duration, &sandbox, options).await
        }
        Command::Race { target, places, fans } => race::run(&target, places, fans).await,
        Command::ChaosProxy { listen, upstream } => chaos_proxy::run(listen, upstream).await,
        Command::Pow {
            difficulties,
            cost,
            challenges,
            verifications,
            write_browser_challenges,
            report_browser_solutions,
        } => {
            let options = pow_bench::Options { difficulties, cost, challenges, verifications };
            match (write_browser_challenges, report_browser_solutions) {
                (Some(path), _) => pow_bench::write_browser_challenges(&options, &path),
                (None, Some(path)) => pow_bench::report_browser_solutions(&options, &path),
                (None, None) => pow_bench::run(&options),
            }
        }
        Command::SeatStream {
            target,
            database_url,
            viewers,
            rows,
            seats_per_row,
            changes,
            changes_per_second,
            http2_streams_per_connection,
        } => {
            let gateway = client::Gateway::connect(&target, 64)?;
            let options = seat_stream_bench::Options {
                viewers,
                rows,
                seats_per_row,
                changes,
                changes_per_second,
                database_url,
                gateway_pid: target.gateway_pid,
                http2_streams_per_connection,
            };
            seat_stream_bench::run(&gateway, &options).await
        }
        Command::BestAvailable { orders, before_orders, quantity } => {
            best_available::run(&best_available::Options { orders, before_orders, quantity }).await
        }
        Command::LineStream { target, fans, admit_rate, admit_secs } => {
            let waitroom = waitroom_client::Waitroom::connect(
                &target.waitroom,
                &target.waitroom_management,
                &target.admin_key,
                64,
            )?;
            let options = line_stream_bench::Options {
                fans,
                admit_rate,
                admit_secs,
                redis_url: target.redis_url.clone(),
                key_prefix: target.key_prefix.clone(),
            };
            line_stream_bench::run(&waitroom, &options).await
        }
        Command::Waitroom { target, fans, clients, seconds, tickets, ceiling_requests, admit_rate } => {
            let duration = std::time::Duration::from_secs(seconds);
            let options = waitroom_bench::Options { fans, clients, duration, tickets, ceiling_requests, admit_rate };
            waitroom_bench::run(&target, &options).await
        }
    }
}
