-- The waiting room's slot release: the outbox's third kind of subscriber (DECISIONS.md
-- D4, issue 18). A fan admitted by the waiting room counts under the event's max_active
-- until their admission expires; one who has booked or joined the waitlist is done
-- shopping, so each `booking.confirmed` and `waitlist.joined` is delivered to the
-- waiting room, which stops counting that fan's admission within a second or two and
-- lets the next fan in.
--
-- As with the confirmation emails, the subscriber row is written at run time (by the
-- waiting room, `sales::store::deliveries::set_subscriber`), not here: a value added to
-- an enum cannot be used in the transaction that adds it.
ALTER TYPE outbox_subscriber_kind ADD VALUE 'slot_release';

-- Per-event order (the relay sends a stream's next message only after its head) is
-- what webhooks and emails need: "cancelled" must never overtake "confirmed". A slot
-- release needs none: each delivery frees one fan's admission, releases of different
-- fans commute, and the waiting room ignores a release that comes after the fan's
-- admission it was meant for. Holding such a subscriber to per-event order would
-- drain a sale's bookings one per claim; unordered, one claim takes a batch.
ALTER TABLE outbox_subscribers ADD COLUMN ordered boolean NOT NULL DEFAULT true;
