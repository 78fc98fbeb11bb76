//! The live seat map's fan-out (issue 17): N viewers streaming one event's seats from one
//! gateway replica, a burst of seat changes committed by this process, and what each
//! viewer saw: delivery from commit to client (p50/p99), bytes per update per viewer,
//! the gateway's RSS per connection; and the sizes of a 50,000-seat venue's snapshot
//! and layout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

use crate::client::Gateway;

pub struct Options {
    pub viewers: Vec<usize>,
    pub rows: u32,
    pub seats_per_row: u32,
    pub changes: usize,
    pub changes_per_second: u64,
    pub database_url: String,
    pub gateway_pid: Option<u32>,
    /// `None`: each viewer on a connection of its own (HTTP/1.1, a browser talking to the
    /// gateway directly). `Some(n)`: HTTP/2 with `n` viewers' streams on each connection,
    /// as an ingress speaking HTTP/2 to its upstreams multiplexes them.
    pub http2_streams_per_connection: Option<usize>,
}

/// Ceilings from the issue.
const P99_CEILING: Duration = Duration::from_secs(1);
const SNAPSHOT_CEILING_BYTES: usize = 100_000;
const RSS_CEILING_MB_AT_10K: f64 = 200.0;

pub async fn run(gateway: &Gateway, options: &Options) -> anyhow::Result<()> {
    let seats = options.rows * options.seats_per_row;
    println!("creating an event of {} rows x {} seats ({seats} seats)", options.rows, options.seats_per_row);
    let rows: Vec<Value> =
        (0..options.rows).map(|r| json!({ "label": format!("R{r}"), "seats": options.seats_per_row })).collect();
    let (event, _) = gateway
        .create_event(json!({
            "name": "Seat stream bench",
            "hold_ttl_seconds": 3600,
            "sections": [{ "name": "Hall", "kind": "reserved", "price": { "amount_minor": 5000, "currency": "EUR" }, "rows": rows }]
        }))
        .await?;
    let db = PgPoolOptions::new().max_connections(2).connect(&options.database_url).await?;
    let seat_ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM seats WHERE event_id = $1 ORDER BY id").bind(event).fetch_all(&db).await?;
    // A venue mid-sale: a third booked, a tenth held, in holds of four seats.
    sqlx::query(
        "UPDATE seats SET state = 'booked', booking_id = gen_random_uuid()
         WHERE event_id = $1 AND id % 3 = 0",
    )
    .bind(event)
    .execute(&db)
    .await?;
    sqlx::query(
        "UPDATE seats SET state = 'held', hold_id = gen_random_uuid(),
                held_until = now() + make_interval(secs => 600 + (id / 4) % 600)
         WHERE event_id = $1 AND state = 'available' AND id % 10 = 1",
    )
    .bind(event)
    .execute(&db)
    .await?;
    sizes(gateway, event, seats).await?;

    for &viewers in &options.viewers {
        measure(gateway, &db, event, &seat_ids, viewers, options).await?;
    }
    Ok(())
}

async fn sizes(gateway: &Gateway, event: Uuid, seats: u32) -> anyhow::Result<()> {
    let url = |rest: &str| format!("{}/v1/events/{event}{rest}", gateway.base);
    let plain = |rest: &str| gateway.http.get(url(rest)).header("accept-encoding", "identity").send();
    let state = plain("/seats/state").await?.bytes().await?.len();
    let state_gzip = gzipped_length(&gateway.http, &url("/seats/state")).await?;
    let layout = plain("/seats/layout").await?.bytes().await?.len();
    let layout_gzip = gzipped_length(&gateway.http, &url("/seats/layout")).await?;
    let map = plain("/seats").await?.bytes().await?.len();
    println!("sizes for {seats} seats (a third booked, a tenth held):");
    println!(
        "  seat-state snapshot  {:>9} B  (gzip {:>8} B)   ceiling {SNAPSHOT_CEILING_BYTES} B  {}",
        state,
        state_gzip.map_or("-".into(), |n| n.to_string()),
        verdict(state <= SNAPSHOT_CEILING_BYTES)
    );
    println!(
        "  layout (cacheable)   {:>9} B  (gzip {:>8} B)",
        layout,
        layout_gzip.map_or("-".into(), |n| n.to_string())
    );
    println!("  old seat map JSON    {map:>9} B");
    Ok(())
}

/// The compressed length when the server gzips the answer; None when it sends it plain.
async fn gzipped_length(http: &reqwest::Client, url: &str) -> anyhow::Result<Option<usize>> {
    let response = http.get(url).header("accept-encoding", "gzip").send().await?;
    let gzipped = response.headers().get("content-encoding").is_some_and(|v| v == "gzip");
    let body = response.bytes().await?;
    Ok(gzipped.then_some(body.len()))
}

/// What every viewer records.
struct Seen {
    latencies: Mutex<Histogram<u64>>,
    update_bytes: AtomicU64,
    updates: AtomicU64,
    snapshots_after_start: AtomicU64,
}

async fn measure(
    gateway: &Gateway,
    db: &sqlx::PgPool,
    event: Uuid,
    seat_ids: &[i64],
    viewers: usize,
    options: &Options,
) -> anyhow::Result<()> {
    let rss_before = options.gateway_pid.and_then(rss_kib);
    let committed: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let seen = Arc::new(Seen {
        latencies: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3)?),
        update_bytes: AtomicU64::new(0),
        updates: AtomicU64::new(0),
        snapshots_after_start: AtomicU64::new(0),
    });
    let connections = connections(viewers, options.http2_streams_per_connection)?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(viewers);
    let stop = Arc::new(AtomicBool::new(false));
    let connecting = Instant::now();
    let mut tasks = Vec::with_capacity(viewers);
    for viewer in 0..viewers {
        let http = connections[viewer % connections.len()].clone();
        let url = format!("{}/v1/events/{event}/seats/stream", gateway.base);
        let (seen, committed, ready, stop) = (seen.clone(), committed.clone(), ready_tx.clone(), stop.clone());
        tasks.push(tokio::spawn(async move { view(http, url, seen, committed, ready, stop).await }));
    }
    drop(ready_tx);
    for _ in 0..viewers {
        if tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await.ok().flatten().is_none() {
            bail!("not every viewer got its snapshot within 120 s");
        }
    }
    let connected_in = connecting.elapsed();
    let rss_connected = options.gateway_pid.and_then(rss_kib);

    // The burst: seats taken one statement at a time, each commit's instant noted.
    let free: Vec<i64> =
        seat_ids.iter().copied().filter(|id| id % 3 != 0 && id % 10 != 1).take(options.changes).collect();
    let every = Duration::from_micros(1_000_000 / options.changes_per_second.max(1));
    for id in &free {
        let started = Instant::now();
        sqlx::query(
            "UPDATE seats SET state = 'held', hold_id = gen_random_uuid(), held_until = now() + interval '1 hour'
             WHERE id = $1 AND state = 'available'",
        )
        .bind(id)
        .execute(db)
        .await?;
        committed.lock().unwrap().insert(*id, Instant::now());
        tokio::time::sleep(every.saturating_sub(started.elapsed())).await;
    }
    // Every viewer has every change, or the wait ends.
    let expected = (viewers * free.len()) as u64;
    let waiting = Instant::now();
    while seen.latencies.lock().unwrap().len() < expected && waiting.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss_after = options.gateway_pid.and_then(rss_kib);
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.abort();
    }
    // Put the seats back for the next round.
    sqlx::query("UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL WHERE id = ANY($1)")
        .bind(&free)
        .execute(db)
        .await?;

    let latencies = seen.latencies.lock().unwrap();
    let updates = seen.updates.load(Ordering::Relaxed).max(1);
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    let carried = match options.http2_streams_per_connection {
        None => "HTTP/1.1, a connection each".to_owned(),
        Some(streams) => format!("HTTP/2, {} connections of up to {streams} streams", connections.len()),
    };
    println!(
        "{viewers} viewers ({carried}): all connected with their snapshot in {:.1} s; {} changes at {}/s",
        connected_in.as_secs_f64(),
        free.len(),
        options.changes_per_second
    );
    println!(
        "  delivery commit -> viewer: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms   ceiling p99 {} ms  {}   ({} of {} seat changes seen)",
        ms(0.5),
        ms(0.99),
        latencies.max() as f64 / 1000.0,
        P99_CEILING.as_millis(),
        verdict(latencies.len() == expected && ms(0.99) <= P99_CEILING.as_millis() as f64),
        latencies.len(),
        expected
    );
    println!(
        "  bytes per update per viewer: {:.0} ({} updates each, on average; {} snapshots re-sent)",
        seen.update_bytes.load(Ordering::Relaxed) as f64 / updates as f64,
        updates / viewers as u64,
        seen.snapshots_after_start.load(Ordering::Relaxed)
    );
    if let (Some(before), Some(connected), Some(after)) = (rss_before, rss_connected, rss_after) {
        let per_connection = (connected.max(after) as f64 - before as f64) / viewers as f64;
        let projected_10k_mb = (before as f64 + per_connection * 10_000.0) / 1024.0;
        println!(
            "  gateway RSS: {:.0} MB before, {:.0} MB connected, {:.0} MB after the burst; {:.1} KiB per connection; at 10,000 viewers {:.0} MB   ceiling {RSS_CEILING_MB_AT_10K:.0} MB  {}",
            before as f64 / 1024.0,
            connected as f64 / 1024.0,
            after as f64 / 1024.0,
            per_connection,
            projected_10k_mb,
            verdict(projected_10k_mb <= RSS_CEILING_MB_AT_10K)
        );
    }
    Ok(())
}

/// The clients the viewers share: one per viewer over HTTP/1.1 (no connection reused), or
/// one HTTP/2 connection (prior knowledge, as `h2c`) per `streams` viewers.
fn connections(viewers: usize, http2_streams: Option<usize>) -> anyhow::Result<Vec<reqwest::Client>> {
    match http2_streams {
        None => Ok(vec![reqwest::Client::builder().pool_max_idle_per_host(0).http1_only().build()?]),
        Some(streams) => (0..viewers.div_ceil(streams.max(1)))
            .map(|_| Ok(reqwest::Client::builder().http2_prior_knowledge().build()?))
            .collect(),
    }
}

/// One viewer: reads its snapshot, says it is ready, then notes each change's delay.
async fn view(
    http: reqwest::Client,
    url: String,
    seen: Arc<Seen>,
    committed: Arc<Mutex<HashMap<i64, Instant>>>,
    ready: tokio::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut response = http.get(&url).send().await?;
    if !response.status().is_success() {
        bail!("stream refused: {}", response.status());
    }
    let (mut buffer, mut got_snapshot) = (String::new(), false);
    while let Some(chunk) = response.chunk().await? {
        let arrived = Instant::now();
        buffer.push_str(std::str::from_utf8(&chunk).context("UTF-8")?);
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event:")).map(str::trim).unwrap_or_default();
            match event {
                "snapshot" if !got_snapshot => {
                    got_snapshot = true;
                    let _ = ready.send(()).await;
                }
                "snapshot" => {
                    seen.snapshots_after_start.fetch_add(1, Ordering::Relaxed);
                }
                "changes" => {
                    seen.updates.fetch_add(1, Ordering::Relaxed);
                    seen.update_bytes.fetch_add(block.len() as u64, Ordering::Relaxed);
                    let data = block.lines().find_map(|l| l.strip_prefix("data:")).unwrap_or_default();
                    let delta: Value = serde_json::from_str(data.trim())?;
                    let committed = committed.lock().unwrap();
                    let mut latencies = seen.latencies.lock().unwrap();
                    for seat in delta["seats"].as_array().into_iter().flatten() {
                        if let Some(at) = seat[0].as_i64().and_then(|id| committed.get(&id)) {
                            let _ = latencies.record(arrived.saturating_duration_since(*at).as_micros().max(1) as u64);
                        }
                    }
                }
                _ => {}
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    Ok(())
}

/// A process's resident set, KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "OVER"
    }
}
