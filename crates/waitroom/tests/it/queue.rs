use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::Reply;
use uuid::Uuid;

use crate::helpers::{base64_decode, base64_url, settings, spawn_app, spawn_app_with, ADMIN_KEY};

#[tokio::test]
async fn double_join_keeps_one_place_and_one_ticket() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 10)).await;

    let first = app.join(event, Some("alice")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let first = first.body;
    app.join_ok(event, "bob").await;
    let again = app.join(event, Some("alice")).await;
    assert_eq!(again.status, StatusCode::OK, "a repeated join creates nothing");
    let again = again.body;

    assert_eq!(again["position"], 1);
    for ticket in [&first["ticket"], &again["ticket"]] {
        let polled = app.poll_ok(event, ticket.as_str().unwrap()).await;
        assert_eq!((polled["fan_id"].as_str(), polled["position"].as_u64()), (Some("alice"), Some(1)));
    }
    assert_eq!(again["queue_length"], 2);
    assert_eq!(again["status"], "waiting");
    assert!(again["eta_seconds"].as_u64().is_some());
}

#[tokio::test]
async fn fans_far_back_are_asked_to_poll_less_often_than_the_front() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 10)).await;
    let mut answers = Vec::new();
    for i in 0..100 {
        answers.push(app.join_ok(event, &format!("fan-{i:03}")).await);
    }
    let poll_after = |i: usize| answers[i]["poll_after_secs"].as_u64().expect("a waiting fan is told when to poll");
    // One admission a second, abandonment after 60 s (the test config).
    assert_eq!(poll_after(0), 2, "the front polls often");
    assert_eq!(poll_after(39), 10, "40 s from the front: a quarter of that");
    assert_eq!(poll_after(99), 20, "the back: a third of the abandonment timeout, no more");

    assert_eq!(app.admit(event, 1, 50).await, ["fan-000"]);
    let admitted = app.poll_ok(event, answers[0]["ticket"].as_str().unwrap()).await;
    assert_eq!(admitted["status"], "admitted");
    assert_eq!(admitted.get("poll_after_secs"), None, "nothing left to poll for");
}

#[tokio::test]
async fn a_fan_without_an_id_is_issued_one() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 10)).await;

    let response = app.join(event, None).await;
    assert_eq!(response.status, StatusCode::CREATED);
    let joined = response.body;
    let fan_id = joined["fan_id"].as_str().unwrap();
    assert!(Uuid::parse_str(fan_id).is_ok());
    let polled = app.poll_ok(event, joined["ticket"].as_str().unwrap()).await;
    assert_eq!(polled["fan_id"], fan_id);
    assert_eq!(polled["position"], 1);
}

#[tokio::test]
async fn leave_and_rejoin_goes_to_the_back() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 10)).await;
    let alice = app.join_ok(event, "alice").await;
    let bob = app.join_ok(event, "bob").await;
    let alice_ticket = alice["ticket"].as_str().unwrap();

    assert_eq!(app.leave(event, alice_ticket).await.status, StatusCode::NO_CONTENT);
    let gone = app.poll(event, alice_ticket).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "not_in_queue");
    assert_eq!(app.leave(event, alice_ticket).await.status, StatusCode::NOT_FOUND, "leaving twice");
    assert_eq!(app.poll_ok(event, bob["ticket"].as_str().unwrap()).await["position"], 1);

    let rejoined = app.join(event, Some("alice")).await;
    assert_eq!(rejoined.status, StatusCode::CREATED);
    let rejoined = rejoined.body;
    assert_eq!(rejoined["position"], 2);
    assert_eq!(app.poll_ok(event, alice_ticket).await["position"], 2, "an old ticket finds the fan's new place");
}

#[tokio::test]
async fn forged_and_malformed_tickets_are_rejected_with_json_errors() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 10)).await;
    let other_event = app.new_event(settings(1.0, 10)).await;
    let alice = app.join_ok(event, "alice").await;
    let ticket = alice["ticket"].as_str().unwrap();

    for garbage in ["garbage", "a.b.c", "%00", ".", &"x".repeat(5000)] {
        let response = app.poll(event, garbage).await;
        assert!(
            matches!(response.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
            "{garbage:?}: {}",
            response.status
        );
        assert!(response.body["error"]["code"].is_string(), "{garbage:?} answers the JSON envelope: {}", response.body);
    }
    assert_eq!(app.poll(event, "garbage").await.code(), "malformed_ticket");

    // Another fan's id under alice's MAC.
    let (payload, tag) = ticket.strip_prefix("v2.").unwrap().split_once('.').unwrap();
    let mut payload = base64_decode(payload);
    payload.truncate(payload.len() - "alice".len());
    payload.extend_from_slice(b"mallory");
    let mallory = format!("v2.{}.{tag}", base64_url(payload));
    let forged = app.poll(event, &mallory).await;
    assert_eq!(forged.status, StatusCode::NOT_FOUND);
    assert_eq!(forged.code(), "ticket_not_found");
    assert_eq!(app.leave(event, &mallory).await.status, StatusCode::NOT_FOUND);

    // A genuine ticket replayed on another event's queue.
    let replayed = app.poll(other_event, ticket).await;
    assert_eq!(replayed.status, StatusCode::NOT_FOUND);
    assert_eq!(replayed.code(), "ticket_not_found");

    // A flipped character in the MAC.
    let mut bytes = ticket.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_eq!(app.poll(event, &tampered).await.status, StatusCode::NOT_FOUND);

    assert_eq!(app.poll_ok(event, ticket).await["position"], 1, "the real ticket still works");
}

#[tokio::test]
async fn unknown_events_are_404_and_closed_events_refuse_new_joins_with_409() {
    let app = spawn_app().await;
    let unknown = app.join(Uuid::new_v4(), Some("alice")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "event_not_found");

    let event = app.new_event(settings(1.0, 10)).await;
    let alice = app.join_ok(event, "alice").await;
    let mut closed = settings(1.0, 10);
    closed["state"] = json!("closed");
    assert_eq!(app.put_settings(event, &closed).await.status, StatusCode::OK);

    let refused = app.join(event, Some("bob")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "event_closed");
    let polled = app.poll_ok(event, alice["ticket"].as_str().unwrap()).await;
    assert_eq!(polled["event_state"], "closed");
    assert_eq!(polled["eta_seconds"], Value::Null);
}

#[tokio::test]
async fn a_paused_event_keeps_its_queue_but_admits_nobody_until_resumed() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1000.0, 100)).await;
    let paused = app.admin_post(event, "pause").await;
    assert_eq!(paused.status, StatusCode::OK);
    assert_eq!(paused.body["state"], "paused");

    let mut tickets = Vec::new();
    for fan in ["a", "b", "c"] {
        let joined = app.join_ok(event, fan).await;
        assert_eq!(joined["status"], "waiting", "joining a paused event is allowed");
        assert_eq!(joined["eta_seconds"], Value::Null, "no honest ETA while paused");
        tickets.push(joined["ticket"].as_str().unwrap().to_owned());
    }
    assert!(app.admit(event, 1, 10).await.is_empty(), "paused: nobody admitted");
    assert_eq!(app.stats(event).await["admitted_total"], 0);

    assert_eq!(app.admin_post(event, "resume").await.status, StatusCode::OK);
    assert_eq!(app.admit(event, 3, 50).await, ["a", "b", "c"]);
    for ticket in &tickets {
        assert_eq!(app.poll_ok(event, ticket).await["status"], "admitted");
    }
}

#[tokio::test]
async fn joins_over_the_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.join_limit_per_address = waitroom::RateLimit { per_second: 1, burst: 3 };
    })
    .await;
    let event = app.new_event(settings(1.0, 10)).await;
    for i in 0..3 {
        assert!(app.join(event, Some(&format!("fan-{i}"))).await.status.is_success());
    }
    let limited = app.join(event, Some("fan-4")).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    assert_eq!(limited.code(), "rate_limited");

    let app = spawn_app_with(|c| {
        c.join_limit_per_fan = waitroom::RateLimit { per_second: 1, burst: 2 };
    })
    .await;
    let event = app.new_event(settings(1.0, 10)).await;
    app.join_ok(event, "eager").await;
    app.join_ok(event, "eager").await;
    assert_eq!(app.join(event, Some("eager")).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(app.join(event, Some("calm")).await.status.is_success(), "other fans are not affected");
}

#[tokio::test]
async fn organizer_endpoints_require_the_admin_key_and_valid_settings() {
    let app = spawn_app().await;
    let event = Uuid::new_v4();
    let url = format!("{}/v1/admin/events/{event}/waitroom", app.base);
    let anonymous = Reply::of(app.http.put(&url).json(&settings(1.0, 10))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let wrong = Reply::of(app.http.get(&url).bearer_auth("not-the-admin-key-at-all")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = Reply::of(app.http.get(&url).bearer_auth(ADMIN_KEY)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let invalid = app.put_settings(event, &settings(0.0, 10)).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(invalid.code(), "invalid_settings");
    let typo = app.put_settings(event, &json!({ "admit_rte": 1 })).await;
    assert_eq!(typo.status, StatusCode::BAD_REQUEST);

    let fractional = app.put_settings(event, &settings(0.25, 10)).await;
    assert_eq!(fractional.status, StatusCode::OK);
    let view = fractional.body;
    assert_eq!(view["admit_rate"], 0.25);
    assert_eq!(view["seed"], Value::Null, "the seed stays secret until opening");
    assert_eq!(view["seed_sha256"].as_str().unwrap().len(), 64);
}

/// With a fan-id secret, nobody can join under a fan's own id without the organizer's
/// signature for that fan and that event: their place and token cannot be taken.
#[tokio::test]
async fn with_a_fan_id_secret_only_vouched_client_ids_may_join() {
    const SECRET: &str = "the-organizers-fan-id-secret-0123456789";
    let app = spawn_app_with(|c| c.fan_id_secret = Some(SECRET.into())).await;
    let (event, other_event) = (app.new_event(settings(1.0, 10)).await, app.new_event(settings(1.0, 10)).await);
    let sign = |event: Uuid, fan: &str| {
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        hmac::Mac::update(&mut mac, format!("boxoffice-fan-id-v1:{event}:{fan}").as_bytes());
        hex::encode(hmac::Mac::finalize(mac).into_bytes())
    };
    let join = |fan: &str, signature: Option<String>| {
        let body = json!({ "fan_id": fan, "fan_id_signature": signature });
        Reply::of(app.http.post(format!("{}/v1/events/{event}/queue", app.base)).json(&body))
    };

    for (attempt, signature) in [
        ("unsigned", None),
        ("signed for another fan", Some(sign(event, "mallory"))),
        ("signed for another event", Some(sign(other_event, "alice"))),
        ("garbage", Some("zz".to_owned())),
    ] {
        let refused = join("alice", signature).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{attempt}");
        assert_eq!(refused.code(), "fan_id_not_vouched", "{attempt}");
    }
    assert_eq!(app.stats(event).await["queue_length"], 0, "refused joins changed nothing");

    let vouched = join("alice", Some(sign(event, "alice"))).await;
    assert_eq!(vouched.status, StatusCode::CREATED);
    let issued = app.join(event, None).await;
    assert_eq!(issued.status, StatusCode::CREATED, "fans without an id of their own get one issued");
    assert_eq!(app.stats(event).await["queue_length"], 2);
}

/// Without a fan-id secret nothing vouches for an id the client chose: anyone could join
/// as another fan and, once admitted, take their access token. Outside development only
/// issued ids are taken.
#[tokio::test]
async fn without_a_fan_id_secret_a_client_chosen_id_is_refused_and_yields_no_ticket_or_token() {
    let app = spawn_app_with(|c| (c.fan_id_secret, c.deployment.development) = (None, false)).await;
    let event = app.new_event(settings(1000.0, 10)).await;

    let refused = app.join(event, Some("alice")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.code(), "fan_id_not_vouched");
    assert_eq!(refused.body.get("ticket"), None, "no ticket: {}", refused.body);
    assert_eq!(app.stats(event).await["queue_length"], 0, "nobody joined");
    assert!(app.admit(event, 1, 3).await.is_empty(), "nobody to admit, so no token for alice");

    let issued = app.join(event, None).await;
    assert_eq!(issued.status, StatusCode::CREATED, "an issued id still joins: {}", issued.body);
    let fan = issued.body["fan_id"].as_str().unwrap().to_owned();
    assert_eq!(app.admit(event, 1, 50).await, std::slice::from_ref(&fan));
    let admitted = app.poll_ok(event, issued.body["ticket"].as_str().unwrap()).await;
    assert_eq!((admitted["status"].as_str(), admitted["fan_id"].as_str()), (Some("admitted"), Some(fan.as_str())));
    assert!(admitted["access_token"].is_string());
}

/// The development switch keeps the old convenience: a client-chosen id is taken as
/// given, ticket and token included.
#[tokio::test]
async fn in_development_a_client_chosen_id_joins_without_a_secret() {
    let app = spawn_app_with(|c| (c.fan_id_secret, c.deployment.development) = (None, true)).await;
    let event = app.new_event(settings(1000.0, 10)).await;

    let joined = app.join(event, Some("alice")).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    assert_eq!(app.admit(event, 1, 50).await, ["alice"]);
    let admitted = app.poll_ok(event, joined.body["ticket"].as_str().unwrap()).await;
    assert_eq!(admitted["status"], "admitted");
    assert!(admitted["access_token"].is_string());
}
