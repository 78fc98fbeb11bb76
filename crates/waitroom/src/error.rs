//! Every way a waiting-room request can fail, and the one place each becomes a status
//! and an `{"error":{"code","message"}}` body.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::domain::ticket::TicketError;
use crate::domain::vouched::VouchError;
use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("the admin API key is missing or wrong")]
    NotAdmin,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this queue ticket is malformed")]
    MalformedTicket,
    #[error("{0}")]
    FanIdNotVouched(#[from] VouchError),
    #[error("this event's waiting room is closed")]
    EventClosed,
    #[error("the sale has opened; its opening time can no longer change")]
    AlreadyOpen,
    #[error("too many join requests; retry after {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    #[error("the waiting room cannot reach its store; try again shortly")]
    Unavailable,
    #[error("internal error")]
    Redis(#[source] redis::RedisError),
    /// Redis answered something our own scripts never write.
    #[error("internal error")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid(invalid) => (StatusCode::UNPROCESSABLE_ENTITY, invalid.code),
            Self::NotAdmin => (StatusCode::UNAUTHORIZED, "admin_key_required"),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, not_found_code(what)),
            Self::MalformedTicket => (StatusCode::BAD_REQUEST, "malformed_ticket"),
            Self::FanIdNotVouched(_) => (StatusCode::FORBIDDEN, "fan_id_not_vouched"),
            Self::EventClosed => (StatusCode::CONFLICT, "event_closed"),
            Self::AlreadyOpen => (StatusCode::CONFLICT, "already_open"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Redis(_) | Self::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

fn not_found_code(what: &str) -> &'static str {
    match what {
        "event" => "event_not_found",
        "ticket" => "ticket_not_found",
        "fan" => "not_in_queue",
        _ => "not_found",
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

impl From<TicketError> for Error {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Malformed => Self::MalformedTicket,
            // A forged ticket names no place in this queue; saying "not found" rather
            // than "forged" tells a prober nothing.
            TicketError::Forged => Self::NotFound("ticket"),
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
            tracing::warn!(error = %e, "redis unreachable");
            Self::Unavailable
        } else {
            Self::Redis(e)
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Self::Redis(source) => tracing::error!(error = %source, "request failed"),
            Self::Corrupt(what) => tracing::error!(what, "unexpected data in redis"),
            Self::RateLimited(wait) => {
                return service_kit::error_body::too_many_requests(wait.as_secs_f64().ceil() as u64, self.to_string());
            }
            _ => {}
        }
        let (status, code) = self.status_and_code();
        service_kit::error_response(status, code, self.to_string())
    }
}
