//! An event's refund policy: how much of the price a fan gets back for cancelling, by
//! how long before the event starts.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Invalid;

/// At most this many tiers: a policy is a few steps, not a curve.
pub const MAX_TIERS: usize = 10;

/// Cancelling at least `before_hours` before the start refunds `refund_percent` of the
/// price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundTier {
    pub before_hours: u32,
    #[schema(maximum = 100)]
    pub refund_percent: u8,
}

/// Tiers, earliest first (`before_hours` strictly falling). Later than the last tier a
/// fan may still cancel, for nothing back (the seat goes back on sale). An event
/// without a start date applies its first tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct RefundPolicy(pub Vec<RefundTier>);

impl RefundPolicy {
    pub fn validate(&self) -> Result<(), Invalid> {
        let invalid = |message: String| Err(Invalid::new("invalid_refund_policy", message));
        if self.0.is_empty() || self.0.len() > MAX_TIERS {
            return invalid(format!("a refund policy has 1-{MAX_TIERS} tiers"));
        }
        if let Some(tier) = self.0.iter().find(|t| t.refund_percent > 100) {
            return invalid(format!("refund_percent {} must be 0-100", tier.refund_percent));
        }
        if self.0.windows(2).any(|pair| pair[0].before_hours <= pair[1].before_hours) {
            return invalid("tiers must be ordered by before_hours, largest first, each different".into());
        }
        Ok(())
    }

    /// The percentage refunded when cancelling `hours_before_start` hours before the
    /// start (negative once it has started; None for an event without a start date).
    pub fn refund_percent(&self, hours_before_start: Option<f64>) -> u8 {
        match hours_before_start {
            None => self.0.first().map_or(0, |tier| tier.refund_percent),
            Some(hours) => {
                self.0.iter().find(|tier| hours >= f64::from(tier.before_hours)).map_or(0, |tier| tier.refund_percent)
            }
        }
    }

    /// The policy in words, for the fan (the confirmation email): each tier, then what
    /// is left after the last.
    pub fn in_words(&self) -> String {
        let tiers: Vec<String> = self
            .0
            .iter()
            .map(|t| {
                let hours = if t.before_hours == 1 { "1 hour".to_owned() } else { format!("{} hours", t.before_hours) };
                format!("cancel at least {hours} before the start for a {}% refund", t.refund_percent)
            })
            .collect();
        let mut words = tiers.join("; ");
        if let Some(first) = words.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        words.push_str("; later, you may still cancel, with nothing refunded.");
        words
    }
}

/// What a fan is told of an event without a refund policy.
pub const NO_POLICY_IN_WORDS: &str = "No refunds: only the organizer can cancel a booking of this event.";

/// `percent` of `paid`, rounded down to the minor unit: never more than was paid.
pub fn refund_amount(paid_minor: i64, percent: u8) -> i64 {
    (i128::from(paid_minor) * i128::from(percent.min(100)) / 100) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RefundPolicy {
        RefundPolicy(vec![
            RefundTier { before_hours: 24, refund_percent: 100 },
            RefundTier { before_hours: 4, refund_percent: 50 },
        ])
    }

    #[test]
    fn each_tier_applies_from_its_boundary_on() {
        let p = policy();
        assert_eq!(p.refund_percent(Some(48.0)), 100);
        assert_eq!(p.refund_percent(Some(24.0)), 100, "exactly 24 h before");
        assert_eq!(p.refund_percent(Some(23.999)), 50);
        assert_eq!(p.refund_percent(Some(4.0)), 50, "exactly 4 h before");
        assert_eq!(p.refund_percent(Some(3.999)), 0);
        assert_eq!(p.refund_percent(Some(-1.0)), 0, "after the start");
        assert_eq!(p.refund_percent(None), 100, "no start date: the first tier");
    }

    #[test]
    fn a_policy_reads_as_words_tier_by_tier() {
        assert_eq!(
            policy().in_words(),
            "Cancel at least 24 hours before the start for a 100% refund; cancel at least 4 hours before \
             the start for a 50% refund; later, you may still cancel, with nothing refunded."
        );
        let one = RefundPolicy(vec![RefundTier { before_hours: 1, refund_percent: 0 }]);
        assert_eq!(
            one.in_words(),
            "Cancel at least 1 hour before the start for a 0% refund; later, you may still cancel, with nothing \
             refunded."
        );
    }

    #[test]
    fn malformed_policies_are_refused() {
        for bad in [
            RefundPolicy(vec![]),
            RefundPolicy(vec![RefundTier { before_hours: 4, refund_percent: 101 }]),
            RefundPolicy(vec![
                RefundTier { before_hours: 4, refund_percent: 50 },
                RefundTier { before_hours: 24, refund_percent: 100 },
            ]),
            RefundPolicy(vec![RefundTier { before_hours: 4, refund_percent: 50 }; 2]),
            RefundPolicy(vec![RefundTier { before_hours: 1, refund_percent: 1 }; 11]),
        ] {
            assert_eq!(bad.validate().unwrap_err().code, "invalid_refund_policy", "{bad:?}");
        }
        assert_eq!(policy().validate(), Ok(()));
    }

    #[test]
    fn refunds_round_down_and_never_pass_the_price() {
        assert_eq!(refund_amount(2501, 50), 1250);
        assert_eq!(refund_amount(i64::MAX, 100), i64::MAX);
        assert_eq!(refund_amount(1000, 0), 0);
    }
}

/// Properties over random policies (issue 20): the tier in force is the one with the
/// longest notice the fan still gave, boundaries included, and a refund is never more
/// than what was paid.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A valid policy: 1-10 tiers of distinct notices, longest first.
    fn policy() -> impl Strategy<Value = RefundPolicy> {
        proptest::collection::btree_map(0u32..500, 0u8..=100, 1..=MAX_TIERS).prop_map(|tiers| {
            RefundPolicy(
                tiers
                    .into_iter()
                    .rev()
                    .map(|(before_hours, refund_percent)| RefundTier { before_hours, refund_percent })
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn the_tier_in_force_is_the_longest_notice_given(policy in policy(), hours in -50.0f64..600.0, on_a_boundary in any::<prop::sample::Index>()) {
            prop_assert!(policy.validate().is_ok());
            let boundary = f64::from(policy.0[on_a_boundary.index(policy.0.len())].before_hours);
            for hours in [hours, boundary, boundary - 0.001] {
                let in_force = policy.0.iter().filter(|t| hours >= f64::from(t.before_hours)).max_by_key(|t| t.before_hours);
                prop_assert_eq!(policy.refund_percent(Some(hours)), in_force.map_or(0, |t| t.refund_percent), "{} h", hours);
            }
            prop_assert_eq!(policy.refund_percent(None), policy.0[0].refund_percent, "no start date: the first tier");
        }

        #[test]
        fn a_policy_is_valid_only_with_distinct_notices_longest_first(tiers in proptest::collection::vec((0u32..50, 0u8..=120), 0..=12)) {
            let policy = RefundPolicy(tiers.iter().map(|&(before_hours, refund_percent)| RefundTier { before_hours, refund_percent }).collect());
            let valid = (1..=MAX_TIERS).contains(&tiers.len())
                && tiers.iter().all(|&(_, percent)| percent <= 100)
                && tiers.windows(2).all(|pair| pair[0].0 > pair[1].0);
            prop_assert_eq!(policy.validate().is_ok(), valid);
        }

        #[test]
        fn a_refund_is_never_more_than_was_paid_and_grows_with_the_percentage(paid in 0i64..=i64::MAX, percent in any::<u8>()) {
            let amount = refund_amount(paid, percent);
            prop_assert!((0..=paid).contains(&amount));
            prop_assert!(refund_amount(paid, percent.saturating_add(1)) >= amount);
            prop_assert_eq!(refund_amount(paid, 100), paid);
            prop_assert_eq!(refund_amount(paid, 0), 0);
        }
    }
}
