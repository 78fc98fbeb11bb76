//! This replica's side of the back-pressure (issue 18, [`service_kit::distress`]): every
//! `publish_every_ms` it takes the mean time its work waited for a database connection,
//! turns it into a distress level (smoothed), shows it in its metrics, and reports it
//! to the waiting room through Redis when it has been given one. A report that fails
//! (Redis down) is counted and tried again at the next interval; selling never waits
//! for it.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use service_kit::distress::{self, DistressThresholds, PoolPressure, Smoothed};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Where this replica's reports go: the deployment's Redis and key prefix.
#[derive(Clone)]
pub struct ReportTo {
    pub redis: ConnectionManager,
    pub prefix: String,
}

/// Measures and reports; runs until shutdown.
pub struct Reporter {
    pressure: Arc<PoolPressure>,
    thresholds: DistressThresholds,
    to: Option<ReportTo>,
    /// This process's name among the reports: a replica that restarts reports anew,
    /// and its old report expires.
    replica: String,
}

impl Reporter {
    pub fn new(pressure: Arc<PoolPressure>, thresholds: DistressThresholds, to: Option<ReportTo>) -> Self {
        Self { pressure, thresholds, to, replica: Uuid::new_v4().to_string() }
    }

    pub fn spawn(self, shutdown: CancellationToken) {
        if !self.thresholds.enabled {
            return;
        }
        tokio::spawn(self.run(shutdown));
    }

    async fn run(mut self, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.thresholds.publish_every_ms);
        let ttl = Duration::from_millis(self.thresholds.report_ttl_ms);
        let smoothing = Duration::from_millis(self.thresholds.smoothing_ms);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut smoothed = Smoothed::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let wait = self.pressure.take_mean();
            let level = smoothed.update(self.thresholds.level(wait), every, smoothing);
            crate::metrics::distress(wait, level);
            if let Some(to) = &mut self.to {
                if let Err(e) = distress::publish(&mut to.redis, &to.prefix, &self.replica, level, ttl).await {
                    crate::metrics::distress_report_failed();
                    tracing::debug!(error = ?e, "the distress report could not be written");
                }
            }
        }
    }
}
