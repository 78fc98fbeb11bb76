//! The benchmark event's keys in Redis, written and read directly: the fast setup
//! of a deep queue, what it costs in memory, and the cleanup afterwards.
//!
//! The keys are the waiting room's own ([`waitroom::store::keys`]); what a join writes
//! mirrors its `locate.lua`: if that changes, [`prefill`] must follow.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use redis::aio::MultiplexedConnection;
use waitroom::store::{EventKey, EventKeys};

/// Pre-filled fan ids are this plus a 12-digit index: as long as the UUIDs the
/// waiting room issues (so memory per fan is realistic), and exactly what
/// redis-benchmark's `__rand_int__` (12 digits) expands to, so its poll commands hit
/// fans who really wait.
pub const PREFILLED_FAN_PREFIX: &str = "00000000-0000-4000-8000-";
/// Fans per pipeline round trip while pre-filling.
const FILL_BATCH: u64 = 10_000;
/// Keys per SCAN step and UNLINK during cleanup.
const CLEANUP_BATCH: usize = 1_000;

pub fn prefilled_fan(index: u64) -> String {
    format!("{PREFILLED_FAN_PREFIX}{index:012}")
}

/// What pre-filling the queue took and what the queued fans cost.
pub struct Prefill {
    pub elapsed: Duration,
    /// `MEMORY USAGE … SAMPLES 0` (every element counted) of the queue sorted set.
    pub queue_bytes: u64,
    /// The same for the last-seen hash, the other per-fan structure a join writes.
    pub seen_bytes: u64,
    /// Growth of the whole server's `used_memory` over the fill: a cross-check that
    /// includes allocator overhead, and any other client's writes meanwhile.
    pub used_memory_growth: i64,
}

/// Queues `fans` fans at positions 1..=fans exactly as `locate.lua` joins them one by
/// one (queue score = arrival sequence, last-seen = now, `seq` counter advanced), but
/// in pipelined batches. This is setup, not a measurement.
pub async fn prefill(conn: &mut MultiplexedConnection, keys: &EventKeys<'_>, fans: u64) -> anyhow::Result<Prefill> {
    let started = Instant::now();
    let used_before = used_memory(conn).await?;
    let (queue, seen) = (keys.key(EventKey::Queue), keys.key(EventKey::Seen));
    ensure!(redis::cmd("EXISTS").arg(&queue).query_async::<u64>(conn).await? == 0, "{queue} already exists");
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    let now_ms = seconds * 1000 + micros / 1000;
    for start in (0..fans).step_by(FILL_BATCH as usize) {
        let batch = start..fans.min(start + FILL_BATCH);
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&queue);
        let mut hset = redis::cmd("HSET");
        hset.arg(&seen);
        for index in batch {
            let fan = prefilled_fan(index);
            zadd.arg(index + 1).arg(&fan);
            hset.arg(&fan).arg(now_ms);
        }
        redis::pipe().add_command(zadd).ignore().add_command(hset).ignore().query_async::<()>(conn).await?;
    }
    // Later joins continue the arrival sequence behind the pre-filled fans.
    redis::cmd("HSET").arg(keys.key(EventKey::Counters)).arg("seq").arg(fans).query_async::<()>(conn).await?;
    let used_after = used_memory(conn).await?;
    Ok(Prefill {
        elapsed: started.elapsed(),
        queue_bytes: memory_usage(conn, &queue).await?,
        seen_bytes: memory_usage(conn, &seen).await?,
        used_memory_growth: used_after as i64 - used_before as i64,
    })
}

pub async fn queue_length(conn: &mut MultiplexedConnection, keys: &EventKeys<'_>) -> anyhow::Result<u64> {
    Ok(redis::cmd("ZCARD").arg(keys.key(EventKey::Queue)).query_async(conn).await?)
}

/// Unlinks every key under `prefix` (SCAN, never FLUSHALL: the server may hold other
/// data) and answers how many there were.
pub async fn remove_prefix(conn: &mut MultiplexedConnection, prefix: &str) -> anyhow::Result<u64> {
    let pattern = format!("{prefix}:*");
    let (mut cursor, mut removed) = (0u64, 0u64);
    loop {
        let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
            .cursor_arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(CLEANUP_BATCH)
            .query_async(conn)
            .await?;
        if !found.is_empty() {
            removed += redis::cmd("UNLINK").arg(&found).query_async::<u64>(conn).await?;
        }
        if next == 0 {
            return Ok(removed);
        }
        cursor = next;
    }
}

async fn used_memory(conn: &mut MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .context("no used_memory in INFO memory")
}

async fn memory_usage(conn: &mut MultiplexedConnection, key: &str) -> anyhow::Result<u64> {
    let bytes: Option<u64> = redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(conn).await?;
    bytes.with_context(|| format!("{key} does not exist"))
}
