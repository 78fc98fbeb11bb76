-- Organizer webhook endpoints, the outbox's first kind of subscriber, and the log of
-- every attempt to deliver to them.
--
-- An endpoint is an `outbox_subscribers` row (kind 'webhook': which event and topics it
-- hears, and whether it is active) plus its row here (where to send and how to sign),
-- written by one statement, so neither exists without the other.
--
-- The relay (scheduler) claims a delivery by pushing its next_attempt_at past a lease
-- and counting the attempt, in one short statement; it then sends with no transaction
-- open and records the outcome only if the delivery's attempts still equal the count it
-- claimed with. A relay that died or stalled past its lease has lost its claim to the
-- next one, and its late outcome is logged but changes nothing: at least once, and
-- never two relays recording over each other.

CREATE TABLE webhook_endpoints (
    subscriber_id   uuid PRIMARY KEY REFERENCES outbox_subscribers (id),
    -- Checked by the sale (scheme, host, no credentials, length); the CHECK is a
    -- backstop so no row the relay reads can name another scheme.
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    -- Standard Webhooks' symmetric secret: `whsec_` + base64 of random bytes we drew.
    -- The relay needs it in clear to sign, so it is stored as is: whoever reads this
    -- table can sign as us to this endpoint, and no more (each endpoint has its own).
    secret          text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Set with the subscriber's `active = false`, e.g. when the endpoint answered 410.
    disabled_at     timestamptz,
    disabled_reason text,
    CHECK ((disabled_at IS NULL) = (disabled_reason IS NULL))
);

-- One row per attempt to send a delivery, whatever came of it. Append-only: the
-- delivery row holds the state, this holds the history the organizer reads.
CREATE TABLE outbox_delivery_attempts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id   uuid NOT NULL,
    message_id      bigint NOT NULL,
    -- The delivery's attempt count this attempt was claimed with (1 for the first).
    attempt         integer NOT NULL CHECK (attempt >= 1),
    attempted_at    timestamptz NOT NULL,
    duration_ms     integer NOT NULL CHECK (duration_ms >= 0),
    -- The receiver's status code, or null when no answer came (then `error` says why).
    response_status smallint CHECK (response_status BETWEEN 100 AND 599),
    error           text,
    CHECK (response_status IS NOT NULL OR error IS NOT NULL),
    FOREIGN KEY (subscriber_id, message_id) REFERENCES outbox_deliveries (subscriber_id, message_id)
);
-- A delivery's latest attempt (the delivery log), and its whole history.
CREATE INDEX outbox_delivery_attempts_by_delivery ON outbox_delivery_attempts (subscriber_id, message_id, id);
