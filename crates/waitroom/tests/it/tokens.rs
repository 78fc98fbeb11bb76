use std::time::Duration;

use access_token::{KeyPair, TokenError, TokenVerifier};
use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{base64_url, settings, spawn_app, KID};

#[tokio::test]
async fn a_waitroom_token_is_accepted_by_the_gateway_verifier_for_its_event_only() {
    let app = spawn_app().await;
    let event = app.new_event(settings(100.0, 10)).await;
    let other_event = app.new_event(settings(100.0, 10)).await;
    let joined = app.join_ok(event, "alice").await;
    assert_eq!(app.admit(event, 1, 50).await, ["alice"]);

    let polled = app.poll_ok(event, joined["ticket"].as_str().unwrap()).await;
    assert_eq!(polled["status"], "admitted");
    let token = polled["access_token"].as_str().unwrap();

    let jwks: Value =
        app.http.get(format!("{}/.well-known/jwks.json", app.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], KID);
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    let verifier = TokenVerifier::new(&app.public_keys, 0);
    let claims = verifier.verify(token).expect("the gateway accepts the token");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.evt, event);
    assert_ne!(claims.evt, other_event, "the gateway's event check refuses it for another event");
    let lifetime = claims.exp - Utc::now().timestamp();
    assert!((598..=600).contains(&lifetime), "the token lasts as long as the admission: {lifetime}");

    let (header_and_payload, signature) = token.rsplit_once('.').unwrap();
    let (header, _) = header_and_payload.split_once('.').unwrap();
    let forged_payload = base64_url(serde_json::to_vec(&json!({ "sub": "mallory", "evt": event })).unwrap());
    assert!(verifier.verify(&format!("{header}.{forged_payload}.{signature}")).is_err());
    let mut flipped = signature.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{header_and_payload}.{}", String::from_utf8(flipped).unwrap());
    assert_eq!(verifier.verify(&tampered), Err(TokenError::BadSignature));

    let stranger = TokenVerifier::new(&[KeyPair::generate("other").unwrap().public_key()], 0);
    assert_eq!(stranger.verify(token), Err(TokenError::UnknownKey));
}

#[tokio::test]
async fn a_token_expires_with_its_admission() {
    let app = spawn_app().await;
    let event = app.new_event(json!({ "admit_rate": 100.0, "max_active": 1, "token_lifetime_secs": 1 })).await;
    let joined = app.join_ok(event, "alice").await;
    let ticket = joined["ticket"].as_str().unwrap();
    assert_eq!(app.admit(event, 1, 50).await, ["alice"]);
    let token = app.poll_ok(event, ticket).await["access_token"].as_str().unwrap().to_owned();

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let verifier = TokenVerifier::new(&app.public_keys, 0);
    assert_eq!(verifier.verify(&token), Err(TokenError::Expired));
    assert_eq!(app.poll(event, ticket).await.status, reqwest::StatusCode::NOT_FOUND, "the admission is over");
    assert_eq!(app.stats(event).await["active"], 0, "and frees its place");
}

#[tokio::test]
async fn an_admission_has_one_token_however_often_the_fan_polls() {
    let app = spawn_app().await;
    let event = app.new_event(settings(100.0, 10)).await;
    let ticket = app.join_ok(event, "alice").await["ticket"].as_str().unwrap().to_owned();
    let before = Utc::now().timestamp();
    assert_eq!(app.admit(event, 1, 50).await, ["alice"]);

    let mut tokens = Vec::new();
    for _ in 0..3 {
        let polled = app.poll_ok(event, &ticket).await;
        tokens.push((polled["access_token"].as_str().unwrap().to_owned(), polled["access_token_expires_at"].clone()));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert_eq!(tokens[1], tokens[0], "the same token on every poll");
    assert_eq!(tokens[2], tokens[0]);
    let claims = TokenVerifier::new(&app.public_keys, 0).verify(&tokens[0].0).unwrap();
    assert!((before..=before + 1).contains(&claims.iat), "valid from the admission: {} vs {before}", claims.iat);
    assert_eq!(claims.nbf, claims.iat);
}
