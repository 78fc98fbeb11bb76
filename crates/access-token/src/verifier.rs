use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Tokens whose signature was checked, remembered per replica. A fan sends the same
/// token with each request, and an Ed25519 verification was about a quarter of the
/// gateway's CPU per booking (perf, `scripts/bench-gateway`).
const VERIFIED_TOKENS: u64 = 100_000;
/// No token outlives this in the cache, whatever its own lifetime.
const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(600);

/// Verifies access tokens against a set of public keys chosen by `kid` (the gateway's side).
/// The set can be replaced while serving ([`TokenVerifier::reload`]); clones share it.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<RwLock<KeyRing>>,
    validation: Validation,
    /// Keyed by the whole token: any change to its header, claims or signature is a
    /// different key and is verified in full. Expiry is checked again on every hit.
    verified: moka::sync::Cache<String, AccessClaims>,
}

impl TokenVerifier {
    /// `leeway_secs` tolerates clock skew between the waiting room and the gateway.
    pub fn new(public_keys: &[PublicKey], leeway_secs: u64) -> Self {
        let keys = Arc::new(RwLock::new(KeyRing {
            current: public_keys.iter().map(|k| (k.kid.clone(), Trusted::of(k))).collect(),
            retired: HashMap::new(),
        }));
        let mut validation = Validation::new(crate::ALGORITHM);
        validation.leeway = leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[crate::ISSUER]);
        validation.set_audience(&[crate::AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "sub", "iss", "aud"]);
        let verified =
            moka::sync::Cache::builder().max_capacity(VERIFIED_TOKENS).time_to_live(VERIFIED_TOKEN_TTL).build();
        Self { keys, validation, verified }
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if let Some(claims) = self.verified.get(token) {
            return self.still_valid(claims);
        }
        let claims = self.verify_signature(token)?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// The time checks of a full verification, for a token whose signature and claims
    /// were verified before.
    fn still_valid(&self, claims: AccessClaims) -> Result<AccessClaims, TokenError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let leeway = self.validation.leeway as i64;
        if claims.exp < now - leeway {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + leeway {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != crate::ALGORITHM {
            return Err(TokenError::WrongAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = {
            let ring = self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            let trusted = ring.current.get(&kid).or_else(|| ring.retired.get(&kid).map(|(trusted, _)| trusted));
            trusted.ok_or(TokenError::UnknownKey)?.key.clone()
        };
        jsonwebtoken::decode::<AccessClaims>(token, &key, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| classify(e.kind()))
    }

    /// Trusts exactly `public_keys` from now on (the key directory as it is now), except
    /// that a key no longer among them is kept for `keep_removed_for` after it left, for
    /// the tokens it signed that are still valid. The verified-token cache is kept.
    pub fn reload(&self, public_keys: &[PublicKey], keep_removed_for: Duration) -> KeyChanges {
        let now = Instant::now();
        let mut changes = KeyChanges::default();
        let mut ring = self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut current = HashMap::with_capacity(public_keys.len());
        for public in public_keys {
            let trusted = Trusted::of(public);
            match ring.current.remove(&public.kid) {
                Some(known) if known.pem == trusted.pem => {}
                Some(_) => changes.replaced.push(public.kid.clone()),
                None => {
                    if ring.retired.remove(&public.kid).is_none_or(|(known, _)| known.pem != trusted.pem) {
                        changes.added.push(public.kid.clone());
                    }
                }
            }
            current.insert(public.kid.clone(), trusted);
        }
        for (kid, trusted) in std::mem::replace(&mut ring.current, current) {
            changes.removed.push(kid.clone());
            ring.retired.insert(kid, (trusted, now + keep_removed_for));
        }
        ring.retired.retain(|kid, (_, until)| {
            let keep = *until > now;
            if !keep {
                changes.dropped.push(kid.clone());
            }
            keep
        });
        changes
    }
}

/// The keys a verifier trusts: those in the key directory, and those removed from it
/// recently, kept until the tokens they signed have expired.
struct KeyRing {
    current: HashMap<String, Trusted>,
    /// Each with the instant it stops being trusted.
    retired: HashMap<String, (Trusted, Instant)>,
}

struct Trusted {
    key: DecodingKey,
    /// Tells a changed key under the same `kid` from the same one read again.
    pem: String,
}

impl Trusted {
    fn of(public: &PublicKey) -> Self {
        let pem = public.pem();
        let key =
            DecodingKey::from_ed_pem(pem.as_bytes()).expect("a PEM produced from a parsed Ed25519 key is always valid");
        Self { key, pem }
    }
}

/// What a [`TokenVerifier::reload`] changed, by `kid`, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyChanges {
    /// Trusted from now on.
    pub added: Vec<String>,
    /// The same `kid` with another key: the new one replaces it.
    pub replaced: Vec<String>,
    /// Gone from the directory: kept for a while for the tokens it signed.
    pub removed: Vec<String>,
    /// Removed long enough ago: no longer trusted.
    pub dropped: Vec<String>,
}

impl KeyChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.replaced.is_empty() && self.removed.is_empty() && self.dropped.is_empty()
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
