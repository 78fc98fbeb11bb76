use reqwest::{Method, StatusCode};
use std::time::Duration;

use access_token::{AccessClaims, KeyPair, TokenSigner};
use serde_json::json;
use test_support::{unix_now, TestKeys};
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_reloading_keys, TestApp};

#[tokio::test]
async fn booking_without_a_valid_token_for_this_event_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let other = app.numbered_event(3).await;
    let stranger = TestKeys::new();
    let attacks = Attacks::on(&app, event.id);
    let cases: Vec<(Option<String>, StatusCode, &str)> = vec![
        (None, StatusCode::UNAUTHORIZED, "missing_token"),
        (Some("not-a-jwt".into()), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(app.keys.expired_token("fan", event.id)), StatusCode::UNAUTHORIZED, "token_expired"),
        (Some(stranger.token("fan", event.id)), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(app.keys.token("fan", other.id)), StatusCode::FORBIDDEN, "token_for_other_event"),
        (Some(attacks.alg_none), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(attacks.hs256_with_the_public_key), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(attacks.another_fan_in_a_signed_token), StatusCode::UNAUTHORIZED, "invalid_token"),
        (Some(attacks.oversized), StatusCode::UNAUTHORIZED, "invalid_token"),
    ];
    for (token, status, code) in cases {
        let reply =
            app.send(Method::POST, &event.path("/bookings"), token.as_deref(), Some(json!({ "seats": ["1"] }))).await;
        assert_eq!(reply.status, status, "{code}: {}", reply.body);
        assert_eq!(reply.code(), code);
    }
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

#[tokio::test]
async fn a_valid_token_books() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let reply = app.book(&event, "fan-1", json!({ "seats": ["2"] })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["seats"][0]["label"], "2");
    assert_eq!(reply.body["total"], json!({ "amount_minor": 0, "currency": "EUR" }));
}

/// Tokens an attacker makes from what is public (the JWKS) or from a fan's own token.
struct Attacks {
    /// The claims with `"alg":"none"` and no signature, naming the real key id.
    alg_none: String,
    /// HS256 keyed with the real public key's PEM (algorithm confusion).
    hs256_with_the_public_key: String,
    /// A fan's genuine token with its payload swapped for another fan's claims.
    another_fan_in_a_signed_token: String,
    /// A genuine token with 16 KiB appended.
    oversized: String,
}

impl Attacks {
    fn on(app: &TestApp, event: Uuid) -> Self {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let kid = app.keys.pair.kid.clone();
        let claims = AccessClaims::new("fan", event, unix_now(), 300);
        let payload = b64(&serde_json::to_vec(&claims).unwrap());
        let none_header = b64(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#).as_bytes());
        let mut hs256 = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        hs256.kid = Some(kid);
        let public_pem = jsonwebtoken::EncodingKey::from_secret(app.keys.pair.public_pem().as_bytes());
        let genuine = app.keys.token("fan", event);
        let parts: Vec<&str> = genuine.split('.').collect();
        let someone_else = serde_json::to_vec(&AccessClaims::new("someone-else", event, unix_now(), 300)).unwrap();
        Self {
            alg_none: format!("{none_header}.{payload}."),
            hs256_with_the_public_key: jsonwebtoken::encode(&hs256, &claims, &public_pem).unwrap(),
            another_fan_in_a_signed_token: format!("{}.{}.{}", parts[0], b64(&someone_else), parts[2]),
            oversized: format!("{genuine}{}", "A".repeat(16 * 1024)),
        }
    }
}

fn signed_by(pair: &KeyPair, fan: &str, event: Uuid) -> String {
    TokenSigner::new(pair).sign(&AccessClaims::new(fan, event, unix_now(), 300))
}

async fn my_bookings(app: &TestApp, event: Uuid, token: &str) -> test_support::Reply {
    app.send(Method::GET, &format!("/v1/events/{event}/bookings"), Some(token), None).await
}

/// Rotation without a restart: publish the new public key, sign with it, remove the old
/// public key. A replica trusts the new key within a reload, keeps the removed one for
/// the tokens it signed, and keeps its verified-token cache.
#[tokio::test]
async fn keys_added_to_the_directory_are_trusted_without_a_restart_and_removed_ones_kept_for_their_tokens() {
    let dir = std::env::temp_dir().join(format!("bo-gateway-keys-{}", Uuid::new_v4()));
    let old = TestKeys::new();
    old.pair.write_to_dir(&dir).unwrap();
    let app = spawn_app_reloading_keys(old, &dir, Duration::from_millis(100)).await;
    let event = app.numbered_event(3).await.id;
    let cached = signed_by(&app.keys.pair, "fan-1", event);
    assert_eq!(my_bookings(&app, event, &cached).await.status, StatusCode::OK);

    let new = KeyPair::generate("next").unwrap();
    new.write_to_dir(&dir).unwrap();
    std::fs::remove_file(dir.join("test.public.pem")).unwrap();
    let rotated = signed_by(&new, "fan-2", event);
    let started = tokio::time::Instant::now();
    loop {
        let reply = my_bookings(&app, event, &rotated).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the new key is still not trusted: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(my_bookings(&app, event, &cached).await.status, StatusCode::OK, "a cached token of the old key");
    let fresh = signed_by(&app.keys.pair, "fan-3", event);
    assert_eq!(my_bookings(&app, event, &fresh).await.status, StatusCode::OK, "the removed key is kept for its tokens");
    std::fs::remove_dir_all(dir).unwrap();
}
