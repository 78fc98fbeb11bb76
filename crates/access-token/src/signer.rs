use jsonwebtoken::{EncodingKey, Header};

use crate::keys::KeyPair;
use crate::AccessClaims;

/// Signs access tokens with one private key (the waiting room's side).
pub struct TokenSigner {
    kid: String,
    key: EncodingKey,
}

impl TokenSigner {
    pub fn new(pair: &KeyPair) -> Self {
        let key = EncodingKey::from_ed_pem(pair.private_pem().as_bytes())
            .expect("a PEM produced by KeyPair is always a valid Ed25519 key");
        Self { kid: pair.kid.clone(), key }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn sign(&self, claims: &AccessClaims) -> String {
        let mut header = Header::new(crate::ALGORITHM);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("Ed25519 signing of serialisable claims cannot fail")
    }
}
