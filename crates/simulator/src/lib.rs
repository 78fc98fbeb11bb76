//! Rehearse a flash sale: a crowd of simulated fans goes through running waiting rooms
//! and gateways over HTTP, then the database is asked what was sold.
//!
//! - [`scenario`]: the event, the crowd, the arrival curve and the fans' behaviour.
//! - [`api`]: the calls, timed and counted per endpoint; [`targets`]: replicas in turn.
//! - [`fan`]: one fan's journey; [`invariants`]: the database's verdict;
//!   [`report`]: the table and the JSON.
//!
//! `boxoffice loadtest` is the command; `scripts/rehearse` runs it against several
//! replicas of each service.

pub mod api;
pub mod error;
pub mod fan;
pub mod invariants;
pub mod report;
pub mod scenario;
pub mod targets;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Notify;
use uuid::Uuid;

pub use error::Error;
pub use report::Report;
pub use scenario::Scenario;

use crate::api::{AdminKeys, AdmissionSample, Api};
use crate::fan::{Fan, FanRecord};
use crate::scenario::Arrival;
use crate::targets::Replicas;

/// Where to send the crowd and where to check the result.
pub struct Targets {
    pub waitrooms: Vec<String>,
    pub gateways: Vec<String>,
    pub waitroom_admin_key: String,
    pub gateway_admin_key: String,
    pub database_url: String,
    /// A file of the faults injected during the sale, read when it is over: one per
    /// line, `NAME START END` in Unix seconds. The report then gives each fault's
    /// recovery, and requests that got no answer are expected rather than broken.
    pub faults_file: Option<std::path::PathBuf>,
    /// The payments sandbox the gateways pay through, if the rehearsal may set its
    /// webhook faults (the scenario's `[payments]`); without it, the scenario may ask
    /// for none.
    pub payments_sandbox: Option<api::Sandbox>,
}

/// Plays `scenario` and reports. The report says whether the sale was sound
/// ([`Report::broken`]); errors are for a rehearsal that could not run at all.
pub async fn run(scenario: &Scenario, targets: Targets, progress: bool) -> Result<Report, Error> {
    scenario.validate()?;
    let api = Arc::new(
        Api::new(
            Replicas::new(targets.waitrooms)?,
            Replicas::new(targets.gateways)?,
            AdminKeys { waitroom: targets.waitroom_admin_key, gateway: targets.gateway_admin_key },
            scenario.connections,
        )?
        .with_sandbox(targets.payments_sandbox.clone()),
    );
    set_webhook_faults(&api, scenario, targets.payments_sandbox.is_some()).await?;
    let event = api.create_event(scenario).await?;
    let opens_at = (scenario.arrival == Arrival::PreQueue)
        .then(|| chrono::Utc::now() + Duration::from_secs_f64(scenario.arrival_secs + 1.0));
    api.open_waitroom(event.id, scenario, opens_at).await?;

    let bar = progress_bar(scenario.fans, progress);
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    api.traffic.start_clock(started);
    let deadline = started + Duration::from_secs(scenario.max_seconds);
    let spacing = match scenario.arrival {
        Arrival::AllAtOnce => Duration::ZERO,
        Arrival::Ramp | Arrival::PreQueue => Duration::from_secs_f64(scenario.arrival_secs / f64::from(scenario.fans)),
    };
    let sale_over = Arc::new(Notify::new());
    let sampler = tokio::spawn(sample_admissions(api.clone(), event.id, started, sale_over.clone()));
    let records: Vec<FanRecord> = futures::stream::iter(0..scenario.fans)
        .map(|index| {
            let (api, bar) = (api.clone(), bar.clone());
            async move {
                tokio::time::sleep_until((started + spacing * index).into()).await;
                let fan = Fan {
                    api: &api,
                    scenario,
                    event,
                    plan: scenario.plan_of(index),
                    declined_first: scenario.declined_first(index),
                    streams: scenario.streams(index),
                    started,
                    deadline,
                };
                let record = fan.run().await;
                bar.inc(1);
                record
            }
        })
        .buffer_unordered(scenario.concurrency)
        .collect()
        .await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    sale_over.notify_one();
    let samples = sampler.await.unwrap_or_default();
    let told: Vec<_> = records.iter().filter_map(|r| r.told).collect();
    let settle = Duration::from_secs(scenario.payments.settle_secs);
    let paid = records.iter().filter(|r| r.payment.paid).count() as i64;
    let database = invariants::check(&targets.database_url, event.id, &told, paid, settle).await?;
    let faults = match &targets.faults_file {
        Some(path) => report::read_faults(path, started_unix)?,
        None => Vec::new(),
    };
    let mut report = Report::new(scenario, &records, &api.traffic, &samples, database, api.replicas(), elapsed);
    report.sell_out = report::SellOut::of(&records, report.database.sold_out_at_unix, started_unix);
    report.add_chaos(&api.traffic.timeline(), faults, targets.faults_file.is_some());
    Ok(report)
}

/// Tells the sandbox the scenario's webhook faults, so a rehearsal says what it played
/// against; none asked for and no sandbox given is a rehearsal without faults.
async fn set_webhook_faults(api: &Api, scenario: &Scenario, sandbox_known: bool) -> Result<(), Error> {
    let payments = &scenario.payments;
    if !sandbox_known && !payments.has_webhook_faults() {
        return Ok(());
    }
    let faults = serde_json::json!({
        "webhook_delay_ms": payments.webhook_delay_ms,
        "webhook_late_probability": payments.webhook_late_rate,
        "webhook_late_ms": payments.webhook_late_ms,
        "webhook_duplicate_probability": payments.webhook_duplicate_rate,
        "webhook_drop_probability": payments.webhook_drop_rate,
    });
    api.set_sandbox_faults(faults).await
}

/// The waiting room's admitted count twice a second, until the sale is over: the
/// achieved rate by its own count, not by when fans happened to poll.
async fn sample_admissions(
    api: Arc<Api>,
    event: Uuid,
    started: Instant,
    sale_over: Arc<Notify>,
) -> Vec<AdmissionSample> {
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            () = sale_over.notified() => return samples,
            _ = ticks.tick() => {
                if let Ok(sample) = api.admission_sample(event, started.elapsed()).await {
                    samples.push(sample);
                }
            }
        }
    }
}

fn progress_bar(fans: u32, visible: bool) -> ProgressBar {
    let target = if visible { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(u64::from(fans)), target);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} fans done")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}
