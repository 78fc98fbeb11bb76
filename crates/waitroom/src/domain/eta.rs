//! How long a waiting fan should expect to wait.

use super::settings::EventState;

/// Seconds until a fan at `position` (1 = next) is admitted, or `None` when nobody can
/// say (the event is paused or closed).
///
/// Uses the admission rate actually measured, which reflects the max-active cap and
/// skipped ghosts; before there is a measurement (the first seconds of a sale) it
/// falls back to the configured rate.
pub fn estimate_secs(
    position: u64,
    state: EventState,
    measured_rate: Option<f64>,
    configured_rate: f64,
) -> Option<u64> {
    if state != EventState::Running {
        return None;
    }
    let rate = measured_rate.filter(|r| r.is_finite() && *r > 0.0).unwrap_or(configured_rate);
    if rate <= 0.0 {
        return None;
    }
    // The head of the queue (position 1) is admitted within the next 1/rate seconds.
    Some((position as f64 / rate).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_rate_wins_over_the_configured_one() {
        assert_eq!(estimate_secs(100, EventState::Running, Some(10.0), 50.0), Some(10));
        assert_eq!(estimate_secs(100, EventState::Running, None, 50.0), Some(2));
        assert_eq!(estimate_secs(1, EventState::Running, Some(0.5), 50.0), Some(2));
    }

    #[test]
    fn nobody_can_say_while_paused() {
        assert_eq!(estimate_secs(1, EventState::Paused, Some(10.0), 10.0), None);
    }
}
