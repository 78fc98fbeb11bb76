//! What a rehearsal plays: the event, the crowd, how it arrives and how each fan shops.
//! Read from a TOML file (see `crates/simulator/scenarios/`); every field has a default.

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Fans who try to buy.
    pub fans: u32,
    /// Reserved seating: this many rows of `seats_per_row` (0 rows for none).
    pub rows: u32,
    pub seats_per_row: u32,
    /// A general-admission floor of this capacity (0 for none).
    pub general_admission: u32,
    pub arrival: Arrival,
    /// Seconds over which fans arrive (`ramp`) or before opening they join (`pre-queue`).
    pub arrival_secs: f64,
    pub admit_rate: f64,
    pub max_active: u32,
    pub token_lifetime_secs: u32,
    pub hold_ttl_secs: u32,
    /// Places per order.
    pub quantity: u32,
    pub behaviour: Behaviour,
    /// A fan pauses this long between steps (choosing, paying).
    pub think_ms: u64,
    /// The shortest pause between a fan's polls; fans wait longer when the waiting
    /// room's answer asks them to (`poll_after_secs`), as its clients should.
    pub poll_interval_ms: u64,
    /// A fan gives up after this many refused attempts at seats.
    pub attempts: u32,
    /// Fans in flight at once (a task each). Below `fans`, later fans arrive late.
    pub concurrency: usize,
    /// Requests in flight at once, hence sockets.
    pub connections: usize,
    /// The rehearsal stops, whatever is left, after this long.
    pub max_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// Everyone clicks in the same second.
    AllAtOnce,
    /// Arrivals spread evenly over `arrival_secs`.
    Ramp,
    /// Everyone joins during `arrival_secs` before the sale opens; the waiting room
    /// shuffles them at opening.
    PreQueue,
}

/// Relative weights of what admitted fans do.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// Pick seats from the seat map, hold them, confirm; on a refusal pick others.
    pub chosen_seats: u32,
    /// Hold the best available seats in the reserved section, confirm.
    pub best_available: u32,
    /// Book general-admission places in one step.
    pub general_admission: u32,
    /// Hold places and walk away: the hold must expire and the places sell again.
    pub abandon_hold: u32,
    /// Book places, then cancel: they must go back on sale.
    pub cancel: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            fans: 1_000,
            rows: 10,
            seats_per_row: 20,
            general_admission: 200,
            arrival: Arrival::AllAtOnce,
            arrival_secs: 5.0,
            admit_rate: 200.0,
            max_active: 500,
            token_lifetime_secs: 300,
            hold_ttl_secs: 10,
            quantity: 2,
            behaviour: Behaviour::default(),
            think_ms: 200,
            poll_interval_ms: 500,
            attempts: 3,
            concurrency: 10_000,
            connections: 256,
            max_seconds: 120,
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Self { chosen_seats: 40, best_available: 25, general_admission: 25, abandon_hold: 5, cancel: 5 }
    }
}

/// The fan's plan, drawn by weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    ChosenSeats,
    BestAvailable,
    GeneralAdmission,
    AbandonHold,
    Cancel,
}

impl Scenario {
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Scenario(format!("{}: {e}", path.display())))?;
        let scenario: Self = toml::from_str(&text).map_err(|e| Error::Scenario(format!("{}: {e}", path.display())))?;
        scenario.validate()?;
        Ok(scenario)
    }

    pub fn validate(&self) -> Result<(), Error> {
        let fail = |message: &str| Err(Error::Scenario(message.to_owned()));
        if self.fans == 0 || self.fans > 1_000_000 {
            return fail("fans must be 1-1000000");
        }
        if self.reserved_capacity() + self.general_admission == 0 {
            return fail("the event needs seats: rows × seats_per_row or general_admission");
        }
        if self.quantity == 0 || self.quantity > 10 {
            return fail("quantity must be 1-10");
        }
        if self.admit_rate.is_nan()
            || self.admit_rate <= 0.0
            || self.max_active == 0
            || self.concurrency == 0
            || self.connections == 0
            || self.max_seconds == 0
        {
            return fail("admit_rate, max_active, concurrency, connections and max_seconds must be positive");
        }
        if self.behaviour.weights().iter().all(|(_, w)| *w == 0) {
            return fail("at least one behaviour needs a weight");
        }
        if self.general_admission == 0 && self.behaviour.general_admission > 0 {
            return fail("general_admission behaviour needs a general_admission capacity");
        }
        if self.reserved_capacity() == 0 && (self.behaviour.chosen_seats + self.behaviour.best_available) > 0 {
            return fail("chosen_seats and best_available need reserved rows");
        }
        Ok(())
    }

    pub fn reserved_capacity(&self) -> u32 {
        self.rows * self.seats_per_row
    }

    pub fn capacity(&self) -> u32 {
        self.reserved_capacity() + self.general_admission
    }

    /// The plan of fan number `index`: deterministic, so a rerun plays the same crowd.
    pub fn plan_of(&self, index: u32) -> Plan {
        let weights = self.behaviour.weights();
        let total: u32 = weights.iter().map(|(_, w)| w).sum();
        let mut ticket = (u64::from(index).wrapping_mul(2_654_435_761) % u64::from(total)) as u32;
        for (plan, weight) in weights {
            if ticket < weight {
                return plan;
            }
            ticket -= weight;
        }
        unreachable!("the ticket is below the total weight")
    }
}

impl Behaviour {
    fn weights(&self) -> [(Plan, u32); 5] {
        [
            (Plan::ChosenSeats, self.chosen_seats),
            (Plan::BestAvailable, self.best_available),
            (Plan::GeneralAdmission, self.general_admission),
            (Plan::AbandonHold, self.abandon_hold),
            (Plan::Cancel, self.cancel),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_follow_the_weights() {
        let scenario = Scenario::default();
        let chosen = (0..10_000).filter(|&i| scenario.plan_of(i) == Plan::ChosenSeats).count();
        assert!((3_800..4_200).contains(&chosen), "{chosen} of 10,000 chose seats, weight 40 %");
    }

    #[test]
    fn a_scenario_without_seats_or_fans_is_refused() {
        assert!(Scenario { fans: 0, ..Scenario::default() }.validate().is_err());
        assert!(Scenario { rows: 0, general_admission: 0, ..Scenario::default() }.validate().is_err());
        assert!(Scenario::default().validate().is_ok());
    }
}
