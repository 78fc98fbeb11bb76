//! What a service answered, read the same way in every service's tests.

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

/// A service's answer: status, headers and JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// `Null` when the body is empty or not JSON.
    pub body: Value,
}

impl Reply {
    /// Sends `request` and reads the whole answer.
    ///
    /// # Panics
    /// When the request does not reach the service at all.
    pub async fn of(request: RequestBuilder) -> Reply {
        let response = request.send().await.expect("the request reaches the service");
        let (status, headers) = (response.status(), response.headers().clone());
        let body = response.json().await.unwrap_or(Value::Null);
        Reply { status, headers, body }
    }

    /// The `code` of the JSON error envelope, `<no error code>` without one.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }
}
