//! The live seat map a gateway replica keeps per event for the fans watching it (issue
//! 17): every reserved seat's state in memory, moved on by reading the change feed, with
//! the deltas it sent lately so a client that reconnects gets what it missed.
//!
//! A delta does not replay the change rows: it carries the *current* state of every seat
//! the rows name, read in the statement that found the rows ([`crate::store::seats_since`]).
//! Two transactions changing one seat take its row lock one after the other, but the one
//! with the higher transaction id may commit first, so rows applied in id order could
//! leave a seat as the earlier transaction made it. Reading the seat instead is right
//! whatever the order: any change committed after that read belongs to a transaction at
//! or past the reader's new position, so a later delta reads the seat again.
//!
//! Positions are the feed's (a transaction-id watermark, the SSE `id:`). A delta covers
//! `[from, to)`: it applies to a client at position `p` when `from <= p < to`. Deltas
//! are contiguous (`from` is the previous delta's `to`; stretches without changes are
//! folded into the next delta), so a client that saw a snapshot or a delta can always
//! tell whether the next one fits, and a gap is never silent.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::counts::{Position, SeatState, SeatStatus};

/// A seat and what it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatNow {
    pub seat_id: i64,
    pub status: SeatStatus,
}

/// One read of the live map's feed: the seats changed since the position, as they are
/// now, and the sections kept for the waitlist.
#[derive(Debug, Clone, PartialEq)]
pub enum SeatsRead {
    Changed {
        seats: Vec<SeatNow>,
        kept_for_waitlist: Vec<Uuid>,
        watermark: Position,
    },
    /// Rows the reader needs were pruned, or there are more than it reads at once: it
    /// starts again from a snapshot.
    Behind,
}

/// Changes a client missed, sent after it reconnects.
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub from: Position,
    pub to: Position,
    /// `{"from":…,"position":…,"seats":[[id,"a"|"h"|"b",held_until_ms|null],…],
    /// "kept_for_waitlist":[…]}`
    pub json: Arc<str>,
}

/// What a client at a position should be sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum CatchUp {
    /// Nothing: it is where this map is.
    UpToDate,
    /// These deltas, in order.
    Deltas(Vec<Arc<Delta>>),
    /// A snapshot: its position is older than the deltas kept, newer than this map's
    /// (another replica read further; rare, and a snapshot is always right), or not a
    /// position at all.
    Snapshot,
}

/// Whether a delta fits a client at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Apply,
    /// It covers nothing past the client's position.
    Skip,
    /// Changes between the client's position and the delta are missing.
    Gap,
}

impl Delta {
    pub fn fit(&self, client_at: Position) -> Fit {
        if self.to <= client_at {
            Fit::Skip
        } else if self.from <= client_at {
            Fit::Apply
        } else {
            Fit::Gap
        }
    }
}

/// A snapshot as sent: the state of every reserved seat, in ascending seat id (the
/// layout document's order).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub position: Position,
    /// `{"position":…,"seats":N,"states":"aahb…","held_until":[[ms,[id,…]],…],
    /// "kept_for_waitlist":[…]}`
    pub json: Arc<str>,
}

/// The live map of one event.
pub struct LiveSeatMap {
    /// Every reserved seat, ascending.
    seat_ids: Vec<i64>,
    statuses: Vec<SeatStatus>,
    index: HashMap<i64, usize>,
    kept_for_waitlist: Vec<Uuid>,
    /// Every change below it is in `statuses`.
    position: Position,
    /// Where the next delta starts: the previous delta's end.
    emitted_to: Position,
    /// The latest deltas, contiguous, covering `[history_from, emitted_to)`.
    history: VecDeque<Arc<Delta>>,
    history_from: Position,
    history_len: usize,
    snapshot: Option<Arc<Snapshot>>,
}

impl LiveSeatMap {
    /// The map as a snapshot read at `position` found it; it keeps the latest
    /// `history_len` deltas.
    pub fn new(
        mut seats: Vec<SeatNow>,
        mut kept_for_waitlist: Vec<Uuid>,
        position: Position,
        history_len: usize,
    ) -> Self {
        seats.sort_by_key(|seat| seat.seat_id);
        kept_for_waitlist.sort();
        let seat_ids: Vec<i64> = seats.iter().map(|seat| seat.seat_id).collect();
        let index = seat_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        Self {
            seat_ids,
            statuses: seats.iter().map(|seat| seat.status).collect(),
            index,
            kept_for_waitlist,
            position,
            emitted_to: position,
            history: VecDeque::new(),
            history_from: position,
            history_len: history_len.max(1),
            snapshot: None,
        }
    }

    pub fn position(&self) -> Position {
        self.position
    }

    /// Takes in a read made at `watermark`: the delta to send, if anything changed.
    /// Seats the map does not know (general admission places) are left out.
    pub fn apply(
        &mut self,
        seats: &[SeatNow],
        mut kept_for_waitlist: Vec<Uuid>,
        watermark: Position,
    ) -> Option<Arc<Delta>> {
        if watermark <= self.position {
            return None;
        }
        self.position = watermark;
        kept_for_waitlist.sort();
        let kept_changed = kept_for_waitlist != self.kept_for_waitlist;
        // By seat, the last word on it winning: a read that named a seat twice (the
        // store's does not) still sends what the map now holds.
        let mut changed: BTreeMap<i64, SeatNow> = BTreeMap::new();
        for seat in seats {
            if let Some(&i) = self.index.get(&seat.seat_id) {
                if self.statuses[i] != seat.status {
                    self.statuses[i] = seat.status;
                    changed.insert(seat.seat_id, *seat);
                }
            }
        }
        if changed.is_empty() && !kept_changed {
            return None;
        }
        self.kept_for_waitlist = kept_for_waitlist;
        let changed: Vec<SeatNow> = changed.into_values().collect();
        let delta = Arc::new(Delta {
            from: self.emitted_to,
            to: watermark,
            json: delta_json(self.emitted_to, watermark, &changed, &self.kept_for_waitlist).into(),
        });
        self.emitted_to = watermark;
        self.history.push_back(delta.clone());
        while self.history.len() > self.history_len {
            if let Some(oldest) = self.history.pop_front() {
                self.history_from = oldest.to;
            }
        }
        self.snapshot = None;
        Some(delta)
    }

    /// What a client that was at `since` needs to be where this map is.
    pub fn catch_up(&self, since: Position) -> CatchUp {
        if since == self.position {
            CatchUp::UpToDate
        } else if since < self.history_from || since > self.position {
            CatchUp::Snapshot
        } else {
            // Contiguous: once the first fits, each next one starts where it ended.
            let deltas: Vec<_> = self.history.iter().filter(|delta| delta.to > since).cloned().collect();
            if deltas.is_empty() {
                CatchUp::UpToDate
            } else {
                CatchUp::Deltas(deltas)
            }
        }
    }

    /// The map now, encoded once per change however many clients ask: its position is
    /// where the last change was taken in, or later (reads that changed nothing move
    /// the map's position, not the snapshot's — it is as true at both).
    pub fn snapshot(&mut self) -> Arc<Snapshot> {
        if let Some(snapshot) = &self.snapshot {
            return snapshot.clone();
        }
        let snapshot = Arc::new(Snapshot { position: self.position, json: self.snapshot_json().into() });
        self.snapshot = Some(snapshot.clone());
        snapshot
    }

    fn snapshot_json(&self) -> String {
        let states: String = self.statuses.iter().map(|status| state_letter(status.state)).collect();
        // Seats held together lapse together: grouped by the instant, a hold's seats
        // share one timestamp.
        let mut held: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (status, &seat_id) in self.statuses.iter().zip(&self.seat_ids) {
            if let Some(until) = status.held_until {
                held.entry(until.timestamp_millis()).or_default().push(seat_id);
            }
        }
        #[derive(Serialize)]
        struct Body<'a> {
            position: Position,
            seats: usize,
            states: &'a str,
            held_until: Vec<(i64, &'a [i64])>,
            kept_for_waitlist: &'a [Uuid],
        }
        let body = Body {
            position: self.position,
            seats: self.seat_ids.len(),
            states: &states,
            held_until: held.iter().map(|(at, ids)| (*at, ids.as_slice())).collect(),
            kept_for_waitlist: &self.kept_for_waitlist,
        };
        serde_json::to_string(&body).expect("a snapshot always serialises")
    }
}

/// The one letter a seat's state is sent as.
pub fn state_letter(state: SeatState) -> char {
    match state {
        SeatState::Available => 'a',
        SeatState::Held => 'h',
        SeatState::Booked => 'b',
    }
}

fn delta_json(from: Position, to: Position, seats: &[SeatNow], kept_for_waitlist: &[Uuid]) -> String {
    let mut json = format!("{{\"from\":{from},\"position\":{to},\"seats\":[");
    for (i, seat) in seats.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let until = seat.status.held_until.map(|at: DateTime<Utc>| at.timestamp_millis().to_string());
        let _ = write!(
            json,
            "{comma}[{},\"{}\",{}]",
            seat.seat_id,
            state_letter(seat.status.state),
            until.as_deref().unwrap_or("null")
        );
    }
    json.push_str("],\"kept_for_waitlist\":");
    json.push_str(&serde_json::to_string(kept_for_waitlist).expect("ids always serialise"));
    json.push('}');
    json
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seat(seat_id: i64, state: SeatState, held_ms: Option<i64>) -> SeatNow {
        let held_until = held_ms.map(|ms| DateTime::from_timestamp_millis(ms).unwrap());
        SeatNow { seat_id, status: SeatStatus { state, held_until } }
    }

    fn map(history: usize) -> LiveSeatMap {
        let seats = vec![
            seat(3, SeatState::Available, None),
            seat(1, SeatState::Booked, None),
            seat(2, SeatState::Available, None),
        ];
        LiveSeatMap::new(seats, vec![], 100, history)
    }

    #[test]
    fn a_snapshot_lists_states_in_seat_id_order_and_groups_holds_by_their_end() {
        let mut live = map(8);
        live.apply(&[seat(2, SeatState::Held, Some(5_000)), seat(3, SeatState::Held, Some(5_000))], vec![], 110);
        assert_eq!(
            &*live.snapshot().json,
            r#"{"position":110,"seats":3,"states":"bhh","held_until":[[5000,[2,3]]],"kept_for_waitlist":[]}"#
        );
    }

    #[test]
    fn a_delta_carries_only_seats_that_changed_and_starts_where_the_last_one_ended() {
        let mut live = map(8);
        assert_eq!(live.apply(&[seat(1, SeatState::Booked, None)], vec![], 105), None, "nothing changed");
        let first =
            live.apply(&[seat(1, SeatState::Booked, None), seat(2, SeatState::Held, Some(9))], vec![], 110).unwrap();
        assert_eq!((first.from, first.to), (100, 110), "the quiet stretch is folded into it");
        assert_eq!(&*first.json, r#"{"from":100,"position":110,"seats":[[2,"h",9]],"kept_for_waitlist":[]}"#);
        let unknown = live.apply(&[seat(99, SeatState::Booked, None)], vec![], 120);
        assert_eq!(unknown, None, "a general-admission place is not on the map");
        let second = live.apply(&[seat(2, SeatState::Available, None)], vec![], 130).unwrap();
        assert_eq!((second.from, second.to), (110, 130));
    }

    #[test]
    fn a_client_catches_up_with_the_deltas_it_missed_or_a_snapshot_when_they_are_gone() {
        let mut live = map(2);
        let a = live.apply(&[seat(2, SeatState::Held, Some(9))], vec![], 110).unwrap();
        let b = live.apply(&[seat(3, SeatState::Held, Some(9))], vec![], 120).unwrap();
        assert_eq!(live.catch_up(100), CatchUp::Deltas(vec![a.clone(), b.clone()]));
        assert_eq!(live.catch_up(115), CatchUp::Deltas(vec![b.clone()]), "a snapshot taken between two reads");
        assert_eq!(live.catch_up(120), CatchUp::UpToDate);
        assert_eq!(live.catch_up(121), CatchUp::Snapshot, "ahead of this map");
        let c = live.apply(&[seat(3, SeatState::Booked, None)], vec![], 130).unwrap();
        assert_eq!(live.catch_up(100), CatchUp::Snapshot, "the first delta is no longer kept");
        assert_eq!(live.catch_up(110), CatchUp::Deltas(vec![b, c]));
        assert_eq!(live.catch_up(99), CatchUp::Snapshot);
    }

    #[test]
    fn a_delta_fits_a_client_inside_its_range_and_says_so_when_changes_are_missing() {
        let delta = Delta { from: 100, to: 110, json: "".into() };
        assert_eq!(delta.fit(100), Fit::Apply);
        assert_eq!(delta.fit(105), Fit::Apply);
        assert_eq!(delta.fit(110), Fit::Skip);
        assert_eq!(delta.fit(99), Fit::Gap);
    }

    #[test]
    fn a_change_of_the_sections_kept_for_the_waitlist_is_sent_even_without_seats() {
        let mut live = map(8);
        let section = Uuid::from_u128(7);
        let delta = live.apply(&[], vec![section], 110).unwrap();
        assert_eq!(
            &*delta.json,
            format!(r#"{{"from":100,"position":110,"seats":[],"kept_for_waitlist":["{section}"]}}"#)
        );
        assert!(live.snapshot().json.contains(&section.to_string()));
    }

    #[test]
    fn the_snapshot_is_encoded_once_per_position() {
        let mut live = map(8);
        let first = live.snapshot();
        assert!(Arc::ptr_eq(&first, &live.snapshot()));
        live.apply(&[seat(2, SeatState::Booked, None)], vec![], 110);
        assert_eq!(live.snapshot().position, 110);
    }
}

/// Properties over random histories (issue 20): a client that applies every delta to
/// its snapshot, or that reconnects and catches up, sees exactly what a fresh snapshot
/// shows; deltas always fit the client that saw the one before.
#[cfg(test)]
mod properties {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// What a client knows: each seat's letter and hold end, and the kept sections.
    #[derive(Debug, Clone, PartialEq)]
    struct Client {
        seats: BTreeMap<i64, (String, Option<i64>)>,
        kept: Value,
        position: Position,
    }

    impl Client {
        fn from_snapshot(seat_ids: &[i64], snapshot: &Snapshot) -> Self {
            let body: Value = serde_json::from_str(&snapshot.json).unwrap();
            let mut held = BTreeMap::new();
            for group in body["held_until"].as_array().unwrap() {
                for id in group[1].as_array().unwrap() {
                    held.insert(id.as_i64().unwrap(), group[0].as_i64().unwrap());
                }
            }
            let states = body["states"].as_str().unwrap();
            let seats = seat_ids
                .iter()
                .zip(states.chars())
                .map(|(id, c)| (*id, (c.to_string(), held.get(id).copied())))
                .collect();
            Self { seats, kept: body["kept_for_waitlist"].clone(), position: body["position"].as_i64().unwrap() }
        }

        fn apply(&mut self, delta: &Delta) {
            let body: Value = serde_json::from_str(&delta.json).unwrap();
            for seat in body["seats"].as_array().unwrap() {
                let until = seat[2].as_i64();
                self.seats.insert(seat[0].as_i64().unwrap(), (seat[1].as_str().unwrap().to_owned(), until));
            }
            self.kept = body["kept_for_waitlist"].clone();
            self.position = body["position"].as_i64().unwrap();
        }
    }

    fn status() -> impl Strategy<Value = SeatStatus> {
        prop_oneof![
            Just(SeatStatus { state: SeatState::Available, held_until: None }),
            Just(SeatStatus { state: SeatState::Booked, held_until: None }),
            (1i64..=3).prop_map(|s| SeatStatus {
                state: SeatState::Held,
                held_until: DateTime::from_timestamp_millis(s * 1000),
            }),
        ]
    }

    /// One read: seats (by index; past the map's seats: a general-admission place) as
    /// they are now, which sections are kept, and how far the watermark moved.
    type Read = (Vec<(usize, SeatStatus)>, [bool; 2], i64);

    fn reads() -> impl Strategy<Value = Vec<Read>> {
        proptest::collection::vec(
            (proptest::collection::vec((0usize..24, status()), 0..6), any::<[bool; 2]>(), 1i64..4),
            0..30,
        )
    }

    const SECTIONS: [Uuid; 2] = [Uuid::from_u128(1), Uuid::from_u128(2)];

    fn kept(mask: [bool; 2]) -> Vec<Uuid> {
        SECTIONS.iter().zip(mask).filter(|(_, kept)| *kept).map(|(id, _)| *id).collect()
    }

    proptest! {
        #[test]
        fn a_snapshot_and_every_delta_since_equal_a_fresh_snapshot(
            initial in proptest::collection::vec(status(), 1..20),
            reads in reads(),
            history_len in 1usize..6,
            reconnect_after in any::<prop::sample::Index>(),
        ) {
            let seat_ids: Vec<i64> = (0..initial.len() as i64).map(|i| 1000 - 10 * i).collect();
            let mut sorted_ids = seat_ids.clone();
            sorted_ids.sort();
            let seats = |statuses: &[SeatStatus]| -> Vec<SeatNow> {
                seat_ids.iter().zip(statuses).map(|(&seat_id, &status)| SeatNow { seat_id, status }).collect()
            };
            let mut truth = initial.clone();
            let mut truth_kept = Vec::new();
            let mut live = LiveSeatMap::new(seats(&initial), Vec::new(), 100, history_len);
            let mut follower = Client::from_snapshot(&sorted_ids, &live.snapshot());
            let reconnect_after = reconnect_after.index(reads.len() + 1);
            let mut reconnecting = (reconnect_after == 0).then(|| follower.clone());
            let mut position = 100;
            for (step, (changes, mask, advance)) in reads.iter().enumerate() {
                position += advance;
                let read: Vec<SeatNow> = changes
                    .iter()
                    .map(|&(i, status)| {
                        if let Some(now) = truth.get_mut(i) {
                            *now = status;
                        }
                        SeatNow { seat_id: seat_ids.get(i).copied().unwrap_or(50_000 + i as i64), status }
                    })
                    .collect();
                truth_kept = kept(*mask);
                if let Some(delta) = live.apply(&read, truth_kept.clone(), position) {
                    prop_assert_eq!(delta.fit(follower.position), Fit::Apply);
                    follower.apply(&delta);
                }
                if step + 1 == reconnect_after {
                    reconnecting = Some(Client::from_snapshot(&sorted_ids, &live.snapshot()));
                }
            }
            let fresh = LiveSeatMap::new(seats(&truth), truth_kept, live.position(), history_len).snapshot();
            let expected = Client::from_snapshot(&sorted_ids, &fresh);
            let mut follower_seen = follower.clone();
            follower_seen.position = live.position();
            prop_assert_eq!(&follower_seen, &expected, "the follower");
            // Encoded once per change: its position may be older when nothing changed since.
            let mut own = Client::from_snapshot(&sorted_ids, &live.snapshot());
            prop_assert!(own.position <= live.position());
            own.position = live.position();
            prop_assert_eq!(&own, &expected, "the map's own snapshot");

            let mut back = reconnecting.unwrap();
            match live.catch_up(back.position) {
                CatchUp::UpToDate => {}
                CatchUp::Snapshot => back = Client::from_snapshot(&sorted_ids, &live.snapshot()),
                CatchUp::Deltas(deltas) => {
                    for delta in deltas {
                        prop_assert_eq!(delta.fit(back.position), Fit::Apply);
                        back.apply(&delta);
                    }
                }
            }
            back.position = live.position();
            prop_assert_eq!(&back, &expected, "the client that reconnected");
        }
    }
}
