-- The transactional outbox: what happened, told to whoever subscribed, at least once.
--
-- A state change (a booking confirmed or cancelled, a payment succeeded or refunded, a
-- hold expired, a late payment needing attention) writes its message in the same
-- transaction as the change, so a message exists exactly when its change committed.
-- Each subscriber (an organizer's webhook endpoint today; confirmation emails and the
-- waiting room's slot release later) gets its own delivery row per message, written by
-- that same statement, and the relay in the scheduler drains deliveries in batches
-- with SKIP LOCKED, so several relays never send one delivery at the same time.
--
-- Order: per (subscriber, event), a delivery is sent only when every earlier message of
-- that event to that subscriber has been delivered, so a failing head blocks only that
-- subscriber's stream for that event. "Earlier" is by message id. Two messages of one
-- event written by independent transactions may commit in the other order than their
-- ids, but a message caused by another (a booking cancelled after it was confirmed) is
-- written by a transaction that began after the first committed, so it has the larger
-- id: cause and effect are always delivered in order.

CREATE TABLE outbox_messages (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The id receivers deduplicate on (Standard Webhooks' webhook-id).
    message_id uuid NOT NULL UNIQUE,
    event_id   uuid NOT NULL,
    -- booking.confirmed, booking.cancelled, payment.succeeded, payment.refunded,
    -- hold.expired, late_payment.needs_attention (the catalogue is in the README).
    topic      text NOT NULL CHECK (topic ~ '^[a-z_]+\.[a-z_]+$'),
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_messages_by_age ON outbox_messages (created_at);

CREATE TYPE outbox_subscriber_kind AS ENUM ('webhook');

-- Who is told. A subscriber with event_id NULL hears every event's messages; topics
-- NULL means every topic. Subscribers are never deleted (their deliveries refer to
-- them); one that is turned off stops getting new deliveries.
CREATE TABLE outbox_subscribers (
    id         uuid PRIMARY KEY,
    kind       outbox_subscriber_kind NOT NULL,
    event_id   uuid,
    topics     text[],
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_subscribers_active ON outbox_subscribers (event_id) WHERE active;

CREATE TYPE outbox_delivery_status AS ENUM ('pending', 'delivered', 'abandoned');

CREATE TABLE outbox_deliveries (
    subscriber_id   uuid NOT NULL,
    message_id      bigint NOT NULL,
    -- Copied from the message, so the relay finds each (subscriber, event) stream's head
    -- without a join.
    event_id        uuid NOT NULL,
    status          outbox_delivery_status NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    PRIMARY KEY (subscriber_id, message_id),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- The relay's scan: pending deliveries that are due, and each stream's head.
CREATE INDEX outbox_deliveries_due ON outbox_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_deliveries_stream ON outbox_deliveries (subscriber_id, event_id, message_id)
    WHERE status = 'pending';
