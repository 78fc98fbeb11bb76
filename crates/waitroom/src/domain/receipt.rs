//! Admission receipts and the published admission log (issue 18): auditable FIFO. Their
//! use cases are `crate::receipts`.
//!
//! A receipt is the waiting room's signed statement of one recorded admission: which
//! fan, which event, the place in line they were admitted from (their join score) and
//! when. It is signed with a key of its own (DECISIONS.md D6: `boxoffice_purpose`
//! `admission_receipt` in the JWKS), never with the access-token key, and its payload
//! names its purpose. After the sale the organizer publishes the admission log (every
//! recorded admission, fans blinded); a fan holding a receipt finds their own line in it
//! by the blinded id the receipt carries, and checks that nobody who joined after them
//! was let in before them (`scripts/check-admission-log`).
//!
//! Format: `base64url(payload) "." base64url(signature)`, no padding, where the payload
//! is the JSON of [`Receipt`] and the signature is Ed25519 over the payload bytes as
//! sent. A verifier decodes the payload, reads its `kid`, takes the JWKS key with that
//! `kid` and purpose `admission_receipt`, and checks the signature over the bytes it
//! decoded (never over a re-encoding).

use access_token::keys::PublicKey;
use access_token::{KeyError, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::path::Path;
use utoipa::ToSchema;
use uuid::Uuid;

/// `boxoffice_purpose` of the receipt keys in the JWKS.
pub const RECEIPT_KEY_PURPOSE: &str = "admission_receipt";
/// What every receipt's payload says it is (domain separation, D6).
pub const RECEIPT_PURPOSE: &str = "boxoffice.admission_receipt";
/// What the published log says it is.
pub const LOG_FORMAT: &str = "boxoffice.admission_log/1";
/// The purpose the per-event blinding keys are derived for.
const BLINDING_PURPOSE: &str = "admission-log fan blinding v1";

/// What a receipt says. Times are the waiting room's clock (Redis'), ms since the epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// Always [`RECEIPT_PURPOSE`].
    pub purpose: String,
    /// The format's version: 1.
    pub v: u32,
    /// The key that signed it (JWKS `kid`).
    pub kid: String,
    pub event_id: Uuid,
    pub fan_id: String,
    /// The fan's id as the published admission log shows it.
    pub fan_blinded: String,
    /// The fan's place in line: their arrival number (the rebuild epoch × 2^40 plus a
    /// counter), or for the pre-queue their shuffle draw minus 2^52. Lower went first.
    pub join_score: i64,
    /// Joined before the sale opened: placed by the published shuffle.
    pub pre_queue: bool,
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
}

/// One recorded admission, as PostgreSQL holds it (`waitroom_admissions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAdmission {
    pub fan_id: String,
    pub join_score: i64,
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
    /// Set when the fan left before the admission expired.
    pub left_at_ms: Option<i64>,
}

impl RecordedAdmission {
    pub fn pre_queue(&self) -> bool {
        pre_queue(self.join_score)
    }
}

/// A place in line the admitter dropped because its fan had stopped polling, as
/// PostgreSQL records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSkip {
    pub fan_id: String,
    pub join_score: i64,
    pub skipped_at_ms: i64,
}

/// Pre-queue scores are shuffle draws minus 2^52: below every arrival number.
fn pre_queue(join_score: i64) -> bool {
    join_score < 0
}

/// The published admission log of one event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdmissionLog {
    /// Always [`LOG_FORMAT`].
    pub format: String,
    pub event_id: Uuid,
    /// The receipt key whose per-event blinding key blinded the fan ids.
    pub kid: String,
    /// How fan ids are blinded, in words.
    pub fan_blinding: String,
    /// Every recorded admission, in the order they were made (then by join score).
    pub admissions: Vec<LoggedAdmission>,
    /// Every place in line dropped without an admission because its fan had stopped
    /// polling when their turn came (longer than the waiting room's abandonment
    /// timeout), in the order they were dropped. A fan who came back queued again: a
    /// later line of theirs has a new join score.
    pub skipped: Vec<LoggedSkip>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoggedSkip {
    pub fan_blinded: String,
    pub join_score: i64,
    pub pre_queue: bool,
    pub skipped_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoggedAdmission {
    pub fan_blinded: String,
    pub join_score: i64,
    pub pre_queue: bool,
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
    /// When the fan left before the admission expired, if they did.
    pub left_at_ms: Option<i64>,
    /// 1 for the fan's first admission, 2 for the next (their earlier one expired or
    /// they left, and they queued again: a new join score) and so on.
    pub admission_of_fan: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a receipt: {0}")]
    Malformed(&'static str),
    #[error("signed by key {0:?}, which is not a receipt key")]
    UnknownKey(String),
    #[error("the signature does not match")]
    BadSignature,
}

/// The receipt keys: the one that signs now, and every public key still published
/// (receipts outlive rotations: a fan checks theirs after the sale).
pub struct ReceiptKeys {
    signing: KeyPair,
    published: Vec<PublicKey>,
}

impl ReceiptKeys {
    /// `signing` signs; `published` are published and verify (the signing key's public
    /// half is added if missing).
    pub fn new(signing: KeyPair, mut published: Vec<PublicKey>) -> Self {
        if !published.iter().any(|k| k.kid == signing.kid) {
            published.push(signing.public_key());
        }
        Self { signing, published }
    }

    /// `<dir>/<signing_kid>.private.pem` and every `<dir>/*.public.pem`.
    pub fn read(dir: &Path, signing_kid: &str) -> Result<Self, KeyError> {
        let signing = KeyPair::read_private(&dir.join(format!("{signing_kid}.private.pem")))?;
        Ok(Self::new(signing, access_token::keys::read_public_keys(dir)?))
    }

    /// The public keys as JSON Web Keys naming their purpose.
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        self.published.iter().map(|k| k.jwk_for(RECEIPT_KEY_PURPOSE)).collect()
    }

    /// The fan's id as the event's admission log shows it: HMAC-SHA256, keyed per event
    /// by a secret derived from the signing key, in hex. Nobody without the key can tell
    /// whose line is whose, nor try candidate ids.
    pub fn blind(&self, event_id: Uuid, fan_id: &str) -> String {
        let key = self.signing.derive_secret(&format!("{BLINDING_PURPOSE} {event_id}"));
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
        mac.update(fan_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The signed receipt of `admission`.
    pub fn receipt(&self, event_id: Uuid, admission: &RecordedAdmission) -> (String, Receipt) {
        let receipt = Receipt {
            purpose: RECEIPT_PURPOSE.to_owned(),
            v: 1,
            kid: self.signing.kid.clone(),
            event_id,
            fan_id: admission.fan_id.clone(),
            fan_blinded: self.blind(event_id, &admission.fan_id),
            join_score: admission.join_score,
            pre_queue: admission.pre_queue(),
            admitted_at_ms: admission.admitted_at_ms,
            expires_at_ms: admission.expires_at_ms,
        };
        let payload = serde_json::to_vec(&receipt).expect("a receipt always serializes");
        let signature = self.signing.sign_raw(&payload);
        (format!("{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(signature)), receipt)
    }

    /// What a receipt says, if one of the published keys signed it.
    pub fn verify(&self, receipt: &str) -> Result<Receipt, ReceiptError> {
        let (payload, signature) = receipt.split_once('.').ok_or(ReceiptError::Malformed("no '.'"))?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| ReceiptError::Malformed("payload not base64url"))?;
        let signature: [u8; 64] = URL_SAFE_NO_PAD
            .decode(signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(ReceiptError::Malformed("signature not 64 bytes of base64url"))?;
        let said: Receipt =
            serde_json::from_slice(&payload).map_err(|_| ReceiptError::Malformed("payload not a receipt"))?;
        if said.purpose != RECEIPT_PURPOSE || said.v != 1 {
            return Err(ReceiptError::Malformed("not a version 1 admission receipt"));
        }
        let key =
            self.published.iter().find(|k| k.kid == said.kid).ok_or(ReceiptError::UnknownKey(said.kid.clone()))?;
        if !key.verify_raw(&payload, &signature) {
            return Err(ReceiptError::BadSignature);
        }
        Ok(said)
    }

    /// The event's admission log from its recorded admissions, oldest first.
    pub fn log(&self, event_id: Uuid, recorded: &[RecordedAdmission], skips: &[RecordedSkip]) -> AdmissionLog {
        let mut admissions_of_fan = std::collections::HashMap::<&str, u32>::new();
        let admissions = recorded
            .iter()
            .map(|admission| {
                let nth = admissions_of_fan.entry(admission.fan_id.as_str()).or_default();
                *nth += 1;
                LoggedAdmission {
                    fan_blinded: self.blind(event_id, &admission.fan_id),
                    join_score: admission.join_score,
                    pre_queue: admission.pre_queue(),
                    admitted_at_ms: admission.admitted_at_ms,
                    expires_at_ms: admission.expires_at_ms,
                    left_at_ms: admission.left_at_ms,
                    admission_of_fan: *nth,
                }
            })
            .collect();
        AdmissionLog {
            format: LOG_FORMAT.to_owned(),
            event_id,
            kid: self.signing.kid.clone(),
            fan_blinding: "HMAC-SHA256 of the fan id under a key of this event's own, derived from the receipt key; \
                           each fan's receipt carries their blinded id"
                .to_owned(),
            admissions,
            skipped: skips
                .iter()
                .map(|skip| LoggedSkip {
                    fan_blinded: self.blind(event_id, &skip.fan_id),
                    join_score: skip.join_score,
                    pre_queue: pre_queue(skip.join_score),
                    skipped_at_ms: skip.skipped_at_ms,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ReceiptKeys {
        ReceiptKeys::new(KeyPair::generate("r1").unwrap(), vec![])
    }

    fn admission(fan: &str, score: i64) -> RecordedAdmission {
        RecordedAdmission {
            fan_id: fan.to_owned(),
            join_score: score,
            admitted_at_ms: 1_000,
            expires_at_ms: 2_000,
            left_at_ms: None,
        }
    }

    #[test]
    fn a_receipt_verifies_with_its_key_and_not_once_altered_or_under_another_key() {
        let keys = keys();
        let event = Uuid::new_v4();
        let (signed, said) = keys.receipt(event, &admission("fan-a", 7));
        assert_eq!(keys.verify(&signed), Ok(said.clone()));
        let (payload, signature) = signed.split_once('.').unwrap();
        let altered = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
            .unwrap()
            .replace("\"join_score\":7", "\"join_score\":6");
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(altered));
        assert_eq!(keys.verify(&forged), Err(ReceiptError::BadSignature));
        let stranger = ReceiptKeys::new(KeyPair::generate("r1").unwrap(), vec![]);
        assert_eq!(stranger.verify(&signed), Err(ReceiptError::BadSignature));
        assert_eq!(keys.verify("not-a-receipt"), Err(ReceiptError::Malformed("no '.'")));
    }

    #[test]
    fn fans_are_blinded_per_event_and_the_log_numbers_each_fans_admissions() {
        let keys = keys();
        let (one, other) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(keys.blind(one, "fan-a"), keys.blind(one, "fan-a"));
        assert_ne!(keys.blind(one, "fan-a"), keys.blind(other, "fan-a"));
        assert_ne!(keys.blind(one, "fan-a"), keys.blind(one, "fan-b"));
        let skip = RecordedSkip { fan_id: "fan-c".into(), join_score: 4, skipped_at_ms: 1_500 };
        let log = keys.log(one, &[admission("fan-a", -5), admission("fan-b", 3), admission("fan-a", 9)], &[skip]);
        let numbers: Vec<(bool, u32)> = log.admissions.iter().map(|a| (a.pre_queue, a.admission_of_fan)).collect();
        assert_eq!(numbers, [(true, 1), (false, 1), (false, 2)]);
        let skipped: Vec<(String, i64, bool, i64)> =
            log.skipped.iter().map(|k| (k.fan_blinded.clone(), k.join_score, k.pre_queue, k.skipped_at_ms)).collect();
        assert_eq!(skipped, [(keys.blind(one, "fan-c"), 4, false, 1_500)]);
    }
}
