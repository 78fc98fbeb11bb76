-- The change feed of seats (DECISIONS.md D3): every change of a seat's state or hold
-- time, whatever wrote it (an order, a confirmation, a release, a cancellation, a
-- waitlist offer, the sweep), is recorded by the transaction that makes it. The live
-- seat map and the waiting room's admission budget read it instead of counting the
-- seats again.
--
--  * Recorded by a trigger, not by the statements that change seats: a statement added
--    later cannot forget it, and the feed cannot disagree with the seats.
--  * One row per changing statement and section, the seats as arrays (the narrow
--    insert D3 asks for), never an update of a per-event counter row: that row would
--    serialise every order of a sale on its lock.
--  * Each row names its transaction (`xid`). A reader at position P reads the rows with
--    P <= xid < pg_snapshot_xmin(pg_current_snapshot()) and moves to that xmin: every
--    transaction below it has finished, so a change committing late is never skipped,
--    and no row is read twice. Neither a sequence nor a commit time orders such rows
--    safely (a transaction that took its number first may commit last).
--  * A row carries the seats' states before and after, so counts can be kept from the
--    rows alone (adding and removing commute, so the order rows are applied in does not
--    matter), and `held_until`, so a lapsed hold counts as free at once, before the sweep
--    records it.
--  * Rows older than a retention time are pruned by the scheduler; `seat_change_horizons`
--    says up to which position an event's rows may be gone, so a reader that far behind
--    takes a snapshot instead of missing changes.

CREATE TABLE seat_changes (
    event_id       uuid NOT NULL,
    section_id     uuid NOT NULL,
    xid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    changed_at     timestamptz NOT NULL DEFAULT now(),
    seat_ids       bigint[] NOT NULL,
    old_states     seat_state[] NOT NULL,
    old_held_until timestamptz[] NOT NULL,
    new_states     seat_state[] NOT NULL,
    new_held_until timestamptz[] NOT NULL,
    CHECK (cardinality(seat_ids) > 0
           AND cardinality(old_states) = cardinality(seat_ids)
           AND cardinality(old_held_until) = cardinality(seat_ids)
           AND cardinality(new_states) = cardinality(seat_ids)
           AND cardinality(new_held_until) = cardinality(seat_ids))
);
-- The only index every order writes: readers go by event and position. The pruning
-- reads the table whole, once a minute, which is cheaper than a second index on it.
CREATE INDEX seat_changes_feed ON seat_changes (event_id, xid);

-- Per event: rows with xid <= `pruned_through` may have been deleted. Written by the
-- pruning only, in the statement that deletes, so a reader's statement sees both or
-- neither.
CREATE TABLE seat_change_horizons (
    event_id       uuid PRIMARY KEY,
    pruned_through xid8 NOT NULL
);

-- The five arrays line up without an ORDER BY each: one aggregation feeds every row to
-- all its aggregates in the same order (five sorts per statement cost orders ~6 % in a
-- seat-only pgbench here).
CREATE FUNCTION seats_record_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO seat_changes (event_id, section_id, seat_ids, old_states, old_held_until, new_states, new_held_until)
    SELECT n.event_id, n.section_id, array_agg(n.id), array_agg(o.state), array_agg(o.held_until),
           array_agg(n.state), array_agg(n.held_until)
    FROM changed_new n JOIN changed_old o ON o.id = n.id
    WHERE (n.state, n.held_until) IS DISTINCT FROM (o.state, o.held_until)
    GROUP BY n.event_id, n.section_id;
    RETURN NULL;
END $$;

CREATE TRIGGER seats_record_changes AFTER UPDATE ON seats
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION seats_record_changes();
