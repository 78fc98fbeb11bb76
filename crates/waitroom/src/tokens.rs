//! Access tokens for admitted fans: one per admission.
//!
//! An admitted fan is handed their access token on every poll until the admission
//! expires. Signing a new one each time would cost an Ed25519 signature per poll and
//! leave the fan holding many valid tokens with different ids. Instead the claims
//! follow from the admission alone ([`AccessClaims::for_admission`]), so every replica
//! signs the very same token, and each replica signs it once and keeps it while the
//! fan keeps polling.

use std::time::Duration;

use access_token::{AccessClaims, TokenSigner};
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use uuid::Uuid;

use crate::domain::fan::FanId;

/// Tokens kept per replica, at most: each is a few hundred bytes.
const KEPT_TOKENS: u64 = 100_000;
/// A token nobody asked for this long is dropped; asked for again, it is signed again,
/// identical.
const KEPT_WHILE_POLLED: Duration = Duration::from_secs(120);

/// One admission: the fan, the event, and the expiry that tells it from the fan's
/// earlier or later admissions.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Admission {
    event_id: Uuid,
    fan: FanId,
    expires_at_ms: i64,
}

pub struct AdmissionTokens {
    signer: TokenSigner,
    signed: Cache<Admission, String>,
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
        let admission = Admission { event_id, fan: fan.clone(), expires_at_ms };
        let token = self.signed.get_with(admission, || {
            crate::metrics::token_issued();
            let claims = AccessClaims::for_admission(fan.as_str(), event_id, admitted_at_ms, expires_at_ms);
            self.signer.sign(&claims)
        });
        let expires_at = DateTime::from_timestamp(expires_at_ms.div_euclid(1000), 0).unwrap_or(DateTime::UNIX_EPOCH);
        (token, expires_at)
    }
}
