-- Which seats an order may take, defined once.
--
-- A seat is takeable when it is available, or held by a hold whose time has run out: a
-- lapsed hold frees its seats to the next order at once, before the scheduler sweeps it.
-- Every statement that takes, counts or shows free seats names these functions instead
-- of writing the rule out (it was written six times).
--
-- Both are plain LANGUAGE sql expressions, STABLE (they read now()) and not STRICT, so
-- PostgreSQL inlines them into the calling statement before planning: the planner sees
-- `state = 'available' OR (state = 'held' AND held_until <= now())` and still proves the
-- partial indexes' predicates from it, seats_available for the first arm and
-- seats_held_by_expiry (held_until <= now() as its index condition) for the second. A
-- PL/pgSQL, STRICT or VOLATILE function would be opaque to the planner and turn every
-- such read into a scan of the section's seats. crates/sales/tests/it/plans.rs checks
-- the plans with EXPLAIN.

-- The seat's hold has lapsed: it is still marked held, but no longer anyone's.
CREATE FUNCTION seat_hold_lapsed(state seat_state, held_until timestamptz) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT state = 'held' AND held_until <= now() $$;

CREATE FUNCTION seat_is_takeable(state seat_state, held_until timestamptz) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT state = 'available' OR seat_hold_lapsed(state, held_until) $$;

-- The live counts, by the same rule. Same columns as before.
CREATE OR REPLACE VIEW section_availability AS
SELECT
    s.id AS section_id,
    s.event_id,
    s.capacity,
    count(*) FILTER (WHERE seat_is_takeable(st.state, st.held_until)) AS remaining,
    count(*) FILTER (WHERE st.state = 'held' AND NOT seat_hold_lapsed(st.state, st.held_until)) AS held,
    count(*) FILTER (WHERE st.state = 'booked') AS booked
FROM sections s
JOIN seats st ON st.section_id = s.id
GROUP BY s.id, s.event_id, s.capacity;
