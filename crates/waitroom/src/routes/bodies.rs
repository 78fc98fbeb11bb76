//! Every request body the waiting room reads, by operation, as a function of its raw
//! bytes (issue 20): read as its route reads it, then checked as its handler checks it
//! before Redis or PostgreSQL is asked anything — with keys of this module's own for
//! the fan id's signature and the proof of work, so no made-up body can pass them. The
//! `waitroom_bodies` fuzz target feeds them bytes (a panic, or a proof that takes long
//! to refuse, is the bug it looks for) and CI replays its corpus; the OpenAPI test holds
//! this list to the operations the description gives a request body.

use std::sync::OnceLock;

use secrecy::SecretString;
use uuid::Uuid;

use super::{admin, queue};
use crate::config::PowConfig;
use crate::domain::fan::FanId;
use crate::domain::vouched::FanIdVouching;
use crate::error::{Error, Result};
use crate::pow::Proofs;

/// One operation's body: `Ok` when it would reach Redis.
pub type BodyCheck = fn(&[u8]) -> Result<()>;

/// By `operationId`, as `/openapi.json` names them.
pub const REQUEST_BODIES: [(&str, BodyCheck); 2] = [("join", join), ("put_settings", put_settings)];

const EVENT: Uuid = Uuid::from_u128(0x0195_f3a0_0000_7000_8000_0000_0000_0001);

fn join(bytes: &[u8]) -> Result<()> {
    static VOUCHING: OnceLock<FanIdVouching> = OnceLock::new();
    static PROOFS: OnceLock<Proofs> = OnceLock::new();
    let body = queue::parse_join_body(bytes)?;
    if let Some(fan) = body.fan_id.map(|raw| FanId::parse(&raw)).transpose()? {
        let vouching = VOUCHING.get_or_init(|| FanIdVouching::new(SecretString::from("bodies fan id secret")));
        vouching.verify(EVENT, &fan, body.fan_id_signature.as_deref())?;
    }
    if let Some(proof) = body.pow {
        let config = PowConfig { cost: 100, challenge_ttl_secs: 300, settings_max_age_ms: 1000 };
        let proofs = PROOFS.get_or_init(|| Proofs::new(config, &SecretString::from("bodies ticket secret")));
        proofs.verify(EVENT, &proof).map_err(Error::PowRefused)?;
    }
    Ok(())
}

fn put_settings(bytes: &[u8]) -> Result<()> {
    let body: admin::SettingsBody =
        axum::Json::from_bytes(bytes).map(|axum::Json(body)| body).map_err(|e| Error::BadRequest(e.body_text()))?;
    body.into_settings()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_takes_a_valid_body_and_refuses_one_that_breaks_its_rules() {
        let examples = [
            ("join", "", r#"{"fan_id":"fan-1","fan_id_signature":"00"}"#),
            (
                "put_settings",
                r#"{"admit_rate":50,"max_active":1000,"token_lifetime_secs":600}"#,
                r#"{"admit_rate":0,"max_active":1000,"token_lifetime_secs":600}"#,
            ),
        ];
        assert_eq!(examples.map(|(operation, ..)| operation), REQUEST_BODIES.map(|(operation, _)| operation));
        for ((operation, check), (_, taken, refused)) in REQUEST_BODIES.into_iter().zip(examples) {
            if let Err(e) = check(taken.as_bytes()) {
                panic!("{operation} refused {taken:?}: {e}");
            }
            assert!(check(refused.as_bytes()).is_err(), "{operation} took {refused}");
        }
    }

    #[test]
    fn a_fan_id_signed_with_the_key_passes_and_a_made_up_proof_of_work_does_not() {
        let fan = FanId::parse("fan-1").unwrap();
        let signature = FanIdVouching::new(SecretString::from("bodies fan id secret")).sign(EVENT, &fan);
        let signed = format!(r#"{{"fan_id":"fan-1","fan_id_signature":"{signature}"}}"#);
        assert!(join(signed.as_bytes()).is_ok());
        assert!(matches!(join(br#"{"pow":"eyJ9"}"#), Err(Error::PowRefused(_))));
    }
}
