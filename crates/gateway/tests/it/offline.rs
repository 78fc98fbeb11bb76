//! A ticket secret verified from outside our code (DECISIONS.md D11): a Python script
//! using only the `cryptography` package reads the published JWKS and the secret, as an
//! offline scanner would, and follows the README's byte layout.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::spawn_app;
use crate::tickets::{book, secret, tickets};

/// Runs `tests/python/verify_ticket.py`: `Ok(what it read)` or `Err(why not)`.
fn verified_by_python(jwks: &Value, secret: &str, event_id: &str) -> Result<String, String> {
    let now = test_support::unix_now();
    let request = json!({ "jwks": jwks, "secret": secret, "event_id": event_id, "now": now });
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/verify_ticket.py");
    let said = test_support::python::run(&script, &request.to_string());
    match said.code {
        Some(0) if said.stdout.starts_with("verified ") => Ok(said.stdout),
        Some(1) if said.stdout.starts_with("rejected: ") => Err(said.stdout),
        _ => panic!("verify_ticket.py failed: {} {}", said.stdout, said.stderr),
    }
}

#[tokio::test]
async fn a_python_script_with_only_cryptography_verifies_a_ticket_from_the_jwks_and_refuses_forgeries() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["2"] })).await;
    let ticket = tickets(&app, &event, "fan", &booking).await.remove(0);
    let genuine = secret(&ticket);
    let jwks = app.send(Method::GET, "/.well-known/jwks.json", None, None).await.body;
    let mut bytes = URL_SAFE_NO_PAD.decode(&genuine).unwrap();
    let place_number_at = bytes.len() - 64 - 1 - 1 - 4;
    bytes[place_number_at + 3] ^= 1; // seat 2 claims to be seat 3
    let forged = URL_SAFE_NO_PAD.encode(&bytes);
    let other_key = json!({ "keys": [access_token::KeyPair::generate(jwks["keys"][0]["kid"].as_str().unwrap())
        .unwrap().public_key().jwk_for("ticket")] });
    let event_id = event.id.to_string();

    let (read, tampered, wrong_key, wrong_event) = tokio::task::spawn_blocking(move || {
        (
            verified_by_python(&jwks, &genuine, &event_id),
            verified_by_python(&jwks, &forged, &event_id),
            verified_by_python(&other_key, &genuine, &event_id),
            verified_by_python(&jwks, &genuine, &uuid::Uuid::nil().to_string()),
        )
    })
    .await
    .unwrap();

    assert_eq!(read, Ok(format!("verified {} 1 seat 2 2", ticket["id"].as_str().unwrap())));
    assert!(tampered.as_ref().is_err_and(|e| e.contains("InvalidSignature")), "{tampered:?}");
    assert!(wrong_key.as_ref().is_err_and(|e| e.contains("InvalidSignature")), "{wrong_key:?}");
    assert!(wrong_event.as_ref().is_err_and(|e| e.contains("a ticket of event")), "{wrong_event:?}");
}
