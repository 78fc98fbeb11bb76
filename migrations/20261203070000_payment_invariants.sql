-- The oversell watchdog's payment checks (crates/sales/src/store/invariants.rs) enter
-- payments by event and refunds by payment, like every other table it reads, so a check
-- costs the events on sale, not the history.
CREATE INDEX payments_by_event ON payments (event_id);
CREATE INDEX refunds_by_payment ON refunds (payment_id);
