//! The waiting room's own extractor: the client's address, for rate limiting. `Json`
//! and `Path` come from [`service_kit::extract`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use crate::app::AppState;
use crate::error::Error;

/// Who is calling, for the per-address join limit: the trusted proxy's header when
/// configured and parseable, else the TCP peer.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let from_header = state.client_ip_header.as_ref().and_then(|name| {
            let value = parts.headers.get(name)?.to_str().ok()?;
            // X-Forwarded-For style lists: the last hop is the one our proxy appended.
            value.rsplit(',').next()?.trim().parse().ok()
        });
        if let Some(ip) = from_header {
            return Ok(Self(ip));
        }
        // Without connect info (a router driven in-process) every caller shares one
        // bucket, which errs on the side of limiting.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        Ok(Self(peer))
    }
}
