//! Compressed answers. Every public answer larger than [`COMPRESS_ABOVE`] is
//! gzip-compressed on its way out when the client accepts it ([`layer`], on every
//! service's public router): a seat map of 100,000 seats is 12.8 MB of JSON and 0.83 MB
//! gzipped, and each fan's reload of it cost the full size in bandwidth.
//!
//! Compressing that seat map costs tens of milliseconds of CPU, once per answer when
//! done on the way out. An answer served many times from a cached copy is compressed
//! once, with the copy ([`JsonBody::compressed`], off the async workers), and sent as
//! it is to every client that accepts gzip; the layer leaves an answer that already has
//! a `Content-Encoding` alone.

use axum::body::Bytes;
use axum::http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;

/// Answers up to this many bytes go out as they are: gzip saves little on them, and
/// the waiting room's joins and polls (a few hundred bytes, its busiest routes) would
/// each pay for a compressor's state.
pub const COMPRESS_ABOVE: u16 = 1024;

/// Compresses answers past [`COMPRESS_ABOVE`] for clients that accept gzip.
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESS_ABOVE)))
}

/// A JSON answer, with its gzip encoding when it was made compressed.
#[derive(Debug, Clone)]
pub struct JsonBody {
    plain: Bytes,
    gzip: Option<Bytes>,
}

impl JsonBody {
    /// Sent as it is; [`layer`] compresses it per answer if it is large.
    pub fn plain(json: Bytes) -> Self {
        Self { plain: json, gzip: None }
    }

    /// Also gzip-encoded now, on a blocking thread (a 12.8 MB seat map takes tens of
    /// milliseconds), when it is larger than [`COMPRESS_ABOVE`]: for a body served many
    /// times.
    pub async fn compressed(json: Bytes) -> Self {
        if json.len() <= usize::from(COMPRESS_ABOVE) {
            return Self::plain(json);
        }
        let gzip = tokio::task::spawn_blocking({
            let json = json.clone();
            move || gzip(&json)
        })
        .await
        .ok();
        Self { plain: json, gzip }
    }

    /// The answer for a request with these headers: gzip-encoded if it was made so and
    /// the client accepts gzip.
    pub fn answer(&self, request: &HeaderMap) -> Response {
        let json = [(CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        match &self.gzip {
            Some(gzip) if accepts_gzip(request) => {
                let encoded = [
                    (CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                    (VARY, HeaderValue::from_static("accept-encoding")),
                ];
                (json, encoded, gzip.clone()).into_response()
            }
            _ => (json, self.plain.clone()).into_response(),
        }
    }
}

fn gzip(json: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 8), flate2::Compression::default());
    encoder.write_all(json).expect("writing to memory cannot fail");
    Bytes::from(encoder.finish().expect("writing to memory cannot fail"))
}

/// Whether `Accept-Encoding` lists gzip (or `*`) with a quality above 0.
pub fn accepts_gzip(request: &HeaderMap) -> bool {
    request.get_all(ACCEPT_ENCODING).iter().filter_map(|value| value.to_str().ok()).flat_map(|v| v.split(',')).any(
        |coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused =
                parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)));
            ["gzip", "x-gzip", "*"].iter().any(|n| name.eq_ignore_ascii_case(n)) && !refused
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(value: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_accepted_when_listed_with_a_quality_above_zero() {
        for yes in ["gzip", "deflate, gzip;q=0.5", "br, *", "GZIP", "x-gzip"] {
            assert!(accepts(yes), "{yes}");
        }
        for no in ["identity", "br, deflate", "gzip;q=0", "gzip; q=0.0", "gzipped"] {
            assert!(!accepts(no), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()), "no header");
    }
}
