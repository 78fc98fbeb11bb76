//! Where the services run: one or more base URLs each, used in turn.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Error;

/// Base URLs of one service's replicas, handed out round-robin.
#[derive(Debug)]
pub struct Replicas {
    urls: Vec<String>,
    next: AtomicUsize,
}

impl Replicas {
    /// Refuses anything but this machine: a rehearsal is a load test.
    pub fn new(urls: Vec<String>) -> Result<Self, Error> {
        if urls.is_empty() {
            return Err(Error::Setup("no URL given for a service".into()));
        }
        for url in &urls {
            require_loopback(&reqwest::Url::parse(url).map_err(|e| Error::Setup(format!("{url}: {e}")))?)?;
        }
        Ok(Self {
            urls: urls.into_iter().map(|u| u.trim_end_matches('/').to_owned()).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// The next replica's base URL.
    pub fn next(&self) -> &str {
        &self.urls[self.next.fetch_add(1, Ordering::Relaxed) % self.urls.len()]
    }

    pub fn first(&self) -> &str {
        &self.urls[0]
    }

    pub fn count(&self) -> usize {
        self.urls.len()
    }
}

/// Refuses a URL off this machine: a rehearsal is a load test.
pub fn require_loopback(url: &reqwest::Url) -> Result<(), Error> {
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(Error::NotLoopback(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_urls_are_accepted_and_used_in_turn() {
        assert!(Replicas::new(vec!["http://10.0.0.1:8080".into()]).is_err());
        assert!(Replicas::new(vec!["http://example.com".into()]).is_err());
        let replicas = Replicas::new(vec!["http://127.0.0.1:1/".into(), "http://localhost:2".into()]).unwrap();
        assert_eq!(
            [replicas.next(), replicas.next(), replicas.next()],
            ["http://127.0.0.1:1", "http://localhost:2", "http://127.0.0.1:1"]
        );
    }
}
