use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The error envelope every boxoffice endpoint answers with, `{"error":{"code","message"}}`;
/// each service's `/openapi.json` describes its refusals with this schema.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    #[schema(inline)]
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: clients branch on it.
    pub code: String,
    /// For people.
    pub message: String,
    /// What a client can act on, for the few codes that carry figures (each route's
    /// description names them, e.g. `fan_limit_reached`: `max_per_fan`, `remaining`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// Builds the error envelope every boxoffice endpoint answers with.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    error_response_with_details(status, code, message, None)
}

/// The error envelope with `details`: figures a client acts on.
pub fn error_response_with_details(
    status: StatusCode,
    code: &str,
    message: impl Into<String>,
    details: Option<serde_json::Value>,
) -> Response {
    let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: message.into(), details } };
    (status, Json(body)).into_response()
}

/// A `429 Too Many Requests` with `Retry-After` in whole seconds (at least 1).
pub fn too_many_requests(retry_after_secs: u64, message: impl Into<String>) -> Response {
    error_response_retry_after(StatusCode::TOO_MANY_REQUESTS, "rate_limited", retry_after_secs, message)
}

/// The error envelope with `Retry-After` in whole seconds (at least 1): a refusal that
/// will pass later (`429`, a `503` the service expects to end).
pub fn error_response_retry_after(
    status: StatusCode,
    code: &str,
    retry_after_secs: u64,
    message: impl Into<String>,
) -> Response {
    let mut response = error_response(status, code, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
    response
}

/// A `500 internal` for a failure that is ours, not the client's: logged here, once, with
/// its cause, and answered with a generic body that leaks nothing of it.
pub fn internal_error(error: &(dyn std::error::Error + 'static)) -> Response {
    tracing::error!(error = %Chain(error), "request failed");
    error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
}

/// An error with its causes, `outer: inner: innermost`.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}
