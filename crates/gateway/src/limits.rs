//! Abuse control: a ceiling per replica, per client address and per fan. Checked
//! before anything touches the database, in this order:
//!
//! 1. per address ([`per_request`]): the one limit a client cannot escape by changing
//!    tokens, so it comes first; a flood from one address is refused here and takes
//!    nothing from the limits after it;
//!    - public reads (the unauthenticated event details and seat map) also take from a
//!      second, lower bucket per address (`gateway.limit_public_reads_per_address`):
//!      they need no token, so anyone can send them, and a seat map walks every seat
//!      (13 MB of JSON on 100,000 seats). Fans' order routes do not touch this bucket,
//!      so a client reloading the seat map too often can still book;
//! 2. the replica's ceiling ([`per_request`]): spent only by requests their address
//!    allowed, so one address cannot use it up for everyone (with the ceiling first, an
//!    address past its own limit drained it and an innocent address got 429s);
//! 3. the access token ([`crate::auth::Fan`]): an Ed25519 check, cached once valid. A
//!    bad token is never cached and costs a signature check each time, which is why it
//!    is only reached within the sender's address bucket;
//! 4. per fan ([`crate::auth::Fan`]): needs the verified token to name the fan.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use service_kit::client_address::ClientAddress;
use service_kit::rate_limit::ClientLimits;

use crate::config::GatewayConfig;
use crate::error::Error;
use crate::metrics;
use crate::state::AppState;

/// The replica's ceiling and the per-address and per-fan buckets; the fan's is checked
/// by the [`crate::auth::Fan`] extractor once the token names the fan.
pub fn limits(config: &GatewayConfig) -> ClientLimits {
    ClientLimits::new(metrics::RATE_LIMITED, config.limit_per_address, config.limit_per_fan)
        .with_public_reads(config.limit_public_reads_per_address)
        .with_global(config.limit_global)
}

/// The public reads, as their routes are matched: no token, anyone may send them, and
/// each reads the sale. The pages and their assets are not among them: served from
/// memory, a page load's half-dozen files cost nothing the public-read bucket guards, and
/// only the address' own limit applies to them.
pub const PUBLIC_READS: [&str; 6] = [
    "/v1/events",
    "/v1/events/{event_id}",
    "/v1/events/{event_id}/seats",
    "/v1/events/{event_id}/seats/layout",
    "/v1/events/{event_id}/seats/state",
    "/v1/events/{event_id}/seats/stream",
];

fn is_public_read(request: &Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && request.extensions().get::<MatchedPath>().is_some_and(|path| PUBLIC_READS.contains(&path.as_str()))
}

/// Refuses a request over the client's or the replica's limit before its handler runs:
/// the client's first (and, for a public read, the client's public-read bucket), so a
/// request they refuse takes no token from the replica's.
pub async fn per_request(
    State(state): State<AppState>,
    client: ClientAddress,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    let limits = &state.limits;
    limits
        .check_address(&client)
        .and_then(|()| if is_public_read(&request) { limits.check_public_read(&client) } else { Ok(()) })
        .and_then(|()| limits.check_global())
        .map_err(Error::RateLimited)?;
    Ok(next.run(request).await)
}
