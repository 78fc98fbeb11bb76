//! A lean HTTP/1.1 keep-alive connection for the measured requests: one per
//! simulated client, requests written straight to the socket, answers read by
//! Content-Length.
//!
//! Why not reqwest: the load generator shares this machine's two cores with the
//! service and Redis, so whatever it spends per request is taken from the service.
//! Through reqwest (a pool, and a task per connection that each request is handed
//! to) the waiting room measured about a third fewer joins per second than through
//! wrk; a client that does no more than wrk does measures the service, not itself.

use anyhow::{bail, ensure, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most header lines an answer may have.
const MAX_HEADERS: usize = 32;

pub struct Connection {
    stream: TcpStream,
    host: String,
    /// Bytes read but not yet consumed; reused between requests.
    buffer: Vec<u8>,
}

/// An answer: status code and body.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Connection {
    /// `base` is `http://host:port`, already checked to be on this machine.
    pub async fn open(base: &str) -> anyhow::Result<Self> {
        let host = base.strip_prefix("http://").context("only http:// URLs are supported")?.trim_end_matches('/');
        let stream = TcpStream::connect(host).await.with_context(|| format!("connecting to {host}"))?;
        // Requests are small and sent whole; waiting to batch them only adds latency.
        stream.set_nodelay(true)?;
        Ok(Self { stream, host: host.to_owned(), buffer: Vec::with_capacity(4096) })
    }

    pub async fn get(&mut self, path: &str) -> anyhow::Result<Answer> {
        self.request(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host).into_bytes()).await
    }

    pub async fn post_json(&mut self, path: &str, body: &str) -> anyhow::Result<Answer> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.request(head.into_bytes()).await
    }

    async fn request(&mut self, request: Vec<u8>) -> anyhow::Result<Answer> {
        self.stream.write_all(&request).await?;
        loop {
            if let Some((head_len, status, body_len)) = parse_head(&self.buffer)? {
                while self.buffer.len() < head_len + body_len {
                    self.fill().await?;
                }
                let body = self.buffer[head_len..head_len + body_len].to_vec();
                self.buffer.drain(..head_len + body_len);
                return Ok(Answer { status, body });
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let read = self.stream.read_buf(&mut self.buffer).await?;
        ensure!(read > 0, "the server closed the connection");
        Ok(())
    }
}

/// (head length, status, body length) once the whole head has arrived.
fn parse_head(buffer: &[u8]) -> anyhow::Result<Option<(usize, u16, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = response.parse(buffer)? else {
        return Ok(None);
    };
    let status = response.code.context("no status code")?;
    let Some(length) = response.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length")) else {
        bail!("an answer without Content-Length (status {status}); only those are supported");
    };
    let body_len = std::str::from_utf8(length.value)?.trim().parse()?;
    Ok(Some((head_len, status, body_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_only_once_complete() {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(&answer[..20]).unwrap(), None);
        assert_eq!(parse_head(answer).unwrap(), Some((answer.len() - 2, 201, 2)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
    }
}
