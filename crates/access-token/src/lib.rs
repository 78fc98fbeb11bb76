//! Access tokens: the proof that a fan was admitted by the waiting room.
//!
//! The waiting room holds a private Ed25519 key and signs short-lived JWTs
//! ([`TokenSigner`]); the gateway holds only public keys and verifies them
//! ([`TokenVerifier`]). Every token names the key that signed it (`kid`), so keys
//! can rotate: publish the new public key, start signing with the new private key,
//! drop the old public key once its last token has expired. A verifier's keys can be
//! replaced while it serves ([`TokenVerifier::reload`]), keeping removed keys for a
//! while and its verified-token cache.
//!
//! - [`claims`]: what a token says (fan, event, lifetime, token id).
//! - [`keys`]: generating, writing and loading key pairs (PEM files named by kid).
//! - [`signer`] / [`verifier`]: the two sides.

pub mod claims;
pub mod keys;
pub mod signer;
pub mod verifier;

pub use claims::{AccessClaims, TokenScope};
pub use keys::{KeyError, KeyPair};
pub use signer::TokenSigner;
pub use verifier::{KeyChanges, TokenError, TokenVerifier};

/// The only algorithm boxoffice signs with or accepts.
pub const ALGORITHM: jsonwebtoken::Algorithm = jsonwebtoken::Algorithm::EdDSA;
/// `iss` of every access token.
pub const ISSUER: &str = "boxoffice-waitroom";
/// `aud` of every access token.
pub const AUDIENCE: &str = "boxoffice-gateway";
