use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use waitroom::domain::shuffle;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_pre_queue_is_shuffled_by_the_published_seed_and_precedes_later_arrivals() {
    let app = spawn_app().await;
    let opens_at = Utc::now() + chrono::Duration::milliseconds(2500);
    // Paused, so positions are read before anyone is admitted; opening happens anyway.
    let event = app
        .new_event(json!({
            "admit_rate": 100.0, "max_active": 1000, "token_lifetime_secs": 600,
            "opens_at": opens_at, "state": "paused",
        }))
        .await;
    let before = app.public_event(event).await;
    assert_eq!(before["seed"], Value::Null, "the seed is secret before opening");
    let commitment = before["seed_sha256"].as_str().unwrap().to_owned();

    let mut early: Vec<String> = (0..201).map(|i| format!("early-{i:03}")).collect();
    let mut tickets = Vec::new();
    for fan in &early {
        let joined = app.join_ok(event, fan).await;
        assert_eq!(joined["status"], "pre_queue", "{fan} joined before opening");
        assert_eq!(joined["position"], Value::Null);
        assert_eq!(joined["poll_after_secs"], 2, "the sale opens within seconds: poll often");
        tickets.push(joined["ticket"].as_str().unwrap().to_owned());
    }
    let rejoined = app.join_ok(event, &early[7]).await;
    assert_eq!(rejoined["status"], "pre_queue", "a second join changes nothing");
    assert_eq!(app.stats(event).await["queue_length"], 201);
    let quitter = tickets.remove(200);
    assert_eq!(app.leave(event, &quitter).await.status, 204);
    early.pop();
    let before_opening = app.admitter.step(event).await.unwrap();
    assert_eq!(before_opening.admitted.len(), 0);
    assert!(!before_opening.room.sale_opened);
    assert!(Utc::now() < opens_at, "the test joined everyone before opening");

    let wait = (opens_at - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(100);
    tokio::time::sleep(wait).await;
    let late: Vec<String> = (0..20).map(|i| format!("late-{i:02}")).collect();
    for fan in &late {
        let joined = app.join_ok(event, fan).await;
        assert_eq!(joined["status"], "waiting");
        tickets.push(joined["ticket"].as_str().unwrap().to_owned());
    }
    let opening = app.admitter.step(event).await.unwrap();
    assert!(opening.room.sale_opened, "the first step after the opening time opens the sale");
    assert_eq!(opening.room.queue_length, 220, "opening moved nobody out of line");
    assert!(!app.admitter.step(event).await.unwrap().room.sale_opened, "and only once");

    let mut by_position = vec![String::new(); early.len() + late.len()];
    for ticket in &tickets {
        let polled = app.poll_ok(event, ticket).await;
        assert_eq!(polled["status"], "waiting");
        let position = polled["position"].as_u64().unwrap() as usize;
        by_position[position - 1] = polled["fan_id"].as_str().unwrap().to_owned();
    }
    let (shuffled, after) = by_position.split_at(early.len());
    assert_eq!(after, late, "later arrivals follow the whole pre-queue, first come first served");
    assert_ne!(shuffled, early, "the pre-queue is not in join order (odds of a fluke: 1 in 200!)");

    let after_opening = app.public_event(event).await;
    assert!(after_opening["opened_at"].is_string());
    let seed = after_opening["seed"].as_str().expect("the seed is published after opening");
    assert_eq!(hex::encode(Sha256::digest(seed.as_bytes())), commitment, "the seed matches its commitment");
    assert_eq!(shuffled, shuffle::order(seed, &early), "anyone can recompute the order from the seed");
}
