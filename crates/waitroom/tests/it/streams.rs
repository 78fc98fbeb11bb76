//! Fans' standing pushed over Server-Sent Events (issue 17; issue 18's `sold_out`):
//! read as a browser's `EventSource` reads them, checked against what polls answer.

use std::time::{Duration, Instant};

use access_token::{TokenScope, TokenVerifier};
use reqwest::StatusCode;
use serde_json::Value;
use test_support::sse::EventStream;
use uuid::Uuid;
use waitroom::domain::budget::SaleState;

use crate::helpers::{settings, spawn_app, spawn_app_with, TestApp};

/// Long enough for any tick on a loaded machine; delivery times are measured by the
/// benchmark and the rehearsal (D9), not here.
const GENEROUS: Duration = Duration::from_secs(20);

async fn open(app: &TestApp, event: Uuid, ticket: &str) -> EventStream {
    EventStream::open(app.http.get(format!("{}/v1/events/{event}/queue/{ticket}/stream", app.base))).await
}

/// The next `status` event's standing.
async fn next_status(stream: &mut EventStream) -> Value {
    let event = stream.next_within(GENEROUS).await.expect("the stream stays open");
    assert_eq!(event.event, "status", "{event:?}");
    event.json()
}

/// Statuses until one satisfies `wanted`.
async fn status_until(stream: &mut EventStream, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let status = next_status(stream).await;
        if wanted(&status) {
            return status;
        }
    }
}

async fn line(app: &TestApp, event: Uuid, fans: usize) -> Vec<String> {
    let mut tickets = Vec::new();
    for i in 0..fans {
        tickets.push(app.join_ok(event, &format!("fan-{i}")).await["ticket"].as_str().unwrap().to_owned());
    }
    tickets
}

#[tokio::test]
async fn a_streaming_fan_is_told_their_place_as_the_line_moves_then_their_token_and_the_stream_ends() {
    let app = spawn_app_with(|c| c.stream.tick_ms = 50).await;
    let event = app.new_event(settings(20.0, 100)).await;
    let tickets = line(&app, event, 6).await;
    let mut stream = open(&app, event, &tickets[5]).await;

    let first = next_status(&mut stream).await;
    assert_eq!((first["status"].as_str(), first["position"].as_u64()), (Some("waiting"), Some(6)));
    assert!(first["ticket"].as_str().is_some_and(|ticket| !ticket.is_empty()));

    let admitted = app.admit(event, 2, 50).await;
    assert!(admitted.len() >= 2 && admitted.len() < 6, "{admitted:?}");
    let moved = status_until(&mut stream, |s| s["position"].as_u64() == Some(6 - admitted.len() as u64)).await;
    assert_eq!(moved["status"], "waiting");
    assert_eq!(moved["position"], app.poll_ok(event, &tickets[5]).await["position"], "as a poll says");

    let admitted = app.admit(event, 6, 200).await;
    assert!(admitted.contains(&"fan-5".to_owned()), "{admitted:?}");
    let told = status_until(&mut stream, |s| s["status"] == "admitted").await;
    let token = told["access_token"].as_str().expect("the access token");
    let claims = TokenVerifier::new(&app.public_keys, 0).verify(token).expect("a token the gateway accepts");
    assert_eq!((claims.sub.as_str(), claims.evt, claims.scope), ("fan-5", event, TokenScope::Shop));
    assert_eq!(stream.next_within(GENEROUS).await, None, "nothing more to tell: the stream ends");
}

#[tokio::test]
async fn a_sold_out_show_is_pushed_to_its_line_with_the_waitlist_token() {
    let app = spawn_app_with(|c| {
        c.inventory.shoppers_per_place = 1.0;
        c.stream.tick_ms = 50;
    })
    .await;
    let event = test_support::general_admission_event(&app.db, 2).await.unwrap();
    // A slow line: the fan's own pacing would read them exactly only every 20 s.
    assert_eq!(app.put_settings(event, &settings(0.01, 100)).await.status, StatusCode::OK);
    sqlx::query("UPDATE events SET waitlist_enabled = true WHERE id = $1").bind(event).execute(&app.db).await.unwrap();
    let tickets = line(&app, event, 4).await;
    refresh_until(&app, event, SaleState::OnSale).await;
    let mut stream = open(&app, event, &tickets[3]).await;
    let first = next_status(&mut stream).await;
    assert_eq!((first["sale_state"].as_str(), first["poll_after_secs"].as_u64()), (Some("on_sale"), Some(20)));

    let sold_out_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "UPDATE seats SET state = 'booked', booking_id = gen_random_uuid() WHERE event_id = $1 RETURNING now()",
    )
    .bind(event)
    .fetch_all(&app.db)
    .await
    .unwrap()[0];
    refresh_until(&app, event, SaleState::SoldOut).await;
    let told = status_until(&mut stream, |s| s["sale_state"] == "sold_out").await;
    let told_after = chrono::Utc::now() - sold_out_at;
    assert!(
        told_after < chrono::Duration::seconds(15),
        "told {told_after} after the last sale, not by the pacing read"
    );
    assert_eq!((told["status"].as_str(), told["eta_seconds"].as_u64()), (Some("waiting"), None));
    let token = told["waitlist_token"].as_str().expect("a waitlist token for a fan in line");
    let claims = TokenVerifier::new(&app.public_keys, 0).verify(token).expect("the gateway accepts it");
    assert_eq!((claims.sub.as_str(), claims.scope), ("fan-3", TokenScope::Waitlist));
}

#[tokio::test]
async fn a_fan_who_left_is_told_why_and_the_stream_ends() {
    // The stream reads its fan exactly every third of this: the leaving shows within 2 s.
    let app = spawn_app_with(|c| c.abandon_after_secs = 6).await;
    let event = app.new_event(settings(1.0, 100)).await;
    let tickets = line(&app, event, 1).await;
    let mut stream = open(&app, event, &tickets[0]).await;
    next_status(&mut stream).await;

    assert_eq!(app.leave(event, &tickets[0]).await.status, StatusCode::NO_CONTENT);
    // Ticks may move the estimate meanwhile; the next exact read finds the fan gone.
    let ended = loop {
        let event = stream.next_within(GENEROUS).await.expect("an error event");
        if event.event != "status" {
            break event;
        }
    };
    assert_eq!((ended.event.as_str(), ended.json()["error"]["code"].as_str()), ("error", Some("not_in_queue")));
    assert_eq!(stream.next_within(GENEROUS).await, None);
}

#[tokio::test]
async fn a_connected_stream_keeps_its_fan_from_being_skipped_as_gone() {
    let app = spawn_app_with(|c| c.abandon_after_secs = 3).await;
    // No admitter runs until the test steps it.
    let event = app.new_event(settings(1000.0, 100)).await;
    let tickets = line(&app, event, 2).await;
    let mut stream = open(&app, event, &tickets[1]).await;
    next_status(&mut stream).await;

    // Longer than the abandonment timeout, with no poll: only the stream is there.
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        let _ = tokio::time::timeout(quiet_until - Instant::now(), stream.next_within(GENEROUS)).await;
    }
    let admitted = app.admit(event, 1, 50).await;
    assert_eq!(admitted, ["fan-1"], "the silent fan-0 was skipped, the streaming fan-1 was not");
}

#[tokio::test]
async fn a_stream_is_refused_as_a_poll_would_be() {
    let app = spawn_app().await;
    let event = app.new_event(settings(1.0, 100)).await;
    let malformed = app.get(&format!("/v1/events/{event}/queue/not-a-ticket/stream")).await;
    assert_eq!((malformed.status, malformed.code()), (StatusCode::BAD_REQUEST, "malformed_ticket"));
}

async fn refresh_until(app: &TestApp, event: Uuid, state: SaleState) {
    let started = Instant::now();
    loop {
        app.inventory.refresh(event).await.unwrap();
        if app.inventory.sale_state(event) == Some(state) {
            return;
        }
        assert!(started.elapsed() < GENEROUS, "the sale never read {state:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
