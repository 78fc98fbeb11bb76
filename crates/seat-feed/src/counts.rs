//! Counts of an event's places kept from the change feed: how many can still be sold
//! and how many are in someone's basket, without counting the seats again.
//!
//! Each change row says what its seats were and became; applying it removes the one and
//! adds the other. Removing and adding commute, so rows may be applied in any order and
//! the counts are right once every row below the reader's position has been applied,
//! exactly once (the watermark sees to both). Held seats are counted by the time their
//! hold lapses, so a lapsed hold counts as free at once, as the database's takeable rule
//! says (`seat_is_takeable`), before the sweep records it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A position in the feed: a transaction id (`xid8`); every change below it is known.
pub type Position = i64;

/// `seat_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SeatState {
    Available,
    Held,
    Booked,
}

impl SeatState {
    /// The database's spelling; None for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "available" => Some(Self::Available),
            "held" => Some(Self::Held),
            "booked" => Some(Self::Booked),
            _ => None,
        }
    }
}

/// What a seat is: its state, and for a held seat when its hold lapses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeatStatus {
    pub state: SeatState,
    pub held_until: Option<DateTime<Utc>>,
}

/// One change row: seats of one section, each with what it was and what it became.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionChange {
    pub section_id: Uuid,
    pub seats: Vec<SeatMove>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeatMove {
    pub seat_id: i64,
    pub before: SeatStatus,
    pub after: SeatStatus,
}

/// One section's seats by state; held seats by when their hold lapses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SectionCounts {
    available: i64,
    booked: i64,
    held_until: BTreeMap<DateTime<Utc>, i64>,
}

impl SectionCounts {
    /// Counts `n` seats of status `seat` (a negative `n` takes them away).
    pub fn add(&mut self, seat: SeatStatus, n: i64) {
        match (seat.state, seat.held_until) {
            (SeatState::Available, _) => self.available += n,
            (SeatState::Booked, _) => self.booked += n,
            (SeatState::Held, Some(until)) => {
                let count = self.held_until.entry(until).or_default();
                *count += n;
                if *count == 0 {
                    self.held_until.remove(&until);
                }
            }
            // The schema forbids a held seat without a time (seats_owner_matches_state).
            (SeatState::Held, None) => {}
        }
    }

    /// Seats held by a hold still running at `now`.
    pub fn held(&self, now: DateTime<Utc>) -> i64 {
        self.held_until.range((Bound::Excluded(now), Bound::Unbounded)).map(|(_, n)| n).sum()
    }

    /// Seats an order may take at `now`: available, or held by a lapsed hold.
    pub fn takeable(&self, now: DateTime<Utc>) -> i64 {
        self.available + self.held_until.range(..=now).map(|(_, n)| n).sum::<i64>()
    }

    pub fn booked(&self) -> i64 {
        self.booked
    }
}

/// Places of an event at a moment, by DECISIONS.md D2's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Availability {
    /// Places the next order may take: takeable, in sections with nobody on the
    /// waitlist (there, freed places are the waitlist's).
    pub sellable: i64,
    /// Places in someone's basket: held by a hold still running (waitlist offers too).
    pub held: i64,
}

impl Availability {
    /// Nothing can be sold and nothing may come back: the show is sold out.
    pub fn sold_out(&self) -> bool {
        self.sellable <= 0 && self.held <= 0
    }
}

/// An event's counts, as of a feed position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventCounts {
    pub sections: HashMap<Uuid, SectionCounts>,
}

impl EventCounts {
    /// Applies a change row: its seats leave what they were and become what they are.
    pub fn apply(&mut self, change: &SectionChange) {
        self.step(change, 1);
    }

    /// Takes back a change already counted (a snapshot that saw a change it will read
    /// again from the feed).
    pub fn undo(&mut self, change: &SectionChange) {
        self.step(change, -1);
    }

    fn step(&mut self, change: &SectionChange, sign: i64) {
        let section = self.sections.entry(change.section_id).or_default();
        for seat in &change.seats {
            section.add(seat.before, -sign);
            section.add(seat.after, sign);
        }
    }

    /// Places sellable and held at `now`; sections in `kept_for_waitlist` (someone waits
    /// on their waitlist) sell nothing to others.
    pub fn availability(&self, now: DateTime<Utc>, kept_for_waitlist: &HashSet<Uuid>) -> Availability {
        self.sections.iter().fold(Availability::default(), |total, (id, section)| Availability {
            sellable: total.sellable + if kept_for_waitlist.contains(id) { 0 } else { section.takeable(now) },
            held: total.held + section.held(now),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    const AVAILABLE: SeatStatus = SeatStatus { state: SeatState::Available, held_until: None };
    const BOOKED: SeatStatus = SeatStatus { state: SeatState::Booked, held_until: None };

    fn held(until: DateTime<Utc>) -> SeatStatus {
        SeatStatus { state: SeatState::Held, held_until: Some(until) }
    }

    fn change(section_id: Uuid, moves: &[(SeatStatus, SeatStatus)]) -> SectionChange {
        let seats = moves
            .iter()
            .enumerate()
            .map(|(i, &(before, after))| SeatMove { seat_id: i as i64, before, after })
            .collect();
        SectionChange { section_id, seats }
    }

    fn ten_available(section: Uuid) -> EventCounts {
        let mut counts = EventCounts::default();
        counts.sections.entry(section).or_default().add(AVAILABLE, 10);
        counts
    }

    #[test]
    fn a_hold_is_held_until_it_lapses_then_takeable_again() {
        let section = Uuid::from_u128(1);
        let mut counts = ten_available(section);
        counts.apply(&change(section, &[(AVAILABLE, held(at(30))), (AVAILABLE, held(at(30)))]));
        let none = HashSet::new();
        assert_eq!(counts.availability(at(29), &none), Availability { sellable: 8, held: 2 });
        assert_eq!(counts.availability(at(30), &none), Availability { sellable: 10, held: 0 });
    }

    #[test]
    fn changes_applied_in_any_order_give_the_same_counts() {
        let section = Uuid::from_u128(1);
        let hold = change(section, &[(AVAILABLE, held(at(30)))]);
        let book = change(section, &[(held(at(30)), BOOKED)]);
        let mut in_order = ten_available(section);
        in_order.apply(&hold);
        in_order.apply(&book);
        let mut reversed = ten_available(section);
        reversed.apply(&book);
        reversed.apply(&hold);
        assert_eq!(in_order, reversed);
        assert_eq!(in_order.sections[&section].booked(), 1);
        assert_eq!(in_order.availability(at(0), &HashSet::new()), Availability { sellable: 9, held: 0 });
    }

    #[test]
    fn undo_takes_back_exactly_what_apply_did() {
        let section = Uuid::from_u128(1);
        let hold = change(section, &[(AVAILABLE, held(at(30))), (AVAILABLE, held(at(31)))]);
        let mut counts = ten_available(section);
        counts.apply(&hold);
        counts.undo(&hold);
        assert_eq!(counts, ten_available(section));
    }

    #[test]
    fn a_section_kept_for_its_waitlist_sells_nothing_but_its_holds_still_count() {
        let (kept, open) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut counts = ten_available(kept);
        counts.sections.entry(open).or_default().add(AVAILABLE, 3);
        counts.apply(&change(kept, &[(AVAILABLE, held(at(60)))]));
        let availability = counts.availability(at(0), &HashSet::from([kept]));
        assert_eq!(availability, Availability { sellable: 3, held: 1 });
    }

    #[test]
    fn sold_out_only_when_nothing_is_sellable_and_nothing_held() {
        let section = Uuid::from_u128(1);
        let mut counts = EventCounts::default();
        counts.sections.entry(section).or_default().add(BOOKED, 1);
        counts.sections.entry(section).or_default().add(held(at(10)), 1);
        let none = HashSet::new();
        assert!(!counts.availability(at(9), &none).sold_out(), "a running hold may come back");
        assert!(!counts.availability(at(10), &none).sold_out(), "a lapsed hold is for sale");
        counts.apply(&change(section, &[(held(at(10)), BOOKED)]));
        assert!(counts.availability(at(10) + Duration::seconds(1), &none).sold_out());
    }
}
