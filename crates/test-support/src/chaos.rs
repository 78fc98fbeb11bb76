//! A TCP proxy that injects network faults between a service under test and PostgreSQL
//! or Redis: partitions ([`ChaosProxy::freeze`]), dropped and refused connections,
//! latency, and — for PostgreSQL — a pause right after a chosen message reaches the
//! server ([`ChaosProxy::pause_after`]), to stop a client at an exact point of a
//! transaction (say, between `BEGIN` and `COMMIT`) while the server holds its locks.
//!
//! Everything the tasks obey lives in one [`watch`] channel: a fault is a change of
//! that value, and every forwarding task wakes, re-reads it and waits while it must
//! not forward. Each direction of a connection checks twice per chunk — before it
//! reads (so a frozen proxy leaves new bytes in the kernel) and again just before it
//! writes (so a chunk read before `freeze()` is held, not delivered) — which is what
//! makes `freeze()` take effect for every byte sent after it returns.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The faults in force, shared by every task through a `watch` channel.
#[derive(Debug, Default)]
struct Faults {
    frozen: bool,
    refuse: bool,
    latency: Duration,
    /// Bumped by `drop_connections()`: a connection opened under an older value closes.
    drop_epoch: u64,
    /// Connections stopped by a `pause_after` trigger, until `resume()`.
    paused: HashSet<u64>,
}

impl Faults {
    fn flows(&self, conn: u64) -> bool {
        !self.frozen && !self.paused.contains(&conn)
    }
}

struct Shared {
    faults: watch::Sender<Faults>,
    /// The armed one-shot PostgreSQL trigger; the first connection to match takes it.
    trigger: Mutex<Option<PgMatch>>,
    pause_hits: AtomicUsize,
}

/// A TCP proxy on `127.0.0.1:<free port>` forwarding to one upstream address.
///
/// Dropping it aborts its tasks, which closes the listener and every connection.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl ChaosProxy {
    /// Listens on `127.0.0.1:0` and forwards each accepted connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<ChaosProxy> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Listens on `listen` (a fixed port, for a script) and forwards to `upstream`.
    pub async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<ChaosProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            faults: watch::Sender::new(Faults::default()),
            trigger: Mutex::new(None),
            pause_hits: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, upstream, shared.clone()));
        Ok(ChaosProxy { addr, shared, accept_task })
    }

    /// The address clients connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A partition: no byte flows either way on any connection, old or new, until
    /// [`thaw`](Self::thaw). Sockets stay open, so clients see a hang, not an error.
    pub fn freeze(&self) {
        self.shared.faults.send_modify(|f| f.frozen = true);
    }

    /// Ends a [`freeze`](Self::freeze); bytes held meanwhile are delivered.
    pub fn thaw(&self) {
        self.shared.faults.send_modify(|f| f.frozen = false);
    }

    /// Closes every current connection, both sides, as a crashed server or a reset
    /// network would. Connections opened afterwards work normally.
    pub fn drop_connections(&self) {
        self.shared.faults.send_modify(|f| f.drop_epoch += 1);
    }

    /// While `true`, new connections are accepted and closed at once.
    pub fn refuse(&self, refuse: bool) {
        self.shared.faults.send_modify(|f| f.refuse = refuse);
    }

    /// Delays every chunk by `latency` before forwarding it, in both directions, so a
    /// request/response round trip costs at least twice `latency`. Zero turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.send_modify(|f| f.latency = latency);
    }

    /// Arms a one-shot trigger for PostgreSQL clients: the first frontend message, on
    /// any connection, that matches is forwarded to the server in full, then that
    /// connection stops (no byte either way) until [`resume`](Self::resume). Arming
    /// again replaces a trigger that has not fired.
    pub fn pause_after(&self, matcher: PgMatch) {
        *self.shared.trigger.lock().unwrap() = Some(matcher);
    }

    /// Lets connections stopped by [`pause_after`](Self::pause_after) flow again,
    /// delivering what was held. An armed trigger that has not fired stays armed.
    pub fn resume(&self) {
        self.shared.faults.send_modify(|f| f.paused.clear());
    }

    /// How many times a `pause_after` trigger fired, so a test can assert that the
    /// fault really happened rather than the test passing without it.
    pub fn pause_hits(&self) -> usize {
        self.shared.pause_hits.load(Ordering::SeqCst)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        // The accept task owns the listener and the JoinSet of connection tasks;
        // aborting it drops the set, which aborts them and closes their sockets.
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let next_id = AtomicU64::new(0);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                if shared.faults.borrow().refuse {
                    continue; // dropping `client` closes it
                }
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                connections.spawn(proxy_connection(id, client, upstream, shared.clone()));
            }
            // Reap finished connections so the set does not grow for ever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one connection until either side closes or `drop_connections()` is called;
/// returning drops both sockets. One side closing ends both directions at once, which
/// suits PostgreSQL and Redis: their clients never half-close and wait for a reply.
async fn proxy_connection(id: u64, client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut faults = shared.faults.subscribe();
    let epoch = faults.borrow().drop_epoch;
    // Connected even while frozen: a partition shows as a hang, so the client's
    // connect() must succeed and only its bytes stop.
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    // Chunks are small requests and replies; Nagle would add its own latency.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // Only the frontend stream is parsed: PostgreSQL's protocol starts with an untyped
    // packet, so a Redis client's first bytes read as garbage and parsing stops at once.
    let to_server = pump(id, client_read, server_write, &shared, Some(PgParser::default()));
    let to_client = pump(id, server_read, client_write, &shared, None);
    tokio::select! {
        // Checked first, so once a drop is due no further byte is forwarded.
        biased;
        _ = faults.wait_for(|f| f.drop_epoch != epoch) => {}
        _ = to_server => {}
        _ = to_client => {}
    }
}

/// Copies one direction of a connection, obeying the faults in force.
async fn pump(
    id: u64,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    shared: &Shared,
    mut parser: Option<PgParser>,
) -> io::Result<()> {
    let mut faults = shared.faults.subscribe();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        flowing(&mut faults, id).await?;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let latency = faults.borrow().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        // Bytes of this chunk already written, when a pause split it.
        let mut written = 0;
        if let Some(parser) = parser.as_mut() {
            let mut parsed = 0;
            while parsed < n {
                let (used, message) = parser.feed(&buf[parsed..n]);
                parsed += used;
                if message.is_some_and(|m| shared.take_trigger(&m)) {
                    flowing(&mut faults, id).await?;
                    // Paused *before* the matching message goes out, so the server's
                    // reply to it is held too: the client must not see it complete.
                    shared.faults.send_modify(|f| {
                        f.paused.insert(id);
                    });
                    shared.pause_hits.fetch_add(1, Ordering::SeqCst);
                    to.write_all(&buf[written..parsed]).await?;
                    written = parsed;
                }
            }
        }
        flowing(&mut faults, id).await?;
        to.write_all(&buf[written..n]).await?;
    }
}

/// Waits until connection `id` may forward; an error once the proxy is gone.
async fn flowing(faults: &mut watch::Receiver<Faults>, id: u64) -> io::Result<()> {
    match faults.wait_for(|f| f.flows(id)).await {
        Ok(_) => Ok(()),
        Err(_) => Err(io::ErrorKind::BrokenPipe.into()),
    }
}

impl Shared {
    fn take_trigger(&self, message: &PgMessage) -> bool {
        let mut trigger = self.trigger.lock().unwrap();
        if trigger.as_ref().is_some_and(|m| m.matches(message)) {
            *trigger = None;
            true
        } else {
            false
        }
    }
}

/// Which PostgreSQL frontend message fires a [`ChaosProxy::pause_after`] trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgMatch {
    /// A Simple Query (`Q`) or Parse (`P`) message whose SQL, after leading
    /// whitespace, starts with this keyword, case-insensitively and as a whole word
    /// (`"BEGIN"` matches `begin;` and `BEGIN ISOLATION LEVEL …`, not `BEGINS`).
    /// sqlx sends `BEGIN`/`COMMIT`/`ROLLBACK` as simple queries and other statements
    /// as Parse/Bind/Execute/Sync — only Parse carries the SQL, and a statement sqlx
    /// has already prepared on that connection is sent without one.
    QueryStartsWith(String),
    /// The `n`th typed message a connection sends after its startup packet, counted
    /// from 1 on each connection (a password message counts too).
    NthMessage(usize),
}

impl PgMatch {
    pub fn query_starts_with(keyword: impl Into<String>) -> Self {
        PgMatch::QueryStartsWith(keyword.into())
    }

    fn matches(&self, message: &PgMessage) -> bool {
        match self {
            PgMatch::NthMessage(n) => message.index == *n,
            PgMatch::QueryStartsWith(keyword) => {
                let Some(sql) = message.sql() else { return false };
                let sql = sql.trim_ascii_start();
                let keyword = keyword.as_bytes();
                sql.len() >= keyword.len()
                    && sql[..keyword.len()].eq_ignore_ascii_case(keyword)
                    && sql.get(keyword.len()).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            }
        }
    }
}

/// A typed frontend message, as much of it as a matcher needs.
#[derive(Debug)]
struct PgMessage {
    tag: u8,
    /// 1 for the first typed message after startup.
    index: usize,
    /// The start of the body, kept only for `Q` and `P`.
    body: Vec<u8>,
}

impl PgMessage {
    /// The SQL text of a Simple Query (`query\0`) or Parse (`name\0query\0…`).
    fn sql(&self) -> Option<&[u8]> {
        let text = match self.tag {
            b'Q' => &self.body[..],
            b'P' => &self.body[self.body.iter().position(|&c| c == 0)? + 1..],
            _ => return None,
        };
        Some(text.split(|&c| c == 0).next().unwrap_or(text))
    }
}

/// SQL beyond this is not needed to match a keyword; large messages are not buffered.
const KEEP_BODY: usize = 4096;
const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;

/// An incremental parser of the frontend (client → server) PostgreSQL stream: bytes
/// arrive in chunks that cut messages anywhere, so it keeps its place between calls.
///
/// The stream opens with untyped packets (4-byte length, then a 4-byte code):
/// an SSLRequest or GSSENCRequest, which the server answers with one byte (`N` to
/// go on in plain text), and then the StartupMessage. Every later message is typed:
/// a 1-byte tag, then a 4-byte big-endian length that counts itself but not the tag.
#[derive(Debug, Default)]
struct PgParser {
    /// Past the StartupMessage: messages are typed.
    typed: bool,
    /// Lost sync (TLS or GSS encryption began, or this is not PostgreSQL): from here
    /// on bytes pass without parsing and no trigger fires on this connection.
    lost: bool,
    header: Vec<u8>,
    /// Body bytes of the current message still to come, once its header is complete.
    remaining: Option<usize>,
    body: Vec<u8>,
    count: usize,
}

impl PgParser {
    /// Consumes `data` up to the end of the next complete typed message, returning how
    /// many bytes it used and that message; or all of `data` and `None`.
    fn feed(&mut self, data: &[u8]) -> (usize, Option<PgMessage>) {
        let mut used = 0;
        while !self.lost {
            let Some(remaining) = self.remaining else {
                if used == data.len() {
                    return (used, None);
                }
                let want = if self.typed { 5 } else { 4 };
                let take = (want - self.header.len()).min(data.len() - used);
                self.header.extend_from_slice(&data[used..used + take]);
                used += take;
                if self.header.len() == want {
                    self.start_body();
                }
                continue;
            };
            // Runs even with no data left, so a message with an empty body (Sync)
            // ends together with its header, not at the start of the next chunk.
            let take = remaining.min(data.len() - used);
            if !self.typed || matches!(self.header[0], b'Q' | b'P') {
                let keep = take.min(KEEP_BODY.saturating_sub(self.body.len()));
                self.body.extend_from_slice(&data[used..used + keep]);
            }
            used += take;
            if take < remaining {
                self.remaining = Some(remaining - take);
                return (used, None);
            }
            if let Some(message) = self.finish() {
                return (used, Some(message));
            }
        }
        (data.len(), None)
    }

    /// Reads the length from a complete header.
    fn start_body(&mut self) {
        let len_bytes = &self.header[self.header.len() - 4..];
        let len = u32::from_be_bytes(len_bytes.try_into().unwrap()) as usize;
        // An untyped packet's length is small (its first byte 0); a TLS record starts
        // with 0x16. The length counts itself, and an untyped packet also has a code.
        let min = if self.typed { 4 } else { 8 };
        if len < min || (!self.typed && self.header[0] != 0) {
            self.lost = true;
            return;
        }
        self.remaining = Some(len - 4);
        self.body.clear();
    }

    /// Ends the current message; returns it if it is a typed one.
    fn finish(&mut self) -> Option<PgMessage> {
        self.remaining = None;
        let header = std::mem::take(&mut self.header);
        if !self.typed {
            let code = u32::from_be_bytes(self.body[..4].try_into().unwrap());
            match code {
                // The server answers with one byte: `N` keeps plain text and the next
                // packet is untyped again; `S`/`G` start encryption, which the next
                // packet's first byte shows (see `start_body`).
                SSL_REQUEST | GSSENC_REQUEST => {}
                // A StartupMessage (protocol 3.x); a CancelRequest is the last
                // packet of its connection, so treating it alike is harmless.
                _ => self.typed = true,
            }
            return None;
        }
        self.count += 1;
        Some(PgMessage { tag: header[0], index: self.count, body: std::mem::take(&mut self.body) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn untyped(code: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = ((8 + payload.len()) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&code.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((4 + body.len()) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// Feeds `stream` in chunks of `chunk` bytes; returns each message with the
    /// stream offset just past it.
    fn parse(stream: &[u8], chunk: usize) -> (PgParser, Vec<(usize, PgMessage)>) {
        let mut parser = PgParser::default();
        let mut found = Vec::new();
        let mut offset = 0;
        for piece in stream.chunks(chunk) {
            let mut at = 0;
            while at < piece.len() {
                let (used, message) = parser.feed(&piece[at..]);
                at += used;
                if let Some(message) = message {
                    found.push((offset + at, message));
                }
            }
            offset += piece.len();
        }
        (parser, found)
    }

    fn startup() -> Vec<u8> {
        untyped(196608, b"user\0postgres\0database\0postgres\0\0")
    }

    fn session() -> Vec<u8> {
        let mut stream = untyped(SSL_REQUEST, b""); // answered with `N`
        stream.extend(startup());
        stream.extend(typed(b'Q', b"  begin\0"));
        stream.extend(typed(b'P', b"sqlx_s_1\0SELECT $1\0\0\0"));
        stream.extend(typed(b'B', b"\0sqlx_s_1\0\0\0\0\0"));
        stream.extend(typed(b'S', b""));
        stream
    }

    #[test]
    fn messages_are_found_at_their_end_however_the_stream_is_cut() {
        let stream = session();
        let whole = parse(&stream, stream.len()).1;
        for chunk in [1, 3, 7, stream.len()] {
            let found = parse(&stream, chunk).1;
            let summary: Vec<_> = found.iter().map(|(end, m)| (*end, m.tag, m.index)).collect();
            let expected: Vec<_> = whole.iter().map(|(end, m)| (*end, m.tag, m.index)).collect();
            assert_eq!(summary, expected, "chunks of {chunk}");
        }
        let tags: Vec<_> = whole.iter().map(|(_, m)| m.tag).collect();
        assert_eq!(tags, b"QPBS");
        let begin_end = untyped(SSL_REQUEST, b"").len() + startup().len() + typed(b'Q', b"  begin\0").len();
        assert_eq!(whole[0].0, begin_end);
        assert_eq!(whole[3].0, stream.len());
    }

    #[test]
    fn matchers_read_simple_query_and_parse_sql_as_whole_words() {
        let found = parse(&session(), 5).1;
        let begin = PgMatch::query_starts_with("BEGIN");
        let select = PgMatch::query_starts_with("select");
        assert!(begin.matches(&found[0].1));
        assert!(!begin.matches(&found[1].1));
        assert!(select.matches(&found[1].1));
        assert!(!select.matches(&found[2].1), "Bind carries no SQL");
        assert!(PgMatch::NthMessage(3).matches(&found[2].1));
        let beginning = PgMessage { tag: b'Q', index: 1, body: b"BEGINS\0".to_vec() };
        assert!(!begin.matches(&beginning));
    }

    #[test]
    fn tls_after_ssl_request_stops_parsing() {
        let mut stream = untyped(SSL_REQUEST, b"");
        stream.extend([0x16, 0x03, 0x01, 0x02, 0x00]); // a TLS ClientHello record
        stream.extend(typed(b'Q', b"BEGIN\0"));
        let (parser, found) = parse(&stream, 4);
        assert!(parser.lost);
        assert!(found.is_empty());
    }

    #[test]
    fn redis_traffic_is_not_taken_for_postgres() {
        let (parser, found) = parse(b"*1\r\n$4\r\nPING\r\n", 64);
        assert!(parser.lost);
        assert!(found.is_empty());
    }
}
