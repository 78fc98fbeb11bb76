//! Who is calling, for per-address rate limits: the TCP peer, unless the peer is a proxy
//! the operator trusts, in which case the client that proxy names in its forwarding
//! header.
//!
//! A forwarding header is only as honest as whoever wrote it. Each proxy appends the
//! address it received the request from, so the right end of `X-Forwarded-For` is
//! written by our own proxies and the left end by the client, who can put anything
//! there. The client is therefore the right-most hop that is not one of our proxies:
//! reading from the left (or trusting the header from any peer, as the waiting room
//! once did) lets every request choose its own rate-limit bucket.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A service's `client_address` section: which proxies may say who the client is.
#[derive(Debug, Clone, Deserialize)]
pub struct ClientAddressConfig {
    /// The header a trusted proxy writes the client's address into: `x-forwarded-for`
    /// (a list each proxy appends its peer to) or a single-address one like `x-real-ip`.
    #[serde(deserialize_with = "header_name")]
    pub header: HeaderName,
    /// The proxies whose header is believed: CIDRs (`10.0.0.0/8`) or single addresses,
    /// a TOML list or one comma-separated string (for environment variables). Empty,
    /// no peer is a proxy: the header is ignored and the TCP peer is the client.
    #[serde(deserialize_with = "networks")]
    pub trusted_proxies: Vec<IpNet>,
}

impl ClientAddressConfig {
    /// `section` names the service's configuration section in messages.
    pub fn validate(&self, section: &str) -> Result<(), String> {
        if let Some(everyone) = self.trusted_proxies.iter().find(|network| network.prefix_len() == 0) {
            return Err(format!(
                "{section}.client_address.trusted_proxies must not contain {everyone}: every client could then choose \
                 its own address"
            ));
        }
        Ok(())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|network| network.contains(&address))
    }

    /// The client of a request that arrived from `peer` with `headers`: walking the
    /// header from the right, the first hop that is not a trusted proxy. A hop that
    /// cannot be read ends the walk at the last address known, so garbage written by the
    /// client can never pick a bucket; a header naming only trusted proxies names an
    /// internal caller, its left-most hop.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        let lines: Vec<&[u8]> = headers.get_all(&self.header).iter().map(|value| value.as_bytes()).collect();
        let hops = lines.iter().rev().flat_map(|line| line.rsplit(|byte| *byte == b','));
        for hop in hops {
            let Some(address) = parse_hop(hop) else { break };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// One hop of a forwarding header: an address, possibly with a port (`1.2.3.4:80`,
/// `[2001:db8::1]:443`), as some proxies write it.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    let address = text.parse::<IpAddr>().or_else(|_| text.parse::<SocketAddr>().map(|socket| socket.ip())).ok()?;
    Some(address.to_canonical())
}

/// The calling client, resolved by the service's [`ClientAddressConfig`] (which its
/// state provides through `FromRef`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl ClientAddress {
    /// The rate-limit bucket of this client. An IPv6 subscriber is given a whole /64
    /// (often far more), so keying on the full address would hand one client 2^64
    /// buckets; the /64 is the smallest block that stands for one client.
    pub fn bucket(&self) -> IpAddr {
        match self.0 {
            IpAddr::V4(address) => IpAddr::V4(address),
            IpAddr::V6(address) => {
                let network = u128::from(address) & !(u128::MAX >> 64);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        }
    }
}

impl<S> FromRequestParts<S> for ClientAddress
where
    S: Send + Sync,
    Arc<ClientAddressConfig>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        // Without connect info (a router driven in-process) every caller shares one
        // bucket, which errs on the side of limiting.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(socket)| socket.ip());
        let config = Arc::<ClientAddressConfig>::from_ref(state);
        Ok(Self(config.client(peer, &parts.headers)))
    }
}

fn header_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<HeaderName, D::Error> {
    let name = String::deserialize(deserializer)?;
    HeaderName::try_from(name.as_str()).map_err(|_| serde::de::Error::custom(format!("{name:?} is not a header name")))
}

fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    crate::settings::list_of_strings(deserializer)?
        .iter()
        .map(|entry| {
            network(entry).ok_or_else(|| {
                serde::de::Error::custom(format!("{entry:?} is neither an address nor a CIDR such as 10.0.0.0/8"))
            })
        })
        .collect()
}

/// A CIDR, or a single address as the network of just that address.
fn network(entry: &str) -> Option<IpNet> {
    entry.parse::<IpNet>().or_else(|_| entry.parse::<IpAddr>().map(IpNet::from)).ok()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn behind(proxies: &[&str]) -> ClientAddressConfig {
        ClientAddressConfig {
            header: HeaderName::from_static("x-forwarded-for"),
            trusted_proxies: proxies.iter().map(|proxy| network(proxy).unwrap()).collect(),
        }
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let config = behind(&[]);
        assert_eq!(config.client(ip("203.0.113.9"), &forwarded(&["198.51.100.1"])), ip("203.0.113.9"));
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        let config = behind(&["10.0.0.0/8"]);
        assert_eq!(config.client(ip("203.0.113.9"), &forwarded(&["198.51.100.1"])), ip("203.0.113.9"));
    }

    #[test]
    fn the_right_most_hop_that_is_not_a_trusted_proxy_is_the_client() {
        let config = behind(&["10.0.0.0/8", "192.168.1.7"]);
        // The client wrote the first two entries itself; our proxies appended the rest.
        let headers = forwarded(&["1.1.1.1, 198.51.100.1, 203.0.113.5, 10.0.0.3"]);
        assert_eq!(config.client(ip("192.168.1.7"), &headers), ip("203.0.113.5"));
    }

    #[test]
    fn hops_are_read_across_repeated_header_lines_from_the_last() {
        let config = behind(&["10.0.0.0/8"]);
        let headers = forwarded(&["198.51.100.1", "203.0.113.5, 10.0.0.3", "10.0.0.2"]);
        assert_eq!(config.client(ip("10.0.0.1"), &headers), ip("203.0.113.5"));
    }

    #[test]
    fn an_unreadable_hop_ends_the_walk_at_the_last_address_known() {
        let config = behind(&["10.0.0.0/8"]);
        assert_eq!(config.client(ip("10.0.0.1"), &forwarded(&["198.51.100.1, garbage, 10.0.0.2"])), ip("10.0.0.2"));
        assert_eq!(config.client(ip("10.0.0.1"), &forwarded(&["198.51.100.1, "])), ip("10.0.0.1"));
        assert_eq!(config.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
    }

    #[test]
    fn a_header_of_trusted_proxies_only_names_its_left_most_hop() {
        let config = behind(&["10.0.0.0/8"]);
        assert_eq!(config.client(ip("10.0.0.1"), &forwarded(&["10.9.9.9, 10.0.0.2"])), ip("10.9.9.9"));
    }

    #[test]
    fn hops_with_ports_and_mapped_addresses_are_read_as_addresses() {
        let config = behind(&["10.0.0.0/8", "::1"]);
        let headers = forwarded(&["[2001:db8::7]:443, 10.0.0.2:8080"]);
        assert_eq!(config.client(ip("::1"), &headers), ip("2001:db8::7"));
        let mapped = forwarded(&["::ffff:198.51.100.1"]);
        assert_eq!(config.client(ip("::ffff:10.0.0.1"), &mapped), ip("198.51.100.1"));
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_ipv4_clients_have_their_own() {
        let bucket = |text: &str| ClientAddress(ip(text)).bucket();
        assert_eq!(bucket("2001:db8:1:2:aaaa::1"), bucket("2001:db8:1:2:ffff:1:2:3"));
        assert_eq!(bucket("2001:db8:1:2::5"), ip("2001:db8:1:2::"));
        assert_ne!(bucket("2001:db8:1:2::1"), bucket("2001:db8:1:3::1"));
        assert_eq!(bucket("198.51.100.1"), ip("198.51.100.1"));
    }

    #[test]
    fn trusted_proxies_read_from_a_list_or_a_comma_separated_string() {
        let from_list: ClientAddressConfig = serde_json::from_value(serde_json::json!({
            "header": "x-real-ip", "trusted_proxies": ["10.0.0.0/8", "192.168.1.7"]
        }))
        .unwrap();
        let from_text: ClientAddressConfig = serde_json::from_value(serde_json::json!({
            "header": "x-real-ip", "trusted_proxies": "10.0.0.0/8, 192.168.1.7"
        }))
        .unwrap();
        assert_eq!(from_list.trusted_proxies, from_text.trusted_proxies);
        assert_eq!(from_list.trusted_proxies[1], "192.168.1.7/32".parse::<IpNet>().unwrap());
        let empty: ClientAddressConfig =
            serde_json::from_value(serde_json::json!({ "header": "x-forwarded-for", "trusted_proxies": "" })).unwrap();
        assert!(empty.trusted_proxies.is_empty());
    }

    #[test]
    fn bad_proxies_and_header_names_are_refused() {
        let parse = |header: &str, proxies: &str| {
            serde_json::from_value::<ClientAddressConfig>(
                serde_json::json!({ "header": header, "trusted_proxies": proxies }),
            )
            .map_err(|e| e.to_string())
        };
        assert!(parse("x-forwarded-for", "10.0.0.0/33").unwrap_err().contains("10.0.0.0/33"));
        assert!(parse("x-forwarded-for", "proxy.local").unwrap_err().contains("proxy.local"));
        assert!(parse("bad header", "").unwrap_err().contains("not a header name"));
        let everyone = parse("x-forwarded-for", "0.0.0.0/0").unwrap();
        assert!(everyone.validate("gateway").unwrap_err().starts_with("gateway.client_address.trusted_proxies"));
    }
}
