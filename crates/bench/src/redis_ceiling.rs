//! The ceilings: what Redis itself does for the commands a join or a poll issues,
//! driven by redis-benchmark (a C client) against the same server in the same run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use redis::ConnectionAddr;

/// Connections, as the target is stated: "redis-benchmark ZADD at 50 clients".
pub const CLIENTS: usize = 50;
/// No run may take longer than this, whatever the request count.
const TIME_LIMIT: Duration = Duration::from_secs(60);

pub struct RedisBenchmark {
    host: String,
    port: u16,
    db: i64,
    /// Requests per run: redis-benchmark stops on a count, not a time.
    requests: u64,
}

/// Requests per second and latency as redis-benchmark reports them.
pub struct Ceiling {
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl RedisBenchmark {
    pub fn new(redis: &redis::Client, requests: u64) -> anyhow::Result<Self> {
        let info = redis.get_connection_info();
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            bail!("redis-benchmark is pointed at a plain TCP address; {:?} is not one", info.addr());
        };
        Ok(Self { host: host.clone(), port: *port, db: info.redis_settings().db(), requests })
    }

    /// Runs `command` (one Redis command; `__rand_int__` in an argument becomes a
    /// 12-digit number below `keyspace`, different on every request) with no
    /// pipelining.
    pub async fn measure(&self, keyspace: u64, command: Vec<String>) -> anyhow::Result<Ceiling> {
        let mut child = Command::new("redis-benchmark")
            .args(["-h", &self.host, "-p", &self.port.to_string(), "--dbnum", &self.db.to_string()])
            .args(["-c", &CLIENTS.to_string(), "-n", &self.requests.to_string(), "-r", &keyspace.to_string()])
            .arg("--csv")
            .args(&command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running redis-benchmark (install redis-tools)")?;
        // The output is a few lines, so waiting before reading cannot fill a pipe.
        let (status, child) = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + TIME_LIMIT;
            loop {
                if let Some(status) = child.try_wait()? {
                    return anyhow::Ok((status, child));
                }
                if Instant::now() > deadline {
                    child.kill()?;
                    bail!("redis-benchmark took longer than {TIME_LIMIT:?}; lower --ceiling-requests");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await??;
        let output = child.wait_with_output()?;
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        // A failing command still gets a rate; its errors only show up as messages.
        if !status.success() || stdout.contains("Error") || stderr.contains("Error") {
            bail!("redis-benchmark {} failed:\n{stdout}{stderr}", command.join(" "));
        }
        parse_csv(&stdout).with_context(|| format!("unexpected redis-benchmark output:\n{stdout}"))
    }
}

/// `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"`
/// then one row; the test name (the command line) is split off from the right, in
/// case it contains a comma.
fn parse_csv(stdout: &str) -> Option<Ceiling> {
    let row = stdout.lines().nth(1)?;
    let fields: Vec<f64> =
        row.rsplitn(8, ',').take(7).map(|f| f.trim_matches('"').parse().ok()).collect::<Option<_>>()?;
    // rsplitn yields from the right: max, p99, p95, p50, min, avg, rps.
    Some(Ceiling { per_sec: fields[6], p50_ms: fields[3], p99_ms: fields[1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rate_and_percentiles_from_the_csv_row() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"ZADD k NX 1, __rand_int__\",\"24667.00\",\"1.340\",\"0.216\",\"1.087\",\"3.159\",\"7.807\",\"17.519\"\n";
        let ceiling = parse_csv(out).unwrap();
        assert_eq!((ceiling.per_sec, ceiling.p50_ms, ceiling.p99_ms), (24667.0, 1.087, 7.807));
        assert!(parse_csv("\"test\"\n").is_none());
    }
}
