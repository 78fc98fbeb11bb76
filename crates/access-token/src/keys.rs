use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::{json, Value};

const PRIVATE_SUFFIX: &str = ".private.pem";
const PUBLIC_SUFFIX: &str = ".public.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path} is not an Ed25519 PEM key: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("key file name {0} must end in {PRIVATE_SUFFIX} or {PUBLIC_SUFFIX}; the part before is the key id")]
    BadName(PathBuf),
    #[error("key id {0:?} must be 1-64 characters of letters, digits, '-', '_' or '.'")]
    BadKid(String),
    #[error("no public keys (*{PUBLIC_SUFFIX}) found in {0}")]
    NoPublicKeys(PathBuf),
}

/// An Ed25519 key pair and the id that names it in token headers.
#[derive(Clone)]
pub struct KeyPair {
    pub kid: String,
    signing: SigningKey,
}

impl KeyPair {
    pub fn generate(kid: &str) -> Result<Self, KeyError> {
        validate_kid(kid)?;
        Ok(Self { kid: kid.to_owned(), signing: SigningKey::generate(&mut rand::rngs::OsRng) })
    }

    /// Writes `<kid>.private.pem` (mode 0600) and `<kid>.public.pem` into `dir`.
    pub fn write_to_dir(&self, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        fs::create_dir_all(dir).map_err(|source| KeyError::Write { path: dir.into(), source })?;
        let private_path = dir.join(format!("{}{PRIVATE_SUFFIX}", self.kid));
        let public_path = dir.join(format!("{}{PUBLIC_SUFFIX}", self.kid));
        write_private(&private_path, &self.private_pem())?;
        fs::write(&public_path, self.public_pem())
            .map_err(|source| KeyError::Write { path: public_path.clone(), source })?;
        Ok((private_path, public_path))
    }

    /// Reads a private key file; the key id is the file name before `.private.pem`.
    pub fn read_private(path: &Path) -> Result<Self, KeyError> {
        let kid = kid_from_path(path, PRIVATE_SUFFIX)?;
        let pem = read(path)?;
        let signing = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| KeyError::Invalid { path: path.into(), reason: e.to_string() })?;
        Ok(Self { kid, signing })
    }

    pub fn private_pem(&self) -> String {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .expect("an in-memory Ed25519 key always encodes as PKCS#8")
    }

    pub fn public_pem(&self) -> String {
        public_pem(&self.signing.verifying_key())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { kid: self.kid.clone(), key: self.signing.verifying_key() }
    }

    /// An Ed25519 signature of `message` as it is, with no token around it: for formats
    /// that define their own signed content, such as Standard Webhooks' `v1a`. Such a key
    /// signs for that purpose only (DECISIONS.md D6): never an access token's key.
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(message).to_bytes()
    }

    /// A 32-byte secret derived from this private key for one `purpose`, for a MAC the
    /// key's holder alone checks (e.g. the gateway's booking links): SHA-256 over a
    /// fixed label, the purpose and the key's seed. Nobody without the private key can
    /// compute it, and no signature this key makes reveals it.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(b"boxoffice derived secret v1\0");
        hash.update((purpose.len() as u32).to_be_bytes());
        hash.update(purpose.as_bytes());
        hash.update(self.signing.to_bytes());
        hash.finalize().into()
    }
}

/// A verification key and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    key: VerifyingKey,
}

impl PublicKey {
    pub fn pem(&self) -> String {
        public_pem(&self.key)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message` as it is (the
    /// counterpart of [`KeyPair::sign_raw`]); strict verification (no malleable or
    /// small-order forms).
    pub fn verify_raw(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &signature).is_ok()
    }

    /// The key as a JSON Web Key for a purpose other than access tokens (DECISIONS.md
    /// D6): `use` is `sig`, and `boxoffice_purpose` names what it signs, so a verifier
    /// picks keys by purpose as well as by `kid`.
    pub fn jwk_for(&self, purpose: &str) -> Value {
        let mut jwk = self.jwk();
        jwk["boxoffice_purpose"] = Value::from(purpose);
        jwk
    }

    /// The key as a JSON Web Key (RFC 8037 OKP), for `/.well-known/jwks.json`.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.key.as_bytes()),
        })
    }
}

/// Reads every `<kid>.public.pem` in `dir`.
pub fn read_public_keys(dir: &Path) -> Result<Vec<PublicKey>, KeyError> {
    let entries = fs::read_dir(dir).map_err(|source| KeyError::Read { path: dir.into(), source })?;
    let mut keys = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| KeyError::Read { path: dir.into(), source })?.path();
        let is_public = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(PUBLIC_SUFFIX));
        if is_public {
            keys.push(read_public(&path)?);
        }
    }
    if keys.is_empty() {
        return Err(KeyError::NoPublicKeys(dir.into()));
    }
    keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    Ok(keys)
}

fn read_public(path: &Path) -> Result<PublicKey, KeyError> {
    let kid = kid_from_path(path, PUBLIC_SUFFIX)?;
    let pem = read(path)?;
    let key = VerifyingKey::from_public_key_pem(&pem)
        .map_err(|e| KeyError::Invalid { path: path.into(), reason: e.to_string() })?;
    Ok(PublicKey { kid, key })
}

fn public_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF).expect("an in-memory Ed25519 public key always encodes as SPKI")
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|source| KeyError::Read { path: path.into(), source })
}

fn write_private(path: &Path, pem: &str) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
        file.write_all(pem.as_bytes())
    };
    write().map_err(|source| KeyError::Write { path: path.into(), source })
}

fn kid_from_path(path: &Path, suffix: &str) -> Result<String, KeyError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let kid = name.strip_suffix(suffix).ok_or_else(|| KeyError::BadName(path.into()))?;
    validate_kid(kid)?;
    Ok(kid.to_owned())
}

fn validate_kid(kid: &str) -> Result<(), KeyError> {
    let valid =
        (1..=64).contains(&kid.len()) && kid.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(KeyError::BadKid(kid.to_owned()))
    }
}
