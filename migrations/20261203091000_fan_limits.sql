-- Purchase limits per fan: at most events.max_per_fan places per fan per event (NULL,
-- the default: no limit), counted across the fan's live holds (status 'active' and
-- expires_at > now()) and live bookings (status 'confirmed').
--
-- The rule, enforced here for every write, whichever path makes it (chosen seats, best
-- available, general admission, a late payment re-taking a lapsed hold's seats, a
-- waitlist offer, a hand-written INSERT):
--  * a hold, or a booking that does not replace a live hold, commits only if the fan's
--    live places, counted while holding the fan's lock, plus its own quantity are at
--    most max_per_fan as it reads when the order is written
--    (holds_within_fan_limit, bookings_within_fan_limit). A refusal is SQLSTATE 23514
--    with the constraint name `fan_limit` and a JSON DETAIL
--    {"max_per_fan": N, "remaining": R}; the sale maps it to `fan_limit_reached`.
--  * a booking that replaces a live hold (confirm, a payment for a hold that has not
--    lapsed) is not checked: the hold's places were counted when it was taken, and the
--    hold ends in the same transaction, so the fan's count never holds both. Refusing
--    it would also turn a payment's webhook into an endless retry.
--  * nothing else adds places; releases, expiries, cancellations and confirmations only
--    take them away, so they need no check and no lock.
--
-- Why count from the source rows under a lock, rather than keep a counter:
--  * a counter row cannot see time: a hold stops counting the instant its expiry passes
--    (lazily, as its seats become takeable), long before the sweep ends it. A counter
--    would need every hold's expiry beside it, and every path that ends, extends
--    (checkout) or confirms a hold to keep it in step; counting the rows is right by
--    construction, and writes nothing.
--  * a fan has few rows per event (a handful of holds and bookings); the count reads
--    them through holds_by_fan and bookings_by_fan.
--
-- Why a lock, and why this one:
--  * two orders of one fan at once must not both count before either commits. Each
--    takes the fan's lock first and counts afterwards; the count is a separate query of
--    a VOLATILE function, so in READ COMMITTED it takes a fresh snapshot after the lock
--    was granted and sees every order of that fan committed before. (A count inside the
--    order's own statement would not: one statement reads one snapshot, taken before it
--    waited.)
--  * the lock is a transaction-scoped advisory lock on (hashtext(event), hashtext(fan)),
--    the two-key form, so it cannot meet the single-key locks sqlx's migrator takes. A
--    row per (event, fan) would do the same but is written (a new row version or a
--    locker's xmax) by every order; the advisory lock writes nothing. Two fans whose
--    ids hash alike only wait for each other now and then. The wait is bounded by
--    lock_timeout, and answered as contention.
--  * it is taken inside the order's statement, after the statement has locked its
--    seats, and nothing waits for a seat while holding it (the late-payment path locks
--    its seats before it asks fan_allowance), so orders never deadlock on it.
--  * only events with a limit take it: for the others the trigger reads the event's
--    max_per_fan and returns.
--
-- The single-statement chosen-seat hold stays one statement: the trigger runs inside
-- it, and a refusal aborts it whole.
--
-- Known edge: a confirm that began an instant before its hold's expiry treats the hold
-- as live by its own clock (now(), the transaction's start), while another order of the
-- same fan that began an instant after already counts it expired. If both land within
-- that instant the fan ends up over the limit by that hold's quantity.

ALTER TABLE events ADD COLUMN max_per_fan integer
    CONSTRAINT events_max_per_fan_range CHECK (max_per_fan BETWEEN 1 AND 200000);

-- The fan's live places in the event, counted after taking the fan's lock (held until
-- the transaction ends).
CREATE FUNCTION fan_live_places(event uuid, fan text) RETURNS integer
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    places integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(event::text), hashtext(fan));
    SELECT (SELECT coalesce(sum(h.quantity), 0) FROM holds h
             WHERE h.event_id = event AND h.fan_id = fan AND h.status = 'active' AND h.expires_at > now())
         + (SELECT coalesce(sum(b.quantity), 0) FROM bookings b
             WHERE b.event_id = event AND b.fan_id = fan AND b.status = 'confirmed')
      INTO places;
    RETURN places;
END $$;

-- How many more places the fan may take now (never below 0), NULL when the event has
-- no limit. Takes the fan's lock when there is a limit: a caller that then writes an
-- order in the same transaction is sure of the answer. Lock the seats first.
CREATE FUNCTION fan_allowance(event uuid, fan text) RETURNS integer
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    max_places integer;
BEGIN
    SELECT e.max_per_fan INTO max_places FROM events e WHERE e.id = event;
    IF max_places IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN greatest(max_places - fan_live_places(event, fan), 0);
END $$;

CREATE FUNCTION orders_within_fan_limit() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    max_places integer;
    live integer;
BEGIN
    SELECT e.max_per_fan INTO max_places FROM events e WHERE e.id = NEW.event_id;
    IF max_places IS NULL THEN
        RETURN NEW;
    END IF;
    -- (Nested: PL/pgSQL resolves every field an expression names, and holds have no
    -- hold_id.)
    IF TG_TABLE_NAME = 'bookings' THEN
        IF EXISTS (SELECT 1 FROM holds h
                   WHERE h.id = NEW.hold_id AND h.status = 'active' AND h.expires_at > now()) THEN
            RETURN NEW;
        END IF;
    END IF;
    live := fan_live_places(NEW.event_id, NEW.fan_id);
    IF live + NEW.quantity > max_places THEN
        RAISE EXCEPTION 'fan limit reached: at most % places per fan, % left', max_places, greatest(max_places - live, 0)
            USING ERRCODE = 'check_violation', CONSTRAINT = 'fan_limit',
                  DETAIL = json_build_object('max_per_fan', max_places, 'remaining', greatest(max_places - live, 0))::text;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER holds_within_fan_limit BEFORE INSERT ON holds
    FOR EACH ROW EXECUTE FUNCTION orders_within_fan_limit();
CREATE TRIGGER bookings_within_fan_limit BEFORE INSERT ON bookings
    FOR EACH ROW EXECUTE FUNCTION orders_within_fan_limit();
