-- The public catalogue (GET /v1/events) lists an event once its organizer publishes
-- it: an event is created unlisted, so its sale can be set up and checked (sections,
-- prices, its waiting room) before fans browse to it. Publishing only lists it: its
-- details stay readable by id, and it sells as before. NULL: not published; the time
-- it was (first) published otherwise.
ALTER TABLE events ADD COLUMN published_at timestamptz;

-- The catalogue reads published events by date; they are few beside the rest.
CREATE INDEX events_published ON events (starts_at) WHERE published_at IS NOT NULL;
