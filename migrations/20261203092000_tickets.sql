-- E-tickets, their revocations, scanner keys and check-ins (issue 16).
--
-- Invariants, enforced here rather than trusted to the application:
--  * one ticket per booked place: a ticket names its booking and seat, at most once
--    (tickets_one_per_booking_seat), and is written by the booking's own statement
--    (crates/sales/src/store/bookings.rs), so no booking exists without its tickets;
--  * at most one live ticket per seat (tickets_one_live_per_seat): a booking cancelled
--    without revoking its tickets leaves the seat unsellable rather than letting two
--    valid tickets name it (pretix's bug: a cancelled ticket still passing offline
--    scanners);
--  * a ticket's secret changes (issue + 1) or the ticket is revoked only together with
--    a revocation row for the secret it replaces, in the same transaction
--    (tickets_revoked_with_record, checked at commit): an offline scanner that has the
--    revocation feed refuses every secret that is no longer current;
--  * one check-in per ticket (the primary key of checkins): two gates scanning at once
--    cannot both admit it.
--
-- The secret itself is not stored: it is an Ed25519 signature over the ticket's fields
-- (crates/sales/src/domain/ticket_secret.rs), made again whenever it is shown
-- (signatures are deterministic), so only the process that shows secrets holds the key.
-- As with the other rows an order writes, tickets carry their references without
-- foreign keys (see *_inventory.sql: a foreign key's lookup and share lock on every
-- order); the booking statement writes them whole.

CREATE TABLE tickets (
    id         uuid PRIMARY KEY,
    event_id   uuid NOT NULL,
    booking_id uuid NOT NULL,
    seat_id    bigint NOT NULL,
    -- Which secret is current: a reissue moves it on, and the old one is revoked.
    issue      integer NOT NULL DEFAULT 1 CHECK (issue >= 1),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT tickets_one_per_booking_seat UNIQUE (booking_id, seat_id)
);
CREATE UNIQUE INDEX tickets_one_live_per_seat ON tickets (seat_id) WHERE revoked_at IS NULL;

CREATE TYPE ticket_revocation_reason AS ENUM ('reissued', 'cancelled');

-- What offline scanners catch up on: a row revokes the ticket's secrets up to and
-- including `issue` (issues only grow, and each is revoked before the next exists).
-- `xid` is the writing transaction's id: the feed is read by the transaction-id
-- watermark of DECISIONS.md D3, so a revocation committing late is never skipped.
CREATE TABLE ticket_revocations (
    event_id   uuid NOT NULL,
    ticket_id  uuid NOT NULL,
    issue      integer NOT NULL,
    reason     ticket_revocation_reason NOT NULL,
    revoked_at timestamptz NOT NULL DEFAULT now(),
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    PRIMARY KEY (ticket_id, issue)
);
CREATE INDEX ticket_revocations_feed ON ticket_revocations (event_id, xid);

-- Checked at commit, so the statements of a transaction may come in any order: a
-- ticket whose issue moved on, or that was revoked, has a revocation for the issue it
-- had.
CREATE FUNCTION tickets_revoked_with_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.issue < OLD.issue OR NEW.issue > OLD.issue + 1 THEN
        RAISE EXCEPTION 'ticket %: issue % may only move to % ', OLD.id, OLD.issue, OLD.issue + 1
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_revoked_with_record';
    END IF;
    IF OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS NULL OR NEW.issue <> OLD.issue) THEN
        RAISE EXCEPTION 'ticket % is revoked for good', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_revoked_with_record';
    END IF;
    IF (NEW.issue <> OLD.issue OR (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL))
       AND NOT EXISTS (SELECT 1 FROM ticket_revocations WHERE ticket_id = OLD.id AND issue = OLD.issue) THEN
        RAISE EXCEPTION 'ticket % issue % replaced or revoked without a revocation record', OLD.id, OLD.issue
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_revoked_with_record';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER tickets_revoked_with_record AFTER UPDATE ON tickets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tickets_revoked_with_record();
CREATE TRIGGER tickets_are_never_deleted BEFORE DELETE ON tickets
    FOR EACH ROW EXECUTE FUNCTION inventory_is_fixed();
CREATE TRIGGER ticket_revocations_are_never_deleted BEFORE DELETE OR UPDATE ON ticket_revocations
    FOR EACH ROW EXECUTE FUNCTION inventory_is_fixed();

-- Gate staff's keys, one event each, for check-in only. Only a SHA-256 of the key is
-- kept: the key is shown once, when the organizer creates it.
CREATE TABLE scanner_keys (
    id         uuid PRIMARY KEY,
    event_id   uuid NOT NULL REFERENCES events (id),
    name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    key_sha256 bytea NOT NULL UNIQUE CHECK (length(key_sha256) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- One row per ticket: the primary key is what makes a check-in happen exactly once,
-- whichever gates race. `scanned_at` is when the gate scanned (the database's clock
-- online, the scanner's for an uploaded offline scan); the earliest scan wins.
CREATE TABLE checkins (
    ticket_id   uuid PRIMARY KEY,
    event_id    uuid NOT NULL,
    issue       integer NOT NULL,
    gate        text NOT NULL CHECK (length(gate) BETWEEN 1 AND 100),
    scanned_at  timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    offline     boolean NOT NULL DEFAULT false
);
CREATE INDEX checkins_by_event ON checkins (event_id);

-- A booking's capability link (DECISIONS.md D7) names the booking and this
-- generation; moving it on revokes every link given out before.
ALTER TABLE bookings ADD COLUMN link_generation integer NOT NULL DEFAULT 1 CHECK (link_generation >= 1);
