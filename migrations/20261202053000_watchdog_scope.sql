-- The oversell watchdog's scope (crates/gateway/src/store/invariants.rs::check): events
-- that have not started or started recently, and events without a start date created
-- recently. Without these indexes that scope is a scan of every event ever created, and
-- grows with the history instead of with the events on sale; with them each half of the
-- scope is an index range scan. Events are written once, at creation, and never updated
-- by orders, so the indexes cost the booking path nothing.
CREATE INDEX events_starting ON events (starts_at) WHERE starts_at IS NOT NULL;
CREATE INDEX events_undated_by_creation ON events (created_at) WHERE starts_at IS NULL;
