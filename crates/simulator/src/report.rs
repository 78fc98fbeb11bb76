//! What happened, for people (a table) and machines (`--json`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::api::{AdmissionSample, Traffic};
use crate::fan::{Ending, FanRecord};
use crate::invariants::DatabaseCheck;
use crate::scenario::Scenario;

#[derive(Debug, Serialize)]
pub struct Report {
    pub fans: usize,
    pub joined: usize,
    pub pre_queue: usize,
    pub admitted: usize,
    pub endings: BTreeMap<Ending, usize>,
    /// Places in the bookings fans kept (booked and not cancelled), as the fans saw them.
    pub seats_booked_by_fans: u64,
    pub database: DatabaseCheck,
    pub fairness: Fairness,
    pub admission_rate: AdmissionRate,
    pub latency_ms: BTreeMap<String, Percentiles>,
    /// How long requests waited for one of the simulator's connections before being
    /// sent; not part of `latency_ms`. Long waits mean the crowd outran this machine:
    /// fans then saw the endpoint latency plus this.
    pub connection_wait_ms: Percentiles,
    /// By endpoint, then answer code (`ok` for successes).
    pub answers: BTreeMap<String, BTreeMap<String, u64>>,
    pub requests: u64,
    pub requests_per_sec: f64,
    pub server_errors: u64,
    /// `503 unavailable` answers: load shed as designed, retried by fans.
    pub shed: u64,
    pub elapsed_secs: f64,
    pub replicas: Replicas,
    /// Empty when the sale was sound; otherwise what broke. Non-empty exits non-zero.
    pub broken: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Replicas {
    pub waitroom: usize,
    pub gateway: usize,
}

/// Did fans get in in the order they came?
#[derive(Debug, Serialize)]
pub struct Fairness {
    /// Fans certainly admitted ahead of someone who joined before them (see
    /// `overtakes`). FIFO means 0.
    pub overtakes: usize,
    /// Of consecutive pre-queue fans (by join time), the share admitted in join order:
    /// about 0.5 when the opening shuffle works, 1.0 if it did not shuffle.
    pub pre_queue_order_kept: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct AdmissionRate {
    pub configured: f64,
    /// Admissions per second by the waiting room's own count (sampled twice a second)
    /// while fans were still in line.
    pub achieved: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    /// Milliseconds from a histogram of microseconds.
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |q| h.value_at_quantile(q) as f64 / 1000.0;
        Self { count: h.len(), p50: ms(0.50), p95: ms(0.95), p99: ms(0.99) }
    }
}

impl Report {
    pub fn new(
        scenario: &Scenario,
        records: &[FanRecord],
        traffic: &Traffic,
        samples: &[AdmissionSample],
        database: DatabaseCheck,
        replicas: (usize, usize),
        elapsed: Duration,
    ) -> Self {
        let mut endings = BTreeMap::new();
        for record in records {
            *endings.entry(record.ending).or_insert(0) += 1;
        }
        let latency_ms =
            traffic.latency().iter().map(|(endpoint, h)| ((*endpoint).to_owned(), Percentiles::of(h))).collect();
        let mut answers: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for ((endpoint, code), n) in traffic.outcomes() {
            answers.entry(endpoint.to_owned()).or_default().insert(code, n);
        }
        let mut report = Self {
            fans: scenario.fans as usize,
            joined: records.iter().filter(|r| r.joined).count(),
            pre_queue: records.iter().filter(|r| r.pre_queue).count(),
            admitted: records.iter().filter(|r| r.admitted_after.is_some()).count(),
            endings,
            seats_booked_by_fans: records.iter().map(|r| u64::from(r.seats)).sum(),
            database,
            fairness: Fairness { overtakes: overtakes(records), pre_queue_order_kept: pre_queue_order_kept(records) },
            admission_rate: AdmissionRate { configured: scenario.admit_rate, achieved: achieved_rate(samples) },
            latency_ms,
            connection_wait_ms: Percentiles::of(&traffic.slot_wait()),
            answers,
            requests: traffic.requests(),
            requests_per_sec: traffic.requests() as f64 / elapsed.as_secs_f64().max(1e-9),
            server_errors: traffic.server_errors(),
            shed: traffic.shed(),
            elapsed_secs: elapsed.as_secs_f64(),
            replicas: Replicas { waitroom: replicas.0, gateway: replicas.1 },
            broken: Vec::new(),
        };
        report.broken = report.find_broken();
        report
    }

    fn find_broken(&self) -> Vec<String> {
        let db = &self.database;
        let mut broken = Vec::new();
        if db.violations.oversold_seats > 0 {
            broken.push(format!("{} seats oversold", db.violations.oversold_seats));
        }
        if db.violations.seats_in_two_bookings > 0 {
            broken.push(format!("{} seats in two live bookings", db.violations.seats_in_two_bookings));
        }
        if db.seats_sold > db.capacity {
            broken.push(format!("{} places sold of {}", db.seats_sold, db.capacity));
        }
        let other: i64 = db.violations.by_invariant().iter().skip(2).map(|(_, n)| n).sum();
        if other > 0 {
            broken.push(format!("{other} inventory invariant violations: {:?}", db.violations));
        }
        if self.server_errors > 0 {
            broken.push(format!("{} requests answered 500 or not at all", self.server_errors));
        }
        broken
    }
}

/// Counts fans certainly let in ahead of someone who joined before them: B's join was
/// sent after A's join was answered, yet B was seen admitted before A sent a poll that
/// still found A waiting. Exact whatever the network and polling delays; FIFO means 0.
fn overtakes(records: &[FanRecord]) -> usize {
    let after_opening = || records.iter().filter(|r| r.joined && !r.pre_queue);
    let mut ahead: Vec<(Duration, Duration)> =
        after_opening().filter_map(|r| Some((r.join_answered, r.last_waiting_poll_sent?))).collect();
    let mut behind: Vec<(Duration, Duration)> =
        after_opening().filter_map(|r| Some((r.join_sent, r.admitted_after?))).collect();
    ahead.sort();
    behind.sort();
    let (mut next, mut latest_wait, mut count) = (0, None, 0);
    for (join_sent, admitted) in behind {
        while next < ahead.len() && ahead[next].0 < join_sent {
            latest_wait = latest_wait.max(Some(ahead[next].1));
            next += 1;
        }
        if latest_wait.is_some_and(|still_waiting| admitted < still_waiting) {
            count += 1;
        }
    }
    count
}

fn pre_queue_order_kept(records: &[FanRecord]) -> Option<f64> {
    let mut fans: Vec<(Duration, Duration)> =
        records.iter().filter(|r| r.pre_queue).filter_map(|r| Some((r.join_answered, r.admitted_after?))).collect();
    if fans.len() < 2 {
        return None;
    }
    fans.sort();
    let kept = fans.windows(2).filter(|pair| pair[0].1 <= pair[1].1).count();
    Some(kept as f64 / (fans.len() - 1) as f64)
}

/// Admissions per second by the waiting room's own count, over the stretches when it
/// could admit: between samples with fans in line at both ends and more admitted at the
/// second. Stretches where the room was full or the line ran dry do not count.
fn achieved_rate(samples: &[AdmissionSample]) -> Option<f64> {
    let (mut admitted, mut seconds) = (0, 0.0);
    for pair in samples.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        let line_throughout = before.queue_length > 0 && after.queue_length > 0;
        if before.admitted_total > 0 && line_throughout && after.admitted_total > before.admitted_total {
            admitted += after.admitted_total - before.admitted_total;
            seconds += (after.at - before.at).as_secs_f64();
        }
    }
    (seconds > 0.0).then(|| admitted as f64 / seconds)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = &self.database;
        writeln!(
            f,
            "flash-sale rehearsal: {} waiting room(s), {} gateway(s), {:.1} s",
            self.replicas.waitroom, self.replicas.gateway, self.elapsed_secs
        )?;
        writeln!(
            f,
            "  fans {:>8}   joined {:>8}   pre-queue {:>8}   admitted {:>8}",
            self.fans, self.joined, self.pre_queue, self.admitted
        )?;
        let endings: Vec<String> = self.endings.iter().map(|(e, n)| format!("{e:?} {n}")).collect();
        writeln!(f, "  endings: {}", endings.join(", "))?;
        writeln!(
            f,
            "  database: {} of {} places sold, {} confirmed bookings (fans hold {} places)",
            db.seats_sold, db.capacity, db.bookings, self.seats_booked_by_fans
        )?;
        writeln!(
            f,
            "  oversold {}   seats in two bookings {}   other invariant violations {}",
            db.violations.oversold_seats,
            db.violations.seats_in_two_bookings,
            db.violations.by_invariant().iter().skip(2).map(|(_, n)| n).sum::<i64>()
        )?;
        let kept = self.fairness.pre_queue_order_kept.map_or("-".to_owned(), |k| format!("{:.2}", k));
        writeln!(f, "  fairness: {} overtakes after opening; pre-queue admitted in join order for {kept} of consecutive pairs (0.5 = shuffled)", self.fairness.overtakes)?;
        let achieved = self.admission_rate.achieved.map_or("-".to_owned(), |r| format!("{r:.1}"));
        writeln!(f, "  admission rate: {achieved}/s achieved, {}/s configured", self.admission_rate.configured)?;
        writeln!(
            f,
            "  {} requests, {:.0}/s, {} shed with 503 (retried), {} answered 500 or not at all",
            self.requests, self.requests_per_sec, self.shed, self.server_errors
        )?;
        let wait = &self.connection_wait_ms;
        writeln!(
            f,
            "  waited for a simulator connection: p50 {:.2} / p95 {:.2} / p99 {:.2} ms (not in the table below)",
            wait.p50, wait.p95, wait.p99
        )?;
        writeln!(f, "  {:<14} {:>8} {:>9} {:>9} {:>9}  answers", "endpoint", "requests", "p50 ms", "p95 ms", "p99 ms")?;
        for (endpoint, p) in &self.latency_ms {
            let answers: Vec<String> =
                self.answers.get(endpoint).into_iter().flatten().map(|(code, n)| format!("{code} {n}")).collect();
            writeln!(
                f,
                "  {endpoint:<14} {:>8} {:>9.2} {:>9.2} {:>9.2}  {}",
                p.count,
                p.p50,
                p.p95,
                p.p99,
                answers.join(", ")
            )?;
        }
        if self.broken.is_empty() {
            writeln!(f, "  sound: nothing oversold, nothing sold twice, no server errors")
        } else {
            writeln!(f, "  BROKEN: {}", self.broken.join("; "))
        }
    }
}
