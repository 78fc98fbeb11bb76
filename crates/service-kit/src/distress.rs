//! Back-pressure from the gateways to the waiting room (issue 18): how distressed the
//! gateways are, measured where it happens and read where admission is decided.
//!
//! How the signal travels:
//!
//! 1. Each gateway replica measures how long its database work waits for a pooled
//!    connection ([`PoolPressure`], fed by [`crate::postgres::Database`]): a pool that
//!    is saturated makes every order wait, and the wait grows before anything fails.
//! 2. Every `publish_every_ms` it turns that wait into a distress level, 0 (fine) to 1
//!    (saturated), by [`DistressThresholds`], and writes it into one Redis hash of the
//!    deployment (`<prefix>:gw:distress`, a field per replica) with an expiry by Redis'
//!    clock ([`publish`]).
//! 3. The waiting room's admitter reads the hash ([`read`]): the mean level of the
//!    replicas whose reports have not expired. A replica that stops reporting (it
//!    crashed, was scaled down, lost Redis) drops out when its report expires: silence
//!    is not distress.
//!
//! Redis carries it, not PostgreSQL, because the distress is usually PostgreSQL's: a
//! report that first had to get a connection from the saturated pool would arrive
//! last. The gateway's Redis use is this alone; a Redis that is down loses the signal,
//! never a sale.

use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::Script;
use serde::Deserialize;

/// Levels below this are reported as 0: smoothing approaches zero without reaching
/// it, and the waiting room is to say when the distress is over.
const LEVEL_FLOOR: f64 = 0.01;

/// How long work waited for a pooled connection since it was last asked: every wait is
/// added ([`crate::postgres::Database`] records each acquire), and [`Self::take_mean`]
/// gives their mean and starts over.
#[derive(Debug, Default)]
pub struct PoolPressure {
    waits: Mutex<(Duration, u32)>,
}

impl PoolPressure {
    pub fn record(&self, waited: Duration) {
        let mut waits = self.waits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        waits.0 += waited;
        waits.1 = waits.1.saturating_add(1);
    }

    /// The mean wait since the last call; zero when nothing waited (no work is no
    /// pressure).
    pub fn take_mean(&self) -> Duration {
        let mut waits = self.waits.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (total, count) = std::mem::take(&mut *waits);
        if count == 0 {
            Duration::ZERO
        } else {
            total / count
        }
    }
}

/// A gateway's distress level as it reports it: each interval's level, smoothed so
/// that after a change it has moved 63 % of the way in `smoothing` (a moment's queue is
/// not distress, and a recovery shows within seconds, smoothly).
#[derive(Debug, Default, Clone, Copy)]
pub struct Smoothed {
    level: f64,
}

impl Smoothed {
    /// Takes in the level of the last `interval` and gives the level to report.
    pub fn update(&mut self, level: f64, interval: Duration, smoothing: Duration) -> f64 {
        let weight = 1.0 - (-interval.as_secs_f64() / smoothing.as_secs_f64().max(1e-3)).exp();
        self.level += weight * (level - self.level);
        if self.level < LEVEL_FLOOR {
            self.level = 0.0;
        }
        self.level
    }
}

/// `[gateway.distress]`: when a gateway counts itself in distress, and how it says so.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct DistressThresholds {
    /// Off: the gateway reports nothing (and needs no Redis).
    pub enabled: bool,
    /// An average connection wait up to this is no distress (level 0).
    pub pool_wait_low_ms: u64,
    /// At or beyond this, full distress (level 1); linear in between.
    pub pool_wait_high_ms: u64,
    /// How often each replica reports.
    pub publish_every_ms: u64,
    /// A report older than this is ignored.
    pub report_ttl_ms: u64,
    /// How slowly the reported level follows the waits (see [`Smoothed`]).
    pub smoothing_ms: u64,
}

impl DistressThresholds {
    pub fn validate(&self) -> Result<(), String> {
        if self.pool_wait_high_ms <= self.pool_wait_low_ms {
            return Err("gateway.distress.pool_wait_high_ms must be above pool_wait_low_ms".into());
        }
        if !(50..=60_000).contains(&self.publish_every_ms) {
            return Err("gateway.distress.publish_every_ms must be 50-60000".into());
        }
        if !(100..=600_000).contains(&self.smoothing_ms) {
            return Err("gateway.distress.smoothing_ms must be 100-600000".into());
        }
        if self.report_ttl_ms < 2 * self.publish_every_ms {
            return Err("gateway.distress.report_ttl_ms must be at least twice publish_every_ms".into());
        }
        Ok(())
    }

    /// The distress level of an average wait.
    pub fn level(&self, wait: Duration) -> f64 {
        let (low, high) = (self.pool_wait_low_ms as f64, self.pool_wait_high_ms as f64);
        ((wait.as_secs_f64() * 1000.0 - low) / (high - low)).clamp(0.0, 1.0)
    }
}

/// The deployment's hash of reports.
pub fn key(prefix: &str) -> String {
    format!("{prefix}:gw:distress")
}

static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local t = redis.call('TIME')
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
         redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
         redis.call('PEXPIRE', KEYS[1], ARGV[3])
         return 1",
    )
});

/// Reports `level` for `replica`, valid for `ttl` by Redis' clock. The hash itself
/// expires with the last report, so a deployment that stops leaves nothing behind.
pub async fn publish(
    conn: &mut ConnectionManager,
    prefix: &str,
    replica: &str,
    level: f64,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let _: i64 = PUBLISH
        .key(key(prefix))
        .arg(replica)
        .arg(format!("{level:.4}"))
        .arg(ttl.as_millis() as u64)
        .invoke_async(conn)
        .await?;
    Ok(())
}

static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local t = redis.call('TIME')
         local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
         local fields = redis.call('HGETALL', KEYS[1])
         local live, sum = 0, 0
         for i = 1, #fields, 2 do
           local level, expires = string.match(fields[i + 1], '^(%S+) (%d+)$')
           if level and tonumber(expires) > now then
             live = live + 1
             sum = sum + tonumber(level)
           else
             redis.call('HDEL', KEYS[1], fields[i])
           end
         end
         return {live, tostring(sum)}",
    )
});

/// What the gateways report now.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Fleet {
    /// Replicas whose report has not expired.
    pub reporting: u64,
    /// Their mean distress level, 0 to 1 (0 when none reports).
    pub level: f64,
}

/// The gateways' reports, dropping those that expired.
pub async fn read(conn: &mut ConnectionManager, prefix: &str) -> redis::RedisResult<Fleet> {
    let (reporting, sum): (u64, String) = READ.key(key(prefix)).invoke_async(conn).await?;
    let sum: f64 = sum.parse().unwrap_or(0.0);
    let level = if reporting == 0 { 0.0 } else { (sum / reporting as f64).clamp(0.0, 1.0) };
    Ok(Fleet { reporting, level })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> DistressThresholds {
        DistressThresholds {
            enabled: true,
            pool_wait_low_ms: 50,
            pool_wait_high_ms: 550,
            publish_every_ms: 500,
            report_ttl_ms: 3000,
            smoothing_ms: 3000,
        }
    }

    #[test]
    fn the_level_is_linear_between_the_thresholds() {
        let t = thresholds();
        assert_eq!(t.level(Duration::from_millis(10)), 0.0);
        assert_eq!(t.level(Duration::from_millis(50)), 0.0);
        assert_eq!(t.level(Duration::from_millis(300)), 0.5);
        assert_eq!(t.level(Duration::from_millis(550)), 1.0);
        assert_eq!(t.level(Duration::from_secs(5)), 1.0);
    }

    #[test]
    fn the_pressure_is_the_mean_wait_since_it_was_last_taken() {
        let pressure = PoolPressure::default();
        assert_eq!(pressure.take_mean(), Duration::ZERO);
        pressure.record(Duration::from_millis(100));
        pressure.record(Duration::from_millis(300));
        assert_eq!(pressure.take_mean(), Duration::from_millis(200));
        assert_eq!(pressure.take_mean(), Duration::ZERO, "nothing waited since");
    }

    #[test]
    fn the_reported_level_moves_smoothly_both_ways_and_reaches_zero() {
        let mut smoothed = Smoothed::default();
        let (tick, smoothing) = (Duration::from_millis(500), Duration::from_secs(3));
        let first = smoothed.update(1.0, tick, smoothing);
        assert!((0.15..0.16).contains(&first), "{first}");
        let after_3s = (0..5).map(|_| smoothed.update(1.0, tick, smoothing)).last().unwrap();
        assert!((0.63..0.64).contains(&after_3s), "{after_3s}");
        let recovering = smoothed.update(0.0, tick, smoothing);
        assert!(recovering < after_3s && recovering > 0.5, "{recovering}");
        let recovered = (0..30).map(|_| smoothed.update(0.0, tick, smoothing)).last().unwrap();
        assert_eq!(recovered, 0.0);
    }
}
