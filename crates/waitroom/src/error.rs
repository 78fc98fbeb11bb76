//! Every way a waiting-room request can fail, and the one place each becomes a status
//! and an `{"error":{"code","message"}}` body.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service_kit::postgres::{self, Fault, WorkError};

use crate::domain::ticket::TicketError;
use crate::domain::vouched::VouchError;
use crate::domain::Invalid;
use crate::pow::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this queue ticket is malformed")]
    MalformedTicket,
    /// Older than `waitroom.ticket_lifetime_secs` (a fan who polls is given a new one
    /// each time), or of the earlier format that carried no issue time.
    #[error("this queue ticket has expired; join the queue again")]
    TicketExpired,
    #[error("{0}")]
    FanIdNotVouched(#[from] VouchError),
    #[error("this event's waiting room is closed")]
    EventClosed,
    #[error("the sale has opened; its opening time can no longer change")]
    AlreadyOpen,
    /// Redis lost the event's queue (a wipe) and this ticket cannot say where the fan
    /// stood: a ticket of the previous format, or one issued after the queue was
    /// rebuilt for a fan no longer in it.
    #[error(
        "this event's queue was reset after a failure and your place could not be restored from this ticket; \
         join the queue again"
    )]
    QueueReset,
    /// A challenge was asked for an event whose joins need no proof of work.
    #[error("this event's waiting room asks for no proof of work")]
    PowNotRequired,
    #[error("{}", pow_refusal_message(*.0))]
    PowRefused(Refusal),
    /// The proof-of-work library failed to make a challenge.
    #[error("internal error")]
    Pow(String),
    /// No receipt key is configured (`receipts.keys_dir`): receipts and the admission
    /// log cannot be signed or blinded.
    #[error("admission receipts are not set up on this waiting room (no receipt signing key)")]
    ReceiptsUnavailable,
    #[error("too many requests; retry after {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// This replica streams `waitroom.stream.max_streams` fans already.
    #[error("this server streams as many fans as it can; retry in a few seconds, or poll")]
    TooManyStreams,
    /// Redis is down, unreachable, slower than `redis.command_timeout_ms`, or not
    /// serving yet (see `redis_unavailable`).
    #[error("the waiting room cannot reach its store; try again shortly")]
    Unavailable(#[source] redis::RedisError),
    #[error("internal error")]
    Redis(#[source] redis::RedisError),
    /// PostgreSQL unreachable, or no connection free in time: nothing was written.
    #[error("the waiting room cannot reach its database; nothing was changed; try again shortly")]
    DatabaseUnavailable,
    /// The database did not confirm a write in time; it may or may not have happened.
    #[error("the database did not confirm in time: this change may or may not have been made; retry it")]
    OutcomeUnknown,
    /// The connection to PostgreSQL broke; [`service_kit::postgres::Database`] turns it
    /// into `DatabaseUnavailable` or `OutcomeUnknown` by when it happened.
    #[error("the database connection was lost; try again shortly")]
    DatabaseConnectionLost,
    #[error("internal error")]
    Database(#[source] sqlx::Error),
    /// The outbox's shared consumer failed otherwise (see `crate::release`).
    #[error("internal error")]
    Outbox(#[source] sales::Error),
    /// Redis or PostgreSQL holds something our own code never writes.
    #[error("unexpected stored data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Invalid(invalid) => (StatusCode::UNPROCESSABLE_ENTITY, invalid.code),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, not_found_code(what)),
            Self::MalformedTicket => (StatusCode::BAD_REQUEST, "malformed_ticket"),
            Self::TicketExpired => (StatusCode::GONE, "ticket_expired"),
            Self::FanIdNotVouched(_) => (StatusCode::FORBIDDEN, "fan_id_not_vouched"),
            Self::EventClosed => (StatusCode::CONFLICT, "event_closed"),
            Self::AlreadyOpen => (StatusCode::CONFLICT, "already_open"),
            Self::QueueReset => (StatusCode::CONFLICT, "queue_reset"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::ReceiptsUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "receipts_unavailable"),
            Self::PowNotRequired => (StatusCode::NOT_FOUND, "pow_not_required"),
            Self::PowRefused(Refusal::Missing) => (StatusCode::FORBIDDEN, "pow_required"),
            Self::PowRefused(Refusal::Malformed) => (StatusCode::BAD_REQUEST, "pow_malformed"),
            Self::PowRefused(Refusal::Wrong) => (StatusCode::FORBIDDEN, "pow_invalid"),
            Self::PowRefused(Refusal::Expired) => (StatusCode::FORBIDDEN, "pow_expired"),
            Self::PowRefused(Refusal::Replayed) => (StatusCode::CONFLICT, "pow_replayed"),
            Self::Unavailable(_) | Self::DatabaseUnavailable | Self::DatabaseConnectionLost => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Self::OutcomeUnknown => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
            Self::TooManyStreams => (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams"),
            Self::Redis(_) | Self::Database(_) | Self::Outbox(_) | Self::Corrupt(_) | Self::Pow(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// A failure that may pass by itself (a store out of reach): worth trying again.
    pub fn is_transient(&self) -> bool {
        self.status_and_code().0 == StatusCode::SERVICE_UNAVAILABLE
    }

    /// The stable code clients branch on.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

fn pow_refusal_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Missing => {
            "this event asks each join for a proof of work: solve a challenge from GET \
             /v1/events/{event_id}/queue/challenge and send it as \"pow\""
        }
        Refusal::Malformed => "\"pow\" must be the base64 of an ALTCHA payload: the challenge and its solution",
        Refusal::Wrong => "this proof of work does not solve a challenge this waiting room made for this event",
        Refusal::Expired => "this proof of work's challenge has expired: solve a new one",
        Refusal::Replayed => "this proof of work was already used to join: solve a new challenge",
    }
}

fn not_found_code(what: &str) -> &'static str {
    match what {
        "event" => "event_not_found",
        "ticket" => "ticket_not_found",
        "fan" => "not_in_queue",
        "admission" => "no_recorded_admission",
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
            TicketError::Expired => Self::TicketExpired,
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if redis_unavailable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Redis(e)
        }
    }
}

/// The slot release drains its deliveries with the sale's outbox consumer, whose
/// failures are the sale's.
impl From<sales::Error> for Error {
    fn from(e: sales::Error) -> Self {
        match e {
            sales::Error::Unavailable => Self::DatabaseUnavailable,
            sales::Error::OutcomeUnknown => Self::OutcomeUnknown,
            sales::Error::ConnectionLost => Self::DatabaseConnectionLost,
            other => Self::Outbox(other),
        }
    }
}

impl From<Fault> for Error {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::Unavailable => Self::DatabaseUnavailable,
            Fault::OutcomeUnknown => Self::OutcomeUnknown,
        }
    }
}

impl WorkError for Error {
    fn is_connection_lost(&self) -> bool {
        matches!(self, Self::DatabaseConnectionLost)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        // statement_timeout fired: the statement, and its transaction, were rolled back.
        const QUERY_CANCELED: &str = "57014";
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED) => Self::DatabaseUnavailable,
            _ if postgres::is_connection_lost(&e) => Self::DatabaseConnectionLost,
            _ => Self::Database(e),
        }
    }
}

/// Redis cannot serve right now, and nothing about the request is wrong: it is down,
/// unreachable, slower than the command timeout (all I/O errors, timeouts included),
/// or says so itself: still loading its data after a restart (`LOADING`), a failover
/// under way (`MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`, `READONLY` from a demoted
/// primary), or blocked by a long script (`BUSY`). The fan gets `503 unavailable` and
/// retries; anything else is a bug of ours and a 500.
fn redis_unavailable(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, RetryMethod, ServerErrorKind};
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(e.retry_method(), RetryMethod::WaitAndRetry)
        || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly))
        || e.code() == Some("BUSY")
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Self::Redis(source) => return service_kit::internal_error(source),
            Self::Database(source) => return service_kit::internal_error(source),
            Self::Corrupt(_) => return service_kit::internal_error(&self),
            Self::DatabaseUnavailable | Self::OutcomeUnknown | Self::DatabaseConnectionLost => {
                tracing::warn!(error = %self, "database unavailable")
            }
            Self::Unavailable(source) => tracing::warn!(error = %source, "redis unavailable"),
            Self::RateLimited(wait) => {
                return service_kit::error_body::too_many_requests(wait.as_secs_f64().ceil() as u64, self.to_string());
            }
            Self::TooManyStreams => {
                let (status, code) = self.status_and_code();
                return service_kit::error_body::error_response_retry_after(status, code, 5, self.to_string());
            }
            _ => {}
        }
        let (status, code) = self.status_and_code();
        service_kit::error_response(status, code, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error Redis would answer with `line` (`-CODE detail`).
    fn server_error(line: &str) -> redis::RedisError {
        match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap() {
            redis::Value::ServerError(e) => e.into(),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    fn status_and_code(e: redis::RedisError) -> (StatusCode, &'static str) {
        Error::from(e).status_and_code()
    }

    const UNAVAILABLE: (StatusCode, &str) = (StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    #[test]
    fn redis_down_unreachable_or_slow_is_503_unavailable() {
        for kind in [
            std::io::ErrorKind::TimedOut,
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::BrokenPipe,
            std::io::ErrorKind::UnexpectedEof,
        ] {
            assert_eq!(status_and_code(std::io::Error::from(kind).into()), UNAVAILABLE, "{kind:?}");
        }
    }

    #[test]
    fn redis_saying_it_cannot_serve_yet_is_503_unavailable() {
        for line in [
            "LOADING Redis is loading the dataset in memory",
            "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            "TRYAGAIN Multiple keys request during rehashing of slot",
            "CLUSTERDOWN The cluster is down",
            "READONLY You can't write against a read only replica.",
        ] {
            assert_eq!(status_and_code(server_error(line)), UNAVAILABLE, "{line}");
        }
    }

    #[test]
    fn other_redis_errors_are_ours_and_500() {
        for line in [
            "ERR user_script:1: Script attempted to access nonexistent global variable",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ] {
            assert_eq!(status_and_code(server_error(line)), (StatusCode::INTERNAL_SERVER_ERROR, "internal"), "{line}");
        }
    }
}
