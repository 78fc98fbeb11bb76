//! A join whose body stalls is cut off with a JSON 408, like the gateway's.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_join_whose_body_stalls_is_answered_408_in_the_error_envelope() {
    let app = spawn_app_with(|c| c.http.body_read_timeout_ms = 500).await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/events/{}/queue HTTP/1.1\r\nHost: waitroom\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"fan_id\": ",
        Uuid::now_v7()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection stayed open");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
}
