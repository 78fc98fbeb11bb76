-- Fans the admitter dropped from the line as abandoned (issue 18): when their turn
-- came they had not polled for longer than `waitroom.abandon_after_secs`, so their
-- place went to the next fan. The published admission log lists them beside the
-- admissions, so a fan who joined early and was never let in, and anyone checking the
-- log's order, can see why — without it an abandoned fan's place looks like an
-- overtake that went unrecorded.
--
-- Written by the admissions' batched recorder (crates/waitroom/src/recorder.rs), best
-- effort as admissions are. One row per place in line dropped: a retried batch (its
-- first write's outcome unknown) finds the row and skips it; a fan who queues again
-- has a new join score, and a second drop a row of its own. Redis' clock, like
-- admitted_at.
CREATE TABLE waitroom_skips (
    event_id   uuid NOT NULL,
    fan_id     text NOT NULL,
    join_score bigint NOT NULL,
    skipped_at timestamptz NOT NULL,
    PRIMARY KEY (event_id, fan_id, join_score)
);
