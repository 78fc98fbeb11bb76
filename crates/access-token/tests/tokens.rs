use access_token::{AccessClaims, KeyPair, TokenError, TokenSigner, TokenVerifier};
use base64::Engine;
use uuid::Uuid;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct Keys {
    pair: KeyPair,
    signer: TokenSigner,
    verifier: TokenVerifier,
}

fn keys() -> Keys {
    let pair = KeyPair::generate("k1").unwrap();
    let signer = TokenSigner::new(&pair);
    let verifier = TokenVerifier::new(&[pair.public_key()], 0);
    Keys { pair, signer, verifier }
}

#[test]
fn a_signed_token_verifies_and_keeps_its_claims() {
    let k = keys();
    let claims = AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300);
    let token = k.signer.sign(&claims);
    assert_eq!(k.verifier.verify(&token).unwrap(), claims);
}

#[test]
fn one_admission_gives_one_token_on_every_replica() {
    let k = keys();
    let replica = TokenSigner::new(&k.pair);
    let event = Uuid::new_v4();
    let (admitted_at_ms, expires_at_ms) = (now() * 1000 - 1_500, now() * 1000 + 600_250);
    let claims = AccessClaims::for_admission("fan-1", event, admitted_at_ms, expires_at_ms);
    let token = k.signer.sign(&claims);
    assert_eq!(replica.sign(&AccessClaims::for_admission("fan-1", event, admitted_at_ms, expires_at_ms)), token);
    let verified = k.verifier.verify(&token).unwrap();
    assert_eq!(
        (verified.iat, verified.nbf, verified.exp),
        (admitted_at_ms / 1000, admitted_at_ms / 1000, expires_at_ms / 1000)
    );
    // The next admission of the same fan (a later expiry), or another fan's: other ids.
    let later = AccessClaims::for_admission("fan-1", event, admitted_at_ms, expires_at_ms + 1);
    let other_fan = AccessClaims::for_admission("fan-2", event, admitted_at_ms, expires_at_ms);
    assert_ne!(later.jti, claims.jti);
    assert_ne!(other_fan.jti, claims.jti);
}

#[test]
fn alg_none_is_rejected() {
    let k = keys();
    let claims = AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300);
    let header = b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
    let payload = b64(&serde_json::to_vec(&claims).unwrap());
    let token = format!("{header}.{payload}.");
    assert!(matches!(k.verifier.verify(&token), Err(TokenError::WrongAlgorithm | TokenError::Malformed)));
}

#[test]
fn an_hmac_token_keyed_with_the_public_key_is_rejected() {
    let k = keys();
    let claims = AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let forged =
        jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(k.pair.public_pem().as_bytes()))
            .unwrap();
    assert_eq!(k.verifier.verify(&forged), Err(TokenError::WrongAlgorithm));
}

#[test]
fn a_token_signed_by_another_key_with_the_same_kid_is_rejected() {
    let k = keys();
    let impostor = TokenSigner::new(&KeyPair::generate("k1").unwrap());
    let token = impostor.sign(&AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300));
    assert_eq!(k.verifier.verify(&token), Err(TokenError::BadSignature));
}

#[test]
fn a_token_with_an_unknown_kid_is_rejected() {
    let k = keys();
    let other = TokenSigner::new(&KeyPair::generate("k2").unwrap());
    let token = other.sign(&AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300));
    assert_eq!(k.verifier.verify(&token), Err(TokenError::UnknownKey));
}

#[test]
fn rotated_keys_are_chosen_by_kid() {
    let old = KeyPair::generate("2026-10").unwrap();
    let new = KeyPair::generate("2026-11").unwrap();
    let verifier = TokenVerifier::new(&[old.public_key(), new.public_key()], 0);
    for pair in [&old, &new] {
        let token = TokenSigner::new(pair).sign(&AccessClaims::new("fan", Uuid::new_v4(), now(), 60));
        assert!(verifier.verify(&token).is_ok(), "token of {} must verify", pair.kid);
    }
}

#[test]
fn an_expired_token_is_rejected() {
    let k = keys();
    let token = k.signer.sign(&AccessClaims::new("fan-1", Uuid::new_v4(), now() - 600, 300));
    assert_eq!(k.verifier.verify(&token), Err(TokenError::Expired));
}

#[test]
fn a_token_not_valid_yet_is_rejected() {
    let k = keys();
    let token = k.signer.sign(&AccessClaims::new("fan-1", Uuid::new_v4(), now() + 600, 300));
    assert_eq!(k.verifier.verify(&token), Err(TokenError::NotYetValid));
}

#[test]
fn a_tampered_payload_is_rejected() {
    let k = keys();
    let token = k.signer.sign(&AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300));
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let mut claims = AccessClaims::new("fan-2", Uuid::new_v4(), now(), 300);
    claims.exp += 10_000;
    parts[1] = b64(&serde_json::to_vec(&claims).unwrap());
    assert_eq!(k.verifier.verify(&parts.join(".")), Err(TokenError::BadSignature));
}

/// Verified tokens are remembered; the memory must never accept what a full check would not.
#[test]
fn a_remembered_token_still_expires_and_its_tampered_copies_are_still_refused() {
    let k = keys();
    let claims = AccessClaims::new("fan-1", Uuid::new_v4(), now(), 1);
    let token = k.signer.sign(&claims);
    assert_eq!(k.verifier.verify(&token).unwrap(), claims);
    assert_eq!(k.verifier.verify(&token).unwrap(), claims, "a second use of the same token");

    let (header, rest) = token.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let forged = AccessClaims { sub: "mallory".into(), ..claims.clone() };
    let tampered = format!("{header}.{}.{signature}", b64(&serde_json::to_vec(&forged).unwrap()));
    assert_eq!(k.verifier.verify(&tampered), Err(TokenError::BadSignature), "same signature, other claims");

    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(k.verifier.verify(&token), Err(TokenError::Expired), "remembered, but expired");
    assert_eq!(k.verifier.clone().verify(&token), Err(TokenError::Expired), "clones share the memory");
}

#[test]
fn a_token_from_another_issuer_is_rejected() {
    let k = keys();
    let mut claims = AccessClaims::new("fan-1", Uuid::new_v4(), now(), 300);
    claims.iss = "someone-else".into();
    assert_eq!(k.verifier.verify(&k.signer.sign(&claims)), Err(TokenError::WrongIssuer));
}

#[test]
fn garbage_is_malformed() {
    let k = keys();
    for junk in ["", "abc", "a.b.c", "Bearer x.y.z"] {
        assert_eq!(k.verifier.verify(junk), Err(TokenError::Malformed), "{junk:?}");
    }
}

#[test]
fn key_files_round_trip_through_a_directory() {
    let dir = std::env::temp_dir().join(format!("bo-keys-{}", Uuid::new_v4()));
    let pair = KeyPair::generate("dev").unwrap();
    let (private, _) = pair.write_to_dir(&dir).unwrap();
    let loaded = KeyPair::read_private(&private).unwrap();
    let public = access_token::keys::read_public_keys(&dir).unwrap();
    let token = TokenSigner::new(&loaded).sign(&AccessClaims::new("fan", Uuid::new_v4(), now(), 60));
    assert!(TokenVerifier::new(&public, 0).verify(&token).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_reload_trusts_new_keys_keeps_removed_ones_for_a_while_and_keeps_verified_tokens() {
    let old = KeyPair::generate("old").unwrap();
    let new = KeyPair::generate("new").unwrap();
    let verifier = TokenVerifier::new(&[old.public_key()], 0);
    let sign = |pair: &KeyPair| TokenSigner::new(pair).sign(&AccessClaims::new("fan", Uuid::new_v4(), now(), 60));
    let cached = sign(&old);
    assert!(verifier.verify(&cached).is_ok());
    let rotated = sign(&new);
    assert_eq!(verifier.verify(&rotated), Err(TokenError::UnknownKey));

    let changes = verifier.clone().reload(&[new.public_key()], std::time::Duration::from_secs(3600));
    assert_eq!((changes.added, changes.removed), (vec!["new".to_owned()], vec!["old".to_owned()]));
    assert!(verifier.verify(&rotated).is_ok(), "clones share the keys");
    assert!(verifier.verify(&sign(&old)).is_ok(), "a removed key is kept for its tokens");
    assert!(verifier.reload(&[new.public_key()], std::time::Duration::ZERO).is_empty(), "nothing changed");

    let forgetful = TokenVerifier::new(&[old.public_key()], 0);
    assert!(forgetful.verify(&cached).is_ok());
    let changes = forgetful.reload(&[new.public_key()], std::time::Duration::ZERO);
    assert_eq!((changes.removed, changes.dropped), (vec!["old".to_owned()], vec!["old".to_owned()]));
    assert_eq!(forgetful.verify(&sign(&old)), Err(TokenError::UnknownKey), "dropped after its time");
    assert!(forgetful.verify(&cached).is_ok(), "the verified-token cache survives reloads");

    let reissued = KeyPair::generate("new").unwrap();
    assert_eq!(forgetful.reload(&[reissued.public_key()], std::time::Duration::ZERO).replaced, ["new"]);
    assert_eq!(forgetful.verify(&sign(&new)), Err(TokenError::BadSignature), "the kid's key was replaced");
}
