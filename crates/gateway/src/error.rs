//! Every way a gateway request can fail, and the one place each becomes a status and
//! an `{"error":{"code","message"}}` body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use access_token::TokenError;
use service_kit::postgres::{self, Fault, WorkError};

use crate::domain::Invalid;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("an access token is required: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("{0}")]
    BadToken(TokenError),
    #[error("this access token was issued for another event")]
    TokenForOtherEvent,
    #[error("the admin API key is missing or wrong")]
    NotAdmin,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("seat {0} is already taken")]
    SeatUnavailable(String),
    #[error("another fan is taking one of these seats right now; try again")]
    SeatContended,
    #[error("{0}")]
    SoldOut(String),
    #[error("this hold is {0} and can no longer be changed")]
    HoldNotActive(&'static str),
    #[error("this hold has expired and its seats were released")]
    HoldExpired,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("too many requests; retry after {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    #[error("the service is overloaded or its database is unreachable; nothing was changed; try again shortly")]
    Unavailable,
    /// The connection to the database broke; [`service_kit::postgres::Database`] turns
    /// this into `Unavailable` or `OutcomeUnknown` by when it happened.
    #[error("the database connection was lost; try again shortly")]
    ConnectionLost,
    #[error(
        "the database did not confirm in time: this request may or may not have taken effect; \
         retry with the same Idempotency-Key to learn which, or list your bookings"
    )]
    OutcomeUnknown,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    RequestInProgress,
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid(invalid) => (StatusCode::UNPROCESSABLE_ENTITY, invalid.code),
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "missing_token"),
            Self::BadToken(TokenError::Expired) => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::BadToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::TokenForOtherEvent => (StatusCode::FORBIDDEN, "token_for_other_event"),
            Self::NotAdmin => (StatusCode::UNAUTHORIZED, "admin_key_required"),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, not_found_code(what)),
            Self::SeatUnavailable(_) => (StatusCode::CONFLICT, "seat_unavailable"),
            Self::SeatContended => (StatusCode::CONFLICT, "seat_contended"),
            Self::SoldOut(_) => (StatusCode::CONFLICT, "sold_out"),
            Self::HoldNotActive(_) => (StatusCode::CONFLICT, "hold_not_active"),
            Self::HoldExpired => (StatusCode::GONE, "hold_expired"),
            Self::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable | Self::ConnectionLost => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::OutcomeUnknown => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
            Self::RequestInProgress => (StatusCode::CONFLICT, "request_in_progress"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The stable code clients branch on (also the outcome label of metrics).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

fn not_found_code(what: &str) -> &'static str {
    match what {
        "event" => "event_not_found",
        "hold" => "hold_not_found",
        "booking" => "booking_not_found",
        _ => "not_found",
    }
}

impl From<Fault> for Error {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Unavailable => Self::Unavailable,
            Fault::OutcomeUnknown => Self::OutcomeUnknown,
        }
    }
}

impl WorkError for Error {
    fn is_connection_lost(&self) -> bool {
        matches!(self, Self::ConnectionLost)
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        const LOCK_NOT_AVAILABLE: &str = "55P03";
        // statement_timeout fired: the statement, and its transaction, were rolled back.
        const QUERY_CANCELED: &str = "57014";
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => Self::SeatContended,
            sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED) => Self::Unavailable,
            sqlx::Error::Database(db) if db.constraint() == Some("booking_seats_one_live_booking_per_seat") => {
                Self::SeatUnavailable("in this order".into())
            }
            _ if postgres::is_connection_lost(&e) => Self::ConnectionLost,
            _ => Self::Internal(e),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Internal(source) => tracing::error!(error = %source, "request failed"),
            Self::RateLimited(wait) => {
                return service_kit::error_body::too_many_requests(wait.as_secs_f64().ceil() as u64, self.to_string())
            }
            _ => {}
        }
        service_kit::error_response(status, code, self.to_string())
    }
}
