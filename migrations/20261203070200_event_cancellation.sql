-- Cancelled events: the reconciliation pass finds those that still have live bookings
-- (an order that raced the cancellation) without reading every event.
CREATE INDEX events_cancelled ON events (cancelled_at) WHERE cancelled_at IS NOT NULL;
