//! A closed-loop load generator: N clients, each sending its next request as soon as
//! the last one is answered, for a fixed time.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::Outcome;

pub struct Report {
    /// Attempts answered with a 2xx status.
    pub successes: u64,
    pub attempts: u64,
    pub outcomes: BTreeMap<String, u64>,
    /// Microseconds, every attempt.
    pub latency: Histogram<u64>,
    pub elapsed: Duration,
}

impl Report {
    pub fn successes_per_sec(&self) -> f64 {
        self.successes as f64 / self.elapsed.as_secs_f64()
    }

    pub fn rejected_percent(&self) -> f64 {
        if self.attempts == 0 {
            return 0.0;
        }
        100.0 * (self.attempts - self.successes) as f64 / self.attempts as f64
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Runs `clients` loops of `attempt(client, iteration)` for `duration`.
pub async fn closed_loop<F, Fut>(clients: usize, duration: Duration, attempt: F) -> anyhow::Result<Report>
where
    F: Fn(usize, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Outcome>> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let attempt = attempt.clone();
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
                let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
                let (mut iteration, mut successes) = (0, 0);
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let outcome = attempt(client, iteration).await?;
                    latency.saturating_record(sent.elapsed().as_micros() as u64);
                    successes += u64::from((200..300).contains(&outcome.status));
                    *outcomes.entry(outcome.code).or_default() += 1;
                    iteration += 1;
                }
                anyhow::Ok((latency, outcomes, successes))
            })
        })
        .collect();
    let mut report = Report {
        successes: 0,
        attempts: 0,
        outcomes: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"),
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        let (latency, outcomes, successes) = task.await??;
        report.successes += successes;
        report.latency.add(&latency)?;
        for (code, n) in outcomes {
            *report.outcomes.entry(code).or_default() += n;
        }
    }
    report.elapsed = started.elapsed();
    report.attempts = report.outcomes.values().sum();
    Ok(report)
}
