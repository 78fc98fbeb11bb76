-- The address a fan gives for their confirmation (optional): on the hold when they
-- hold seats, copied onto the booking by the statement that books them, and carried in
-- the booking.confirmed outbox message so the confirmation email (and the organizer's
-- webhook) gets it without reading the booking again.
--
-- The check is deliberately loose (something@something, no spaces, RFC 5321's 254
-- characters at most): the sale validates the shape before writing; this only keeps a
-- bug from storing text no mail server would take.
ALTER TABLE holds ADD COLUMN contact_email text
    CONSTRAINT holds_contact_email_shape CHECK (contact_email ~ '^[^@\s]+@[^@\s]+$' AND length(contact_email) <= 254);
ALTER TABLE bookings ADD COLUMN contact_email text
    CONSTRAINT bookings_contact_email_shape CHECK (contact_email ~ '^[^@\s]+@[^@\s]+$' AND length(contact_email) <= 254);
