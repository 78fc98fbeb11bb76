//! Vouched fan ids: when fans bring their own id (an account id from the organizer's
//! site), anyone who learns it could join as them and take their place and, once
//! admitted, their access token. With a `fan_id_secret`, the organizer's backend signs
//! each id it hands a logged-in fan, and the waiting room accepts a client-chosen id
//! only with that signature:
//!
//! `fan_id_signature = hex(HMAC-SHA256(fan_id_secret, "boxoffice-fan-id-v1:" event_id ":" fan_id))`
//!
//! The event id is in the message, so a signature for one sale is useless in another.
//!
//! Without a secret nothing can vouch for an id the client chose, so none is taken: fans
//! join with the ids the waiting room issues ([`ClientFanIds`]), unless the development
//! switch says the ids are anyone's to choose.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

use super::fan::FanId;

const CONTEXT: &str = "boxoffice-fan-id-v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VouchError {
    #[error("fan_id_signature is required with a fan_id of your own")]
    Missing,
    #[error("fan_id_signature does not match this fan_id and event")]
    Wrong,
    /// No `fan_id_secret`: nothing can vouch for a client's own id.
    #[error(
        "this waiting room issues fan ids and takes no fan_id of your own (nothing can vouch for it); \
         join without a fan_id"
    )]
    NotAccepted,
}

/// Which fan ids a client may choose for themselves when joining.
#[derive(Clone)]
pub enum ClientFanIds {
    /// Those the organizer signed (`fan_id_secret` set).
    Vouched(FanIdVouching),
    /// Any, as given: the development switch, without a secret.
    AsGiven,
    /// None: fans take the id the waiting room issues.
    Refused,
}

impl ClientFanIds {
    pub fn new(fan_id_secret: Option<SecretString>, development: bool) -> Self {
        match fan_id_secret {
            Some(secret) => Self::Vouched(FanIdVouching::new(secret)),
            None if development => Self::AsGiven,
            None => Self::Refused,
        }
    }

    /// Whether `fan`, chosen by the client, may join `event_id` with `signature`.
    pub fn check(&self, event_id: Uuid, fan: &FanId, signature: Option<&str>) -> Result<(), VouchError> {
        match self {
            Self::Vouched(vouching) => vouching.verify(event_id, fan, signature),
            Self::AsGiven => Ok(()),
            Self::Refused => Err(VouchError::NotAccepted),
        }
    }
}

/// Checks the organizer's signatures on client-chosen fan ids.
#[derive(Clone)]
pub struct FanIdVouching {
    /// The HMAC with the secret already absorbed; each check starts from a copy.
    keyed: Hmac<Sha256>,
}

impl FanIdVouching {
    pub fn new(secret: SecretString) -> Self {
        let keyed =
            Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC accepts keys of any length");
        Self { keyed }
    }

    /// The signature the organizer's backend attaches to `fan` for `event_id`.
    pub fn sign(&self, event_id: Uuid, fan: &FanId) -> String {
        hex::encode(self.mac(event_id, fan).finalize().into_bytes())
    }

    pub fn verify(&self, event_id: Uuid, fan: &FanId, signature: Option<&str>) -> Result<(), VouchError> {
        let signature = signature.ok_or(VouchError::Missing)?;
        let tag = hex::decode(signature).map_err(|_| VouchError::Wrong)?;
        // Constant-time comparison: timing tells nothing about a guessed signature.
        self.mac(event_id, fan).verify_slice(&tag).map_err(|_| VouchError::Wrong)
    }

    fn mac(&self, event_id: Uuid, fan: &FanId) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(format!("{CONTEXT}:{event_id}:{fan}").as_bytes());
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vouching() -> FanIdVouching {
        FanIdVouching::new(SecretString::from("a-fan-id-secret-of-at-least-32-chars"))
    }

    #[test]
    fn only_the_signature_for_this_fan_and_event_is_accepted() {
        let (event, other_event) = (Uuid::new_v4(), Uuid::new_v4());
        let (alice, bob) = (FanId::parse("alice").unwrap(), FanId::parse("bob").unwrap());
        let signature = vouching().sign(event, &alice);
        assert_eq!(vouching().verify(event, &alice, Some(&signature)), Ok(()));
        assert_eq!(vouching().verify(event, &bob, Some(&signature)), Err(VouchError::Wrong));
        assert_eq!(vouching().verify(other_event, &alice, Some(&signature)), Err(VouchError::Wrong));
        assert_eq!(vouching().verify(event, &alice, Some("not hex")), Err(VouchError::Wrong));
        assert_eq!(vouching().verify(event, &alice, None), Err(VouchError::Missing));
    }

    #[test]
    fn without_a_secret_a_clients_own_id_is_taken_only_in_development() {
        let (event, alice) = (Uuid::new_v4(), FanId::parse("alice").unwrap());
        assert_eq!(ClientFanIds::new(None, false).check(event, &alice, None), Err(VouchError::NotAccepted));
        assert_eq!(ClientFanIds::new(None, true).check(event, &alice, None), Ok(()));
        let secret = || Some(SecretString::from("a-fan-id-secret-of-at-least-32-chars"));
        for development in [false, true] {
            let vouched = ClientFanIds::new(secret(), development);
            assert_eq!(vouched.check(event, &alice, None), Err(VouchError::Missing), "a secret always wins");
            assert_eq!(vouched.check(event, &alice, Some(&vouching().sign(event, &alice))), Ok(()));
        }
    }

    #[test]
    fn the_signature_is_the_documented_hmac() {
        let event = Uuid::nil();
        let fan = FanId::parse("fan-1").unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a-fan-id-secret-of-at-least-32-chars").unwrap();
        mac.update(b"boxoffice-fan-id-v1:00000000-0000-0000-0000-000000000000:fan-1");
        assert_eq!(vouching().sign(event, &fan), hex::encode(mac.finalize().into_bytes()));
    }
}
