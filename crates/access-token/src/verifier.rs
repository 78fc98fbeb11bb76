use std::collections::HashMap;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Validation};

use crate::keys::PublicKey;
use crate::AccessClaims;

/// Why a token was refused. Each variant is one label of the token-rejection metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token is not a well-formed JWT")]
    Malformed,
    #[error("the access token is not signed with EdDSA")]
    WrongAlgorithm,
    #[error("the access token names no key this service trusts")]
    UnknownKey,
    #[error("the access token signature does not verify")]
    BadSignature,
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid yet")]
    NotYetValid,
    #[error("the access token was not issued by the boxoffice waiting room for the gateway")]
    WrongIssuer,
}

impl TokenError {
    /// A stable, low-cardinality name for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
        }
    }
}

/// Verifies access tokens against a set of public keys chosen by `kid` (the gateway's side).
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl TokenVerifier {
    /// `leeway_secs` tolerates clock skew between the waiting room and the gateway.
    pub fn new(public_keys: &[PublicKey], leeway_secs: u64) -> Self {
        let keys = public_keys
            .iter()
            .map(|k| {
                let key = DecodingKey::from_ed_pem(k.pem().as_bytes())
                    .expect("a PEM produced from a parsed Ed25519 key is always valid");
                (k.kid.clone(), key)
            })
            .collect();
        let mut validation = Validation::new(crate::ALGORITHM);
        validation.leeway = leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[crate::ISSUER]);
        validation.set_audience(&[crate::AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        Self { keys, validation }
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != crate::ALGORITHM {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.keys.get(&kid).ok_or(TokenError::UnknownKey)?;
        jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| classify(e.kind()))
    }
}

fn classify(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => TokenError::WrongAlgorithm,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongIssuer,
        _ => TokenError::Malformed,
    }
}
