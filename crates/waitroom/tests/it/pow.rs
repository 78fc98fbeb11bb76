//! Proof of work at the door (issue 18): an event whose organizer set a
//! `pow_difficulty` lets a fan join only with the solution of a fresh challenge it
//! signed for that event, used once; missing, malformed, wrong, foreign, expired and
//! replayed proofs are refused with their own codes.

use std::time::Duration;

use altcha::{Challenge, Payload, SolveChallengeOptions};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};
use test_support::Reply;
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};

async fn event_with_pow(app: &TestApp, difficulty: Option<u32>) -> Uuid {
    let mut settings = json!({ "admit_rate": 10.0, "max_active": 10, "token_lifetime_secs": 600 });
    if let Some(difficulty) = difficulty {
        settings["pow_difficulty"] = json!(difficulty);
    }
    app.new_event(settings).await
}

async fn challenge(app: &TestApp, event: Uuid) -> Reply {
    app.get(&format!("/v1/events/{event}/queue/challenge")).await
}

/// A fresh challenge of the event, solved as a fan's browser would.
async fn solved(app: &TestApp, event: Uuid) -> Payload {
    let reply = challenge(app, event).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let challenge: Challenge = serde_json::from_value(reply.body).unwrap();
    let solution = altcha::solve_challenge(SolveChallengeOptions::new(&challenge)).unwrap().expect("solved in time");
    Payload { challenge, solution }
}

fn encoded(payload: &Payload) -> String {
    STANDARD.encode(serde_json::to_vec(payload).unwrap())
}

async fn join(app: &TestApp, event: Uuid, fan: &str, pow: Option<&str>) -> Reply {
    let mut body = json!({ "fan_id": fan });
    if let Some(pow) = pow {
        body["pow"] = json!(pow);
    }
    app.post_json(&format!("/v1/events/{event}/queue"), &body).await
}

fn outcome(reply: &Reply) -> (StatusCode, &str) {
    (reply.status, reply.code())
}

#[tokio::test]
async fn a_join_needs_a_fresh_unused_solution_of_this_events_challenge() {
    let app = spawn_app_with(|c| {
        c.pow.cost = 1;
        c.pow.challenge_ttl_secs = 1;
    })
    .await;
    let event = event_with_pow(&app, Some(64)).await;
    let other = event_with_pow(&app, Some(64)).await;
    assert_eq!(app.public_event(event).await["pow_difficulty"], 64);

    assert_eq!(outcome(&join(&app, event, "fan-a", None).await), (StatusCode::FORBIDDEN, "pow_required"));
    assert_eq!(
        outcome(&join(&app, event, "fan-a", Some("not base64!")).await),
        (StatusCode::BAD_REQUEST, "pow_malformed")
    );

    let proof = solved(&app, event).await;
    let mut wrong = proof.clone();
    wrong.solution.counter += 1;
    wrong.solution.derived_key = "00".repeat(32);
    assert_eq!(
        outcome(&join(&app, event, "fan-a", Some(&encoded(&wrong))).await),
        (StatusCode::FORBIDDEN, "pow_invalid")
    );
    let foreign = solved(&app, other).await;
    assert_eq!(
        outcome(&join(&app, event, "fan-a", Some(&encoded(&foreign))).await),
        (StatusCode::FORBIDDEN, "pow_invalid"),
        "a challenge of another event"
    );

    let joined = join(&app, event, "fan-a", Some(&encoded(&proof))).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    let again = join(&app, event, "fan-a", Some(&encoded(&proof))).await;
    assert_eq!(again.status, StatusCode::OK, "the same fan's retried join: {}", again.body);
    assert_eq!(
        outcome(&join(&app, event, "fan-b", Some(&encoded(&proof))).await),
        (StatusCode::CONFLICT, "pow_replayed")
    );

    let late = solved(&app, event).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        outcome(&join(&app, event, "fan-c", Some(&encoded(&late))).await),
        (StatusCode::FORBIDDEN, "pow_expired")
    );
    let stats = app.stats(event).await;
    assert_eq!(stats["queue_length"], 1, "only fan-a got in line: {stats}");
}

#[tokio::test]
async fn an_event_without_proof_of_work_takes_joins_as_before_and_has_no_challenge() {
    let app = spawn_app_with(|_| {}).await;
    let event = event_with_pow(&app, None).await;
    assert_eq!(app.public_event(event).await.get("pow_difficulty"), None::<&Value>);
    assert_eq!(outcome(&challenge(&app, event).await), (StatusCode::NOT_FOUND, "pow_not_required"));
    assert_eq!(join(&app, event, "fan-a", None).await.status, StatusCode::CREATED);
    assert_eq!(outcome(&challenge(&app, Uuid::new_v4()).await), (StatusCode::NOT_FOUND, "event_not_found"));
    let refused = app
        .put_settings(
            event,
            &json!({ "admit_rate": 10.0, "max_active": 10, "token_lifetime_secs": 600, "pow_difficulty": 0 }),
        )
        .await;
    assert_eq!(outcome(&refused), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings"));
}

#[tokio::test]
async fn an_events_difficulty_survives_redis_losing_the_event() {
    let app = spawn_app_with(|_| {}).await;
    let event = event_with_pow(&app, Some(64)).await;
    let mut redis = app.redis.clone();
    let keys = waitroom::store::keys::EventKeys::new(&app.prefix, event).script_keys();
    let _: () = redis::AsyncCommands::del(&mut redis, &keys[..]).await.unwrap();
    let first = join(&app, event, "fan-a", None).await;
    assert_eq!(
        outcome(&first),
        (StatusCode::FORBIDDEN, "pow_required"),
        "the join rebuilt the event, difficulty and all"
    );
    let rebuilt = app.stats(event).await;
    assert!(rebuilt["restored_at"].is_string(), "rebuilt: {rebuilt}");
    assert_eq!(app.public_event(event).await["pow_difficulty"], 64, "from PostgreSQL's record");
}
