-- Revoked admissions: access tokens the organizer has withdrawn before they expire.
--
-- Access tokens are verified by each gateway replica on its own (a signature and a
-- per-replica cache of verified tokens), so a revocation has to reach every replica:
-- each one polls this table about once a second (crates/gateway/src/revocations.rs) and
-- refuses a revoked token on every request, cached or not (401 token_revoked).
--
-- A row revokes either one token, by its `jti` (one per admission, derived from it by
-- AccessClaims::for_admission), or every token a fan holds for the event issued up to
-- `revoked_at` (`fan_id`): the organizer may know the fan but not their token. A token
-- the fan is issued after that (admitted again) is not revoked.
--
-- `expires_at`: past it no token the row can match is still valid (an access token
-- lives at most a day, waitroom_events.token_lifetime_secs, plus at most 300 s of the
-- gateway's clock leeway), so replicas forget the row and it may be deleted.
--
-- No foreign key to events: the check that the event exists is the use case's (404),
-- and revocations are written rarely, by the organizer, never on the booking path.
CREATE TABLE token_revocations (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid NOT NULL,
    jti        uuid,
    fan_id     text CHECK (length(fan_id) BETWEEN 1 AND 64),
    revoked_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL CHECK (expires_at > revoked_at),
    -- Exactly one of the two.
    CHECK ((jti IS NULL) <> (fan_id IS NULL))
);

-- A token is revoked once: revoking it again is answered with the first revocation.
CREATE UNIQUE INDEX token_revocations_jti ON token_revocations (jti) WHERE jti IS NOT NULL;
-- One row per fan and event: revoking the fan again moves `revoked_at` forward.
CREATE UNIQUE INDEX token_revocations_fan ON token_revocations (event_id, fan_id) WHERE fan_id IS NOT NULL;
-- The replicas' poll: rows revoked since a recent instant, a range scan over a few rows.
CREATE INDEX token_revocations_recent ON token_revocations (revoked_at);
