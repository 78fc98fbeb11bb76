//! What the server side spent during a measured window: CPU time of the gateway and of
//! PostgreSQL's processes, and WAL bytes written; beside it, this process' own CPU (the
//! load, and the payments sandbox when it runs here), which shares the machine. Divided by the successes, these say what
//! one order costs, and they move far less from run to run than rates do on a machine
//! whose other work changes how many orders fit in a second (DECISIONS.md D9). Read from
//! `/proc` (Linux), so the figures are only meaningful on an otherwise quiet machine:
//! every `postgres` process counts, whoever it works for.

use std::collections::HashMap;

use anyhow::Context;
use sqlx::PgPool;

/// Clock ticks per second of `/proc/<pid>/stat`'s `utime` and `stime` (`CLK_TCK`, 100 on
/// every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A reading at one instant.
pub struct Sample {
    /// CPU ticks so far, per PostgreSQL process.
    postgres: HashMap<u32, u64>,
    gateway: Option<u64>,
    load_generator: u64,
    wal_bytes: i64,
}

/// What a window cost, per success.
pub struct Cost {
    pub postgres_cpu_us: f64,
    pub gateway_cpu_us: Option<f64>,
    pub load_generator_cpu_us: f64,
    pub wal_bytes: f64,
}

impl Cost {
    pub fn server_cpu_us(&self) -> f64 {
        self.postgres_cpu_us + self.gateway_cpu_us.unwrap_or(0.0)
    }
}

pub async fn sample(pool: &PgPool, gateway_pid: Option<u32>) -> anyhow::Result<Sample> {
    let wal_bytes: i64 = sqlx::query_scalar("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
        .fetch_one(pool)
        .await
        .context("reading the WAL position")?;
    let mut postgres = HashMap::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else { continue };
        match process_ticks(pid) {
            Some((name, ticks)) if name == "postgres" => {
                postgres.insert(pid, ticks);
            }
            _ => {}
        }
    }
    let gateway = match gateway_pid {
        Some(pid) => Some(process_ticks(pid).with_context(|| format!("the gateway's process {pid} is gone"))?.1),
        None => None,
    };
    let load_generator = process_ticks(std::process::id()).context("reading this process' CPU time")?.1;
    Ok(Sample { postgres, gateway, load_generator, wal_bytes })
}

impl Sample {
    /// The cost of the window from `self` to `end`, per success. A PostgreSQL process
    /// that began inside the window counts whole; one that ended inside it is not seen.
    pub fn cost_until(&self, end: &Sample, successes: u64) -> Cost {
        let per_success = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1e6 / successes.max(1) as f64;
        let postgres_ticks: u64 = end
            .postgres
            .iter()
            .map(|(pid, ticks)| ticks.saturating_sub(self.postgres.get(pid).copied().unwrap_or(0)))
            .sum();
        let gateway_cpu_us = match (self.gateway, end.gateway) {
            (Some(start), Some(end)) => Some(per_success(end.saturating_sub(start))),
            _ => None,
        };
        Cost {
            postgres_cpu_us: per_success(postgres_ticks),
            gateway_cpu_us,
            load_generator_cpu_us: per_success(end.load_generator.saturating_sub(self.load_generator)),
            wal_bytes: (end.wal_bytes - self.wal_bytes) as f64 / successes.max(1) as f64,
        }
    }
}

/// A process' name and CPU ticks (user + system) from `/proc/<pid>/stat`, or None when
/// it has gone.
fn process_ticks(pid: u32) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold spaces; the fields after it are plain.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of stat(5), utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}
