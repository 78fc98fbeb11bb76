//! The e-ticket secret: what a ticket's QR code carries, verifiable offline by anyone
//! holding the ticket keys' public halves (the gateway's JWKS). No I/O here.
//!
//! A secret is `base64url(payload ‖ signature)` without padding, where the signature is
//! Ed25519 over [`SIGNING_CONTEXT`] ‖ payload. The context is not sent: it names the
//! purpose (DECISIONS.md D6, domain separation), so nothing else a ticket key might sign
//! can pass as a ticket, and a ticket cannot pass as anything else. The payload, every
//! integer big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version, [`VERSION`] (1) |
//! | 1 | `k`, the key id's length (1–64) |
//! | k | key id (ASCII), the `kid` of the JWKS key that signed |
//! | 16 | event id (UUID bytes) |
//! | 16 | ticket id (UUID bytes) |
//! | 4 | issue counter (1 for the first secret; a reissue adds 1 and revokes the one before) |
//! | 4 | valid from (Unix seconds) |
//! | 4 | valid until (Unix seconds; 0: no end, for an event without a start date) |
//! | 1 | place kind: 0 a reserved seat, 1 a general-admission place |
//! | 4 | seat or place number within its section |
//! | 1 | `n`, the place text's length (0–255) |
//! | n | place text (UTF-8): the seat's label, or the general-admission section's name |
//!
//! Nothing may follow. A scanner accepts a secret whose signature verifies under the key
//! its `kid` names (with `boxoffice_purpose` `ticket`), whose event is the one at its
//! gate, whose window holds now, and which the revocation feed has not revoked (a
//! revocation of issue `i` revokes every issue up to `i`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// What the signature covers before the payload; never sent.
pub const SIGNING_CONTEXT: &[u8] = b"boxoffice.ticket\0";
/// The payload format this code writes and reads.
pub const VERSION: u8 = 1;
/// Longer input is refused before it is decoded (a real secret is about 200 characters).
pub const MAX_SECRET_CHARS: usize = 1024;
const SIGNATURE_LEN: usize = 64;

/// What a ticket's place is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceKind {
    Seat = 0,
    GeneralAdmission = 1,
}

/// Everything a secret says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFields {
    pub kid: String,
    pub event_id: Uuid,
    pub ticket_id: Uuid,
    pub issue: u32,
    pub valid_from: u32,
    /// 0: no end.
    pub valid_until: u32,
    pub place_kind: PlaceKind,
    pub place_number: u32,
    /// The seat's label, or the general-admission section's name (cut to 255 bytes at
    /// a character boundary).
    pub place_text: String,
}

/// Why a string is not a secret we signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("not a ticket secret: {0}")]
    Malformed(&'static str),
    #[error("signed by a key this gateway does not know")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
}

impl TicketFields {
    /// The payload's bytes (see the module's table).
    pub fn payload(&self) -> Vec<u8> {
        let text = cut(&self.place_text, 255);
        let mut out = Vec::with_capacity(64 + self.kid.len() + text.len());
        out.push(VERSION);
        out.push(self.kid.len() as u8);
        out.extend_from_slice(self.kid.as_bytes());
        out.extend_from_slice(self.event_id.as_bytes());
        out.extend_from_slice(self.ticket_id.as_bytes());
        out.extend_from_slice(&self.issue.to_be_bytes());
        out.extend_from_slice(&self.valid_from.to_be_bytes());
        out.extend_from_slice(&self.valid_until.to_be_bytes());
        out.push(self.place_kind as u8);
        out.extend_from_slice(&self.place_number.to_be_bytes());
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
        out
    }

    /// The secret, signed by `sign` (an Ed25519 signature of the bytes it is given, by
    /// the key named `self.kid`).
    pub fn sign(&self, sign: impl FnOnce(&[u8]) -> [u8; 64]) -> String {
        let payload = self.payload();
        let signature = sign(&signed_message(&payload));
        let mut bytes = payload;
        bytes.extend_from_slice(&signature);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether the window holds at `now` (Unix seconds).
    pub fn valid_at(&self, now: i64) -> bool {
        now >= i64::from(self.valid_from) && (self.valid_until == 0 || now <= i64::from(self.valid_until))
    }
}

/// Reads and verifies a secret: `verify(kid, message, signature)` says whether the key
/// named `kid` signed `message`, or `None` for a key it does not know. Any input,
/// however made, ends in a [`SecretError`] or the fields: never a panic.
pub fn verify(
    secret: &str,
    verify: impl FnOnce(&str, &[u8], &[u8; 64]) -> Option<bool>,
) -> Result<TicketFields, SecretError> {
    let secret = secret.trim();
    if secret.is_empty() || secret.len() > MAX_SECRET_CHARS {
        return Err(SecretError::Malformed("empty or too long"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).map_err(|_| SecretError::Malformed("not base64url"))?;
    if bytes.len() <= SIGNATURE_LEN {
        return Err(SecretError::Malformed("too short"));
    }
    let (payload, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
    let fields = parse(payload)?;
    let signature: &[u8; 64] = signature.try_into().map_err(|_| SecretError::Malformed("too short"))?;
    match verify(&fields.kid, &signed_message(payload), signature) {
        None => Err(SecretError::UnknownKey),
        Some(false) => Err(SecretError::BadSignature),
        Some(true) => Ok(fields),
    }
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_CONTEXT.len() + payload.len());
    message.extend_from_slice(SIGNING_CONTEXT);
    message.extend_from_slice(payload);
    message
}

fn parse(payload: &[u8]) -> Result<TicketFields, SecretError> {
    let mut r = Reader(payload);
    if r.u8()? != VERSION {
        return Err(SecretError::Malformed("unknown format version"));
    }
    let kid_len = r.u8()? as usize;
    if !(1..=64).contains(&kid_len) {
        return Err(SecretError::Malformed("bad key id length"));
    }
    let kid = std::str::from_utf8(r.take(kid_len)?)
        .ok()
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .ok_or(SecretError::Malformed("bad key id"))?
        .to_owned();
    let event_id = r.uuid()?;
    let ticket_id = r.uuid()?;
    let issue = r.u32()?;
    let valid_from = r.u32()?;
    let valid_until = r.u32()?;
    let place_kind = match r.u8()? {
        0 => PlaceKind::Seat,
        1 => PlaceKind::GeneralAdmission,
        _ => return Err(SecretError::Malformed("unknown place kind")),
    };
    let place_number = r.u32()?;
    let text_len = r.u8()? as usize;
    let place_text =
        String::from_utf8(r.take(text_len)?.to_vec()).map_err(|_| SecretError::Malformed("place is not UTF-8"))?;
    if !r.0.is_empty() {
        return Err(SecretError::Malformed("trailing bytes"));
    }
    Ok(TicketFields { kid, event_id, ticket_id, issue, valid_from, valid_until, place_kind, place_number, place_text })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SecretError> {
        if self.0.len() < n {
            return Err(SecretError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, SecretError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, SecretError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    fn uuid(&mut self) -> Result<Uuid, SecretError> {
        Ok(Uuid::from_bytes(self.take(16)?.try_into().expect("sixteen bytes")))
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> TicketFields {
        TicketFields {
            kid: "tickets-1".into(),
            event_id: Uuid::from_u128(1),
            ticket_id: Uuid::from_u128(2),
            issue: 3,
            valid_from: 100,
            valid_until: 200,
            place_kind: PlaceKind::Seat,
            place_number: 12,
            place_text: "A-12".into(),
        }
    }

    /// A toy "signature" (the message's first 64 bytes, padded) is enough to check the
    /// framing; the gateway's tests verify real Ed25519 secrets, and a Python script
    /// verifies them from the JWKS alone.
    fn toy(message: &[u8]) -> [u8; 64] {
        let mut sig = [0u8; 64];
        for (i, b) in message.iter().enumerate() {
            sig[i % 64] ^= b;
        }
        sig
    }

    #[test]
    fn a_secret_reads_back_as_its_fields() {
        let secret = fields().sign(toy);
        let read = verify(&secret, |kid, message, sig| Some(kid == "tickets-1" && toy(message) == *sig));
        assert_eq!(read, Ok(fields()));
    }

    #[test]
    fn any_change_to_a_byte_is_refused() {
        let secret = fields().sign(toy);
        let bytes = URL_SAFE_NO_PAD.decode(&secret).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            let read = verify(&URL_SAFE_NO_PAD.encode(&changed), |_, message, sig| Some(toy(message) == *sig));
            assert!(read.is_err(), "byte {i} changed and still accepted");
        }
    }

    #[test]
    fn truncated_and_random_input_is_malformed_never_a_panic() {
        let secret = fields().sign(toy);
        for end in 0..secret.len() {
            assert!(verify(&secret[..end], |_, _, _| Some(false)).is_err());
        }
        for junk in ["", " ", "%%%", "a.b.c", &"A".repeat(5000), "AAAA", "\u{0}"] {
            assert!(matches!(verify(junk, |_, _, _| Some(true)), Err(SecretError::Malformed(_))), "{junk:?}");
        }
    }

    #[test]
    fn the_window_is_inclusive_and_zero_means_no_end() {
        let mut f = fields();
        assert!(!f.valid_at(99) && f.valid_at(100) && f.valid_at(200) && !f.valid_at(201));
        f.valid_until = 0;
        assert!(f.valid_at(i64::from(u32::MAX) + 10));
    }

    #[test]
    fn long_place_texts_are_cut_at_a_character_boundary() {
        let mut f = fields();
        f.place_text = "é".repeat(200);
        let read = verify(&f.sign(toy), |_, m, s| Some(toy(m) == *s)).unwrap();
        assert_eq!(read.place_text, "é".repeat(127));
    }
}
