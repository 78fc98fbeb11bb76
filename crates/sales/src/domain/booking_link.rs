//! A booking's capability link (DECISIONS.md D7): a token naming one booking that lets
//! its holder see the booking's tickets long after the fan's access token expired (it
//! is on the confirmation page and, later, in the confirmation email). No I/O here.
//!
//! `base64url(version ‖ event id ‖ booking id ‖ generation ‖ valid until ‖ tag)`, no
//! padding: version 1 (1 byte), the UUIDs (16 bytes each), the booking's link
//! generation and the end of validity in Unix seconds (4 bytes each, big-endian; 0: no
//! end), and the first 16 bytes of HMAC-SHA256 over [`MAC_CONTEXT`] ‖ the bytes before
//! it. Only the gateway checks it, so it is a MAC under a key of its own purpose (derived
//! from the ticket key, see `access_token::KeyPair::derive_secret`), not a signature.
//! Moving the booking's `link_generation` on revokes every link given out before.

use uuid::Uuid;

use super::capability_link;

/// What the tag covers before the link's bytes.
pub const MAC_CONTEXT: &[u8] = b"boxoffice.booking-link\0";
/// The purpose the MAC key is derived for.
pub const KEY_PURPOSE: &str = "booking-link";
const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 16 + 4 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookingLink {
    pub event_id: Uuid,
    pub booking_id: Uuid,
    pub generation: u32,
    /// Unix seconds; 0: no end.
    pub valid_until: u32,
}

impl BookingLink {
    pub fn encode(&self, key: &[u8; 32]) -> String {
        capability_link::seal(MAC_CONTEXT, key, &self.body())
    }

    /// The link `token` names, if it carries a good tag under `key` and is valid at
    /// `now` (Unix seconds). Whether its generation is still the booking's is the
    /// database's to say.
    pub fn decode(token: &str, key: &[u8; 32], now: i64) -> Option<Self> {
        let body = capability_link::open::<BODY_LEN>(MAC_CONTEXT, key, token)?;
        if body[0] != VERSION {
            return None;
        }
        let u32_at = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().expect("four bytes"));
        let link = Self {
            event_id: Uuid::from_bytes(body[1..17].try_into().expect("sixteen bytes")),
            booking_id: Uuid::from_bytes(body[17..33].try_into().expect("sixteen bytes")),
            generation: u32_at(33),
            valid_until: u32_at(37),
        };
        capability_link::in_time(link.valid_until, now).then_some(link)
    }

    fn body(&self) -> [u8; BODY_LEN] {
        let mut body = [0u8; BODY_LEN];
        body[0] = VERSION;
        body[1..17].copy_from_slice(self.event_id.as_bytes());
        body[17..33].copy_from_slice(self.booking_id.as_bytes());
        body[33..37].copy_from_slice(&self.generation.to_be_bytes());
        body[37..41].copy_from_slice(&self.valid_until.to_be_bytes());
        body
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn link() -> BookingLink {
        BookingLink { event_id: Uuid::from_u128(1), booking_id: Uuid::from_u128(2), generation: 1, valid_until: 1000 }
    }

    #[test]
    fn a_link_decodes_under_its_key_until_it_ends() {
        let token = link().encode(&KEY);
        assert_eq!(BookingLink::decode(&token, &KEY, 1000), Some(link()));
        assert_eq!(BookingLink::decode(&token, &KEY, 1001), None, "past its end");
        assert_eq!(BookingLink::decode(&token, &[8; 32], 0), None, "another key");
    }

    #[test]
    fn a_changed_byte_or_junk_is_refused() {
        let bytes = URL_SAFE_NO_PAD.decode(link().encode(&KEY)).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 1;
            assert_eq!(BookingLink::decode(&URL_SAFE_NO_PAD.encode(&changed), &KEY, 0), None, "byte {i}");
        }
        for junk in ["", "x", "eyJhbGciOi.x.y", &"A".repeat(300)] {
            assert_eq!(BookingLink::decode(junk, &KEY, 0), None);
        }
    }
}
