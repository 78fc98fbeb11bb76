//! The admission budget (issue 18): how many fans may be shopping at once, by what the
//! sale has left, and the sale's state as fans are told it.

use seat_feed::Availability;
use serde::Serialize;
use utoipa::ToSchema;

/// What the sale allows now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub availability: Availability,
    /// Admitted fans (not yet expired or gone) the sale can still use:
    /// `ceil(sellable × shoppers_per_place)`. The admitter lets nobody in while as many
    /// are shopping, whatever the organizer's `max_active` (the lower of the two wins).
    pub shopper_cap: u64,
}

impl Budget {
    /// `shoppers_per_place` above 1 leaves slack for fans who hold and walk away (their
    /// places come back when the hold lapses), below 1 lets fewer in than places left.
    pub fn new(availability: Availability, shoppers_per_place: f64) -> Self {
        let shopper_cap = (availability.sellable.max(0) as f64 * shoppers_per_place).ceil() as u64;
        Self { availability, shopper_cap }
    }

    pub fn sale_state(&self) -> SaleState {
        SaleState::of(self.availability.sellable, self.availability.held)
    }
}

/// The rate fans are let in at now, and why it is that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateInForce {
    pub rate: f64,
    pub reason: RateReason,
}

/// Why the rate in force is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RateReason {
    /// The organizer's `admit_rate`, in full.
    OrganizerRate,
    /// Paused, closed, or not open yet: nobody is let in.
    NotRunning,
    /// Nothing left to sell and nothing held.
    SoldOut,
    /// As many fans shop as the places left can use (the admission budget).
    BudgetFull,
    /// As many fans shop as the organizer's `max_active` allows.
    RoomFull,
    /// The gateways report distress: a share of the organizer's rate.
    GatewayDistress,
}

impl RateReason {
    pub const ALL: [Self; 6] =
        [Self::OrganizerRate, Self::NotRunning, Self::SoldOut, Self::BudgetFull, Self::RoomFull, Self::GatewayDistress];

    /// As the API and the metrics' `reason` label spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrganizerRate => "organizer_rate",
            Self::NotRunning => "not_running",
            Self::SoldOut => "sold_out",
            Self::BudgetFull => "budget_full",
            Self::RoomFull => "room_full",
            Self::GatewayDistress => "gateway_distress",
        }
    }
}

/// The rate in force: the organizer's `admit_rate` (0 unless running) times
/// `rate_share` (below 1 while the gateways report distress), or 0 while the room is
/// full, by `max_active` or by the sale's budget.
pub fn rate_in_force(
    admit_rate: f64,
    active: u64,
    max_active: u64,
    budget: Option<&Budget>,
    rate_share: f64,
) -> RateInForce {
    let stopped = |reason| RateInForce { rate: 0.0, reason };
    if admit_rate <= 0.0 {
        return stopped(RateReason::NotRunning);
    }
    if let Some(budget) = budget {
        if budget.sale_state() == SaleState::SoldOut {
            return stopped(RateReason::SoldOut);
        }
        if active >= budget.shopper_cap && budget.shopper_cap < max_active {
            return stopped(RateReason::BudgetFull);
        }
    }
    if active >= max_active {
        return stopped(RateReason::RoomFull);
    }
    let rate_share = rate_share.clamp(0.0, 1.0);
    let reason = if rate_share < 1.0 { RateReason::GatewayDistress } else { RateReason::OrganizerRate };
    RateInForce { rate: admit_rate * rate_share, reason }
}

/// Where the sale stands, derived from the inventory (never stored or set by hand): the
/// sale's own rule, which its catalogue answers with too.
pub use sales::domain::sale_state::SaleState;

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(sellable: i64, held: i64, shoppers_per_place: f64) -> Budget {
        Budget::new(Availability { sellable, held }, shoppers_per_place)
    }

    #[test]
    fn the_cap_follows_the_places_left_rounded_up() {
        assert_eq!(budget(5000, 0, 1.0).shopper_cap, 5000);
        assert_eq!(budget(3, 0, 1.5).shopper_cap, 5);
        assert_eq!(budget(1, 0, 0.5).shopper_cap, 1);
        assert_eq!(budget(0, 40, 2.0).shopper_cap, 0, "held places are their holders'");
    }

    #[test]
    fn the_rate_in_force_is_zero_while_the_room_is_full_by_either_cap_and_says_why() {
        let rate = |active, budget: Option<Budget>, share| {
            let r = rate_in_force(100.0, active, 50, budget.as_ref(), share);
            (r.rate, r.reason)
        };
        assert_eq!(rate(10, None, 1.0), (100.0, RateReason::OrganizerRate));
        assert_eq!(rate(50, None, 1.0), (0.0, RateReason::RoomFull));
        assert_eq!(rate(10, Some(budget(10, 0, 1.0)), 1.0), (0.0, RateReason::BudgetFull));
        assert_eq!(rate(10, Some(budget(11, 0, 1.0)), 1.0), (100.0, RateReason::OrganizerRate));
        assert_eq!(rate(50, Some(budget(80, 0, 1.0)), 1.0), (0.0, RateReason::RoomFull), "max_active is lower");
        assert_eq!(rate(0, Some(budget(0, 0, 1.0)), 1.0), (0.0, RateReason::SoldOut));
        assert_eq!(rate(0, Some(budget(0, 3, 1.0)), 1.0), (0.0, RateReason::BudgetFull), "all held");
        assert_eq!(rate(10, None, 0.25), (25.0, RateReason::GatewayDistress));
        assert_eq!(rate(10, None, 7.0), (100.0, RateReason::OrganizerRate), "never above the organizer's rate");
        let paused = rate_in_force(0.0, 0, 50, None, 1.0);
        assert_eq!((paused.rate, paused.reason), (0.0, RateReason::NotRunning));
    }

    #[test]
    fn the_sale_state_says_whether_anything_may_still_come_back() {
        assert_eq!(budget(1, 0, 1.0).sale_state(), SaleState::OnSale);
        assert_eq!(budget(0, 2, 1.0).sale_state(), SaleState::AllHeld);
        assert_eq!(budget(0, 0, 1.0).sale_state(), SaleState::SoldOut);
    }
}
