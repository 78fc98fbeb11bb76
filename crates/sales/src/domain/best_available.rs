//! Choosing "best available" seats in a reserved section.
//!
//! Fans asking for N seats want them together, in the best row that has N together,
//! and the venue wants no lone single seat stranded between sold ones (nobody buys
//! it). Under a flash sale many fans ask at once, so [`options`] returns several
//! disjoint choices, best first: when another fan locks the first, the next is tried.
//!
//! The cost is bounded (issue 19, item 5: ranking a 100,000-seat row used to take
//! 1.3–1.6 s of CPU). A [`Ranker`] is fed the section's free seats in order, a window
//! at a time, and says when the choice is settled: usually within the first window,
//! as soon as the best row with a block that strands nobody has enough of them. Each
//! row is ranked in one linear pass per stranding class (0, 1, then 2 seats
//! stranded), each pass stopping once enough blocks are found, with the blocks
//! already taken kept as at most `max_options` index ranges. The choice is the same
//! as ranking every block of the row and sorting them.

/// An available seat of the section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    /// 0 is the best row.
    pub row_rank: i32,
    pub seat_number: i32,
}

/// Up to `max_options` disjoint choices of `quantity` seats, best first.
///
/// `candidates` must be sorted by row rank, then seat number. Adjacent blocks come
/// first, by row; within a row a block that strands no single seat beats one that
/// does, then the block further left. When no row has `quantity` seats together, the
/// best seats in order are offered instead.
pub fn options(candidates: &[Candidate], quantity: usize, max_options: usize) -> Vec<Vec<i64>> {
    let mut ranker = Ranker::new(quantity, max_options);
    ranker.push(candidates);
    ranker.finish()
}

/// [`options`], fed the candidates a window at a time, in order.
///
/// [`Ranker::push`] answers `true` once the seats not yet read can no longer change
/// the choice; [`Ranker::finish`] gives it (after every seat was pushed, or once
/// settled). Memory is the current row plus the choices.
#[derive(Debug)]
pub struct Ranker {
    quantity: usize,
    max_options: usize,
    chosen: Vec<Vec<i64>>,
    /// The first `quantity * max_options` seats: the fallback when no row has a block.
    first: Vec<i64>,
    /// The row being read, from its first free seat.
    row: Vec<Candidate>,
    settled: bool,
}

impl Ranker {
    pub fn new(quantity: usize, max_options: usize) -> Self {
        Self {
            quantity,
            max_options,
            chosen: Vec::new(),
            first: Vec::new(),
            row: Vec::new(),
            settled: quantity == 0 || max_options == 0,
        }
    }

    /// Reads the next seats (continuing the order of the previous ones). `true` when
    /// the choice is settled and no further seat need be read.
    pub fn push(&mut self, seats: &[Candidate]) -> bool {
        if self.settled {
            return true;
        }
        let fallback = self.quantity.saturating_mul(self.max_options);
        for seat in seats {
            if self.first.len() < fallback {
                self.first.push(seat.id);
            }
            if self.row.first().is_some_and(|head| head.row_rank != seat.row_rank) {
                self.close_row();
                if self.settled {
                    return true;
                }
            }
            self.row.push(*seat);
        }
        // The row read so far may already hold enough blocks that strand nobody: they
        // come before any other block of the row, whatever follows.
        let wanted = self.max_options - self.chosen.len();
        let sure = blocks_in_row(&self.row, self.quantity, wanted, Some(0), true);
        if sure.len() == wanted {
            self.chosen.extend(sure);
            self.settled = true;
        }
        self.settled
    }

    /// The choices, best first.
    pub fn finish(mut self) -> Vec<Vec<i64>> {
        if self.quantity == 0 || self.max_options == 0 {
            return Vec::new();
        }
        if !self.settled {
            self.close_row();
        }
        if self.chosen.is_empty() {
            return self.first.chunks_exact(self.quantity).take(self.max_options).map(<[i64]>::to_vec).collect();
        }
        self.chosen
    }

    /// Ranks the row just completed.
    fn close_row(&mut self) {
        let wanted = self.max_options - self.chosen.len();
        let blocks = blocks_in_row(&self.row, self.quantity, wanted, None, false);
        self.chosen.extend(blocks);
        self.row.clear();
        self.settled = self.chosen.len() == self.max_options;
    }
}

/// Up to `wanted` disjoint adjacent blocks of one row, best first: those stranding
/// no single seat, then one, then two; within each, from the left.
///
/// `only` limits the classes ranked (`Some(0)`: blocks stranding nobody). With
/// `open`, more seats may follow the row's last run: a block of it counts only when at
/// least two of its seats follow it, so that nothing read later can strand one.
fn blocks_in_row(row: &[Candidate], quantity: usize, wanted: usize, only: Option<u8>, open: bool) -> Vec<Vec<i64>> {
    let mut taken: Vec<(usize, usize)> = Vec::new();
    let classes = match only {
        Some(class) => class..=class,
        None => 0..=2,
    };
    'classes: for class in classes {
        let mut offset = 0;
        let mut runs = row.chunk_by(|a, b| b.seat_number == a.seat_number + 1).peekable();
        while let Some(run) = runs.next() {
            let run_start = offset;
            offset += run.len();
            let last_run = runs.peek().is_none();
            // An open run's later seats are unknown: keep two read seats after the block.
            let usable = if open && last_run { run.len().saturating_sub(2) } else { run.len() };
            if usable < quantity {
                continue;
            }
            for start in 0..=usable - quantity {
                let right = run.len() - start - quantity;
                let stranded = u8::from(start == 1) + u8::from(right == 1);
                if stranded != class {
                    continue;
                }
                let (from, to) = (run_start + start, run_start + start + quantity);
                if taken.iter().any(|&(a, b)| from < b && a < to) {
                    continue;
                }
                taken.push((from, to));
                if taken.len() == wanted {
                    break 'classes;
                }
            }
        }
    }
    taken.iter().map(|&(from, to)| ids(&row[from..to])).collect()
}

fn ids(seats: &[Candidate]) -> Vec<i64> {
    seats.iter().map(|seat| seat.id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seats given as (row, number); the id is row * 100 + number.
    fn seats(list: &[(i32, i32)]) -> Vec<Candidate> {
        list.iter()
            .map(|&(row_rank, seat_number)| Candidate {
                id: (row_rank * 100 + seat_number) as i64,
                row_rank,
                seat_number,
            })
            .collect()
    }

    fn numbers(option: &[i64]) -> Vec<i64> {
        option.to_vec()
    }

    #[test]
    fn takes_adjacent_seats_in_the_best_row_that_has_them() {
        // Row 0 has 1, 3, 5 free (no pair); row 1 has 4-5 together.
        let c = seats(&[(0, 1), (0, 3), (0, 5), (1, 4), (1, 5)]);
        assert_eq!(numbers(&options(&c, 2, 1)[0]), [104, 105]);
    }

    #[test]
    fn avoids_stranding_a_single_seat_when_a_same_row_choice_exists() {
        // Row 0 seats 1-5 free: taking 2-3 or 3-4 would strand one seat; 1-2 strands none
        // on the left but leaves 3-5 (fine). Seats 2-3 would strand seat 1.
        let c = seats(&[(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)]);
        let first = &options(&c, 2, 3)[0];
        assert_eq!(numbers(first), [1, 2]);
        // A run of 3 asked for 2: either end strands one seat; no better choice exists.
        let c = seats(&[(0, 1), (0, 2), (0, 3)]);
        assert_eq!(options(&c, 2, 1)[0].len(), 2);
    }

    #[test]
    fn prefers_the_block_that_strands_nobody_even_further_along_the_row() {
        // Free: 1-3 and 6-7. Asked for 2: 1-2 strands seat 3; 6-7 strands nobody.
        let c = seats(&[(0, 1), (0, 2), (0, 3), (0, 6), (0, 7)]);
        assert_eq!(numbers(&options(&c, 2, 1)[0]), [6, 7]);
    }

    #[test]
    fn offers_disjoint_fallbacks_in_quality_order() {
        let c = seats(&[(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]);
        let all = options(&c, 2, 5);
        assert_eq!(all, vec![vec![1, 2], vec![3, 4], vec![101, 102]]);
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert!(a.iter().all(|id| !b.contains(id)), "options overlap: {a:?} {b:?}");
            }
        }
    }

    #[test]
    fn without_any_adjacent_block_the_best_seats_are_offered_in_order() {
        let c = seats(&[(0, 1), (0, 3), (1, 2), (1, 7)]);
        assert_eq!(options(&c, 2, 5), vec![vec![1, 3], vec![102, 107]]);
    }

    #[test]
    fn too_few_seats_gives_no_option() {
        assert!(options(&seats(&[(0, 1)]), 2, 3).is_empty());
        assert!(options(&[], 1, 3).is_empty());
    }

    /// The ranking before issue 19: every block of a row, sorted, then picked with list
    /// scans (quadratic). The linear passes must choose exactly as it did.
    fn quadratic(candidates: &[Candidate], quantity: usize, max_options: usize) -> Vec<Vec<i64>> {
        if quantity == 0 || candidates.len() < quantity {
            return Vec::new();
        }
        let mut chosen = Vec::new();
        for row in candidates.chunk_by(|a, b| a.row_rank == b.row_rank) {
            let mut ranked: Vec<(u8, &[Candidate])> = Vec::new();
            for run in row.chunk_by(|a, b| b.seat_number == a.seat_number + 1) {
                if run.len() < quantity {
                    continue;
                }
                for start in 0..=run.len() - quantity {
                    let right = run.len() - start - quantity;
                    ranked.push((u8::from(start == 1) + u8::from(right == 1), &run[start..start + quantity]));
                }
            }
            ranked.sort_by_key(|(stranded, block)| (*stranded, block[0].seat_number));
            let mut taken: Vec<i64> = Vec::new();
            for (_, block) in ranked {
                if block.iter().any(|seat| taken.contains(&seat.id)) {
                    continue;
                }
                taken.extend(block.iter().map(|seat| seat.id));
                if chosen.len() == max_options {
                    return chosen;
                }
                chosen.push(ids(block));
            }
        }
        if chosen.is_empty() {
            chosen = candidates.chunks_exact(quantity).take(max_options).map(ids).collect();
        }
        chosen
    }

    /// A small deterministic generator (xorshift), so the cases are reproducible.
    struct Xorshift(u64);

    impl Xorshift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Rows of up to 40 seats, each free with a chance that varies by case.
    fn random_section(rng: &mut Xorshift) -> Vec<Candidate> {
        let rows = 1 + rng.below(5) as i32;
        let free_in_ten = 1 + rng.below(10);
        let mut list = Vec::new();
        for row in 0..rows {
            for number in 1..=1 + rng.below(40) as i32 {
                if rng.below(10) < free_in_ten {
                    list.push((row, number));
                }
            }
        }
        seats(&list)
    }

    #[test]
    fn the_linear_ranking_chooses_as_the_quadratic_one_did() {
        let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
        for case in 0..20_000 {
            let c = random_section(&mut rng);
            let quantity = 1 + rng.below(6) as usize;
            let max_options = 1 + rng.below(6) as usize;
            let expected = quadratic(&c, quantity, max_options);
            assert_eq!(options(&c, quantity, max_options), expected, "case {case}: {c:?} q={quantity} n={max_options}");
            // Fed in windows, stopping once settled, as `take_best` reads the seats.
            let window = 1 + rng.below(12) as usize;
            let mut ranker = Ranker::new(quantity, max_options);
            for part in c.chunks(window) {
                if ranker.push(part) {
                    break;
                }
            }
            assert_eq!(ranker.finish(), expected, "case {case} in windows of {window}: {c:?} q={quantity}");
        }
    }

    #[test]
    fn a_long_free_row_is_settled_by_its_first_window() {
        let row: Vec<Candidate> =
            (1..=100_000).map(|n| Candidate { id: i64::from(n), row_rank: 0, seat_number: n }).collect();
        let mut ranker = Ranker::new(4, 5);
        assert!(ranker.push(&row[..512]));
        assert_eq!(ranker.finish(), (0..5).map(|b| (1 + 4 * b..=4 + 4 * b).collect::<Vec<i64>>()).collect::<Vec<_>>());
    }

    #[test]
    fn a_row_with_only_stranding_blocks_is_read_to_its_end() {
        // Runs of 3 asked for 2: every block strands a seat, and a later run of 2 (which
        // strands nobody) must still win.
        let mut list: Vec<(i32, i32)> =
            (0..10).flat_map(|k| [(0, 10 * k + 1), (0, 10 * k + 2), (0, 10 * k + 3)]).collect();
        list.extend([(0, 200), (0, 201)]);
        let c = seats(&list);
        let mut ranker = Ranker::new(2, 1);
        assert!(!ranker.push(&c[..30]));
        assert!(!ranker.push(&c[30..]));
        assert_eq!(ranker.finish(), vec![vec![200, 201]]);
    }
}

/// Properties over random sections (issue 20): whatever the free seats, the choices are
/// disjoint and whole, adjacent when a row allows it, in the best such row, stranding
/// nobody when that row allows it, and the same however the seats are fed in windows.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Up to 4 rows of up to 12 seats, each free or not; ids are row * 100 + number.
    fn free_seats() -> impl Strategy<Value = Vec<Candidate>> {
        proptest::collection::vec(proptest::collection::vec(any::<bool>(), 12), 1..=4).prop_map(|rows| {
            let mut seats = Vec::new();
            for (row_rank, free) in rows.iter().enumerate() {
                for (n, _) in free.iter().enumerate().filter(|(_, free)| **free) {
                    let (row_rank, seat_number) = (row_rank as i32, n as i32 + 1);
                    seats.push(Candidate { id: i64::from(row_rank * 100 + seat_number), row_rank, seat_number });
                }
            }
            seats
        })
    }

    /// The runs of consecutive seats of each row, best row first.
    fn runs(seats: &[Candidate]) -> Vec<&[Candidate]> {
        seats.chunk_by(|a, b| a.row_rank == b.row_rank && b.seat_number == a.seat_number + 1).collect()
    }

    /// How many single seats taking `block` leaves alone in its run.
    fn stranded(seats: &[Candidate], block: &[i64]) -> u8 {
        let run = runs(seats).into_iter().find(|run| run.iter().any(|s| s.id == block[0])).unwrap();
        let start = run.iter().position(|s| s.id == block[0]).unwrap();
        let right = run.len() - start - block.len();
        u8::from(start == 1) + u8::from(right == 1)
    }

    fn is_block(seats: &[Candidate], choice: &[i64]) -> bool {
        let chosen: Vec<&Candidate> = choice.iter().map(|id| seats.iter().find(|s| s.id == *id).unwrap()).collect();
        chosen
            .windows(2)
            .all(|pair| pair[0].row_rank == pair[1].row_rank && pair[1].seat_number == pair[0].seat_number + 1)
    }

    proptest! {
        #[test]
        fn choices_are_disjoint_whole_and_made_of_free_seats(
            seats in free_seats(), quantity in 1usize..=5, max_options in 1usize..=4,
        ) {
            let choices = options(&seats, quantity, max_options);
            prop_assert!(choices.len() <= max_options);
            let mut all: Vec<i64> = choices.iter().flatten().copied().collect();
            prop_assert!(choices.iter().all(|choice| choice.len() == quantity));
            prop_assert!(all.iter().all(|id| seats.iter().any(|s| s.id == *id)));
            all.sort();
            all.dedup();
            prop_assert_eq!(all.len(), choices.len() * quantity, "no seat in two choices");
            if choices.is_empty() {
                prop_assert!(seats.len() < quantity);
            }
        }

        #[test]
        fn seats_together_in_the_best_row_that_has_them_stranding_nobody_when_it_can(
            seats in free_seats(), quantity in 1usize..=5, max_options in 1usize..=4,
        ) {
            let choices = options(&seats, quantity, max_options);
            let best_row = runs(&seats).into_iter().filter(|run| run.len() >= quantity).map(|run| run[0].row_rank).min();
            match best_row {
                Some(row) => {
                    prop_assert!(choices.iter().all(|choice| is_block(&seats, choice)), "{choices:?}");
                    let first = &choices[0];
                    prop_assert_eq!(seats.iter().find(|s| s.id == first[0]).unwrap().row_rank, row);
                    let row_can_strand_nobody = runs(&seats).into_iter().filter(|run| run[0].row_rank == row).any(|run| {
                        run.len() >= quantity && (0..=run.len() - quantity).any(|s| s != 1 && run.len() - s - quantity != 1)
                    });
                    if row_can_strand_nobody {
                        prop_assert_eq!(stranded(&seats, first), 0, "{:?}", first);
                    }
                }
                None => {
                    let ids: Vec<i64> = seats.iter().map(|s| s.id).collect();
                    let expected: Vec<Vec<i64>> =
                        ids.chunks_exact(quantity).take(max_options).map(<[i64]>::to_vec).collect();
                    prop_assert_eq!(choices, expected, "the best seats in order");
                }
            }
        }

        #[test]
        fn feeding_the_seats_in_windows_chooses_as_reading_them_all(
            seats in free_seats(), quantity in 1usize..=5, max_options in 1usize..=4,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|cut| cut.index(seats.len() + 1)).collect();
            at.push(0);
            at.push(seats.len());
            at.sort();
            let mut ranker = Ranker::new(quantity, max_options);
            for window in at.windows(2) {
                if ranker.push(&seats[window[0]..window[1]]) {
                    break;
                }
            }
            prop_assert_eq!(ranker.finish(), options(&seats, quantity, max_options));
        }
    }
}
