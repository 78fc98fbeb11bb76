//! Back-pressure from the gateways (issue 18): the admission rate in force drops below
//! the organizer's rate while the gateways report distress, and comes back as it
//! clears. How the signal travels is in [`service_kit::distress`]: each gateway replica
//! reports how long its orders wait for a database connection, as a level from 0 to 1,
//! into the deployment's Redis; each waiting-room replica reads the reports every
//! `refresh_ms`, in the background (a step never waits for it).
//!
//! The rate in force is the organizer's times `1 - level × (1 - min_rate_share)`: at
//! full distress, `min_rate_share` of it, never 0 (admission slows, the line never
//! stalls on a signal), and never above the organizer's rate. The gateways' levels are
//! smoothed where they are measured, so the rate follows them over seconds, not by
//! jumps. No report, or none read for `stale_after_ms` (Redis unreachable), is no
//! distress: the organizer's rate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::Serialize;
use service_kit::distress::{self, Fleet};
use utoipa::ToSchema;

use crate::config::BackpressureConfig;
use crate::refresh::RefreshTurn;

#[derive(Clone)]
pub struct Backpressure {
    conn: ConnectionManager,
    prefix: Arc<str>,
    config: BackpressureConfig,
    state: Arc<Mutex<Read>>,
}

/// The last read, and whether one is running.
#[derive(Default)]
struct Read {
    fleet: Fleet,
    read_at: Option<Instant>,
    turn: RefreshTurn,
}

/// The back-pressure as the waiting room's stats show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct BackpressureView {
    /// Gateway replicas whose report has not expired.
    pub gateways_reporting: u64,
    /// Their mean distress level, 0 (fine) to 1 (saturated).
    pub gateway_distress: f64,
    /// The share of the organizer's rate in force because of it, 0 to 1.
    pub rate_share: f64,
}

impl Backpressure {
    pub fn new(conn: ConnectionManager, prefix: &str, config: BackpressureConfig) -> Self {
        Self { conn, prefix: prefix.into(), config, state: Arc::default() }
    }

    /// The gateways' distress now, and the rate share it leaves.
    pub fn view(&self) -> BackpressureView {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = state.read_at.is_some_and(|at| at.elapsed() <= Duration::from_millis(self.config.stale_after_ms));
        let fleet = if self.config.enabled && fresh { state.fleet } else { Fleet::default() };
        BackpressureView {
            gateways_reporting: fleet.reporting,
            gateway_distress: fleet.level,
            rate_share: rate_share(fleet.level, self.config.min_rate_share),
        }
    }

    /// Starts a read of the gateways' reports in the background if the last one is
    /// older than `refresh_ms` and none is running.
    pub fn refresh_in_background(&self) {
        if !self.config.enabled {
            return;
        }
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !state.turn.take(Duration::from_millis(self.config.refresh_ms)) {
                return;
            }
        }
        let backpressure = self.clone();
        tokio::spawn(async move {
            let read = backpressure.refresh().await;
            let mut state = backpressure.state.lock().unwrap_or_else(|e| e.into_inner());
            state.turn.finished();
            if let Err(e) = read {
                tracing::debug!(error = ?e, "the gateways' distress reports could not be read");
            }
        });
    }

    /// Reads the gateways' reports now.
    pub async fn refresh(&self) -> redis::RedisResult<Fleet> {
        let mut conn = self.conn.clone();
        let fleet = distress::read(&mut conn, &self.prefix).await?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.fleet = fleet;
        state.read_at = Some(Instant::now());
        drop(state);
        let view = self.view();
        crate::metrics::backpressure(view.gateways_reporting, view.gateway_distress, view.rate_share);
        Ok(fleet)
    }
}

/// `1 - level × (1 - min_share)`, written so that no distress is exactly the full rate
/// and full distress exactly the floor.
fn rate_share(level: f64, min_share: f64) -> f64 {
    if level <= 0.0 {
        1.0
    } else {
        min_share + (1.0 - min_share) * (1.0 - level.min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_runs_from_the_full_rate_to_the_floor() {
        assert_eq!(rate_share(0.0, 0.1), 1.0);
        assert_eq!(rate_share(1.0, 0.1), 0.1);
        assert_eq!(rate_share(0.5, 0.5), 0.75);
        assert_eq!(rate_share(3.0, 0.25), 0.25);
    }
}
