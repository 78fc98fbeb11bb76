//! What happened, for people (a table) and machines (`--json`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::api::{AdmissionSample, Answered, Traffic};
use crate::error::Error;
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
    /// Checkout as the fans went through it; what the database made of it is in
    /// `database.payments`.
    pub payments: FansPaying,
    pub database: DatabaseCheck,
    pub fairness: Fairness,
    pub admission_rate: AdmissionRate,
    /// The sell-out as the line heard it; None when the show did not sell out.
    pub sell_out: Option<SellOut>,
    pub latency_ms: BTreeMap<String, Percentiles>,
    /// How long requests waited for one of the simulator's connections before being
    /// sent; not part of `latency_ms`. Long waits mean the crowd outran this machine:
    /// fans then saw the endpoint latency plus this.
    pub connection_wait_ms: Percentiles,
    /// By endpoint, then answer code (`ok` for successes).
    pub answers: BTreeMap<String, BTreeMap<String, u64>>,
    pub requests: u64,
    pub requests_per_sec: f64,
    /// Answers with a 5xx status other than 503.
    pub server_errors: u64,
    /// Requests that got no answer (connection reset, timeout).
    pub unanswered: u64,
    /// Connections a replica refused (it was down): sent to the next replica instead.
    pub refused: u64,
    /// `503 unavailable` answers: load shed as designed, retried by fans.
    pub shed: u64,
    /// Answers per second of the sale, by service then status (`none`: no answer;
    /// `refused`: a replica refused the connection, the request went to the next).
    pub timeline: Vec<Second>,
    /// By service: stretches of failed answers (5xx or none), runs less than a second
    /// apart merged, in seconds since the start.
    pub failure_stretches: BTreeMap<&'static str, Vec<Stretch>>,
    /// The faults injected (from `--faults-file`) and how each service came through.
    pub faults: Vec<FaultOutcome>,
    pub elapsed_secs: f64,
    pub replicas: Replicas,
    /// Empty when the sale was sound; otherwise what broke. Non-empty exits non-zero.
    pub broken: Vec<String>,
}

/// The sell-out as the line heard it (issue 18): when the last place sold, and how the
/// waiting room's answers followed.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SellOut {
    /// When the last place sold, in seconds since the start (the database's clock).
    pub at_s: f64,
    /// Fans who had joined and were not yet admitted then.
    pub waiting_then: usize,
    /// Of them, fans admitted afterwards (target: under 1 % of `waiting_then`).
    pub admitted_after: usize,
    /// The last answer a fan got that did not say `sold_out`, in seconds after the
    /// sell-out (0 when none came after it): every answer more than 2 s after is to
    /// say it.
    pub last_answer_not_saying_it_s: f64,
    /// Fans who heard otherwise more than 2 s after the sell-out.
    pub fans_told_otherwise_after_2s: usize,
    /// Of the fans waiting then, those waiting on a standing stream.
    pub streaming_then: usize,
    /// Of them, those the stream told `sold_out` (the others were admitted, or their
    /// stream ended and polls told them).
    pub told_on_stream: usize,
    /// How long after the sell-out the last of them was told, in seconds (0 when none
    /// was): streams are to push it within 2 s.
    pub last_told_on_stream_s: f64,
    /// Fans the stream told more than 2 s after the sell-out.
    pub told_on_stream_after_2s: usize,
}

impl SellOut {
    /// From the fans' records and the database's sell-out time; `started_unix` is when
    /// the rehearsal began (Unix time).
    pub fn of(records: &[FanRecord], sold_out_at_unix: Option<f64>, started_unix: Duration) -> Option<Self> {
        let at = Duration::try_from_secs_f64(sold_out_at_unix? - started_unix.as_secs_f64()).unwrap_or_default();
        let waiting: Vec<&FanRecord> = records
            .iter()
            .filter(|r| r.joined && r.join_answered <= at && r.admitted_after.is_none_or(|admitted| admitted > at))
            .collect();
        let lag = |r: &FanRecord| r.last_answer_not_sold_out.map_or(Duration::ZERO, |last| last.saturating_sub(at));
        let streaming: Vec<&&FanRecord> = waiting.iter().filter(|r| r.streamed).collect();
        let pushed: Vec<Duration> =
            streaming.iter().filter_map(|r| r.told_sold_out_on_stream).map(|told| told.saturating_sub(at)).collect();
        Some(Self {
            at_s: at.as_secs_f64(),
            waiting_then: waiting.len(),
            admitted_after: waiting.iter().filter(|r| r.admitted_after.is_some()).count(),
            last_answer_not_saying_it_s: records.iter().map(lag).max().unwrap_or_default().as_secs_f64(),
            fans_told_otherwise_after_2s: records.iter().filter(|r| lag(r) > Duration::from_secs(2)).count(),
            streaming_then: streaming.len(),
            told_on_stream: pushed.len(),
            last_told_on_stream_s: pushed.iter().max().copied().unwrap_or_default().as_secs_f64(),
            told_on_stream_after_2s: pushed.iter().filter(|lag| **lag > Duration::from_secs(2)).count(),
        })
    }
}

/// What fans did and saw at checkout.
#[derive(Debug, Default, Serialize)]
pub struct FansPaying {
    /// Fans who checked out at least once.
    pub fans_checked_out: usize,
    /// Checkouts answered 2xx (a second after a decline counts).
    pub checkouts: u64,
    /// Cards the payment page declined.
    pub cards_declined: u64,
    /// Fans the payment page told their payment succeeded.
    pub paid: usize,
    /// Of them, fans who paid after their hold's end (`pay_late`).
    pub paid_late: usize,
}

impl FansPaying {
    fn of(records: &[FanRecord]) -> Self {
        let mut paying = Self::default();
        for payment in records.iter().map(|r| r.payment) {
            paying.fans_checked_out += usize::from(payment.checkouts > 0);
            paying.checkouts += u64::from(payment.checkouts);
            paying.cards_declined += u64::from(payment.declined);
            paying.paid += usize::from(payment.paid);
            paying.paid_late += usize::from(payment.paid && payment.late);
        }
        paying
    }
}

#[derive(Debug, Serialize)]
pub struct Second {
    pub second: u32,
    pub gateway: BTreeMap<String, u64>,
    pub waitroom: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stretch {
    pub start_s: f64,
    pub end_s: f64,
    pub failed: u64,
}

/// A fault injected during the sale, in seconds since the start.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Serialize)]
pub struct FaultOutcome {
    #[serde(flatten)]
    pub fault: Fault,
    pub services: BTreeMap<&'static str, Recovery>,
}

/// One service through one fault, over its window: from the fault's start to the next
/// fault's start (or the end of the sale).
#[derive(Debug, Serialize)]
pub struct Recovery {
    /// Answers that failed (5xx or none) in the window; 503s among them.
    pub failed: u64,
    pub shed_503: u64,
    /// The last failed answer in the window, in seconds after the fault ended (negative:
    /// failures stopped before it ended).
    pub last_failure_after_end_s: Option<f64>,
    /// Seconds from the fault's end to the first 2xx after the window's last failure (or
    /// after the end, when nothing failed after it): how long fans waited for service.
    pub recovery_s: Option<f64>,
}

/// Reads `NAME START END` lines (Unix seconds) into faults relative to `started`.
pub fn read_faults(path: &std::path::Path, started: Duration) -> Result<Vec<Fault>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Setup(format!("{}: {e}", path.display())))?;
    let origin = started.as_secs_f64();
    let mut faults = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let secs = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
        let (Some(name), Some(start), Some(end)) = (fields.first(), secs(1), secs(2)) else {
            return Err(Error::Setup(format!("{}: expected NAME START END, got {line:?}", path.display())));
        };
        faults.push(Fault { name: (*name).to_owned(), start_s: start - origin, end_s: end - origin });
    }
    faults.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    Ok(faults)
}

fn timeline(answers: &[Answered]) -> Vec<Second> {
    let mut seconds: BTreeMap<u32, Second> = BTreeMap::new();
    for a in answers {
        let second = a.at_ms / 1000;
        let entry = seconds.entry(second).or_insert_with(|| Second {
            second,
            gateway: BTreeMap::new(),
            waitroom: BTreeMap::new(),
        });
        let by_status = match a.service() {
            "gateway" => &mut entry.gateway,
            "waitroom" => &mut entry.waitroom,
            // The provider's page is not ours to recover; its answers are in the table.
            _ => continue,
        };
        let status = match a.status {
            0 => "none".to_owned(),
            crate::api::REFUSED => "refused".to_owned(),
            status => status.to_string(),
        };
        *by_status.entry(status).or_default() += 1;
    }
    seconds.into_values().collect()
}

/// `answers` sorted by time.
fn failure_stretches(answers: &[Answered], service: &str) -> Vec<Stretch> {
    let mut stretches: Vec<Stretch> = Vec::new();
    for a in answers.iter().filter(|a| a.service() == service && a.failed()) {
        let at = f64::from(a.at_ms) / 1000.0;
        match stretches.last_mut() {
            Some(last) if at - last.end_s < 1.0 => {
                last.end_s = at;
                last.failed += 1;
            }
            _ => stretches.push(Stretch { start_s: at, end_s: at, failed: 1 }),
        }
    }
    stretches
}

/// `answers` sorted by time.
fn recovery(answers: &[Answered], service: &str, fault: &Fault, window_end: f64) -> Recovery {
    let at = |a: &Answered| f64::from(a.at_ms) / 1000.0;
    let in_window: Vec<&Answered> =
        answers.iter().filter(|a| a.service() == service && at(a) >= fault.start_s && at(a) < window_end).collect();
    let failures: Vec<&&Answered> = in_window.iter().filter(|a| a.failed()).collect();
    let last_failure = failures.last().map(|a| at(a));
    let from = last_failure.map_or(fault.end_s, |last| last.max(fault.end_s));
    let first_ok = in_window.iter().find(|a| (200..300).contains(&a.status) && at(a) > from).map(|a| at(a));
    Recovery {
        failed: failures.len() as u64,
        shed_503: failures.iter().filter(|a| a.status == 503).count() as u64,
        last_failure_after_end_s: last_failure.map(|last| last - fault.end_s),
        recovery_s: first_ok.map(|ok| (ok - fault.end_s).max(0.0)),
    }
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
            payments: FansPaying::of(records),
            database,
            fairness: Fairness { overtakes: overtakes(records), pre_queue_order_kept: pre_queue_order_kept(records) },
            admission_rate: AdmissionRate { configured: scenario.admit_rate, achieved: achieved_rate(samples) },
            sell_out: None,
            latency_ms,
            connection_wait_ms: Percentiles::of(&traffic.slot_wait()),
            answers,
            requests: traffic.requests(),
            requests_per_sec: traffic.requests() as f64 / elapsed.as_secs_f64().max(1e-9),
            server_errors: traffic.server_errors(),
            unanswered: traffic.unanswered(),
            refused: traffic.refused(),
            shed: traffic.shed(),
            timeline: Vec::new(),
            failure_stretches: BTreeMap::new(),
            faults: Vec::new(),
            elapsed_secs: elapsed.as_secs_f64(),
            replicas: Replicas { waitroom: replicas.0, gateway: replicas.1 },
            broken: Vec::new(),
        };
        report.broken = report.find_broken(false);
        report
    }

    /// Adds the timeline and, for a sale with faults injected, each fault's recovery;
    /// with faults, requests that got no answer are expected, not broken.
    pub fn add_chaos(&mut self, answers: &[Answered], faults: Vec<Fault>, chaos: bool) {
        let mut answers = answers.to_vec();
        answers.sort_by_key(|a| a.at_ms);
        self.timeline = timeline(&answers);
        for service in ["gateway", "waitroom"] {
            self.failure_stretches.insert(service, failure_stretches(&answers, service));
        }
        let ends: Vec<f64> =
            faults.iter().skip(1).map(|f| f.start_s).chain(std::iter::once(self.elapsed_secs + 1.0)).collect();
        self.faults = faults
            .into_iter()
            .zip(ends)
            .map(|(fault, window_end)| {
                let services = ["gateway", "waitroom"]
                    .into_iter()
                    .map(|service| (service, recovery(&answers, service, &fault, window_end)))
                    .collect();
                FaultOutcome { fault, services }
            })
            .collect();
        self.broken = self.find_broken(chaos);
    }

    /// The longest stretch of failed answers of a service, in seconds.
    pub fn longest_failure_stretch(&self, service: &str) -> Option<Stretch> {
        self.failure_stretches
            .get(service)?
            .iter()
            .copied()
            .max_by(|a, b| (a.end_s - a.start_s).total_cmp(&(b.end_s - b.start_s)))
    }

    fn find_broken(&self, chaos: bool) -> Vec<String> {
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
        let paying = &db.payments.violations;
        if paying.total() > 0 {
            broken.push(format!("{} checkout invariant violations: {paying:?}", paying.total()));
        }
        if db.payments.paid_unsettled > 0 {
            broken.push(format!(
                "{} payments fans made are neither booked nor refunded (money taken for nothing)",
                db.payments.paid_unsettled
            ));
        }
        if self.server_errors > 0 {
            broken.push(format!("{} requests answered 500", self.server_errors));
        }
        if self.unanswered > 0 && !chaos {
            broken.push(format!("{} requests not answered at all", self.unanswered));
        }
        let waitlist = &db.waitlist;
        if waitlist.out_of_order > 0 {
            broken.push(format!("{} waitlist offers made out of line order", waitlist.out_of_order));
        }
        if waitlist.sold_past_the_line > 0 {
            broken.push(format!(
                "{} places sold to others while the waitlist for them waited",
                waitlist.sold_past_the_line
            ));
        }
        let told = &db.told;
        if !told.missing.is_empty() {
            broken.push(format!(
                "{} of {} bookings fans were told about are not in the database: {:?}",
                told.missing.len(),
                told.told,
                told.missing
            ));
        }
        if !told.wrong_state.is_empty() {
            broken.push(format!(
                "{} bookings fans were told about are in another state than they were told: {:?}",
                told.wrong_state.len(),
                told.wrong_state
            ));
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
            "  database: {} of {} places sold, {} confirmed bookings (fans hold {} places), event {}",
            db.seats_sold, db.capacity, db.bookings, self.seats_booked_by_fans, db.event_id
        )?;
        writeln!(
            f,
            "  oversold {}   seats in two bookings {}   other invariant violations {}",
            db.violations.oversold_seats,
            db.violations.seats_in_two_bookings,
            db.violations.by_invariant().iter().skip(2).map(|(_, n)| n).sum::<i64>()
        )?;
        self.fmt_payments(f)?;
        self.fmt_waitlist(f)?;
        let kept = self.fairness.pre_queue_order_kept.map_or("-".to_owned(), |k| format!("{:.2}", k));
        writeln!(f, "  fairness: {} overtakes after opening; pre-queue admitted in join order for {kept} of consecutive pairs (0.5 = shuffled)", self.fairness.overtakes)?;
        let achieved = self.admission_rate.achieved.map_or("-".to_owned(), |r| format!("{r:.1}"));
        writeln!(f, "  admission rate: {achieved}/s achieved, {}/s configured", self.admission_rate.configured)?;
        match &self.sell_out {
            Some(sold) => writeln!(
                f,
                "  sell-out at {:.1} s: {} of the {} fans then waiting admitted after it; the last answer not saying sold_out came {:.2} s after it ({} fans heard otherwise over 2 s after)",
                sold.at_s,
                sold.admitted_after,
                sold.waiting_then,
                sold.last_answer_not_saying_it_s,
                sold.fans_told_otherwise_after_2s
            )
            .and_then(|()| {
                writeln!(
                    f,
                    "    on streams: {} of them waiting on one, {} told sold_out by it, the last {:.2} s after it ({} over 2 s)",
                    sold.streaming_then, sold.told_on_stream, sold.last_told_on_stream_s, sold.told_on_stream_after_2s
                )
            })?,
            None => writeln!(f, "  sell-out: none (places left unsold or held at the end)")?,
        }
        writeln!(
            f,
            "  told bookings: {} of {} found in the database as the fans were told ({} missing, {} in another state)",
            db.told.found,
            db.told.told,
            db.told.missing.len(),
            db.told.wrong_state.len()
        )?;
        writeln!(
            f,
            "  {} requests, {:.0}/s, {} shed with 503 (retried), {} answered 500, {} not answered, {} refused (sent to the next replica)",
            self.requests, self.requests_per_sec, self.shed, self.server_errors, self.unanswered, self.refused
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
        self.fmt_chaos(f)?;
        if self.broken.is_empty() {
            writeln!(
                f,
                "  sound: nothing oversold, nothing sold twice or unpaid, nothing over-refunded, no server errors, every told booking there"
            )
        } else {
            writeln!(f, "  BROKEN: {}", self.broken.join("; "))
        }
    }
}

impl Report {
    /// The payments and refunds; only for a sale where fans paid, so a free one's
    /// report stays as it was.
    fn fmt_payments(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (fans, db) = (&self.payments, &self.database.payments);
        if fans.checkouts == 0 && db.attempts.is_empty() {
            return Ok(());
        }
        let counts = |by: &BTreeMap<String, i64>| {
            let listed: Vec<String> = by.iter().map(|(what, n)| format!("{what} {n}")).collect();
            if listed.is_empty() {
                "none".to_owned()
            } else {
                listed.join(", ")
            }
        };
        let resolved = |what: &str| db.resolutions.get(what).copied().unwrap_or(0);
        writeln!(
            f,
            "  checkout: {} fans checked out ({} checkouts), {} cards declined, {} paid ({} after their hold ended)",
            fans.fans_checked_out, fans.checkouts, fans.cards_declined, fans.paid, fans.paid_late
        )?;
        writeln!(f, "  payments: {}; {} pending at the end", counts(&db.attempts), db.pending)?;
        writeln!(
            f,
            "  paid: booked {}, late payments booked {} or refunded {} ({} flagged for the organizer)",
            resolved("booked"),
            resolved("late_booked"),
            resolved("refunded"),
            db.needs_attention
        )?;
        writeln!(f, "  refunds: {} (by state: {})", counts(&db.refunds), counts(&db.refunds_by_state))?;
        let v = &db.violations;
        writeln!(
            f,
            "  paid bookings without a payment {}   payments in two bookings {}   over-refunded {}   paid, neither booked nor refunded {} (+{} the gateway never heard of)",
            v.paid_bookings_without_payment,
            v.payments_in_two_bookings,
            v.over_refunded_payments,
            v.succeeded_without_booking_or_refund,
            db.paid_unsettled
        )
    }

    /// The waitlist; only for a sale that had one.
    fn fmt_waitlist(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waitlist = &self.database.waitlist;
        if waitlist.entries == 0 {
            return Ok(());
        }
        let offers: Vec<String> = waitlist.offers.iter().map(|(what, n)| format!("{what} {n}")).collect();
        writeln!(
            f,
            "  waitlist: {} entries, {} still waiting; offers: {}; {} made out of line order, {} places sold past the line",
            waitlist.entries,
            waitlist.still_waiting,
            if offers.is_empty() { "none".to_owned() } else { offers.join(", ") },
            waitlist.out_of_order,
            waitlist.sold_past_the_line
        )
    }

    /// The faults, their recoveries and the answers per second; only when faults were
    /// injected, so an ordinary rehearsal's report stays short.
    fn fmt_chaos(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.faults.is_empty() {
            return Ok(());
        }
        for service in ["gateway", "waitroom"] {
            let stretches = self.failure_stretches.get(service).map_or(0, Vec::len);
            match self.longest_failure_stretch(service) {
                Some(s) => writeln!(
                    f,
                    "  {service}: {stretches} stretch(es) of failed answers (5xx or none); longest {:.1} s ({:.1}-{:.1} s, {} failed)",
                    s.end_s - s.start_s,
                    s.start_s,
                    s.end_s,
                    s.failed
                )?,
                None => writeln!(f, "  {service}: no failed answers (5xx or none)")?,
            }
        }
        writeln!(
            f,
            "  faults (seconds since the start; recovery = fault end to the first 2xx after the last failure):"
        )?;
        for outcome in &self.faults {
            let fault = &outcome.fault;
            let services: Vec<String> = outcome
                .services
                .iter()
                .map(|(service, r)| {
                    let recovery = r.recovery_s.map_or("never".to_owned(), |s| format!("{s:.2} s"));
                    let last = r.last_failure_after_end_s.map_or("-".to_owned(), |s| format!("{s:+.2} s"));
                    format!(
                        "{service}: {} failed ({} 503), last failure {last}, recovery {recovery}",
                        r.failed, r.shed_503
                    )
                })
                .collect();
            writeln!(f, "    {:<16} {:>6.1}-{:<6.1} {}", fault.name, fault.start_s, fault.end_s, services.join("; "))?;
        }
        writeln!(f, "  answers per second (status x count; none = no answer):")?;
        let fault_at = |second: u32| {
            self.faults
                .iter()
                .filter(|o| o.fault.start_s.floor() as u32 <= second && second <= o.fault.end_s.floor() as u32)
                .map(|o| o.fault.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let codes = |by_status: &BTreeMap<String, u64>| {
            by_status.iter().map(|(status, n)| format!("{status}x{n}")).collect::<Vec<_>>().join(" ")
        };
        for second in &self.timeline {
            writeln!(
                f,
                "    {:>4}s  gw {:<40} wr {:<30} {}",
                second.second,
                codes(&second.gateway),
                codes(&second.waitroom),
                fault_at(second.second)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(at_ms: u32, endpoint: &'static str, status: u16) -> Answered {
        Answered { at_ms, endpoint, status }
    }

    #[test]
    fn failures_close_together_make_one_stretch_and_recovery_waits_for_the_first_2xx_after_the_last() {
        let answers = vec![
            answered(1_000, "book", 201),
            answered(10_000, "book", 503),
            answered(10_500, "hold", 0),
            answered(11_200, "book", 503),
            answered(11_300, "poll", 200),
            answered(14_500, "book", 503),
            answered(14_700, "book", 409),
            answered(15_250, "book", 201),
        ];
        let stretches = failure_stretches(&answers, "gateway");
        assert_eq!(stretches.len(), 2);
        assert_eq!((stretches[0].start_s, stretches[0].end_s, stretches[0].failed), (10.0, 11.2, 3));
        let fault = Fault { name: "pg".into(), start_s: 10.0, end_s: 14.0 };
        let gateway = recovery(&answers, "gateway", &fault, 30.0);
        assert_eq!((gateway.failed, gateway.shed_503), (4, 3));
        assert_eq!(gateway.last_failure_after_end_s, Some(0.5));
        assert!((gateway.recovery_s.unwrap() - 1.25).abs() < 1e-9);
        let waitroom = recovery(&answers, "waitroom", &fault, 30.0);
        assert_eq!((waitroom.failed, waitroom.last_failure_after_end_s), (0, None));
        assert_eq!(waitroom.recovery_s, None, "no 2xx of the waiting room after the fault ended");
    }
}
