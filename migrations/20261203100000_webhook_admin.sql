-- Organizer webhook endpoints turned off and on again, and their secrets rotated.
--
-- Disabling pauses, it does not drop. While an endpoint is disabled (it answered 410, or
-- the organizer turned it off) its messages keep being written for it, as for any other
-- subscriber, and its pending deliveries wait with next_attempt_at = 'infinity'; the
-- relay claims nothing of a disabled endpoint. Re-enabling makes them due at once, so
-- each (endpoint, event) stream resumes at the message where it stopped, in order, with
-- what arrived meanwhile behind it. `active` on the subscriber is the one truth: a
-- delivery written by a transaction that read the endpoint as disabled, but committed
-- after it was enabled again, is made due by the relay's next run (see
-- `sales::store::deliveries::resume`), so none is left paused by a race.
--
-- Rotating a secret keeps the old one beside the new for a grace window: until
-- previous_secret_until, every request carries both `v1` signatures, so a receiver can
-- switch secrets without refusing a message; after it, only the new one. A second
-- rotation within the window replaces the previous secret with the one it replaces.

ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secret       text CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'),
    ADD COLUMN previous_secret_until timestamptz,
    ADD CONSTRAINT webhook_endpoints_previous_secret_has_an_end
        CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL));

-- A disabled endpoint's paused deliveries, found per subscriber when it is enabled again.
-- They are outside outbox_deliveries_due's range (never due), so the relay's scan of due
-- deliveries does not grow with them.
CREATE INDEX outbox_deliveries_paused ON outbox_deliveries (subscriber_id)
    WHERE status = 'pending' AND next_attempt_at = 'infinity';

-- Disabled subscribers hear messages too now (their deliveries wait): the fan-out reads
-- every subscriber of the event, not only active ones.
DROP INDEX outbox_subscribers_active;
CREATE INDEX outbox_subscribers_by_event ON outbox_subscribers (event_id);
