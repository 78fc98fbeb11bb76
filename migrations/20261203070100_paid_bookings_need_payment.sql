-- No booking of a paid place without a payment: the last line of defence behind the
-- use cases (confirming a paid hold, or booking paid seats in one step, answers 402
-- payment_required before it gets here). A paid booking names the payment that bought
-- it; the watchdog checks that payment succeeded.
--
-- NOT VALID: bookings made before checkout existed had no payment; every booking written
-- from now on is checked.
ALTER TABLE bookings ADD CONSTRAINT bookings_paid_name_a_payment
    CHECK (total_minor = 0 OR payment_id IS NOT NULL) NOT VALID;
