//! Abuse control: a ceiling per replica, per client address and per fan. Checked
//! before anything touches the database.

use axum::extract::{Request, State};
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
        .with_global(config.limit_global)
}

/// Refuses a request over the replica's or the client's limit before it is routed.
pub async fn per_request(
    State(state): State<AppState>,
    client: ClientAddress,
    request: Request,
    next: Next,
) -> Result<Response, Error> {
    state.limits.check_global().and_then(|()| state.limits.check_address(&client)).map_err(Error::RateLimited)?;
    Ok(next.run(request).await)
}
