//! Every way a sale's use case can fail, in the sale's own terms. The gateway maps each
//! case to an HTTP status and code; the scheduler logs them.

use std::fmt;

use service_kit::postgres::{self, Fault, WorkError};
use service_kit::Invalid;

use crate::states::HoldStatus;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller's input breaks a rule (answered 422 with the rule's code).
    #[error("{}", .0.message)]
    Invalid(Invalid),
    #[error("{0} not found")]
    NotFound(What),
    /// A seat of the order is taken (its label, or "in this order").
    #[error("seat {0} is already taken")]
    SeatUnavailable(String),
    /// Another transaction holds a row lock on one of the seats right now.
    #[error("another fan is taking one of these seats right now; try again")]
    SeatContended,
    #[error("{0}")]
    SoldOut(String),
    /// The order would take the fan past the event's `max_per_fan` (live holds and
    /// bookings together); `remaining` more places they may still take now.
    #[error("at most {max_per_fan} places per fan for this event; you may take {remaining} more")]
    FanLimitReached { max_per_fan: u32, remaining: u32 },
    #[error("this hold is {0} and can no longer be changed")]
    HoldNotActive(HoldStatus),
    #[error("this hold has expired and its seats were released")]
    HoldExpired,
    /// The event takes no waitlist entries: it has none, was cancelled or has started.
    #[error("this event has no open waitlist")]
    WaitlistClosed,
    /// A section the fan would wait for has places for sale now.
    #[error("{0}")]
    NotSoldOut(String),
    /// The fan waits already, or holds an offer.
    #[error("{0}")]
    AlreadyWaitlisted(String),
    /// The organizer cancelled the event: nothing more is sold.
    #[error("this event was cancelled; nothing more is sold")]
    EventCancelled,
    /// A paid place is booked only by a succeeded payment: check out and pay first.
    #[error("this order costs money: start a checkout for the hold and pay it first")]
    PaymentRequired,
    /// Cancelling is not allowed now (the event's refund policy allows no cancellation).
    #[error("{0}")]
    CancellationNotAllowed(String),
    /// The payment provider could not be reached or refused; nothing was charged by
    /// this request.
    #[error(transparent)]
    PaymentProvider(#[from] crate::payment_provider::ProviderError),
    /// This process lacks the ticket key the request needs: the private key to show
    /// secrets, make links or sign the feed; any ticket key to check a scan.
    #[error(
        "tickets cannot be shown or checked here: this server lacks the ticket key it takes (the private key \
         shows secrets and signs, the public keys check scans)"
    )]
    TicketsUnavailable,
    /// A capability link (a booking's or an offer's) that is not ours, is for another
    /// booking or hold, has ended or was revoked.
    #[error("this link is not valid (changed, expired, revoked, or for another booking or offer)")]
    InvalidLink,
    /// The ticket was revoked (its booking cancelled): it has no secret to reissue.
    #[error("this ticket was revoked")]
    TicketRevoked,
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry shortly")]
    RequestInProgress,
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
    #[error("internal error")]
    Internal(#[source] sqlx::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Event,
    Hold,
    Booking,
    Payment,
    Refund,
    Webhook,
    Ticket,
    WaitlistEntry,
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Event => "event",
            Self::Hold => "hold",
            Self::Booking => "booking",
            Self::Payment => "payment",
            Self::Refund => "refund",
            Self::Webhook => "webhook endpoint",
            Self::Ticket => "ticket",
            Self::WaitlistEntry => "waitlist entry",
        })
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

/// The DETAIL of the fan-limit trigger's refusal.
#[derive(serde::Deserialize)]
struct FanLimitDetail {
    max_per_fan: u32,
    remaining: u32,
}

/// `lock_not_available`: NOWAIT found a row locked, or `lock_timeout` passed.
pub(crate) const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Database errors by SQLSTATE and constraint name, never by message text.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        // statement_timeout fired: the statement, and its transaction, were rolled back.
        const QUERY_CANCELED: &str = "57014";
        // A number past its column's type: an order's total past bigint.
        const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";
        // Text PostgreSQL cannot store: a NUL in a bound text parameter is 22021 ("invalid
        // byte sequence for encoding UTF8: 0x00"), a `\u0000` inside jsonb 22P05.
        const CHARACTER_NOT_IN_REPERTOIRE: &str = "22021";
        const UNTRANSLATABLE_CHARACTER: &str = "22P05";
        // PostgreSQL broke a lock cycle by rolling this transaction back: nothing was
        // written, and trying again succeeds. Our lock orders leave none we know of; one
        // that appears is a bug to fix, but never a 500 to a fan.
        const DEADLOCK_DETECTED: &str = "40P01";
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => Self::SeatContended,
            sqlx::Error::Database(db) if db.code().as_deref() == Some(QUERY_CANCELED) => Self::Unavailable,
            sqlx::Error::Database(db) if db.code().as_deref() == Some(DEADLOCK_DETECTED) => {
                tracing::error!(detail = ?db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|pg| pg.detail()), "deadlock: a lock order to fix");
                Self::Unavailable
            }
            // The last line of defence: no paid booking without a payment.
            sqlx::Error::Database(db) if db.constraint() == Some("bookings_paid_name_a_payment") => {
                Self::PaymentRequired
            }
            sqlx::Error::Database(db) if db.constraint() == Some("booking_seats_one_live_booking_per_seat") => {
                Self::SeatUnavailable("in this order".into())
            }
            // The fan-limit trigger (migrations/*_fan_limits.sql): the figures in its DETAIL.
            sqlx::Error::Database(db) if db.constraint() == Some("fan_limit") => {
                let detail = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|pg| pg.detail());
                match detail.and_then(|d| serde_json::from_str::<FanLimitDetail>(d).ok()) {
                    Some(FanLimitDetail { max_per_fan, remaining }) => Self::FanLimitReached { max_per_fan, remaining },
                    None => Self::Internal(e),
                }
            }
            // Backstops: the domain's rules (no control characters, prices capped) keep
            // such values out, and a value that slips past them is still the input's
            // fault (422), not the server's (500).
            sqlx::Error::Database(db) if db.code().as_deref() == Some(NUMERIC_VALUE_OUT_OF_RANGE) => Self::Invalid(
                Invalid::new("value_out_of_range", "a number in this request, or a total of it, is out of range"),
            ),
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some(UNTRANSLATABLE_CHARACTER | CHARACTER_NOT_IN_REPERTOIRE)) =>
            {
                Self::Invalid(Invalid::new(
                    "invalid_text",
                    "a text in this request has a character that cannot be stored",
                ))
            }
            _ if postgres::is_connection_lost(&e) => Self::ConnectionLost,
            _ => Self::Internal(e),
        }
    }
}
