//! Check-in: scanner keys, every scan answered clearly, exactly once under concurrency,
//! offline batches with the earliest scan winning, and the organizer's counts.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{count, spawn_app, spawn_app_with, ticket_public_keys, ADMIN_KEY};
use crate::tickets::{book, scan, scanner_key, secret, tickets, tickets_path};

#[tokio::test]
async fn first_scan_is_valid_and_records_gate_and_time_then_already_checked_in_says_when_and_where() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let ticket = tickets(&app, &event, "fan", &booking).await.remove(0);
    let key = scanner_key(&app, &event).await;

    let first = scan(&app, &event, &key, &secret(&ticket), "North 1").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(
        (&first.body["result"], &first.body["gate"], &first.body["label"]),
        (&json!("valid"), &json!("North 1"), &json!("1"))
    );
    let second = scan(&app, &event, &key, &secret(&ticket), "South 2").await;
    assert_eq!(second.body["result"], "already_checked_in", "{}", second.body);
    assert_eq!(
        (&second.body["gate"], &second.body["checked_in_at"]),
        (&json!("North 1"), &first.body["checked_in_at"])
    );
    let shown = tickets(&app, &event, "fan", &booking).await.remove(0);
    assert_eq!((&shown["status"], &shown["gate"]), (&json!("checked_in"), &json!("North 1")));
}

#[tokio::test]
async fn a_replica_with_only_the_public_ticket_key_checks_tickets_in_and_shows_none() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let ticket = tickets(&app, &event, "fan", &booking).await.remove(0);
    let key = scanner_key(&app, &event).await;
    let gate_replica = app.another_replica_with_ticket_keys(Some(ticket_public_keys())).await;
    let keyless_replica = app.another_replica_with_ticket_keys(None).await;

    let refused = scan(&keyless_replica, &event, &key, &secret(&ticket), "North 1").await;
    assert_eq!((refused.status, refused.code()), (StatusCode::SERVICE_UNAVAILABLE, "tickets_unavailable"));
    let first = scan(&gate_replica, &event, &key, &secret(&ticket), "North 1").await;
    assert_eq!((first.status, &first.body["result"]), (StatusCode::OK, &json!("valid")), "{}", first.body);
    let again = scan(&gate_replica, &event, &key, &secret(&ticket), "North 2").await;
    assert_eq!(again.body["result"], "already_checked_in", "{}", again.body);
    // One bit of the signature flipped: replacing its last character instead left the
    // secret unchanged whenever that character was already the replacement.
    let mut forged = URL_SAFE_NO_PAD.decode(secret(&ticket)).unwrap();
    *forged.last_mut().unwrap() ^= 1;
    let forged = scan(&gate_replica, &event, &key, &URL_SAFE_NO_PAD.encode(forged), "North 1").await;
    assert_eq!(forged.body["result"], "invalid", "{}", forged.body);

    // Nothing signed without the private key: no secret shown, no feed signed; the
    // published keys are the public ones it holds.
    let shown = gate_replica
        .send(Method::GET, &tickets_path(&event, &booking), Some(&gate_replica.token("fan", &event)), None)
        .await;
    assert_eq!((shown.status, shown.code()), (StatusCode::SERVICE_UNAVAILABLE, "tickets_unavailable"));
    let feed = gate_replica.send(Method::GET, &event.path("/tickets/revocations"), Some(&key), None).await;
    assert_eq!((feed.status, feed.code()), (StatusCode::SERVICE_UNAVAILABLE, "tickets_unavailable"));
    let jwks = gate_replica.send(Method::GET, "/.well-known/jwks.json", None, None).await.body;
    let ticket_kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["boxoffice_purpose"] == "ticket")
        .map(|k| &k["kid"])
        .collect();
    assert_eq!(ticket_kids, [&json!("tickets-test")]);
}

#[tokio::test]
async fn the_same_ticket_scanned_at_many_gates_at_once_is_valid_exactly_once() {
    let app = spawn_app().await;
    let event = app.numbered_event(1).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let secret = secret(&tickets(&app, &event, "fan", &booking).await[0]);
    let key = scanner_key(&app, &event).await;

    let scans: Vec<_> =
        (0..16).map(|gate| tokio::spawn(scan(&app, &event, &key, &secret, &format!("gate {gate}")))).collect();
    let mut results = Vec::new();
    for scan in scans {
        let reply = scan.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        results.push(reply.body);
    }
    let valid: Vec<_> = results.iter().filter(|r| r["result"] == "valid").collect();
    assert_eq!(valid.len(), 1, "{results:?}");
    let winner = &valid[0]["gate"];
    assert!(
        results
            .iter()
            .filter(|r| r["result"] != "valid")
            .all(|r| r["result"] == "already_checked_in" && &r["gate"] == winner),
        "{results:?}"
    );
    assert_eq!(count(&app.pool, "SELECT count(*) FROM checkins WHERE event_id = $1", event.id).await, 1);
}

#[tokio::test]
async fn any_bytes_scanned_get_a_clear_answer_never_a_500() {
    let app = spawn_app().await;
    let event = app.numbered_event(2).await;
    let other = app.numbered_event(1).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1"] })).await;
    let elsewhere = book(&app, &other, "fan", json!({ "seats": ["1"] })).await;
    let good = secret(&tickets(&app, &event, "fan", &booking).await[0]);
    let foreign = secret(&tickets(&app, &other, "fan", &elsewhere).await[0]);
    let key = scanner_key(&app, &event).await;

    let wrong = scan(&app, &event, &key, &foreign, "A").await;
    assert_eq!((&wrong.body["result"], &wrong.body["event_id"]), (&json!("wrong_event"), &json!(other.id)));

    let mut rng = rand::rngs::StdRng::seed_from_u64(16);
    let bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
    let mut inputs: Vec<String> =
        vec![String::new(), " ".into(), "\u{0}".into(), "null".into(), "A".repeat(5000), "é✓🎫".into()];
    inputs.extend((0..good.len()).step_by(7).map(|end| good[..end].to_owned()));
    for _ in 0..60 {
        let mut changed = bytes.clone();
        let at = rng.gen_range(0..changed.len());
        changed[at] ^= rng.gen_range(1..=255u8);
        inputs.push(URL_SAFE_NO_PAD.encode(&changed));
        let junk: Vec<u8> = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect();
        inputs.push(URL_SAFE_NO_PAD.encode(&junk));
        inputs.push(String::from_utf8_lossy(&junk).into_owned());
    }
    for input in &inputs {
        let reply = scan(&app, &event, &key, input, "A").await;
        assert_eq!(reply.status, StatusCode::OK, "{input:?}: {}", reply.body);
        assert_eq!(reply.body["result"], "invalid", "{input:?}: {}", reply.body);
        assert!(reply.body["reason"].is_string());
    }
    // Bodies that are not a scan are the input's fault, said in the error envelope.
    for body in [
        json!({}),
        json!({ "secret": 1, "gate": "A" }),
        json!({ "secret": good, "gate": "" }),
        json!({ "secret": good, "gate": "x".repeat(101) }),
    ] {
        let reply = app.send(Method::POST, &event.path("/checkins"), Some(&key), Some(body.clone())).await;
        assert!(reply.status.is_client_error(), "{body}: {} {}", reply.status, reply.body);
        assert!(reply.body["error"]["code"].is_string(), "{}", reply.body);
    }
    assert_eq!(count(&app.pool, "SELECT count(*) FROM checkins WHERE event_id = $1", event.id).await, 0);
    // Scanner keys only, and only the event's own.
    assert_eq!(scan(&app, &event, "bosk_made-up", &good, "A").await.code(), "invalid_scanner_key");
    assert_eq!(scan(&app, &event, ADMIN_KEY, &good, "A").await.code(), "invalid_scanner_key");
    let other_key = scanner_key(&app, &other).await;
    assert_eq!(scan(&app, &event, &other_key, &good, "A").await.status, StatusCode::FORBIDDEN);
    assert_eq!(scan(&app, &event, &key, &good, "A").await.body["result"], "valid");
}

#[tokio::test]
async fn offline_scans_merge_with_the_earliest_scan_winning() {
    let app = spawn_app().await;
    let event = app.numbered_event(3).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2"] })).await;
    let all = tickets(&app, &event, "fan", &booking).await;
    let (one, two) = (secret(&all[0]), secret(&all[1]));
    let key = scanner_key(&app, &event).await;
    // Ticket one was checked in online just now; an offline gate scanned it earlier.
    assert_eq!(scan(&app, &event, &key, &one, "online").await.body["result"], "valid");

    let early = chrono::Utc::now() - chrono::Duration::minutes(10);
    let later = early + chrono::Duration::minutes(1);
    let batch = json!({ "scans": [
        { "secret": one, "gate": "offline A", "scanned_at": early },
        { "secret": two, "gate": "offline B", "scanned_at": later },
        { "secret": two, "gate": "offline C", "scanned_at": later + chrono::Duration::minutes(1) },
        { "secret": "junk", "gate": "offline C", "scanned_at": later },
    ] });
    let reply = app.send(Method::POST, &event.path("/checkins/batch"), Some(&key), Some(batch.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let results: Vec<&str> =
        reply.body["results"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["valid", "valid", "already_checked_in", "invalid"]);
    let winners: Vec<(String, bool)> =
        sqlx::query_as("SELECT gate, offline FROM checkins WHERE event_id = $1 ORDER BY scanned_at")
            .bind(event.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(winners, [("offline A".to_owned(), true), ("offline B".to_owned(), true)]);
    // The same upload again changes nothing.
    let again = app.send(Method::POST, &event.path("/checkins/batch"), Some(&key), Some(batch)).await;
    let results: Vec<&str> =
        again.body["results"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["already_checked_in", "already_checked_in", "already_checked_in", "invalid"]);
    // A scan in the future is refused.
    let future = json!({ "scans": [{ "secret": one, "gate": "A", "scanned_at": chrono::Utc::now() + chrono::Duration::hours(1) }] });
    let refused = app.send(Method::POST, &event.path("/checkins/batch"), Some(&key), Some(future)).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_scanned_at"));
}

#[tokio::test]
async fn the_organizer_counts_checked_in_against_sold_by_section_and_the_metric_counts_scans() {
    let app = spawn_app().await;
    let event = app.numbered_event(5).await;
    let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2", "3"] })).await;
    let key = scanner_key(&app, &event).await;
    let ticket = &tickets(&app, &event, "fan", &booking).await[0];
    scan(&app, &event, &key, &secret(ticket), "A").await;

    let path = format!("/v1/admin/events/{}/checkins", event.id);
    let counts = app.send(Method::GET, &path, Some(ADMIN_KEY), None).await;
    assert_eq!(counts.status, StatusCode::OK, "{}", counts.body);
    assert_eq!((&counts.body["sold"], &counts.body["checked_in"]), (&json!(3), &json!(1)));
    assert_eq!(
        (&counts.body["sections"][0]["sold"], &counts.body["sections"][0]["checked_in"]),
        (&json!(3), &json!(1))
    );
    assert_eq!(
        app.send(Method::GET, &path, Some(&key), None).await.code(),
        "admin_key_required",
        "scanner keys cannot read it"
    );

    let text = app.http.get(app.management_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.lines().any(|l| l.starts_with(r#"boxoffice_gateway_checkins_total{result="valid"}"#)), "{text}");
}

/// A scanner key found live is taken from the replica's copy for as long as an event's
/// rules (one round trip per scan, not two): revoked in the database, it still opens
/// scans there until the copy ends, and is refused once it has.
#[tokio::test]
async fn a_scanner_key_is_kept_as_long_as_an_events_rules_then_read_again() {
    for (max_age_ms, after_revoking) in [(60_000, StatusCode::OK), (1, StatusCode::UNAUTHORIZED)] {
        let app = spawn_app_with(4, |c| c.event_rules_max_age_ms = max_age_ms).await;
        let event = app.numbered_event(2).await;
        let booking = book(&app, &event, "fan", json!({ "seats": ["1", "2"] })).await;
        let mut tickets = tickets(&app, &event, "fan", &booking).await;
        let key = scanner_key(&app, &event).await;
        let first = scan(&app, &event, &key, &secret(&tickets.remove(0)), "North 1").await;
        assert_eq!((first.status, &first.body["result"]), (StatusCode::OK, &json!("valid")), "{}", first.body);

        sqlx::query("UPDATE scanner_keys SET revoked_at = now() WHERE event_id = $1")
            .bind(event.id)
            .execute(&app.pool)
            .await
            .unwrap();
        // Past a 1 ms copy's end; well within a minute's.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = scan(&app, &event, &key, &secret(&tickets.remove(0)), "North 1").await;

        assert_eq!(second.status, after_revoking, "event_rules_max_age_ms {max_age_ms}: {}", second.body);
    }
}
