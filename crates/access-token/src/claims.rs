use serde::{Deserialize, Serialize};
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
    /// Token id, unique per issued token (for audit and revocation lists).
    pub jti: Uuid,
    pub iss: String,
    pub aud: String,
}

impl AccessClaims {
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
        }
    }
}
