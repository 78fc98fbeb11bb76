//! A closed event leaves the admitter's set and its Redis keys expire; PostgreSQL keeps
//! what it needs, so a request after they are gone still gets the closed event's answer.

use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;
use waitroom::store::keys::EventKeys;

use crate::helpers::{indexed, spawn_app, ttls_of, TestApp};

fn settings(state: &str) -> serde_json::Value {
    json!({ "admit_rate": 100.0, "max_active": 1, "token_lifetime_secs": 600, "state": state })
}

/// An event with every key in use: fans waiting and seen, one admitted.
async fn busy_event(app: &TestApp) -> Uuid {
    busy_event_with_tickets(app).await.0
}

/// [`busy_event`], with the tickets its three fans joined with.
async fn busy_event_with_tickets(app: &TestApp) -> (Uuid, Vec<String>) {
    let event_id = app.new_event(settings("running")).await;
    let mut tickets = Vec::new();
    for fan in ["fan-1", "fan-2", "fan-3"] {
        tickets.push(app.join_ok(event_id, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    assert_eq!(app.admit(event_id, 1, 50).await.len(), 1);
    let ttls = ttls_of(app, event_id).await;
    assert!(ttls.iter().all(|(_, ttl)| *ttl == -1), "every key there, none expiring: {ttls:?}");
    assert!(indexed(app, event_id).await);
    (event_id, tickets)
}

#[tokio::test]
async fn closing_an_event_takes_it_out_of_the_admitters_set_and_expires_all_its_keys() {
    let app = spawn_app().await;
    let event_id = busy_event(&app).await;

    assert_eq!(app.put_settings(event_id, &settings("closed")).await.status, StatusCode::OK);
    assert!(!indexed(&app, event_id).await, "a closed event is not stepped");
    let day = 24 * 3600;
    let ttls = ttls_of(&app, event_id).await;
    assert!(ttls.iter().all(|(_, ttl)| (day - 60..=day).contains(ttl)), "a day's retention: {ttls:?}");

    // Reopened, it is stepped again and kept.
    assert_eq!(app.put_settings(event_id, &settings("running")).await.status, StatusCode::OK);
    assert!(indexed(&app, event_id).await);
    let ttls = ttls_of(&app, event_id).await;
    assert!(ttls.iter().all(|(_, ttl)| *ttl == -1), "kept again: {ttls:?}");
}

#[tokio::test]
async fn a_closed_event_whose_keys_expired_still_refuses_joins_and_expires_again() {
    let app = spawn_app().await;
    let event_id = busy_event(&app).await;
    assert_eq!(app.put_settings(event_id, &settings("closed")).await.status, StatusCode::OK);

    // What the retention does, without waiting a day.
    let mut redis = app.redis.clone();
    let _: () = redis.del(EventKeys::new(&app.prefix, event_id).script_keys().to_vec()).await.unwrap();
    let refused = app.join(event_id, Some("fan-late")).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::CONFLICT, "event_closed"), "{}", refused.body);
    assert_eq!(app.public_event(event_id).await["state"], "closed");

    // Rebuilt from PostgreSQL to answer, it expires again and is not stepped.
    assert!(!indexed(&app, event_id).await, "not back in the admitter's set");
    let ttls = ttls_of(&app, event_id).await;
    assert!(ttls.iter().all(|(_, ttl)| *ttl == -2 || *ttl > 0), "nothing kept forever: {ttls:?}");
    assert!(ttls[0].1 > 0, "the rebuilt settings expire: {ttls:?}");
}

#[tokio::test]
async fn polls_of_a_closed_event_whose_keys_expired_create_no_key_that_lives_forever() {
    let app = spawn_app().await;
    let (event_id, tickets) = busy_event_with_tickets(&app).await;
    assert_eq!(app.put_settings(event_id, &settings("closed")).await.status, StatusCode::OK);
    let mut redis = app.redis.clone();
    let _: () = redis.del(EventKeys::new(&app.prefix, event_id).script_keys().to_vec()).await.unwrap();

    // The admitted fan still is (PostgreSQL's record); the two still in line when it
    // closed come back with their tickets, and the rebuilt event has no line to put them
    // back in. Nothing any of them does outlives the retention.
    assert_eq!(app.poll_ok(event_id, &tickets[0]).await["status"], "admitted");
    for ticket in &tickets[1..] {
        let polled = app.poll(event_id, ticket).await;
        assert_eq!((polled.status, polled.code()), (StatusCode::CONFLICT, "queue_reset"), "{}", polled.body);
    }
    let ttls = ttls_of(&app, event_id).await;
    assert!(ttls.iter().all(|(_, ttl)| *ttl == -2 || *ttl > 0), "nothing kept forever: {ttls:?}");
}
