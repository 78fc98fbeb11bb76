-- The waiting room's durable record: what must survive Redis losing its data.
--
-- Redis holds the waiting room's live state (queues, last-seen times, the admission
-- clock), fast and atomic, but a restart without persistence, a FLUSHALL or an
-- asynchronous failover can lose it. These tables are the source of truth for what
-- must never change or be forgotten:
--  * an event's settings and its shuffle seed: the seed's SHA-256 may already be
--    published, so a wipe must never draw a new one (waitroom_events);
--  * every admission, so that after a wipe the admitted set can be rebuilt and
--    max_active still holds, and so that a fan whose place was already used cannot
--    get it back with an old ticket (waitroom_admissions).
-- Queue places are not stored here: a million joins a second would not fit through
-- PostgreSQL. Each fan's place travels in their signed queue ticket instead, and a
-- poll after a wipe puts them back (crates/waitroom/src/restore.rs).
--
-- No foreign key to events: the waiting room runs for any event id the organizer
-- configures, whether or not the gateway sells it from this database.

CREATE TYPE waitroom_state AS ENUM ('running', 'paused', 'closed');

CREATE TABLE waitroom_events (
    event_id            uuid PRIMARY KEY,
    state               waitroom_state NOT NULL,
    admit_rate          double precision NOT NULL CHECK (admit_rate > 0 AND admit_rate <= 100000),
    max_active          integer NOT NULL CHECK (max_active BETWEEN 1 AND 10000000),
    token_lifetime_secs integer NOT NULL CHECK (token_lifetime_secs BETWEEN 1 AND 86400),
    -- NULL: the sale opens at once.
    opens_at            timestamptz,
    -- Drawn once, by the first PUT, and never replaced: the commitment may be public.
    -- The CHECK makes the commitment impossible to get out of step with the seed.
    seed                text NOT NULL CHECK (seed ~ '^[0-9a-f]{64}$'),
    seed_sha256         text NOT NULL CHECK (seed_sha256 = encode(sha256(convert_to(seed, 'UTF8')), 'hex')),
    -- Bumped each time the event's Redis state is rebuilt after a wipe. Arrival scores
    -- are epoch << 40 plus a counter, so every fan who joins after a rebuild stands
    -- behind every ticket issued before it (2^40 arrivals per epoch; scores stay exact
    -- doubles for 8,192 epochs).
    epoch               bigint NOT NULL DEFAULT 0 CHECK (epoch BETWEEN 0 AND 8191),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per admission, written by the admitter in one batched INSERT per tick. A fan
-- admitted again later (their admission expired and they joined again) gets a new row;
-- a retried write of the same admission (its first attempt's outcome unknown) hits the
-- primary key and is skipped (ON CONFLICT DO NOTHING). Times are Redis server time,
-- the waiting room's one clock.
CREATE TABLE waitroom_admissions (
    event_id    uuid NOT NULL,
    fan_id      text NOT NULL CHECK (length(fan_id) BETWEEN 1 AND 64),
    -- The fan's queue score when admitted: their arrival number (epoch << 40 + n), or
    -- for the pre-queue their shuffle draw minus 2^52. Integral, so bigint holds it
    -- exactly.
    join_score  bigint NOT NULL,
    admitted_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL CHECK (expires_at > admitted_at),
    PRIMARY KEY (event_id, fan_id, admitted_at)
);

-- A rebuild reads the event's live admissions (expires_at > now()): a range scan over
-- the few live ones, not every admission of the sale.
CREATE INDEX waitroom_admissions_live ON waitroom_admissions (event_id, expires_at) INCLUDE (fan_id);
