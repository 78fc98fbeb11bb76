//! How soon a fan should poll again.
//!
//! Near the front a fan polls often, so an admission is picked up at once; far back,
//! rarely, because no poll can change their answer for a while. With every fan polling
//! every two seconds a million fans in line would send 500,000 polls a second; asking
//! each to wait about a quarter of their remaining wait (see `after_secs`) brings that,
//! by arithmetic, to about 60,000 at 1,000 admissions a second and a 60 s timeout.

/// Nobody is asked to poll more often than this.
pub const SHORTEST_SECS: u64 = 2;

/// Seconds until the fan should poll again, given how long until anything changes for
/// them (`wait_secs`: their ETA, or the time until the sale opens; `None` when nobody
/// can say). Never longer than a third of the abandonment timeout, so a fan who follows
/// the advice can miss two polls and still not be skipped as gone.
pub fn after_secs(wait_secs: Option<u64>, abandon_after_secs: u64) -> u64 {
    let longest = longest_secs(abandon_after_secs);
    let wanted = wait_secs.map_or(longest, |wait| wait / 4);
    wanted.clamp(SHORTEST_SECS.min(longest), longest)
}

/// The longest interval any fan is given: a third of the abandonment timeout.
pub fn longest_secs(abandon_after_secs: u64) -> u64 {
    (abandon_after_secs / 3).max(1)
}

/// How long admission stays paused after an event's Redis state was rebuilt from
/// PostgreSQL (a wipe): every fan who follows their `poll_after_secs` polls within
/// [`longest_secs`] and is put back in their place before anyone behind them can be
/// admitted. [`SHORTEST_SECS`] more allows for the poll's own round trip and a retry.
pub fn restore_pause_ms(abandon_after_secs: u64) -> u64 {
    (longest_secs(abandon_after_secs) + SHORTEST_SECS) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_front_polls_often_and_the_back_rarely() {
        assert_eq!(after_secs(Some(1), 60), SHORTEST_SECS);
        assert_eq!(after_secs(Some(40), 60), 10);
        assert_eq!(after_secs(Some(10_000), 60), 20, "capped well inside the abandonment timeout");
    }

    #[test]
    fn without_an_estimate_the_fan_only_keeps_their_place() {
        assert_eq!(after_secs(None, 60), 20);
        assert_eq!(after_secs(None, 3), 1, "a short timeout wins over the shortest interval");
        assert_eq!(after_secs(Some(0), 1), 1);
    }

    #[test]
    fn admission_pauses_after_a_rebuild_longer_than_any_fan_waits_between_polls() {
        for abandon in [1, 3, 60, 600] {
            let longest = [None, Some(0), Some(1_000_000)].map(|w| after_secs(w, abandon)).into_iter().max().unwrap();
            assert!(restore_pause_ms(abandon) >= longest * 1000 + 1000, "{abandon}");
        }
        assert_eq!(restore_pause_ms(60), 22_000);
    }
}
