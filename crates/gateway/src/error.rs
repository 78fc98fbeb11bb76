//! Every way a gateway request can fail, and the one place each becomes a status and
//! an `{"error":{"code","message"}}` body: the gateway's own refusals (input, tokens,
//! the admin key, rate limits) and the sale's, wrapped whole.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use access_token::TokenError;
use sales::What;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("an access token is required: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("{0}")]
    BadToken(TokenError),
    #[error("this admission was revoked by the organizer")]
    TokenRevoked,
    #[error("this access token was issued for another event")]
    TokenForOtherEvent,
    /// A `waitlist`-scoped token used for anything but the waitlist.
    #[error("this access token only lets its fan join the event's waitlist")]
    TokenScopeInsufficient,
    /// A payment webhook whose `Stripe-Signature` does not verify.
    #[error("the webhook signature does not verify: {0}")]
    InvalidSignature(String),
    /// A signed payment webhook whose body is not an event we can read.
    #[error("the webhook body is not a provider event: {0}")]
    InvalidEvent(String),
    #[error("too many requests; retry after {} s", .0.as_secs().max(1))]
    RateLimited(std::time::Duration),
    /// This replica has not yet read the revoked admissions (it started, or has not
    /// reached the database since): it cannot tell a revoked token from a good one, so
    /// it serves no fan until it can. Retry after a poll interval.
    #[error("this server cannot check access tokens yet; retry after {} s", .0.as_secs().max(1))]
    RevocationsNotLoaded(std::time::Duration),
    #[error("a scanner key is required: send `Authorization: Bearer <scanner key>`")]
    MissingScannerKey,
    #[error("this scanner key is not valid")]
    BadScannerKey,
    #[error("this scanner key is for another event")]
    ScannerKeyForOtherEvent,
    /// This replica serves `gateway.seat_stream.max_streams` live seat maps already.
    #[error("this server streams as many seat maps as it can; retry in a few seconds or read the map instead")]
    TooManyStreams,
    /// No page script, style or image of that name.
    #[error("no such asset")]
    AssetNotFound,
    /// A page template failed to render: our fault, answered as a generic 500.
    #[error("internal error")]
    Page(#[source] minijinja::Error),
    #[error(transparent)]
    Sales(#[from] sales::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use sales::Error as Sale;
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::MissingToken => (StatusCode::UNAUTHORIZED, "missing_token"),
            Self::BadToken(TokenError::Expired) => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::BadToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token"),
            Self::TokenRevoked => (StatusCode::UNAUTHORIZED, "token_revoked"),
            Self::TokenForOtherEvent => (StatusCode::FORBIDDEN, "token_for_other_event"),
            Self::TokenScopeInsufficient => (StatusCode::FORBIDDEN, "token_scope_insufficient"),
            Self::InvalidSignature(_) => (StatusCode::BAD_REQUEST, "invalid_signature"),
            Self::InvalidEvent(_) => (StatusCode::BAD_REQUEST, "invalid_event"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::RevocationsNotLoaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "revocations_not_loaded"),
            Self::MissingScannerKey => (StatusCode::UNAUTHORIZED, "scanner_key_required"),
            Self::BadScannerKey => (StatusCode::UNAUTHORIZED, "invalid_scanner_key"),
            Self::ScannerKeyForOtherEvent => (StatusCode::FORBIDDEN, "scanner_key_for_other_event"),
            Self::TooManyStreams => (StatusCode::SERVICE_UNAVAILABLE, "too_many_streams"),
            Self::AssetNotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Page(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::Sales(sale) => match sale {
                Sale::Invalid(invalid) => (StatusCode::UNPROCESSABLE_ENTITY, invalid.code),
                Sale::NotFound(What::Event) => (StatusCode::NOT_FOUND, "event_not_found"),
                Sale::NotFound(What::Hold) => (StatusCode::NOT_FOUND, "hold_not_found"),
                Sale::NotFound(What::Booking) => (StatusCode::NOT_FOUND, "booking_not_found"),
                Sale::NotFound(What::Payment) => (StatusCode::NOT_FOUND, "payment_not_found"),
                Sale::NotFound(What::Refund) => (StatusCode::NOT_FOUND, "refund_not_found"),
                Sale::NotFound(What::Webhook) => (StatusCode::NOT_FOUND, "webhook_not_found"),
                Sale::NotFound(What::Ticket) => (StatusCode::NOT_FOUND, "ticket_not_found"),
                Sale::NotFound(What::WaitlistEntry) => (StatusCode::NOT_FOUND, "waitlist_entry_not_found"),
                Sale::WaitlistClosed => (StatusCode::CONFLICT, "waitlist_closed"),
                Sale::NotSoldOut(_) => (StatusCode::CONFLICT, "not_sold_out"),
                Sale::AlreadyWaitlisted(_) => (StatusCode::CONFLICT, "already_waitlisted"),
                Sale::TicketsUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "tickets_unavailable"),
                Sale::InvalidLink => (StatusCode::UNAUTHORIZED, "invalid_link"),
                Sale::TicketRevoked => (StatusCode::CONFLICT, "ticket_revoked"),
                Sale::SeatUnavailable(_) => (StatusCode::CONFLICT, "seat_unavailable"),
                Sale::SeatContended => (StatusCode::CONFLICT, "seat_contended"),
                Sale::SoldOut(_) => (StatusCode::CONFLICT, "sold_out"),
                Sale::FanLimitReached { .. } => (StatusCode::CONFLICT, "fan_limit_reached"),
                Sale::HoldNotActive(_) => (StatusCode::CONFLICT, "hold_not_active"),
                Sale::HoldExpired => (StatusCode::GONE, "hold_expired"),
                Sale::EventCancelled => (StatusCode::CONFLICT, "event_cancelled"),
                Sale::PaymentRequired => (StatusCode::PAYMENT_REQUIRED, "payment_required"),
                Sale::CancellationNotAllowed(_) => (StatusCode::FORBIDDEN, "cancellation_not_allowed"),
                Sale::PaymentProvider(sales::payment_provider::ProviderError::Unavailable(_)) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "payment_provider_unavailable")
                }
                Sale::PaymentProvider(sales::payment_provider::ProviderError::Refused { .. }) => {
                    (StatusCode::BAD_GATEWAY, "payment_provider_refused")
                }
                Sale::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
                Sale::RequestInProgress => (StatusCode::CONFLICT, "request_in_progress"),
                Sale::Unavailable | Sale::ConnectionLost => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                Sale::OutcomeUnknown => (StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown"),
                Sale::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }

    /// The stable code clients branch on (also the outcome label of metrics).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

impl From<service_kit::Invalid> for Error {
    fn from(invalid: service_kit::Invalid) -> Self {
        Self::Sales(invalid.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            // Logged once, here at the boundary; the client gets the generic message.
            Self::Sales(sales::Error::Internal(source)) => tracing::error!(error = %source, "request failed"),
            Self::Page(source) => tracing::error!(error = %source, "rendering a page failed"),
            Self::RateLimited(wait) => {
                return service_kit::error_body::too_many_requests(wait.as_secs_f64().ceil() as u64, self.to_string())
            }
            Self::TooManyStreams => {
                return service_kit::error_body::error_response_retry_after(status, code, 5, self.to_string());
            }
            Self::RevocationsNotLoaded(wait) => {
                let secs = wait.as_secs_f64().ceil() as u64;
                return service_kit::error_body::error_response_retry_after(status, code, secs, self.to_string());
            }
            Self::Sales(sales::Error::FanLimitReached { max_per_fan, remaining }) => {
                let details = serde_json::json!({ "max_per_fan": max_per_fan, "remaining": remaining });
                return service_kit::error_body::error_response_with_details(
                    status,
                    code,
                    self.to_string(),
                    Some(details),
                );
            }
            _ => {}
        }
        service_kit::error_response(status, code, self.to_string())
    }
}
