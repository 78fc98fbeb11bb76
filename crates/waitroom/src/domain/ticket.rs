//! Queue tickets: what a fan presents to poll and to leave, and what puts them back in
//! their place if Redis loses the queue.
//!
//! **Version 2** (issued now): `"v2." base64url(payload) "." base64url(tag)` where
//! `tag = HMAC-SHA256(secret, "boxoffice-waitroom-ticket-v2" || payload)` and the
//! payload is, big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version, `2` |
//! | 16 | event id |
//! | 1 | place kind: `0` none (admitted), `1` queue score, `2` pre-queue |
//! | 8 | queue score (i64; 0 unless kind 1): the fan's arrival number, `epoch << 40 + n` |
//! | 8 | epoch of the event's Redis state that issued the ticket |
//! | 8 | issue time, ms since the epoch, by Redis' clock |
//! | rest | fan id (1-64 bytes of the fan-id alphabet) |
//!
//! A pre-queue fan's ticket carries no score: their place is their shuffle draw, which
//! is recomputed from the seed and their id, and which must not leak before the sale
//! opens. Every join and poll answer carries a fresh ticket, so a fan who keeps polling
//! always holds one that says where they stood a moment ago.
//!
//! A ticket expires `waitroom.ticket_lifetime_secs` after its issue time: one that
//! leaked (a screenshot, a log) stops working, while a fan who follows their
//! `poll_after_secs` is handed a new one long before. An expired ticket is answered
//! `410 ticket_expired`: join again.
//!
//! **Version 1** (issued by an earlier release): `base64url(fan_id) "."
//! base64url(HMAC-SHA256(secret, "boxoffice-waitroom-ticket-v1" || event id || len(fan)
//! || fan))`. It carries no issue time, so it cannot be held to a lifetime: a genuine
//! one is answered as expired.
//!
//! The context strings keep the two formats (and any other use of the secret) apart:
//! a v1 tag can never verify as a v2 one. The fan id travels inside the ticket, so
//! polling needs no lookup table; the MAC is what makes it tamper-evident.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use super::fan::FanId;

type HmacSha256 = Hmac<Sha256>;

const CONTEXT_V1: &[u8] = b"boxoffice-waitroom-ticket-v1";
const CONTEXT_V2: &[u8] = b"boxoffice-waitroom-ticket-v2";
const PREFIX_V2: &str = "v2.";
/// Version, event, kind, score, epoch, issue time: everything before the fan id.
const HEADER_LEN: usize = 1 + 16 + 1 + 8 + 8 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the ticket is not a queue ticket")]
    Malformed,
    #[error("the ticket was not issued for this event's queue")]
    Forged,
    /// Genuine, but older than the tickets' lifetime (or of the format that had none).
    #[error("the ticket has expired")]
    Expired,
}

/// Where the fan stood when the ticket was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Admitted (or nowhere): nothing to put back.
    None,
    /// In line with this queue score.
    Score(i64),
    /// In the pre-queue: the place is the fan's shuffle draw.
    PreQueue,
}

/// What a verified ticket says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub fan: FanId,
    pub issued: Issued,
}

/// Where the fan stood, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    pub place: Place,
    pub epoch: u64,
    /// Redis server time, ms.
    pub at_ms: i64,
}

/// Issues and checks tickets with the service's secret.
#[derive(Clone)]
pub struct TicketKey {
    /// The HMAC with the secret already absorbed: each ticket starts from a copy of it
    /// rather than hashing the key's two blocks again.
    keyed: HmacSha256,
    lifetime_ms: i64,
}

impl TicketKey {
    pub fn new(secret: SecretString, lifetime: Duration) -> Self {
        let keyed =
            HmacSha256::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC accepts keys of any length");
        Self { keyed, lifetime_ms: i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX) }
    }

    /// A v2 ticket for `fan` on `event_id`.
    pub fn issue(&self, event_id: Uuid, fan: &FanId, issued: Issued) -> String {
        let mut payload = Vec::with_capacity(HEADER_LEN + fan.as_str().len());
        payload.push(2);
        payload.extend_from_slice(event_id.as_bytes());
        let (kind, score) = match issued.place {
            Place::None => (0, 0),
            Place::Score(score) => (1, score),
            Place::PreQueue => (2, 0),
        };
        payload.push(kind);
        payload.extend_from_slice(&score.to_be_bytes());
        payload.extend_from_slice(&issued.epoch.to_be_bytes());
        payload.extend_from_slice(&issued.at_ms.to_be_bytes());
        payload.extend_from_slice(fan.as_str().as_bytes());
        let tag = self.mac_v2(&payload).finalize().into_bytes();
        format!("{PREFIX_V2}{}.{}", URL_SAFE_NO_PAD.encode(&payload), URL_SAFE_NO_PAD.encode(tag))
    }

    /// What a ticket says, if it was issued by us for `event_id` and has not expired
    /// by `now_ms`.
    pub fn verify(&self, event_id: Uuid, ticket: &str, now_ms: i64) -> Result<Ticket, TicketError> {
        let Some(rest) = ticket.strip_prefix(PREFIX_V2) else {
            self.verify_v1(event_id, ticket)?;
            return Err(TicketError::Expired);
        };
        let ticket = self.verify_v2(event_id, rest)?;
        if now_ms.saturating_sub(ticket.issued.at_ms) > self.lifetime_ms {
            return Err(TicketError::Expired);
        }
        Ok(ticket)
    }

    fn verify_v2(&self, event_id: Uuid, rest: &str) -> Result<Ticket, TicketError> {
        let (payload_part, tag_part) = rest.split_once('.').ok_or(TicketError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload_part).map_err(|_| TicketError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag_part).map_err(|_| TicketError::Malformed)?;
        if payload.len() <= HEADER_LEN || payload[0] != 2 {
            return Err(TicketError::Malformed);
        }
        // Constant-time comparison: timing tells nothing about a guessed tag. The tag
        // is checked before any field is trusted.
        self.mac_v2(&payload).verify_slice(&tag).map_err(|_| TicketError::Forged)?;
        let field = |at: usize| -> [u8; 8] { payload[at..at + 8].try_into().expect("8 bytes") };
        if payload[1..17] != *event_id.as_bytes() {
            return Err(TicketError::Forged);
        }
        let score = i64::from_be_bytes(field(18));
        let place = match payload[17] {
            0 => Place::None,
            1 => Place::Score(score),
            2 => Place::PreQueue,
            _ => return Err(TicketError::Malformed),
        };
        let fan = std::str::from_utf8(&payload[HEADER_LEN..])
            .ok()
            .and_then(|raw| FanId::parse(raw).ok())
            .ok_or(TicketError::Malformed)?;
        let issued = Issued { place, epoch: u64::from_be_bytes(field(26)), at_ms: i64::from_be_bytes(field(34)) };
        Ok(Ticket { fan, issued })
    }

    /// Tells a genuine v1 ticket (expired) from a forged or malformed one.
    fn verify_v1(&self, event_id: Uuid, ticket: &str) -> Result<FanId, TicketError> {
        let (fan_part, tag_part) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let fan_bytes = URL_SAFE_NO_PAD.decode(fan_part).map_err(|_| TicketError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag_part).map_err(|_| TicketError::Malformed)?;
        let fan = std::str::from_utf8(&fan_bytes)
            .ok()
            .and_then(|raw| FanId::parse(raw).ok())
            .ok_or(TicketError::Malformed)?;
        self.mac_v1(event_id, &fan).verify_slice(&tag).map_err(|_| TicketError::Forged)?;
        Ok(fan)
    }

    /// A v1 ticket, as the previous release issued them: for tests of the transition.
    #[doc(hidden)]
    pub fn issue_v1(&self, event_id: Uuid, fan: &FanId) -> String {
        let tag = self.mac_v1(event_id, fan).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(fan.as_str()), URL_SAFE_NO_PAD.encode(tag))
    }

    fn hmac(&self) -> HmacSha256 {
        self.keyed.clone()
    }

    fn mac_v2(&self, payload: &[u8]) -> HmacSha256 {
        // The payload is fixed-width up to the fan id, which runs to the end: no two
        // tickets produce the same input.
        let mut mac = self.hmac();
        mac.update(CONTEXT_V2);
        mac.update(payload);
        mac
    }

    fn mac_v1(&self, event_id: Uuid, fan: &FanId) -> HmacSha256 {
        // Length-prefixed fields: no two (event, fan) pairs produce the same input.
        let mut mac = self.hmac();
        mac.update(CONTEXT_V1);
        mac.update(event_id.as_bytes());
        mac.update(&(fan.as_str().len() as u64).to_be_bytes());
        mac.update(fan.as_str().as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME: Duration = Duration::from_secs(3600);
    const ISSUED_AT_MS: i64 = 1_765_000_000_123;
    /// A moment after the test tickets were issued.
    const NOW_MS: i64 = ISSUED_AT_MS + 1_000;

    fn key(secret: &str) -> TicketKey {
        TicketKey::new(SecretString::from(secret), LIFETIME)
    }

    fn issued(place: Place) -> Issued {
        Issued { place, epoch: 3, at_ms: ISSUED_AT_MS }
    }

    #[test]
    fn a_ticket_carries_its_fan_place_epoch_and_issue_time_on_its_event_only() {
        let (event, other_event) = (Uuid::new_v4(), Uuid::new_v4());
        let fan = FanId::parse("fan-1").unwrap();
        let k = key("s3cret-s3cret-s3cret");
        for place in [Place::None, Place::Score((3 << 40) + 17), Place::Score(-4_503_599_627_370_000), Place::PreQueue]
        {
            let ticket = k.issue(event, &fan, issued(place));
            assert!(ticket.starts_with("v2."), "{ticket}");
            assert_eq!(k.verify(event, &ticket, NOW_MS), Ok(Ticket { fan: fan.clone(), issued: issued(place) }));
            assert_eq!(k.verify(other_event, &ticket, NOW_MS), Err(TicketError::Forged));
            assert_eq!(key("another-secret-value").verify(event, &ticket, NOW_MS), Err(TicketError::Forged));
        }
    }

    #[test]
    fn a_ticket_expires_its_lifetime_after_its_issue_time() {
        let event = Uuid::new_v4();
        let k = key("s3cret-s3cret-s3cret");
        let ticket = k.issue(event, &FanId::parse("alice").unwrap(), issued(Place::Score(42)));
        let lifetime_ms = LIFETIME.as_millis() as i64;
        assert!(k.verify(event, &ticket, ISSUED_AT_MS + lifetime_ms).is_ok(), "valid to its last millisecond");
        assert_eq!(k.verify(event, &ticket, ISSUED_AT_MS + lifetime_ms + 1), Err(TicketError::Expired));
        // A replica whose clock runs behind Redis' sees a ticket from its future.
        assert!(k.verify(event, &ticket, ISSUED_AT_MS - 5_000).is_ok());
        // Forgery is found before age: an old forged ticket is not told "expired".
        let forged =
            key("another-secret-value").issue(event, &FanId::parse("alice").unwrap(), issued(Place::Score(42)));
        assert_eq!(k.verify(event, &forged, ISSUED_AT_MS + lifetime_ms + 1), Err(TicketError::Forged));
    }

    #[test]
    fn changing_any_byte_of_the_payload_is_detected() {
        let event = Uuid::new_v4();
        let k = key("s3cret-s3cret-s3cret");
        let ticket = k.issue(event, &FanId::parse("alice").unwrap(), issued(Place::Score(42)));
        let (payload, tag) = ticket.strip_prefix("v2.").unwrap().split_once('.').unwrap();
        let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
        for i in 1..payload.len() {
            let mut changed = payload.clone();
            changed[i] ^= 1;
            let forged = format!("v2.{}.{tag}", URL_SAFE_NO_PAD.encode(&changed));
            assert_eq!(k.verify(event, &forged, NOW_MS), Err(TicketError::Forged), "byte {i}");
        }
    }

    #[test]
    fn a_genuine_v1_ticket_is_expired_and_a_forged_one_is_not() {
        let event = Uuid::new_v4();
        let k = key("s3cret-s3cret-s3cret");
        let fan = FanId::parse("alice").unwrap();
        let v1 = k.issue_v1(event, &fan);
        assert_eq!(k.verify(event, &v1, NOW_MS), Err(TicketError::Expired));
        assert_eq!(k.verify(Uuid::new_v4(), &v1, NOW_MS), Err(TicketError::Forged));
        // Another fan's id under alice's v1 tag.
        let (_, tag) = v1.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("mallory"));
        assert_eq!(k.verify(event, &forged, NOW_MS), Err(TicketError::Forged));
    }

    #[test]
    fn a_v1_tag_cannot_pass_as_a_v2_ticket() {
        // Domain separation: the same secret, event and fan under the other context.
        let event = Uuid::new_v4();
        let k = key("s3cret-s3cret-s3cret");
        let fan = FanId::parse("alice").unwrap();
        let v2 = k.issue(event, &fan, issued(Place::Score(1)));
        let (payload, _) = v2.strip_prefix("v2.").unwrap().split_once('.').unwrap();
        let (_, v1_tag) = k.issue_v1(event, &fan).split_once('.').map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap();
        assert_eq!(k.verify(event, &format!("v2.{payload}.{v1_tag}"), NOW_MS), Err(TicketError::Forged));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = key("s3cret-s3cret-s3cret");
        for bad in ["", ".", "abc", "!!!.???", "YQ.", ".YQ", "IA.YQ", "v2.", "v2..", "v2.AA.AA", "v2.!!.??"] {
            assert!(k.verify(Uuid::nil(), bad, NOW_MS).is_err(), "{bad:?}");
        }
    }
}
