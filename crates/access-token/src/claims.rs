use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The registered and private claims of an access token.
///
/// Times are Unix seconds, as JWT requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The fan the token was issued to.
    pub sub: String,
    /// The event the fan was admitted to; the token is worthless for any other.
    pub evt: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// Token id: one per admission (see [`AccessClaims::for_admission`]), for audit
    /// and revocation lists.
    pub jti: Uuid,
    pub iss: String,
    pub aud: String,
    /// What the token lets the fan do; absent means `shop` (tokens signed before scopes
    /// existed are admissions).
    #[serde(default, skip_serializing_if = "TokenScope::is_shop")]
    pub scope: TokenScope,
}

/// What an access token lets its fan do (DECISIONS.md D2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// An admitted fan: hold, book, pay, and join a waitlist.
    #[default]
    Shop,
    /// A fan still in line when the event had nothing left to sell: join its waitlist
    /// only.
    Waitlist,
}

impl TokenScope {
    fn is_shop(&self) -> bool {
        *self == Self::Shop
    }
}

impl AccessClaims {
    /// The claims of one admission: valid from `admitted_at_ms` to `expires_at_ms` (Unix
    /// milliseconds, rounded down to the seconds JWT counts in), with a token id derived
    /// from the admission. The same admission always
    /// gives the same claims, so every replica signs the same token for it (Ed25519
    /// signatures are deterministic), and revoking its `jti` revokes the admission.
    pub fn for_admission(fan_id: &str, event_id: Uuid, admitted_at_ms: i64, expires_at_ms: i64) -> Self {
        let admitted_at = admitted_at_ms.div_euclid(1000);
        Self {
            sub: fan_id.to_owned(),
            evt: event_id,
            iat: admitted_at,
            nbf: admitted_at,
            exp: expires_at_ms.div_euclid(1000),
            jti: admission_id(fan_id, event_id, expires_at_ms),
            iss: crate::ISSUER.to_owned(),
            aud: crate::AUDIENCE.to_owned(),
            scope: TokenScope::Shop,
        }
    }

    /// The same claims, for `scope`.
    pub fn with_scope(self, scope: TokenScope) -> Self {
        Self { scope, ..self }
    }

    /// Claims for `fan_id` on `event_id`, valid from `now` for `lifetime_secs`.
    pub fn new(fan_id: impl Into<String>, event_id: Uuid, now: i64, lifetime_secs: i64) -> Self {
        Self {
            sub: fan_id.into(),
            evt: event_id,
            iat: now,
            nbf: now,
            exp: now + lifetime_secs,
            jti: Uuid::new_v4(),
            iss: crate::ISSUER.to_owned(),
            aud: crate::AUDIENCE.to_owned(),
            scope: TokenScope::Shop,
        }
    }
}

/// A UUID (version 8, custom) from SHA-256 over the admission: its event, its fan and
/// the expiry that tells it from the fan's other admissions.
fn admission_id(fan_id: &str, event_id: Uuid, expires_at_ms: i64) -> Uuid {
    let digest = Sha256::new()
        .chain_update(b"boxoffice-admission-v1")
        .chain_update(event_id.as_bytes())
        .chain_update(expires_at_ms.to_be_bytes())
        .chain_update(fan_id.as_bytes())
        .finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("SHA-256 gives 32 bytes");
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
