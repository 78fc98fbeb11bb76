//! Choosing "best available" seats in a reserved section.
//!
//! Fans asking for N seats want them together, in the best row that has N together,
//! and the venue wants no lone single seat stranded between sold ones (nobody buys
//! it). Under a flash sale many fans ask at once, so [`options`] returns several
//! disjoint choices, best first: when another fan locks the first, the next is tried.

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
/// does. When no row has `quantity` seats together, the best seats in order are
/// offered instead.
pub fn options(candidates: &[Candidate], quantity: usize, max_options: usize) -> Vec<Vec<i64>> {
    if quantity == 0 || candidates.len() < quantity {
        return Vec::new();
    }
    let mut chosen = Vec::new();
    for row in candidates.chunk_by(|a, b| a.row_rank == b.row_rank) {
        for block in blocks_in_row(row, quantity) {
            if chosen.len() == max_options {
                return chosen;
            }
            chosen.push(block);
        }
    }
    if chosen.is_empty() {
        chosen = candidates.chunks_exact(quantity).take(max_options).map(ids).collect();
    }
    chosen
}

/// Disjoint adjacent blocks of one row, best first.
fn blocks_in_row(row: &[Candidate], quantity: usize) -> Vec<Vec<i64>> {
    let mut ranked: Vec<(u8, usize, &[Candidate])> = Vec::new();
    for run in row.chunk_by(|a, b| b.seat_number == a.seat_number + 1) {
        if run.len() < quantity {
            continue;
        }
        for start in 0..=run.len() - quantity {
            let left = start;
            let right = run.len() - start - quantity;
            let stranded = u8::from(left == 1) + u8::from(right == 1);
            ranked.push((stranded, start, &run[start..start + quantity]));
        }
    }
    ranked.sort_by_key(|(stranded, _, block)| (*stranded, block[0].seat_number));
    let mut taken: Vec<i64> = Vec::new();
    let mut blocks = Vec::new();
    for (_, _, block) in ranked {
        if block.iter().any(|seat| taken.contains(&seat.id)) {
            continue;
        }
        taken.extend(block.iter().map(|seat| seat.id));
        blocks.push(ids(block));
    }
    blocks
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
}
