//! Clients that take too long are cut off: every wait on the request path is bounded.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app_through_proxy_with, spawn_app_with};

/// Reads until the server closes the connection (or `limit` passes); returns what it
/// sent and how long that took.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server kept the connection open for {limit:?}");
    (String::from_utf8_lossy(&received).into_owned(), started.elapsed())
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let app = spawn_app_with(2, |c| c.http.header_read_timeout_ms = 500).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(b"POST /v1/events HTTP/1.1\r\nHost: gateway\r\n").await.unwrap();
    let (_, took) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(400), "closed after {took:?}, before the timeout");
}

#[tokio::test]
async fn a_body_that_stalls_is_answered_408_and_changes_nothing() {
    let app = spawn_app_with(2, |c| c.http.body_read_timeout_ms = 500).await;
    let event = app.ga_event(5).await;
    let token = app.token("fan", &event);
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"quantity\": ",
        event.path("/bookings")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}

/// The last-resort request timeout, shorter here than the database's own deadline:
/// an order that may still commit is `outcome_unknown`, a read `unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_answered_in_time_gets_503_saying_whether_it_may_have_happened() {
    let (app, proxy) = spawn_app_through_proxy_with(2, |c| {
        c.http.request_timeout_ms = 500;
        // Shorter than the request timeout, as the configuration requires.
        c.create_event_timeout_ms = 450;
    })
    .await;
    let event = app.ga_event(5).await;
    let token = app.token("fan", &event);
    proxy.freeze();
    let started = Instant::now();
    let order = app
        .send(
            Method::POST,
            &event.path("/bookings"),
            Some(&token),
            Some(json!({ "section_id": event.sections[0], "quantity": 1 })),
        )
        .await;
    let read = app.send(Method::GET, &event.path(""), None, None).await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    proxy.thaw();
    assert_eq!((order.status, order.code()), (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"), "{}", order.body);
    assert_eq!((read.status, read.code()), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"), "{}", read.body);
}

/// Oversized headers are refused before any route runs: in the error envelope up to
/// hyper's read buffer, past it by hyper itself, which closes the connection.
#[tokio::test]
async fn headers_past_the_limit_are_answered_431() {
    let app = spawn_app_with(2, |_| {}).await;
    let event = app.ga_event(5).await;
    let token = app.token("fan", &event);
    let cookie = "c".repeat(service_kit::serve::MAX_HEADER_BYTES);
    let order = app
        .http
        .post(app.url(&event.path("/bookings")))
        .bearer_auth(&token)
        .header("Cookie", &cookie)
        .json(&json!({ "section_id": event.sections[0], "quantity": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: serde_json::Value = order.json().await.unwrap();
    assert_eq!(body["error"]["code"], "headers_too_large", "{body}");

    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!("GET {} HTTP/1.1\r\nHost: gateway\r\nCookie: {}\r\n\r\n", event.path(""), "c".repeat(1 << 20));
    // hyper may answer and close before it has read everything: a write cut short is fine.
    let _ = stream.write_all(head.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(app.assert_inventory_consistent(&event).await, 0);
}
