//! Joins and polls through a running waiting room with a million fans already in
//! line, beside redis-benchmark ceilings for the same Redis commands in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures::{StreamExt, TryStreamExt};
use redis::aio::MultiplexedConnection;
use uuid::Uuid;
use waitroom::store::{scripts, EventKey, EventKeys};

use crate::client::ensure_loopback;
use crate::load::{closed_loop, Report};
use crate::redis_ceiling::{self, Ceiling, RedisBenchmark};
use crate::redis_queue::{self, prefilled_fan, Prefill, PREFILLED_FAN_PREFIX};
use crate::waitroom_client::{self, Ticket, Waitroom};
use crate::WaitroomTarget;

/// Fans redis-benchmark joins: never a pre-filled fan, nor each other (mostly: the
/// keyspace is large, so a repeated draw is rare).
const CEILING_ZADD_FAN_PREFIX: &str = "00000000-0000-4000-8001-";
const CEILING_JOIN_FAN_PREFIX: &str = "00000000-0000-4000-8002-";
const NEW_FAN_KEYSPACE: u64 = 1_000_000_000;

/// Targets from issue 3.
const JOIN_SHARE_OF_ZADD: f64 = 0.30;
const POLL_P99_MS: f64 = 10.0;

pub struct Options {
    pub fans: u64,
    pub clients: Vec<usize>,
    pub duration: Duration,
    /// Distinct deep-in-line fans whose tickets the pollers cycle through.
    pub tickets: usize,
    pub ceiling_requests: u64,
    /// Fans a second the admitter lets in while the last poll run is repeated.
    pub admit_rate: f64,
}

pub async fn run(target: &WaitroomTarget, options: &Options) -> anyhow::Result<()> {
    ensure_disposable(&target.key_prefix)?;
    ensure_loopback(&target.redis_url)?;
    ensure!(options.fans >= 2 * options.tickets as u64, "--fans must be at least twice --tickets");
    let redis = redis::Client::open(target.redis_url.as_str())?;
    // Setup reads every element of million-entry keys (`MEMORY USAGE … SAMPLES 0`):
    // seconds, longer than the client's default response timeout.
    let setup = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut conn = redis.get_multiplexed_async_connection_with_config(&setup).await.context("connecting to Redis")?;
    let measured = measure(target, options, &redis, &mut conn).await;
    // Whatever happened, the million fans do not stay behind.
    let cleaned = redis_queue::remove_prefix(&mut conn, &target.key_prefix).await;
    if let Ok(removed) = &cleaned {
        println!("cleanup: unlinked {removed} keys under {}:*", target.key_prefix);
    }
    measured?;
    cleaned.map(drop)
}

/// Everything under the prefix is deleted at the end, so it must be one made for
/// this run, never the prefix of real data.
fn ensure_disposable(prefix: &str) -> anyhow::Result<()> {
    let plain = prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ensure!(
        prefix.starts_with("bench-") && plain,
        "the key prefix {prefix:?} must start with \"bench-\" and be letters, digits, '-' or '_': \
         everything under it is deleted after the run"
    );
    Ok(())
}

async fn measure(
    target: &WaitroomTarget,
    options: &Options,
    redis: &redis::Client,
    conn: &mut MultiplexedConnection,
) -> anyhow::Result<()> {
    let most_clients = options.clients.iter().copied().max().unwrap_or(1);
    let waitroom = Waitroom::connect(&target.waitroom, &target.waitroom_management, &target.admin_key, most_clients)?;
    let event_id = Uuid::new_v4();
    let keys = EventKeys::new(&target.key_prefix, event_id);
    waitroom.configure_paused(event_id).await?;
    println!(
        "boxoffice waitroom benchmark: {} at {}, Redis prefix {}, event {event_id} (paused: nobody leaves the line)",
        target.waitroom, target.redis_url, target.key_prefix
    );

    let prefill = redis_queue::prefill(conn, &keys, options.fans).await?;
    let memory = MemoryPerFan::new(&prefill, options.fans);
    println!(
        "setup (not measured): {} fans queued directly in Redis in {:.1} s, pipelined ZADD + HSET as locate.lua writes a join",
        options.fans,
        prefill.elapsed.as_secs_f64()
    );
    println!(
        "redis memory per queued fan: {:.0} B = queue sorted set {:.0} B + last-seen hash {:.0} B \
         (MEMORY USAGE, all elements); server used_memory grew {:.0} B per fan",
        memory.total(),
        memory.queue,
        memory.seen,
        memory.used_memory_growth
    );

    let tickets = deep_tickets(&waitroom, event_id, most_clients, options).await?;
    let mut runs = Vec::new();
    for &clients in &options.clients {
        let joins = measure_joins(&waitroom, event_id, clients, options.duration).await?;
        let polls = measure_polls(&waitroom, event_id, &tickets, clients, options.duration).await?;
        runs.push(Run { clients, joins, polls });
    }
    let queued = redis_queue::queue_length(conn, &keys).await?;
    let ceilings = measure_ceilings(redis, conn, &keys, options).await?;
    // Last: admitting takes fans off the front of the line the ceilings poll.
    let admitting = measure_admitting(&waitroom, event_id, &tickets, most_clients, options).await?;

    print_table(&runs, &ceilings);
    print_admitting(&admitting, &runs, &ceilings);
    let met = print_targets(&runs, queued, &ceilings, &memory);
    ensure!(met, "targets not met");
    Ok(())
}

/// Redis bytes per queued fan, from one pre-fill.
struct MemoryPerFan {
    queue: f64,
    seen: f64,
    used_memory_growth: f64,
}

impl MemoryPerFan {
    fn new(prefill: &Prefill, fans: u64) -> Self {
        let per_fan = |bytes: f64| bytes / fans as f64;
        Self {
            queue: per_fan(prefill.queue_bytes as f64),
            seen: per_fan(prefill.seen_bytes as f64),
            used_memory_growth: per_fan(prefill.used_memory_growth as f64),
        }
    }

    fn total(&self) -> f64 {
        self.queue + self.seen
    }
}

/// Joins and polls measured at one client count.
struct Run {
    clients: usize,
    joins: Report,
    polls: Report,
}

impl Run {
    fn join_rate(&self) -> f64 {
        self.joins.successes_per_sec()
    }
}

fn print_table(runs: &[Run], ceilings: &Ceilings) {
    println!();
    println!("{:<54} {:>7} {:>9} {:>7} {:>7} {:>7}", "", "clients", "req/s", "p50 ms", "p99 ms", "failed");
    for run in runs {
        for (label, report) in [
            ("waitroom  join: POST …/queue, new fan (HTTP)", &run.joins),
            ("waitroom  poll: GET …/queue/{ticket}, deep fan (HTTP)", &run.polls),
        ] {
            println!(
                "{label:<54} {:>7} {:>9.0} {:>7.2} {:>7.2} {:>6.1}%",
                run.clients,
                report.successes_per_sec(),
                report.percentile_ms(0.50),
                report.percentile_ms(0.99),
                report.rejected_percent()
            );
        }
    }
    for (label, ceiling) in ceilings.rows() {
        println!(
            "{:<54} {:>7} {:>9.0} {:>7.2} {:>7.2}",
            format!("redis-benchmark  {label}"),
            redis_ceiling::CLIENTS,
            ceiling.per_sec,
            ceiling.p50_ms,
            ceiling.p99_ms
        );
    }
    for run in runs {
        for (what, report) in [("join", &run.joins), ("poll", &run.polls)] {
            let other: Vec<String> = report
                .outcomes
                .iter()
                .filter(|(code, _)| *code != "waiting")
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            if !other.is_empty() {
                println!("{what} at {} clients, answers other than waiting: {}", run.clients, other.join(", "));
            }
        }
    }
    println!();
    println!("ratios, waitroom over redis-benchmark in this run:");
    for run in runs {
        let (join_rate, poll_rate) = (run.join_rate(), run.polls.successes_per_sec());
        println!("  {} clients:", run.clients);
        println!("    join / ZADD NX             {:.2}x", join_rate / ceilings.zadd.per_sec);
        println!("    join / EVALSHA locate join {:.2}x", join_rate / ceilings.locate_join.per_sec);
        println!("    poll / ZRANK               {:.2}x", poll_rate / ceilings.zrank.per_sec);
        println!("    poll / EVALSHA locate poll {:.2}x", poll_rate / ceilings.locate_poll.per_sec);
    }
}

/// Prints each target of issue 3 with PASS or FAIL; `true` when all are met. Joins
/// count at their best client count; polls at their worst p99.
fn print_targets(runs: &[Run], queued: u64, ceilings: &Ceilings, memory: &MemoryPerFan) -> bool {
    let best = runs.iter().max_by(|a, b| a.join_rate().total_cmp(&b.join_rate())).expect("at least one client count");
    let worst_poll = runs
        .iter()
        .max_by(|a, b| a.polls.percentile_ms(0.99).total_cmp(&b.polls.percentile_ms(0.99)))
        .expect("at least one client count");
    let join_rate = best.join_rate();
    let join_share = join_rate / ceilings.zadd.per_sec;
    let poll_p99 = worst_poll.polls.percentile_ms(0.99);
    let (joins_pass, polls_pass) = (join_share >= JOIN_SHARE_OF_ZADD, poll_p99 < POLL_P99_MS);
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    println!();
    println!("targets (issue 3):");
    println!(
        "  joins/s >= {:.0}% of redis-benchmark ZADD (50 clients, no pipelining): {join_rate:.0}/s at {} clients = {:.0}% of {:.0}/s  {}",
        JOIN_SHARE_OF_ZADD * 100.0,
        best.clients,
        join_share * 100.0,
        ceilings.zadd.per_sec,
        verdict(joins_pass)
    );
    println!(
        "  poll p99 < {POLL_P99_MS} ms with {queued} fans queued: {poll_p99:.2} ms at {} clients (the worst)  {}",
        worst_poll.clients,
        verdict(polls_pass)
    );
    println!("  redis memory per queued fan: {:.0} B  (reported)", memory.total());
    joins_pass && polls_pass
}

/// Tickets of fans spread over the back half of the line, fetched by joining again
/// (idempotent: the place does not change). Setup, not measured.
async fn deep_tickets(
    waitroom: &Waitroom,
    event_id: Uuid,
    clients: usize,
    options: &Options,
) -> anyhow::Result<Vec<String>> {
    let (half, count) = (options.fans / 2, options.tickets as u64);
    let tickets: Vec<Ticket> = futures::stream::iter((0..count).map(|k| half + k * half / count))
        .map(|index| async move { waitroom.ticket_of(event_id, &prefilled_fan(index)).await })
        .buffer_unordered(clients)
        .try_collect()
        .await?;
    let positions = tickets.iter().map(|t| t.position);
    let (first, last) = (positions.clone().min().unwrap_or(0), positions.max().unwrap_or(0));
    println!("pollers cycle through {} tickets of fans at positions {first}..={last}", tickets.len());
    Ok(tickets.into_iter().map(|t| t.ticket).collect())
}

/// Every request is a new fan with an id of their own, as a client that brings one.
async fn measure_joins(
    waitroom: &Waitroom,
    event_id: Uuid,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let connections = Arc::new(waitroom.connections(clients).await?);
    closed_loop(clients, duration, move |client, _| {
        let connections = connections.clone();
        async move {
            let fan_id = Uuid::new_v4().to_string();
            waitroom_client::join(&mut *connections[client].lock().await, event_id, &fan_id).await
        }
    })
    .await
}

async fn measure_polls(
    waitroom: &Waitroom,
    event_id: Uuid,
    tickets: &[String],
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let connections = Arc::new(waitroom.connections(clients).await?);
    let tickets = Arc::new(tickets.to_vec());
    closed_loop(clients, duration, move |client, iteration| {
        let (connections, tickets) = (connections.clone(), tickets.clone());
        async move {
            let ticket = &tickets[(client + iteration as usize * clients) % tickets.len()];
            waitroom_client::poll(&mut *connections[client].lock().await, event_id, ticket).await
        }
    })
    .await
}

/// The polls of the most clients again, while the admitter lets fans in: what
/// admitting (each step an atomic script in Redis, each admission recorded in
/// PostgreSQL by one batched insert per tick) costs the fans still waiting.
struct Admitting {
    clients: usize,
    admit_rate: f64,
    polls: Report,
    seconds: f64,
    /// Counted by the waiting room's metrics over the window.
    admitted: f64,
    steps: f64,
    step_seconds: f64,
    /// Admission records not yet in PostgreSQL a second after the window, and failed
    /// writes during it.
    records_pending: f64,
    record_failures: f64,
}

async fn measure_admitting(
    waitroom: &Waitroom,
    event_id: Uuid,
    tickets: &[String],
    clients: usize,
    options: &Options,
) -> anyhow::Result<Admitting> {
    let admissions = format!("{}{{event=\"{event_id}\"}}", waitroom::metrics::ADMISSIONS);
    let step_sum = format!("{}_sum{{command=\"admit\"}}", waitroom::metrics::REDIS_COMMAND_DURATION);
    let step_count = format!("{}_count{{command=\"admit\"}}", waitroom::metrics::REDIS_COMMAND_DURATION);
    let failures = waitroom::metrics::RECORD_FAILURES;
    let before = waitroom.metrics().await?;
    waitroom.configure_admitting(event_id, options.admit_rate).await?;
    let started = Instant::now();
    let polls = measure_polls(waitroom, event_id, tickets, clients, options.duration).await?;
    waitroom.configure_paused(event_id).await?;
    let seconds = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = waitroom.metrics().await?;
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    Ok(Admitting {
        clients,
        admit_rate: options.admit_rate,
        polls,
        seconds,
        admitted: delta(&admissions),
        steps: delta(&step_count),
        step_seconds: delta(&step_sum),
        records_pending: metric(&after, waitroom::metrics::RECORDS_PENDING),
        record_failures: delta(failures),
    })
}

/// The value of one series (name and labels, as exported) in Prometheus text; 0 when
/// it has not been exported yet.
fn metric(text: &str, series: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

fn print_admitting(admitting: &Admitting, runs: &[Run], ceilings: &Ceilings) {
    let poll_rate = admitting.polls.successes_per_sec();
    println!();
    println!(
        "while admitting {:.0} fans/s (admitted {:.0} in {:.1} s = {:.0}/s, {:.3}x the rate; {:.0} admission steps, \
         {:.0} µs each on average in Redis):",
        admitting.admit_rate,
        admitting.admitted,
        admitting.seconds,
        admitting.admitted / admitting.seconds,
        admitting.admitted / admitting.seconds / admitting.admit_rate,
        admitting.steps,
        admitting.step_seconds / admitting.steps.max(1.0) * 1e6,
    );
    println!(
        "  poll at {} clients: {poll_rate:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {:.1}% failed",
        admitting.clients,
        admitting.polls.percentile_ms(0.50),
        admitting.polls.percentile_ms(0.99),
        admitting.polls.rejected_percent()
    );
    println!("  poll while admitting / ZRANK {:.2}x", poll_rate / ceilings.zrank.per_sec);
    if let Some(paused) = runs.iter().find(|run| run.clients == admitting.clients) {
        println!("  poll while admitting / poll while paused {:.2}x", poll_rate / paused.polls.successes_per_sec());
    }
    println!(
        "  admission records: {:.0} not yet in PostgreSQL 1 s after the window, {:.0} failed writes",
        admitting.records_pending, admitting.record_failures
    );
}

struct Ceilings {
    zadd: Ceiling,
    locate_join: Ceiling,
    zrank: Ceiling,
    locate_poll: Ceiling,
}

impl Ceilings {
    fn rows(&self) -> [(&'static str, &Ceiling); 4] {
        [
            ("ZADD NX queue, new fan", &self.zadd),
            ("EVALSHA locate.lua join, new fan", &self.locate_join),
            ("ZRANK queue, waiting fan", &self.zrank),
            ("EVALSHA locate.lua poll, waiting fan", &self.locate_poll),
        ]
    }
}

/// What a join and a poll cost Redis alone, on the same keys the service used.
async fn measure_ceilings(
    redis: &redis::Client,
    conn: &mut MultiplexedConnection,
    keys: &EventKeys<'_>,
    options: &Options,
) -> anyhow::Result<Ceilings> {
    let bench = RedisBenchmark::new(redis, options.ceiling_requests)?;
    // The service's own join/poll script, so the ceiling runs exactly what a join runs.
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(scripts::LOCATE).query_async(conn).await?;
    let locate = |fan_prefix: &str, mode: &str| {
        let script_keys = keys.script_keys();
        let mut command = vec!["EVALSHA".to_owned(), sha.clone(), script_keys.len().to_string()];
        command.extend(script_keys);
        command.extend([format!("{fan_prefix}__rand_int__"), mode.to_owned()]);
        command
    };
    let queue = keys.key(EventKey::Queue);
    let waiting_fan = format!("{PREFILLED_FAN_PREFIX}__rand_int__");
    // A score above every real arrival puts these fans at the back, as a join does.
    let zadd =
        ["ZADD", &queue, "NX", "1__rand_int__", &format!("{CEILING_ZADD_FAN_PREFIX}__rand_int__")].map(str::to_owned);
    let zrank = ["ZRANK", &queue, &waiting_fan].map(str::to_owned);
    let (locate_join, locate_poll) = (locate(CEILING_JOIN_FAN_PREFIX, "join"), locate(PREFILLED_FAN_PREFIX, "poll"));
    for command in [&zadd[..], &zrank[..], &locate_join, &locate_poll] {
        check_once(conn, command).await?;
    }
    Ok(Ceilings {
        zadd: bench.measure(NEW_FAN_KEYSPACE, zadd.to_vec()).await?,
        locate_join: bench.measure(NEW_FAN_KEYSPACE, locate_join).await?,
        zrank: bench.measure(options.fans, zrank.to_vec()).await?,
        locate_poll: bench.measure(options.fans, locate_poll).await?,
    })
}

/// Runs a ceiling command once with `__rand_int__` as redis-benchmark expands it, so
/// a typo fails here instead of being timed, and a poll that finds nobody (which
/// would be cheaper than a real one) is caught.
async fn check_once(conn: &mut MultiplexedConnection, command: &[String]) -> anyhow::Result<()> {
    let args: Vec<String> = command.iter().map(|a| a.replace("__rand_int__", &format!("{:012}", 0))).collect();
    let reply: redis::Value = redis::cmd(&args[0])
        .arg(&args[1..])
        .query_async(conn)
        .await
        .with_context(|| format!("the ceiling command {} fails", command.join(" ")))?;
    let text = format!("{reply:?}");
    ensure!(
        !matches!(reply, redis::Value::Nil) && !text.contains("not_found"),
        "the ceiling command {} finds no fan: {text}",
        command.join(" ")
    );
    Ok(())
}
