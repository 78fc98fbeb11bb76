//! `Stripe-Signature` verification: `t=<unix secs>,v1=<hex>[,v1=<hex>…]`, where each
//! `v1` is HMAC-SHA256 keyed with the whole `whsec_…` secret over `"{t}.{raw body}"`.
//!
//! Any `v1` under any of the secrets passes (Stripe sends one per active secret while a
//! secret is rolled; we may hold the old and the new). Compared in constant time
//! (`verify_slice`). The timestamp must be within the tolerance on both sides of now:
//! older is a replay, and one from the future is as suspicious (Stripe's libraries only
//! check the past; a receiver with a sane clock loses nothing by checking both).

use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Stripe's default tolerance.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    MissingHeader,
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1,
    #[error("the signature's timestamp is older than the tolerance")]
    Stale,
    #[error("the signature's timestamp is in the future beyond the tolerance")]
    Future,
    #[error("no signature matches the payload under any secret")]
    Mismatch,
}

/// Checks `header` (the `Stripe-Signature` value; empty when absent) against `payload`,
/// the raw body exactly as received, with any of `secrets`, at `now` (unix seconds).
pub fn verify_signature(
    payload: &[u8],
    header: &str,
    secrets: &[SecretString],
    tolerance: Duration,
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(SignatureError::MissingHeader);
    }
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for item in header.split(',') {
        let Some((key, value)) = item.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            // A v1 that is not hex cannot match; skip it as Stripe's libraries do, so one
            // odd value does not hide a good one.
            "v1" => {
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            // v0 (test mode's old scheme) and future schemes: ignored.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if !header.split(',').any(|item| item.trim().starts_with("v1=")) {
        return Err(SignatureError::NoV1);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if timestamp < now.saturating_sub(tolerance) {
        return Err(SignatureError::Stale);
    }
    if timestamp > now.saturating_add(tolerance) {
        return Err(SignatureError::Future);
    }
    let signed_prefix = format!("{timestamp}.");
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            continue;
        };
        mac.update(signed_prefix.as_bytes());
        mac.update(payload);
        for signature in &signatures {
            if mac.clone().verify_slice(signature).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// The header a sender would write: for tests and for the recipe in the README.
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return format!("t={timestamp}");
    };
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(payload);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    fn secrets(list: &[&str]) -> Vec<SecretString> {
        list.iter().map(|s| SecretString::from(s.to_string())).collect()
    }

    fn verify(header: &str, with: &[&str], now: i64) -> Result<(), SignatureError> {
        verify_signature(BODY, header, &secrets(with), DEFAULT_TOLERANCE, now)
    }

    #[test]
    fn a_signature_made_with_stripes_recipe_verifies() {
        let header = sign(BODY, "whsec_a", NOW);
        assert_eq!(verify(&header, &["whsec_a"], NOW), Ok(()));
        // Computed apart with Python: hmac.new(b"whsec_test", b"1700000000.{}", sha256).
        assert_eq!(
            sign(b"{}", "whsec_test", NOW),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }

    #[test]
    fn a_tampered_body_is_a_mismatch() {
        let header = sign(BODY, "whsec_a", NOW);
        let tampered = br#"{"id":"evt_1","type":"payment_intent.succeeded" }"#;
        assert_eq!(
            verify_signature(tampered, &header, &secrets(&["whsec_a"]), DEFAULT_TOLERANCE, NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        assert_eq!(verify(&sign(BODY, "whsec_a", NOW), &["whsec_b"], NOW), Err(SignatureError::Mismatch));
        assert_eq!(verify(&sign(BODY, "whsec_a", NOW), &[], NOW), Err(SignatureError::Mismatch));
    }

    #[test]
    fn any_of_several_secrets_verifies_during_rotation() {
        assert_eq!(verify(&sign(BODY, "whsec_old", NOW), &["whsec_new", "whsec_old"], NOW), Ok(()));
        assert_eq!(verify(&sign(BODY, "whsec_new", NOW), &["whsec_new", "whsec_old"], NOW), Ok(()));
    }

    #[test]
    fn any_of_several_v1_values_verifies() {
        let good = sign(BODY, "whsec_a", NOW);
        let good_v1 = good.split(",v1=").nth(1).unwrap_or_default();
        let header = format!("t={NOW},v1={},v1={good_v1},v0=abc", "00".repeat(32));
        assert_eq!(verify(&header, &["whsec_a"], NOW), Ok(()));
        let not_hex = format!("t={NOW},v1=zz,v1={good_v1}");
        assert_eq!(verify(&not_hex, &["whsec_a"], NOW), Ok(()));
    }

    #[test]
    fn timestamps_exactly_at_the_tolerance_pass_and_beyond_it_fail() {
        let header = sign(BODY, "whsec_a", NOW);
        assert_eq!(verify(&header, &["whsec_a"], NOW + 300), Ok(()));
        assert_eq!(verify(&header, &["whsec_a"], NOW + 301), Err(SignatureError::Stale));
        assert_eq!(verify(&header, &["whsec_a"], NOW - 300), Ok(()));
        assert_eq!(verify(&header, &["whsec_a"], NOW - 301), Err(SignatureError::Future));
    }

    #[test]
    fn a_stale_timestamp_fails_even_with_a_valid_signature() {
        let old = sign(BODY, "whsec_a", NOW - 3600);
        assert_eq!(verify(&old, &["whsec_a"], NOW), Err(SignatureError::Stale));
    }

    #[test]
    fn malformed_headers_are_named() {
        assert_eq!(verify("", &["whsec_a"], NOW), Err(SignatureError::MissingHeader));
        assert_eq!(verify("garbage", &["whsec_a"], NOW), Err(SignatureError::Malformed));
        assert_eq!(verify("v1=abcd", &["whsec_a"], NOW), Err(SignatureError::Malformed));
        assert_eq!(verify("t=soon,v1=abcd", &["whsec_a"], NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(&format!("t={NOW},t={NOW},v1=00"), &["whsec_a"], NOW), Err(SignatureError::Malformed));
        assert_eq!(verify(&format!("t={NOW},v0=abcd"), &["whsec_a"], NOW), Err(SignatureError::NoV1));
        assert_eq!(verify(&format!("t={},v1=00", i64::MAX), &["whsec_a"], NOW), Err(SignatureError::Future));
        assert_eq!(verify(&format!("t={},v1=00", i64::MIN), &["whsec_a"], NOW), Err(SignatureError::Stale));
    }
}
