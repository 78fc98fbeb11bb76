//! The auditable pre-queue shuffle.
//!
//! Fans who join before the sale opens are put in a random order at opening time, so
//! arriving early (or a bot at 09:59:59.999) gains nothing. The order is a
//! deterministic function of a secret seed and the pre-queue fan ids, committed to in
//! advance, so anyone can check the waiting room did not favour anybody:
//!
//! 1. When the organizer first configures the event, the waiting room draws a seed:
//!    32 random bytes, written as 64 lowercase hex characters.
//! 2. Before opening it publishes only `seed_sha256 = hex(SHA-256(seed))`, hashing the
//!    64-character hex text (`printf %s "$SEED" | sha256sum`).
//! 3. After opening it publishes the seed itself. Anyone can check it against the
//!    commitment and recompute the order: for every pre-queue fan id compute
//!    `hex(SHA-256(seed ":" fan_id))` (`printf %s "$SEED:$FAN" | sha256sum`) and sort
//!    the fans by that hex string ascending (ties, which SHA-256 makes practically
//!    impossible, by fan id). Position 1 is the first after sorting.
//!
//! The order does not depend on when or in which order fans joined, and nobody can
//! predict it before opening without the seed, which the commitment pins down.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh seed, as the hex text that is hashed and later published.
pub fn new_seed() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The commitment published before opening.
pub fn commitment(seed: &str) -> String {
    hex::encode(Sha256::digest(seed.as_bytes()))
}

/// The pre-queue in its shuffled order, first in line first.
pub fn order<S: AsRef<str>>(seed: &str, fan_ids: &[S]) -> Vec<String> {
    let mut keyed: Vec<(String, &str)> = fan_ids
        .iter()
        .map(|fan| {
            let fan = fan.as_ref();
            (hex::encode(Sha256::digest(format!("{seed}:{fan}").as_bytes())), fan)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, fan)| fan.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commitment_is_the_sha256_of_the_seed_text() {
        // printf %s abc | sha256sum
        assert_eq!(commitment("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(new_seed().len(), 64);
    }

    #[test]
    fn the_order_depends_on_the_seed_not_on_arrival() {
        let fans: Vec<String> = (0..50).map(|i| format!("fan-{i}")).collect();
        let mut reversed = fans.clone();
        reversed.reverse();
        let seed = new_seed();
        assert_eq!(order(&seed, &fans), order(&seed, &reversed));
        assert_ne!(order(&seed, &fans), order(&new_seed(), &fans));
        let mut sorted = order(&seed, &fans);
        sorted.sort();
        let mut expected = fans.clone();
        expected.sort();
        assert_eq!(sorted, expected, "a permutation: nobody added or lost");
    }

    #[test]
    fn the_order_matches_the_documented_recipe() {
        // printf %s 'seed:a' | sha256sum -> 3055…; printf %s 'seed:b' | sha256sum -> e362…
        assert_eq!(order("seed", &["b", "a"]), ["a", "b"]);
    }
}
