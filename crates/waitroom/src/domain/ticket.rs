//! Queue tickets: what a fan presents to poll and to leave.
//!
//! A ticket is `base64url(fan_id) "." base64url(HMAC-SHA256(secret, context))` where
//! the context binds the ticket to one event, so a ticket can neither be made up nor
//! replayed on another event's queue. The fan id travels inside the ticket, so polling
//! needs no lookup table; the MAC is what makes it tamper-evident.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use super::fan::FanId;

type HmacSha256 = Hmac<Sha256>;

/// Separates ticket MACs from any other use of the same secret, and lets a future
/// format change invalidate old tickets cleanly.
const CONTEXT: &[u8] = b"boxoffice-waitroom-ticket-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the ticket is not a queue ticket")]
    Malformed,
    #[error("the ticket was not issued for this event's queue")]
    Forged,
}

/// Issues and checks tickets with the service's secret.
#[derive(Clone)]
pub struct TicketKey {
    secret: SecretString,
}

impl TicketKey {
    pub fn new(secret: SecretString) -> Self {
        Self { secret }
    }

    pub fn issue(&self, event_id: Uuid, fan: &FanId) -> String {
        let tag = self.mac(event_id, fan).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(fan.as_str()), URL_SAFE_NO_PAD.encode(tag))
    }

    /// The fan a ticket was issued to, if it was issued by us for `event_id`.
    pub fn verify(&self, event_id: Uuid, ticket: &str) -> Result<FanId, TicketError> {
        let (fan_part, tag_part) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let fan_bytes = URL_SAFE_NO_PAD.decode(fan_part).map_err(|_| TicketError::Malformed)?;
        let tag = URL_SAFE_NO_PAD.decode(tag_part).map_err(|_| TicketError::Malformed)?;
        let fan = std::str::from_utf8(&fan_bytes)
            .ok()
            .and_then(|raw| FanId::parse(raw).ok())
            .ok_or(TicketError::Malformed)?;
        // `verify_slice` compares in constant time, so response timing leaks nothing
        // about how much of a guessed tag was right.
        self.mac(event_id, &fan).verify_slice(&tag).map_err(|_| TicketError::Forged)?;
        Ok(fan)
    }

    fn mac(&self, event_id: Uuid, fan: &FanId) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(self.secret.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        // Length-prefixed fields: no two (event, fan) pairs produce the same input.
        mac.update(CONTEXT);
        mac.update(event_id.as_bytes());
        mac.update(&(fan.as_str().len() as u64).to_be_bytes());
        mac.update(fan.as_str().as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> TicketKey {
        TicketKey::new(SecretString::from(secret))
    }

    #[test]
    fn a_ticket_names_its_fan_on_its_event_only() {
        let (event, other_event) = (Uuid::new_v4(), Uuid::new_v4());
        let fan = FanId::parse("fan-1").unwrap();
        let ticket = key("s3cret-s3cret-s3cret").issue(event, &fan);
        assert_eq!(key("s3cret-s3cret-s3cret").verify(event, &ticket), Ok(fan));
        assert_eq!(key("s3cret-s3cret-s3cret").verify(other_event, &ticket), Err(TicketError::Forged));
        assert_eq!(key("another-secret-value").verify(event, &ticket), Err(TicketError::Forged));
    }

    #[test]
    fn swapping_the_fan_inside_a_ticket_is_detected() {
        let event = Uuid::new_v4();
        let k = key("s3cret-s3cret-s3cret");
        let ticket = k.issue(event, &FanId::parse("alice").unwrap());
        let (_, tag) = ticket.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("mallory"));
        assert_eq!(k.verify(event, &forged), Err(TicketError::Forged));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = key("s3cret-s3cret-s3cret");
        for bad in ["", ".", "abc", "!!!.???", "YQ.", ".YQ", "IA.YQ"] {
            assert!(k.verify(Uuid::nil(), bad).is_err(), "{bad:?}");
        }
    }
}
