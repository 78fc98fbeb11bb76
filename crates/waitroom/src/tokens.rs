//! Access tokens for admitted fans: one per admission; and `waitlist` tokens for fans
//! still in line when the show sold out (DECISIONS.md D2), which the gateway accepts
//! for its waitlist only.
//!
//! An admitted fan is handed their access token on every poll until the admission
//! expires. Signing a new one each time would cost an Ed25519 signature per poll and
//! leave the fan holding many valid tokens with different ids. Instead the claims
//! follow from the admission alone ([`AccessClaims::for_admission`]), so every replica
//! signs the very same token, and each replica signs it once and keeps it while the
//! fan keeps polling.

use std::time::Duration;

use access_token::{AccessClaims, TokenScope, TokenSigner};
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use crate::domain::fan::FanId;

/// Tokens kept per replica, at most: each is a few hundred bytes.
const KEPT_TOKENS: u64 = 100_000;
/// A token nobody asked for this long is dropped; asked for again, it is signed again,
/// identical.
const KEPT_WHILE_POLLED: Duration = Duration::from_secs(120);

/// A waitlist token lives this long: long enough to join the waitlist and follow the
/// entry for a while (an offer also comes by email, with a link that needs no token).
const WAITLIST_TOKEN_LIFETIME_MS: i64 = 3_600_000;
/// Waitlist tokens are issued from the start of the current period of this length, so
/// every replica signs the very same token for a fan within it (and keeps it, as
/// admission tokens are kept): each lives 50 to 60 minutes from when it is handed out.
const WAITLIST_TOKEN_PERIOD_MS: i64 = 600_000;

/// One token: the fan, the event, the expiry that tells it from the fan's earlier or
/// later ones, and whether it is a `waitlist` token (else an admission's).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Signed {
    event_id: Uuid,
    fan: FanId,
    expires_at_ms: i64,
    waitlist: bool,
}

pub struct AdmissionTokens {
    signer: TokenSigner,
    signed: Cache<Signed, String>,
}

impl AdmissionTokens {
    pub fn new(signer: TokenSigner) -> Self {
        let signed = Cache::builder().max_capacity(KEPT_TOKENS).time_to_idle(KEPT_WHILE_POLLED).build();
        Self { signer, signed }
    }

    /// The token of the fan's admission that runs from `admitted_at_ms` to
    /// `expires_at_ms`, and when it expires.
    pub fn token(
        &self,
        event_id: Uuid,
        fan: &FanId,
        admitted_at_ms: i64,
        expires_at_ms: i64,
    ) -> (String, DateTime<Utc>) {
        self.signed_once(event_id, fan, admitted_at_ms, expires_at_ms, TokenScope::Shop)
    }

    /// A `waitlist` token for a fan in line at `now_ms` (Redis' clock), and when it
    /// expires: it lets them join the event's waitlist and nothing else.
    pub fn waitlist_token(&self, event_id: Uuid, fan: &FanId, now_ms: i64) -> (String, DateTime<Utc>) {
        let issued_at_ms = now_ms - now_ms.rem_euclid(WAITLIST_TOKEN_PERIOD_MS);
        let expires_at_ms = issued_at_ms + WAITLIST_TOKEN_LIFETIME_MS;
        self.signed_once(event_id, fan, issued_at_ms, expires_at_ms, TokenScope::Waitlist)
    }

    /// The token of `scope` valid from `from_ms` to `expires_at_ms`, signed once per
    /// replica and kept while asked for, and when it expires.
    fn signed_once(
        &self,
        event_id: Uuid,
        fan: &FanId,
        from_ms: i64,
        expires_at_ms: i64,
        scope: TokenScope,
    ) -> (String, DateTime<Utc>) {
        let waitlist = scope == TokenScope::Waitlist;
        let signed = Signed { event_id, fan: fan.clone(), expires_at_ms, waitlist };
        let token = self.signed.get_with(signed, || {
            crate::metrics::token_issued();
            let claims = AccessClaims::for_admission(fan.as_str(), event_id, from_ms, expires_at_ms).with_scope(scope);
            self.signer.sign(&claims)
        });
        let expires_at = DateTime::from_timestamp(expires_at_ms.div_euclid(1000), 0).unwrap_or(DateTime::UNIX_EPOCH);
        (token, expires_at)
    }
}
