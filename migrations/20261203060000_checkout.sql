-- Checkout: payment attempts, the provider's webhook events, refunds, refund policies.
--
-- The rules, each enforced here so that no application bug can break them:
--  * a payment is applied to at most one booking, and a booking is paid by at most one
--    payment (the unique indexes on payments.booking_id and bookings.payment_id);
--  * a hold has at most one live payment attempt (payments_one_live_attempt_per_hold), so
--    two checkouts of one hold at once start one attempt, not two;
--  * refunds never exceed what was paid: every refund adds its amount to
--    payments.refunded_minor in the statement that creates it, and that column may not
--    pass amount_minor;
--  * a provider event is applied once: its id is a primary key, inserted by the
--    transaction that applies it.
-- That a booking's payment has succeeded, and that no succeeded payment stays without a
-- booking or refund, span rows written at different times; the oversell watchdog checks
-- them (crates/sales/src/store/invariants.rs).
--
-- As for the order rows (see the inventory migration), these tables carry references
-- without foreign keys: they are written on the checkout path, their targets are never
-- deleted, and the watchdog verifies them.

-- created: the row exists, the provider has not been asked yet (or did not answer);
-- pending: the provider has the intent and the fan may pay it;
-- succeeded / failed / canceled: the provider's verdict. A failed attempt may still
-- succeed later (a Stripe intent can be paid again after a decline), so failed is not
-- final; succeeded is, apart from refunds.
CREATE TYPE payment_status AS ENUM
    ('created', 'pending', 'succeeded', 'failed', 'canceled', 'refunded', 'partially_refunded');

-- What became of a succeeded payment:
-- booked: its hold was live and became a booking;
-- late_booked: its hold had expired or been released, and its seats (or as many free
--   places of the same section and price) were taken again and booked;
-- refunded: nothing could be booked for it (seats gone, or the hold was already paid by
--   another attempt), so it was refunded in full and the organizer told.
CREATE TYPE payment_resolution AS ENUM ('booked', 'late_booked', 'refunded');

CREATE TABLE payments (
    -- UUIDv7; also the idempotency key of the provider's intent: one key per attempt,
    -- never per hold, so a new attempt after a decline is a new intent.
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL,
    hold_id         uuid NOT NULL,
    fan_id          text NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    currency        char(3) NOT NULL,
    status          payment_status NOT NULL DEFAULT 'created',
    intent_id       text UNIQUE,
    client_secret   text,
    -- The provider's reason for the last decline.
    failure_code    text,
    booking_id      uuid UNIQUE,
    resolution      payment_resolution,
    -- A late payment that had to be refunded: the organizer should know (listed by
    -- GET /v1/admin/payments?state=needs_attention until acknowledged).
    needs_attention boolean NOT NULL DEFAULT false,
    refunded_minor  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    succeeded_at    timestamptz,
    CONSTRAINT payments_refunds_within_amount CHECK (refunded_minor BETWEEN 0 AND amount_minor),
    CONSTRAINT payments_pending_has_intent CHECK (status = 'created' OR intent_id IS NOT NULL),
    CONSTRAINT payments_booked_only_when_paid CHECK (
        booking_id IS NULL OR status IN ('succeeded', 'refunded', 'partially_refunded')),
    CONSTRAINT payments_resolved_only_when_paid CHECK (
        resolution IS NULL OR succeeded_at IS NOT NULL)
);
CREATE UNIQUE INDEX payments_one_live_attempt_per_hold ON payments (hold_id) WHERE status IN ('created', 'pending');
CREATE INDEX payments_by_hold ON payments (hold_id);
-- The reconciliation job's two scans: attempts the provider has not settled, and
-- succeeded payments not yet applied to a booking or a refund.
CREATE INDEX payments_unsettled ON payments (updated_at) WHERE status IN ('created', 'pending', 'failed');
CREATE INDEX payments_unresolved ON payments (succeeded_at) WHERE succeeded_at IS NOT NULL AND resolution IS NULL;
CREATE INDEX payments_needing_attention ON payments (event_id, created_at) WHERE needs_attention;

-- A booking bought by a payment names it.
ALTER TABLE bookings ADD COLUMN payment_id uuid;
CREATE UNIQUE INDEX bookings_one_per_payment ON bookings (payment_id) WHERE payment_id IS NOT NULL;

-- A hold is extended once, when its first payment attempt starts, to cover the time the
-- fan needs to pay.
ALTER TABLE holds ADD COLUMN checkout_started_at timestamptz;

-- The provider's webhook events already applied. Stripe delivers at least once and in
-- any order; the row, written by the transaction that applies the event, makes a
-- redelivery change nothing.
CREATE TABLE payment_provider_events (
    id          text PRIMARY KEY,
    type        text NOT NULL,
    payment_id  uuid,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE refund_status AS ENUM ('pending', 'succeeded', 'failed');
-- cancellation: the fan or organizer cancelled a booking, refunded by the event's policy;
-- late_payment: a payment that arrived for seats no longer to be had;
-- duplicate_payment: a second attempt of a hold already paid;
-- event_cancelled: the organizer cancelled the whole event.
CREATE TYPE refund_reason AS ENUM ('cancellation', 'late_payment', 'duplicate_payment', 'event_cancelled');

CREATE TABLE refunds (
    -- UUIDv7; also the refund's idempotency key at the provider, so retrying a refund
    -- that timed out never refunds twice.
    id                 uuid PRIMARY KEY,
    payment_id         uuid NOT NULL,
    event_id           uuid NOT NULL,
    booking_id         uuid,
    reason             refund_reason NOT NULL,
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    status             refund_status NOT NULL DEFAULT 'pending',
    provider_refund_id text UNIQUE,
    attempts           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    succeeded_at       timestamptz,
    CHECK ((status = 'succeeded') = (succeeded_at IS NOT NULL))
);
-- One refund per cancelled booking, and one per late or duplicate payment.
CREATE UNIQUE INDEX refunds_one_per_booking ON refunds (booking_id) WHERE booking_id IS NOT NULL;
CREATE UNIQUE INDEX refunds_one_per_unbooked_payment ON refunds (payment_id) WHERE booking_id IS NULL;
CREATE INDEX refunds_due ON refunds (next_attempt_at) WHERE status = 'pending';

-- The refund policy in force: tiers of {"before_hours": h, "refund_percent": p}, read
-- against starts_at by the database clock at cancellation. NULL: fans may not cancel
-- (the organizer still can). Changeable after creation; the policy in force when a
-- booking is cancelled applies.
ALTER TABLE events ADD COLUMN refund_policy jsonb
    CHECK (refund_policy IS NULL OR jsonb_typeof(refund_policy) = 'array');
-- The organizer cancelled the whole event: nothing more is sold, and every booking is
-- cancelled and refunded in full.
ALTER TABLE events ADD COLUMN cancelled_at timestamptz;
