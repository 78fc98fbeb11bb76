-- Proof of work at the door (issue 18), per event: with pow_difficulty set, a join must
-- carry the solution of a fresh challenge the waiting room signed for this event
-- (ALTCHA's scheme, crates/waitroom/src/pow.rs). The difficulty is the largest counter
-- a challenge may hide: a solver tries about three quarters of it on average. NULL: no
-- proof of work. Bounded so that no organizer's typo asks fans' browsers for hours.
ALTER TABLE waitroom_events ADD COLUMN pow_difficulty integer CHECK (pow_difficulty BETWEEN 1 AND 1000000);
