-- Organizer webhook endpoints deleted.
--
-- Deleting keeps the rows: the subscriber's deliveries and their attempt log refer to
-- it, and the log is the organizer's record of what was sent. A deleted endpoint is
-- gone from every read and change (404), its subscriber hears nothing more (inactive,
-- with no topics: the fan-out matches no message to an empty topic list), and its
-- pending deliveries are abandoned in the same statement, so nothing is sent to it again
-- (a request a relay already had in flight may still arrive; its outcome is logged but
-- changes nothing, as outcomes are recorded only on pending deliveries).
ALTER TABLE webhook_endpoints ADD COLUMN deleted_at timestamptz;
