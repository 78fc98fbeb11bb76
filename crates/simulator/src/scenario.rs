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
    /// The price of every place, in cents of EUR; 0 makes a free event whose holds are
    /// confirmed (and GA places booked in one step) without paying.
    pub price_minor: u32,
    pub behaviour: Behaviour,
    /// How fans pay, and the faults the payments sandbox injects into its webhooks.
    pub payments: Payments,
    /// The event's waitlist, and what fans who find the show sold out do with it.
    pub waitlist: Waitlist,
    /// A fan pauses this long between steps (choosing, paying).
    pub think_ms: u64,
    /// The shortest pause between a fan's polls; fans wait longer when the waiting
    /// room's answer asks them to (`poll_after_secs`), as its clients should.
    pub poll_interval_ms: u64,
    /// The share of fans who wait in line on their standing stream (`GET
    /// …/queue/{ticket}/stream`, Server-Sent Events), as the waiting page does where it
    /// can, rather than polling; a stream that ends or is refused falls back to polls.
    pub stream_share: f64,
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
    /// Book places, then cancel: they must go back on sale (and a paid booking be
    /// refunded by the event's policy).
    pub cancel: u32,
    /// Hold places, open the payment page and close it without paying: the payment
    /// stays pending and the hold, extended for checkout, must still lapse.
    pub abandon_checkout: u32,
    /// Hold, check out, leave the payment page open past the hold's end, then pay: a
    /// late payment, booked if the places are still free and refunded otherwise.
    pub pay_late: u32,
    /// Hold, check out, pay and close the tab before the page reports back: only the
    /// provider's webhook (or the reconciliation job) can book it.
    pub pay_and_leave: u32,
}

/// Paying, and the payments sandbox's webhook faults (set through its control route,
/// `POST /_sandbox/faults`, when the rehearsal is given the sandbox's URL).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payments {
    /// The share of paying fans whose first card is declined (Stripe's test card
    /// 4000 0000 0000 0002); each tries once more with a good one, as people do.
    pub decline_rate: f64,
    /// How long a fan back from the payment page follows the payment (polling
    /// `GET …/payment` every `poll_interval_ms`) before giving up on an answer.
    pub follow_secs: u64,
    /// After the crowd is done, how long the rehearsal waits for payments the provider
    /// took but the gateway has not settled yet (delayed webhooks) before judging them.
    pub settle_secs: u64,
    /// Every webhook's first delivery waits this long.
    pub webhook_delay_ms: u64,
    /// The chance that a webhook is late: its first delivery waits `webhook_late_ms` more.
    pub webhook_late_rate: f64,
    pub webhook_late_ms: u64,
    /// The chance that a webhook is delivered one extra time.
    pub webhook_duplicate_rate: f64,
    /// The chance that a webhook is never delivered.
    pub webhook_drop_rate: f64,
}

/// The event's waitlist (DECISIONS.md D2): fans who find it sold out join it for every
/// section, with the quantity they wanted, and wait for an offer; offered places are
/// taken, declined or left to lapse through the offer's capability link (D7), never
/// with the access token, which may have expired by then.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Waitlist {
    pub enabled: bool,
    /// How long an offer holds its places (`waitlist_offer_ttl_secs`).
    pub offer_ttl_secs: u32,
    /// Of the fans offered places, the share who take them and the share who decline
    /// them; the others let the offer lapse.
    pub accept_rate: f64,
    pub decline_rate: f64,
}

impl Default for Waitlist {
    fn default() -> Self {
        Self { enabled: false, offer_ttl_secs: 15, accept_rate: 0.7, decline_rate: 0.15 }
    }
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
            price_minor: 5000,
            behaviour: Behaviour::default(),
            payments: Payments::default(),
            waitlist: Waitlist::default(),
            think_ms: 200,
            poll_interval_ms: 500,
            stream_share: 0.0,
            attempts: 3,
            concurrency: 10_000,
            connections: 256,
            max_seconds: 120,
        }
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        // The checkout plans are off by default so the weights of the older plans, and
        // of scenario files written before them, keep their meaning.
        Self {
            chosen_seats: 40,
            best_available: 25,
            general_admission: 25,
            abandon_hold: 5,
            cancel: 5,
            abandon_checkout: 0,
            pay_late: 0,
            pay_and_leave: 0,
        }
    }
}

impl Default for Payments {
    fn default() -> Self {
        Self {
            decline_rate: 0.05,
            follow_secs: 20,
            settle_secs: 10,
            webhook_delay_ms: 0,
            webhook_late_rate: 0.0,
            webhook_late_ms: 0,
            webhook_duplicate_rate: 0.0,
            webhook_drop_rate: 0.0,
        }
    }
}

impl Payments {
    /// Whether the sandbox must be told anything.
    pub fn has_webhook_faults(&self) -> bool {
        self.webhook_delay_ms > 0
            || (self.webhook_late_rate > 0.0 && self.webhook_late_ms > 0)
            || self.webhook_duplicate_rate > 0.0
            || self.webhook_drop_rate > 0.0
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
    AbandonCheckout,
    PayLate,
    PayAndLeave,
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
        let checkout_plans = self.behaviour.abandon_checkout + self.behaviour.pay_late + self.behaviour.pay_and_leave;
        if self.price_minor == 0 && checkout_plans > 0 {
            return fail("abandon_checkout, pay_late and pay_and_leave need a price (free places are not paid for)");
        }
        let payments = &self.payments;
        let rates = [
            payments.decline_rate,
            payments.webhook_late_rate,
            payments.webhook_duplicate_rate,
            payments.webhook_drop_rate,
        ];
        if !rates.iter().all(|r| (0.0..=1.0).contains(r)) {
            return fail(
                "decline_rate, webhook_late_rate, webhook_duplicate_rate and webhook_drop_rate must be between 0 and 1",
            );
        }
        if !(0.0..=1.0).contains(&self.stream_share) {
            return fail("stream_share must be between 0 and 1");
        }
        if payments.follow_secs == 0 {
            return fail("follow_secs must be positive");
        }
        let waitlist = &self.waitlist;
        let shares = [waitlist.accept_rate, waitlist.decline_rate];
        if !shares.iter().all(|r| (0.0..=1.0).contains(r)) || shares.iter().sum::<f64>() > 1.0 {
            return fail("waitlist accept_rate and decline_rate must be between 0 and 1, and add up to at most 1");
        }
        if waitlist.enabled && waitlist.offer_ttl_secs == 0 {
            return fail("waitlist offer_ttl_secs must be positive");
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

    /// Whether fan number `index` first pays with a card that is declined: a share of
    /// `decline_rate`, the same on every rerun. Spread by splitmix64's finalizer, not by
    /// a multiplication like the plan's: two golden-ratio multiplications line up, and
    /// declines fell on one plan only.
    pub fn declined_first(&self, index: u32) -> bool {
        draw(index, 0) < self.payments.decline_rate
    }

    /// Whether fan number `index` waits in line on the standing stream: deterministic,
    /// and drawn apart from [`Scenario::declined_first`].
    pub fn streams(&self, index: u32) -> bool {
        draw(index, 1 << 32) < self.stream_share
    }
}

/// A number in [0, 1) for fan number `index`, the same on every run (SplitMix64 of the
/// index and `salt`): independent draws for different salts.
fn draw(index: u32, salt: u64) -> f64 {
    let mut z = (u64::from(index) | salt).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f64 / f64::from(1u32 << 24)
}

impl Behaviour {
    fn weights(&self) -> [(Plan, u32); 8] {
        [
            (Plan::ChosenSeats, self.chosen_seats),
            (Plan::BestAvailable, self.best_available),
            (Plan::GeneralAdmission, self.general_admission),
            (Plan::AbandonHold, self.abandon_hold),
            (Plan::Cancel, self.cancel),
            (Plan::AbandonCheckout, self.abandon_checkout),
            (Plan::PayLate, self.pay_late),
            (Plan::PayAndLeave, self.pay_and_leave),
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

    #[test]
    fn every_example_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if let Err(e) = Scenario::from_file(&path) {
                panic!("{}: {e}", path.display());
            }
        }
    }

    #[test]
    fn the_decline_rate_picks_that_share_of_the_crowd() {
        let scenario =
            Scenario { payments: Payments { decline_rate: 0.1, ..Payments::default() }, ..Scenario::default() };
        let declined = (0..10_000).filter(|&i| scenario.declined_first(i)).count();
        assert!((900..1_100).contains(&declined), "{declined} of 10,000 declined, rate 10 %");
        // Declines fall on every plan, not on one.
        let behaviour = Behaviour { pay_late: 10, ..Behaviour::default() };
        let scenario = Scenario { behaviour, ..scenario };
        let late = (0..10_000).filter(|&i| scenario.plan_of(i) == Plan::PayLate);
        let late_declined = late.clone().filter(|&i| scenario.declined_first(i)).count() as f64;
        let share = late_declined / late.count() as f64;
        assert!((0.05..0.15).contains(&share), "{share} of late payers declined, rate 10 %");
        let none = Scenario { payments: Payments { decline_rate: 0.0, ..Payments::default() }, ..Scenario::default() };
        assert_eq!((0..10_000).filter(|&i| none.declined_first(i)).count(), 0);
    }

    #[test]
    fn checkout_plans_need_a_price_and_rates_must_be_shares() {
        let free_checkout = Scenario {
            price_minor: 0,
            behaviour: Behaviour { pay_late: 1, ..Behaviour::default() },
            ..Scenario::default()
        };
        assert!(free_checkout.validate().is_err());
        let drop_all_twice = Payments { webhook_drop_rate: 2.0, ..Payments::default() };
        assert!(Scenario { payments: drop_all_twice, ..Scenario::default() }.validate().is_err());
    }
}
