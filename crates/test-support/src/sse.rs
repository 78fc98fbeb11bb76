//! A client of a Server-Sent Events stream, reading events as a browser's
//! `EventSource` does (comments skipped, `data:` lines joined), for every service's
//! stream tests.

use std::time::Duration;

use reqwest::StatusCode;

/// One event as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEvent {
    /// `message` when the event names none.
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl ServerEvent {
    /// The data as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Sends `request` and checks it opened a stream.
    ///
    /// # Panics
    /// If the answer is not `200 text/event-stream`.
    pub async fn open(request: reqwest::RequestBuilder) -> Self {
        let response = request.send().await.expect("the stream answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self { response, buffer: String::new() }
    }

    /// The next event within `within`; None when the stream ended.
    ///
    /// # Panics
    /// If none arrives in time, or the connection breaks.
    pub async fn next_within(&mut self, within: Duration) -> Option<ServerEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout(within, self.response.chunk()).await.expect("an event in time");
            let chunk = chunk.expect("the stream stays readable")?;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

/// One block of lines; None for a block of comments only (a keep-alive).
fn parse(block: &str) -> Option<ServerEvent> {
    let (mut event, mut id, mut data, mut any) = (None, None, Vec::new(), false);
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => continue,
        }
        any = true;
    }
    any.then(|| ServerEvent { event: event.unwrap_or_else(|| "message".into()), id, data: data.join("\n") })
}
