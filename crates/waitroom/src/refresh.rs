//! The rule both background reads follow (the seat feed per event, the gateways'
//! distress reports): at most one read in flight, started no more often than its
//! interval, so an admission step only ever starts a read and never waits for one.

use std::time::{Duration, Instant};

/// One background read's turn.
#[derive(Debug, Default)]
pub struct RefreshTurn {
    /// When the last read started.
    started_at: Option<Instant>,
    /// A read is in flight.
    running: bool,
}

impl RefreshTurn {
    /// Takes the turn if none is in flight and the last started at least `every` ago;
    /// the caller then starts the read and calls [`Self::finished`] when it ends.
    pub fn take(&mut self, every: Duration) -> bool {
        let due = self.started_at.is_none_or(|at| at.elapsed() >= every);
        if self.running || !due {
            return false;
        }
        self.running = true;
        self.started_at = Some(Instant::now());
        true
    }

    pub fn finished(&mut self) {
        self.running = false;
    }

    /// Whether a read started within `within`.
    pub fn started_within(&self, within: Duration) -> bool {
        self.started_at.is_some_and(|at| at.elapsed() < within)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_at_a_time_and_no_more_often_than_the_interval() {
        let mut turn = RefreshTurn::default();
        assert!(!turn.started_within(Duration::from_secs(60)));
        assert!(turn.take(Duration::ZERO));
        assert!(!turn.take(Duration::ZERO), "one in flight");
        turn.finished();
        assert!(turn.take(Duration::ZERO));
        turn.finished();
        assert!(!turn.take(Duration::from_secs(60)), "not due yet");
        assert!(turn.started_within(Duration::from_secs(60)));
    }
}
