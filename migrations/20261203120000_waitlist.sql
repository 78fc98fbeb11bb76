-- The waitlist: fans who found a section sold out wait, in the order they joined, for
-- places that come back (DECISIONS.md D2).
--
-- The rules, enforced here:
--  * an entry asks for a quantity in any of the sections it lists; one waiting entry per
--    fan per event (waitlist_one_waiting_entry_per_fan), as strong as the fan's id (D7).
--  * while any entry waits for a section (sections.waitlist_waiting > 0), nothing of it
--    is for sale to ordinary orders: not its available seats, not its lapsed holds
--    (seat_is_for_sale). Freed places go to the waitlist first, and only the waitlist's
--    own statements take them: the transaction that frees them (a release, a
--    cancellation) and the hold sweep turn them into offers. Once no entry waits, the
--    section is on sale again as before.
--  * an offer is a real hold for the entry's fan (holds.waitlist_entry_id), with the
--    event's offer lifetime: the freed places can never leak to someone else meanwhile,
--    nor be offered twice (a seat has one state). The fan takes it by checking out or
--    confirming the hold as usual; declining (releasing it) or letting it lapse frees its
--    places to the next entry the same way.
--  * an entry gets at most one offer (holds_one_offer_per_entry), and leaves the waiting
--    line when it gets it (status 'offered').
--
-- Why a counter on sections rather than asking the entries: every order statement reads
-- the rule for every seat it locks, and a count it can join (sections is already in
-- each of them) costs nothing, where a search of the waiting entries would cost each
-- order a scan. Joins and departures are rare beside orders; the trigger below keeps the
-- count with them, in their statement.

ALTER TABLE events ADD COLUMN waitlist_enabled boolean NOT NULL DEFAULT false;
ALTER TABLE events ADD COLUMN waitlist_offer_ttl_seconds integer NOT NULL DEFAULT 1800
    CONSTRAINT events_waitlist_offer_ttl_range CHECK (waitlist_offer_ttl_seconds BETWEEN 1 AND 604800);

ALTER TABLE sections ADD COLUMN waitlist_waiting integer NOT NULL DEFAULT 0
    CONSTRAINT sections_waitlist_waiting_not_negative CHECK (waitlist_waiting >= 0);

-- waiting: in line. offered: got its offer (the hold tells whether it was taken).
-- left: the fan left, or the organizer turned the waitlist off.
CREATE TYPE waitlist_entry_status AS ENUM ('waiting', 'offered', 'left');

CREATE TABLE waitlist_entries (
    id            uuid PRIMARY KEY,
    -- The line's order: an identity, so two entries never tie.
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id      uuid NOT NULL REFERENCES events (id),
    fan_id        text NOT NULL,
    quantity      integer NOT NULL CHECK (quantity BETWEEN 1 AND 100),
    -- The sections the fan accepts, the one they prefer first.
    section_ids   uuid[] NOT NULL CHECK (cardinality(section_ids) BETWEEN 1 AND 100),
    -- Whether an offer of fewer places than asked is welcome.
    allow_partial boolean NOT NULL DEFAULT false,
    contact_email text
        CONSTRAINT waitlist_entries_contact_email_shape CHECK (contact_email ~ '^[^@\s]+@[^@\s]+$' AND length(contact_email) <= 254),
    status        waitlist_entry_status NOT NULL DEFAULT 'waiting',
    created_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    CHECK ((status = 'waiting') = (ended_at IS NULL))
);
CREATE UNIQUE INDEX waitlist_one_waiting_entry_per_fan ON waitlist_entries (event_id, fan_id) WHERE status = 'waiting';
CREATE INDEX waitlist_line ON waitlist_entries (event_id, seq) WHERE status = 'waiting';
CREATE INDEX waitlist_by_fan ON waitlist_entries (event_id, fan_id, seq);

ALTER TABLE holds ADD COLUMN waitlist_entry_id uuid REFERENCES waitlist_entries (id);
CREATE UNIQUE INDEX holds_one_offer_per_entry ON holds (waitlist_entry_id) WHERE waitlist_entry_id IS NOT NULL;

-- Keeps sections.waitlist_waiting, and refuses what would make it wrong: an entry
-- coming back to the line, or changing its sections.
CREATE FUNCTION waitlist_count_waiting() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status = 'waiting' THEN
            UPDATE sections SET waitlist_waiting = waitlist_waiting + 1
            WHERE id = ANY (NEW.section_ids) AND event_id = NEW.event_id;
        END IF;
        RETURN NULL;
    END IF;
    IF NEW.section_ids IS DISTINCT FROM OLD.section_ids OR (OLD.status <> 'waiting' AND NEW.status = 'waiting') THEN
        RAISE EXCEPTION 'a waitlist entry keeps its sections and does not rejoin the line'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'waitlist_entries_final';
    END IF;
    IF OLD.status = 'waiting' AND NEW.status <> 'waiting' THEN
        UPDATE sections SET waitlist_waiting = waitlist_waiting - 1
        WHERE id = ANY (OLD.section_ids) AND event_id = OLD.event_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER waitlist_entries_count AFTER INSERT OR UPDATE ON waitlist_entries
    FOR EACH ROW EXECUTE FUNCTION waitlist_count_waiting();

-- What an ordinary order may take: a takeable seat of a section nobody waits for. Plain
-- SQL, inlined like seat_is_takeable (see *_seat_takeable.sql).
CREATE FUNCTION seat_is_for_sale(state seat_state, held_until timestamptz, waitlist_waiting integer) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT waitlist_waiting = 0 AND seat_is_takeable(state, held_until) $$;

-- The live counts: a section the waitlist waits for has nothing remaining for sale; its
-- free places are kept for the waitlist until they are offered (then they are held).
-- remaining + held + booked + kept_for_waitlist = capacity.
CREATE OR REPLACE VIEW section_availability AS
SELECT
    s.id AS section_id,
    s.event_id,
    s.capacity,
    count(*) FILTER (WHERE seat_is_for_sale(st.state, st.held_until, s.waitlist_waiting)) AS remaining,
    count(*) FILTER (WHERE st.state = 'held' AND NOT seat_hold_lapsed(st.state, st.held_until)) AS held,
    count(*) FILTER (WHERE st.state = 'booked') AS booked,
    count(*) FILTER (WHERE s.waitlist_waiting > 0 AND seat_is_takeable(st.state, st.held_until)) AS kept_for_waitlist
FROM sections s
JOIN seats st ON st.section_id = s.id
GROUP BY s.id, s.event_id, s.capacity;
