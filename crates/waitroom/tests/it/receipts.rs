//! Admission receipts and the published admission log (issue 18): a receipt attests a
//! recorded admission and verifies from the JWKS alone; `scripts/check-admission-log`
//! (Python with only `cryptography`, D11) checks a receipt against the published log
//! and finds a fan who joined later but was let in earlier.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, spawn_app_with, TestApp, RECEIPT_KID};

/// What `scripts/check-admission-log` said of `receipt` against `log` and `jwks`.
fn checked(log: &str, jwks: &Value, receipt: &str) -> test_support::python::Said {
    let dir = std::env::temp_dir().join(format!("admission-log-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log_file, jwks_file) = (dir.join("log.json"), dir.join("jwks.json"));
    std::fs::write(&log_file, log).unwrap();
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check-admission-log");
    let path = |file: &PathBuf| file.to_str().unwrap().to_owned();
    let said = test_support::python::run_with_args(
        &script,
        &["--log", &path(&log_file), "--jwks", &path(&jwks_file), "--receipt", receipt],
        "",
    );
    std::fs::remove_dir_all(&dir).unwrap();
    said
}

async fn receipt(app: &TestApp, event: Uuid, ticket: &str) -> test_support::Reply {
    app.get(&format!("/v1/events/{event}/queue/{ticket}/receipt")).await
}

#[tokio::test]
async fn a_receipt_verifies_from_the_jwks_and_the_check_script_finds_a_planted_overtake() {
    let app = spawn_app().await;
    let event = app.new_event(json!({ "admit_rate": 1000.0, "max_active": 10, "token_lifetime_secs": 600 })).await;
    let mut tickets = vec![];
    for fan in ["fan-a", "fan-b", "fan-c"] {
        tickets.push(app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.admit(event, 3, 25).await, ["fan-a", "fan-b", "fan-c"]);
    let waiting = app.join_ok(event, "fan-still-waiting").await["ticket"].as_str().unwrap().to_owned();

    let unrecorded = receipt(&app, event, &tickets[1]).await;
    assert_eq!((unrecorded.status, unrecorded.code()), (StatusCode::NOT_FOUND, "no_recorded_admission"));
    app.admitter.record_admissions().await.unwrap();
    let reply = receipt(&app, event, &tickets[1]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (signed, says) = (reply.body["receipt"].as_str().unwrap().to_owned(), reply.body["says"].clone());
    assert_eq!(
        (&says["purpose"], &says["kid"], &says["fan_id"], &says["event_id"], &says["pre_queue"]),
        (&json!("boxoffice.admission_receipt"), &json!(RECEIPT_KID), &json!("fan-b"), &json!(event), &json!(false))
    );
    let not_admitted = receipt(&app, event, &waiting).await;
    assert_eq!(not_admitted.code(), "no_recorded_admission");

    let jwks = app.get("/.well-known/jwks.json").await.body;
    let receipt_keys: Vec<&Value> =
        jwks["keys"].as_array().unwrap().iter().filter(|k| k["boxoffice_purpose"] == "admission_receipt").collect();
    assert_eq!(receipt_keys.len(), 1, "{jwks}");
    assert_eq!(receipt_keys[0]["kid"], RECEIPT_KID);

    let path = format!("/v1/admin/events/{event}/waitroom/admission-log");
    let (status, log) = app.admin_get_text(&path).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let parsed: Value = serde_json::from_str(&log).unwrap();
    let scores: Vec<i64> =
        parsed["admissions"].as_array().unwrap().iter().map(|a| a["join_score"].as_i64().unwrap()).collect();
    assert_eq!(scores.len(), 3);
    assert!(scores.windows(2).all(|pair| pair[0] < pair[1]), "admitted in line order: {scores:?}");
    assert!(!log.contains("fan-b"), "fan ids are blinded");

    let honest = checked(&log, &jwks, &signed);
    assert_eq!(honest.code, Some(0), "{} {}", honest.stdout, honest.stderr);
    assert!(honest.stdout.contains("nobody who joined after you was admitted before you"), "{}", honest.stdout);

    let (payload, signature) = signed.split_once('.').unwrap();
    let altered = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
        .replace(&format!("\"join_score\":{}", says["join_score"]), &format!("\"join_score\":{}", scores[2] + 1));
    let tampered = checked(&log, &jwks, &format!("{}.{signature}", URL_SAFE_NO_PAD.encode(altered)));
    assert_eq!(tampered.code, Some(2), "{}", tampered.stdout);
    assert!(tampered.stdout.contains("signature does not verify"), "{}", tampered.stdout);

    // fan-c joined after fan-b; the planted log says fan-c was let in a second earlier.
    let mut planted = parsed.clone();
    let fan_c = &mut planted["admissions"][2];
    fan_c["admitted_at_ms"] = json!(says["admitted_at_ms"].as_i64().unwrap() - 1000);
    let overtaken = checked(&planted.to_string(), &jwks, &signed);
    assert_eq!(overtaken.code, Some(1), "{}", overtaken.stdout);
    let blinded_c = planted["admissions"][2]["fan_blinded"].as_str().unwrap();
    assert!(overtaken.stdout.contains(&format!("overtaken: fan {blinded_c}")), "{}", overtaken.stdout);
}

/// A fan who stopped polling loses their place when their turn comes; the published log
/// shows that place as dropped, and, when the fan queued again and was let in, the check
/// script tells them why their first place did not count.
#[tokio::test]
async fn a_place_dropped_as_abandoned_is_in_the_published_log_and_explained_to_its_fan() {
    let app = spawn_app_with(|c| c.abandon_after_secs = 1).await;
    let event = app.new_event(json!({ "admit_rate": 1000.0, "max_active": 10, "token_lifetime_secs": 600 })).await;
    let alice = app.join_ok(event, "alice").await["ticket"].as_str().unwrap().to_owned();
    app.join_ok(event, "ghost").await;
    let carol = app.join_ok(event, "carol").await["ticket"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for ticket in [&alice, &carol] {
        assert_eq!(app.poll_ok(event, ticket).await["status"], "waiting");
    }
    assert_eq!(app.admit(event, 2, 50).await, ["alice", "carol"]);
    let back = app.join_ok(event, "ghost").await["ticket"].as_str().unwrap().to_owned();
    assert_eq!(app.admit(event, 1, 50).await, ["ghost"]);
    app.admitter.record_admissions().await.unwrap();

    let (status, log) = app.admin_get_text(&format!("/v1/admin/events/{event}/waitroom/admission-log")).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let parsed: Value = serde_json::from_str(&log).unwrap();
    let admitted: Vec<i64> =
        parsed["admissions"].as_array().unwrap().iter().map(|a| a["join_score"].as_i64().unwrap()).collect();
    let skipped = parsed["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{log}");
    let dropped = skipped[0]["join_score"].as_i64().unwrap();
    assert!(admitted[0] < dropped && dropped < admitted[1], "the ghost's first place, between alice and carol: {log}");
    assert_eq!(skipped[0]["pre_queue"], false);
    assert!(!log.contains("ghost"), "fan ids are blinded");

    let reply = receipt(&app, event, &back).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["says"]["fan_blinded"], skipped[0]["fan_blinded"], "one fan, one blinded id");
    let jwks = app.get("/.well-known/jwks.json").await.body;
    let said = checked(&log, &jwks, reply.body["receipt"].as_str().unwrap());
    assert_eq!(said.code, Some(0), "{} {}", said.stdout, said.stderr);
    assert!(said.stdout.contains(&format!("your earlier place (join score {dropped}) was dropped")), "{}", said.stdout);
}

#[tokio::test]
async fn the_admission_log_of_an_unknown_event_is_not_found_and_needs_the_admin_key() {
    let app = spawn_app().await;
    let path = format!("/v1/admin/events/{}/waitroom/admission-log", Uuid::new_v4());
    let (status, body) = app.admin_get_text(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("event_not_found"), "{body}");
    let anonymous = app.get(&path).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{}", anonymous.body);
}
