//! Fans streaming their standing (issue 17): N fans in one event's line, each with
//! `GET …/queue/{ticket}/stream` open on one waiting-room replica, the line admitted at
//! a fixed rate for a while; how long each admission took to reach its fan's stream
//! (from the admission's Redis time to the token's arrival), and what the streams cost
//! Redis: the waiting room's own count of its Redis calls, by command, per second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use futures::StreamExt;
use hdrhistogram::Histogram;
use redis::AsyncCommands;
use uuid::Uuid;
use waitroom::store::{EventKey, EventKeys};

use crate::waitroom_client::Waitroom;

pub struct Options {
    pub fans: Vec<usize>,
    pub admit_rate: f64,
    pub admit_secs: u64,
    pub redis_url: String,
    pub key_prefix: String,
}

const P99_CEILING: Duration = Duration::from_secs(1);
/// The admission lifetime the bench configures (`configure_admitting`).
const LIFETIME_MS: i64 = 3_600_000;

pub async fn run(waitroom: &Waitroom, options: &Options) -> anyhow::Result<()> {
    for &fans in &options.fans {
        measure(waitroom, options, fans).await?;
    }
    Ok(())
}

async fn measure(waitroom: &Waitroom, options: &Options, fans: usize) -> anyhow::Result<()> {
    let event = Uuid::new_v4();
    waitroom.configure_paused(event).await?;
    let joining = Instant::now();
    let tickets: Vec<(String, String)> = futures::stream::iter(0..fans)
        .map(|i| async move {
            let fan = format!("stream-fan-{i}");
            waitroom.join_for_ticket(event, &fan).await.map(|ticket| (fan, ticket.ticket))
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let joined_in = joining.elapsed();

    let told: Arc<Mutex<HashMap<String, SystemTime>>> = Arc::default();
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).http1_only().build()?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(fans);
    let connecting = Instant::now();
    let mut tasks = Vec::with_capacity(fans);
    for (fan, ticket) in tickets {
        let url = format!("{}/v1/events/{event}/queue/{ticket}/stream", waitroom.base());
        let (http, told, ready) = (http.clone(), told.clone(), ready_tx.clone());
        tasks.push(tokio::spawn(async move { follow(http, url, fan, told, ready).await }));
    }
    drop(ready_tx);
    for _ in 0..fans {
        if tokio::time::timeout(Duration::from_secs(120), ready_rx.recv()).await.ok().flatten().is_none() {
            bail!("not every fan's stream opened within 120 s");
        }
    }
    let connected_in = connecting.elapsed();

    let calls_before = redis_calls(waitroom).await?;
    let admitting = Instant::now();
    waitroom.configure_admitting(event, options.admit_rate).await?;
    tokio::time::sleep(Duration::from_secs(options.admit_secs)).await;
    waitroom.configure_paused(event).await?;
    let admitted_for = admitting.elapsed();
    let calls_after = redis_calls(waitroom).await?;
    // The last admissions' tokens are still on their way.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for task in tasks {
        task.abort();
    }

    let mut redis = redis::Client::open(options.redis_url.as_str())?.get_multiplexed_async_connection().await?;
    let admitted_key = EventKeys::new(&options.key_prefix, event).key(EventKey::Admitted);
    let admitted: Vec<(String, f64)> = redis.zrange_withscores(&admitted_key, 0, -1).await?;
    let told = told.lock().unwrap();
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 600_000, 3)?;
    for (fan, expiry_ms) in &admitted {
        if let Some(at) = told.get(fan) {
            let told_ms = at.duration_since(UNIX_EPOCH)?.as_millis() as i64;
            latencies.record((told_ms - (*expiry_ms as i64 - LIFETIME_MS)).max(1) as u64)?;
        }
    }
    println!(
        "{fans} fans streaming: joined in {:.1} s, every stream open in {:.1} s; admitted at {}/s for {:.1} s: {} admitted, {} told on their stream",
        joined_in.as_secs_f64(),
        connected_in.as_secs_f64(),
        options.admit_rate,
        admitted_for.as_secs_f64(),
        admitted.len(),
        latencies.len()
    );
    println!(
        "  admission -> token on the stream: p50 {} ms, p99 {} ms, max {} ms   ceiling p99 {} ms  {}",
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99),
        latencies.max(),
        P99_CEILING.as_millis(),
        if latencies.len() == admitted.len() as u64
            && latencies.value_at_quantile(0.99) <= P99_CEILING.as_millis() as u64
        {
            "ok"
        } else {
            "OVER"
        }
    );
    let seconds = admitted_for.as_secs_f64();
    let mut by_command: Vec<(String, f64)> = calls_after
        .iter()
        .map(|(command, after)| {
            (command.clone(), (after - calls_before.get(command).copied().unwrap_or(0.0)) / seconds)
        })
        .filter(|(_, per_second)| *per_second > 0.0)
        .collect();
    by_command.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = by_command.iter().map(|(_, n)| n).sum();
    let listed: Vec<String> = by_command.iter().map(|(command, n)| format!("{command} {n:.0}")).collect();
    println!("  the waiting room's Redis calls while admitting: {total:.0}/s ({})", listed.join(", "));
    Ok(())
}

/// One fan's stream: ready at its first status, the token's arrival noted.
async fn follow(
    http: reqwest::Client,
    url: String,
    fan: String,
    told: Arc<Mutex<HashMap<String, SystemTime>>>,
    ready: tokio::sync::mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let mut response = http.get(&url).send().await?;
    if !response.status().is_success() {
        bail!("stream refused: {}", response.status());
    }
    let (mut buffer, mut opened) = (String::new(), false);
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(std::str::from_utf8(&chunk).context("UTF-8")?);
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if !block.contains("event: status") {
                continue;
            }
            if !opened {
                opened = true;
                let _ = ready.send(()).await;
            }
            if block.contains("\"access_token\"") {
                told.lock().unwrap().insert(fan, SystemTime::now());
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The waiting room's Redis calls so far, by command (its
/// `boxoffice_redis_command_duration_seconds` histogram's counts).
async fn redis_calls(waitroom: &Waitroom) -> anyhow::Result<HashMap<String, f64>> {
    let text = waitroom.metrics().await?;
    let mut calls = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("boxoffice_redis_command_duration_seconds_count{")) {
        let command = line.split("command=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("?");
        let count: f64 = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
        *calls.entry(command.to_owned()).or_insert(0.0) += count;
    }
    Ok(calls)
}
