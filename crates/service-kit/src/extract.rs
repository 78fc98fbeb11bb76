//! Axum's extractors with their rejections answered in the JSON error envelope: a body,
//! path or query that cannot be read gets `400 bad_request` saying why, before any
//! handler runs (`408 request_timeout` for a body that arrives too slowly, `413
//! payload_too_large` for one past axum's limit of 2 MB).

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error_response;
use crate::invalid::shortened;

/// How much of a parser's complaint is repeated: it may quote the caller's value whole
/// (serde's `invalid type: string "…"`), which can be megabytes.
const MESSAGE_CHARS: usize = 300;

/// Why a request could not be read.
#[derive(Debug)]
pub enum BadRequest {
    Malformed(String),
    /// The body did not arrive within `http.body_read_timeout_ms`.
    BodyTooSlow,
    /// The body is longer than axum's `DefaultBodyLimit`.
    TooLarge,
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        match self {
            Self::Malformed(message) => {
                error_response(StatusCode::BAD_REQUEST, "bad_request", shortened(&message, MESSAGE_CHARS))
            }
            Self::TooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this service accepts",
            ),
            Self::BodyTooSlow => error_response(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time",
            ),
        }
    }
}

impl From<JsonRejection> for BadRequest {
    fn from(rejection: JsonRejection) -> Self {
        if body_timed_out(&rejection) {
            return Self::BodyTooSlow;
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::TooLarge;
        }
        Self::Malformed(format!("invalid JSON body: {}", rejection.body_text()))
    }
}

impl From<BytesRejection> for BadRequest {
    fn from(rejection: BytesRejection) -> Self {
        if body_timed_out(&rejection) {
            return Self::BodyTooSlow;
        }
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::TooLarge;
        }
        Self::Malformed(format!("unreadable body: {}", rejection.body_text()))
    }
}

/// Whether reading the body failed because it arrived too slowly.
fn body_timed_out(rejection: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(rejection);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

impl From<PathRejection> for BadRequest {
    fn from(rejection: PathRejection) -> Self {
        Self::Malformed(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<QueryRejection> for BadRequest {
    fn from(rejection: QueryRejection) -> Self {
        Self::Malformed(format!("invalid query: {}", rejection.body_text()))
    }
}

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(BadRequest))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// The raw body, for endpoints whose body is optional.
pub struct Body(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = BadRequest;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, BadRequest> {
        Ok(Self(axum::body::Bytes::from_request(request, state).await?))
    }
}

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(BadRequest))]
pub struct Path<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(BadRequest))]
pub struct Query<T>(pub T);

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::{header, Request};
    use axum::routing::{get, post};
    use axum::Router;
    use serde::Deserialize;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    #[derive(Deserialize)]
    struct Typed {
        a: u32,
    }

    #[derive(Deserialize)]
    struct Page {
        limit: u32,
    }

    fn router() -> Router {
        Router::new()
            .route("/echo", post(|Json(body): Json<Value>| async move { Json(body) }))
            .route("/typed", post(|Json(page): Json<Typed>| async move { Json(page.a) }))
            .route(
                "/items/{id}",
                get(|Path(id): Path<u32>, Query(page): Query<Page>| async move { Json((id, page.limit)) }),
            )
    }

    async fn call(request: Request<Body>) -> (StatusCode, Value) {
        let response = router().oneshot(request).await.expect("the router is infallible");
        let status = response.status();
        let body = to_bytes(response.into_body(), 64 * 1024).await.expect("an in-memory body");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn json_post(body: &'static str) -> Request<Body> {
        Request::post("/echo").header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn readable_requests_reach_the_handler() {
        assert_eq!(call(json_post(r#"{"a":1}"#)).await, (StatusCode::OK, serde_json::json!({ "a": 1 })));
        let page = Request::get("/items/7?limit=3").body(Body::empty()).unwrap();
        assert_eq!(call(page).await, (StatusCode::OK, serde_json::json!([7, 3])));
    }

    #[tokio::test]
    async fn a_body_past_the_limit_gets_413_and_a_long_complaint_is_cut_short() {
        let oversized = format!(r#"{{"a":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
        let request =
            Request::post("/echo").header(header::CONTENT_TYPE, "application/json").body(Body::from(oversized));
        let (status, body) = call(request.unwrap()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
        );

        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(100_000));
        let request = Request::post("/typed").header(header::CONTENT_TYPE, "application/json").body(Body::from(long));
        let (status, body) = call(request.unwrap()).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.chars().count() <= MESSAGE_CHARS + 1 && message.ends_with('…'), "{message}");
    }

    #[tokio::test]
    async fn unreadable_requests_get_the_error_envelope() {
        let cases = [
            (json_post(r#"{"a":"#), "invalid JSON body"),
            (Request::post("/echo").body(Body::from(r#"{"a":1}"#)).unwrap(), "invalid JSON body"),
            (Request::get("/items/seven?limit=3").body(Body::empty()).unwrap(), "invalid path"),
            (Request::get("/items/7?limit=many").body(Body::empty()).unwrap(), "invalid query"),
        ];
        for (request, reason) in cases {
            let uri = request.uri().clone();
            let (status, body) = call(request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(body["error"]["code"], "bad_request", "{uri}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.starts_with(reason), "{uri}: {message}");
        }
    }
}
