//! A waitlist offer's capability link (DECISIONS.md D7): a token naming one offer (a
//! hold made for a waiting fan) that lets its holder see, check out, confirm or decline
//! that hold without an access token: an offer may come days after the fan's token
//! expired, by email. No I/O here.
//!
//! `base64url(version ‖ event id ‖ hold id ‖ valid until ‖ tag)`, no padding: version 1
//! (1 byte), the UUIDs (16 bytes each), the end of validity in Unix seconds (4 bytes,
//! big-endian; 0: no end), and the tag of [`super::capability_link`] under a key of the
//! `offer-link` purpose. The link reaches only its own hold, and only a hold made as an
//! offer; what may be done with it is what the hold's state allows, so an offer that
//! ended (declined, expired, taken) needs no revoking.

use uuid::Uuid;

use super::capability_link;

/// What the tag covers before the link's bytes.
pub const MAC_CONTEXT: &[u8] = b"boxoffice.offer-link\0";
/// The purpose the MAC key is derived for.
pub const KEY_PURPOSE: &str = "offer-link";
const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 16 + 16 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferLink {
    pub event_id: Uuid,
    pub hold_id: Uuid,
    /// Unix seconds; 0: no end.
    pub valid_until: u32,
}

impl OfferLink {
    pub fn encode(&self, key: &[u8; 32]) -> String {
        let mut body = [0u8; BODY_LEN];
        body[0] = VERSION;
        body[1..17].copy_from_slice(self.event_id.as_bytes());
        body[17..33].copy_from_slice(self.hold_id.as_bytes());
        body[33..37].copy_from_slice(&self.valid_until.to_be_bytes());
        capability_link::seal(MAC_CONTEXT, key, &body)
    }

    /// The link `token` names, if it carries a good tag under `key` and is valid at
    /// `now` (Unix seconds).
    pub fn decode(token: &str, key: &[u8; 32], now: i64) -> Option<Self> {
        let body = capability_link::open::<BODY_LEN>(MAC_CONTEXT, key, token)?;
        if body[0] != VERSION {
            return None;
        }
        let link = Self {
            event_id: Uuid::from_bytes(body[1..17].try_into().expect("sixteen bytes")),
            hold_id: Uuid::from_bytes(body[17..33].try_into().expect("sixteen bytes")),
            valid_until: u32::from_be_bytes(body[33..37].try_into().expect("four bytes")),
        };
        capability_link::in_time(link.valid_until, now).then_some(link)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;
    use crate::domain::booking_link::BookingLink;

    const KEY: [u8; 32] = [7; 32];

    fn link() -> OfferLink {
        OfferLink { event_id: Uuid::from_u128(1), hold_id: Uuid::from_u128(2), valid_until: 1000 }
    }

    #[test]
    fn a_link_decodes_under_its_key_until_it_ends() {
        let token = link().encode(&KEY);
        assert_eq!(OfferLink::decode(&token, &KEY, 1000), Some(link()));
        assert_eq!(OfferLink::decode(&token, &KEY, 1001), None, "past its end");
        assert_eq!(OfferLink::decode(&token, &[8; 32], 0), None, "another key");
    }

    #[test]
    fn a_link_of_another_purpose_is_refused_under_the_same_key() {
        let booking =
            BookingLink { event_id: Uuid::from_u128(1), booking_id: Uuid::from_u128(2), generation: 1, valid_until: 0 };
        assert_eq!(OfferLink::decode(&booking.encode(&KEY), &KEY, 0), None);
        // An offer's very body, tagged for bookings: only the context tells them apart.
        let body = URL_SAFE_NO_PAD.decode(link().encode(&KEY)).unwrap();
        let other_purpose = capability_link::seal(crate::domain::booking_link::MAC_CONTEXT, &KEY, &body[..BODY_LEN]);
        assert_eq!(OfferLink::decode(&other_purpose, &KEY, 0), None);
        assert!(OfferLink::decode(&capability_link::seal(MAC_CONTEXT, &KEY, &body[..BODY_LEN]), &KEY, 0).is_some());
    }

    #[test]
    fn junk_is_refused() {
        for junk in ["", "x", "eyJhbGciOi.x.y", &"A".repeat(300), &"A".repeat(50)] {
            assert_eq!(OfferLink::decode(junk, &KEY, 0), None);
        }
    }
}
