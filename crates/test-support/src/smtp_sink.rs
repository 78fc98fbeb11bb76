//! A small SMTP server that keeps every email it is sent, for tests of what the
//! services send by email: it speaks enough of RFC 5321 for a real client (`EHLO`,
//! `MAIL`, `RCPT`, `DATA` with dot-unstuffing, `RSET`, `NOOP`, `QUIT`), on a port of
//! its own, and can be stopped and started again on that port (the server down, then
//! back). It can also refuse every email with a reply of the test's choice.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// One email as the sink took it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM`'s address, without the angle brackets.
    pub from: String,
    /// Every `RCPT TO` address.
    pub to: Vec<String>,
    /// The message (headers and body), dot-unstuffed, with CRLF line ends.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Answered to `DATA`'s end instead of 250, when set (e.g. "550 5.1.1 no such user").
    refuse_with: Option<String>,
    connections: u32,
}

/// The sink, listening until dropped or [`SmtpSink::stop`]ped.
pub struct SmtpSink {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    shutdown: CancellationToken,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The longest line or message the sink reads, so a broken client cannot fill memory.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

impl SmtpSink {
    /// A sink on a free port of 127.0.0.1.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("an address")).await.expect("a free port")
    }

    /// A sink on `addr` (the port of a sink stopped before, to bring it back).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(listener, state.clone(), shutdown.clone()));
        Ok(Self { addr, state, shutdown })
    }

    /// A free port where nothing listens now: an SMTP server that is down.
    pub async fn free_address() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        listener.local_addr().expect("a bound address")
    }

    /// `smtp://<addr>`: plain SMTP, as a client configuration names it.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Stops listening and closes every connection.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    /// From now on, every email is refused at the end of `DATA` with `reply`
    /// (`"550 5.1.1 no such user"`, `"451 4.3.0 try later"`); `None` takes them again.
    pub fn refuse_with(&self, reply: Option<&str>) {
        self.state.lock().expect("the sink's state").refuse_with = reply.map(str::to_owned);
    }

    /// Every email taken so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("the sink's state").received.clone()
    }

    /// How many connections were made to it.
    pub fn connections(&self) -> u32 {
        self.state.lock().expect("the sink's state").connections
    }

    /// Waits up to `within` until at least `n` emails arrived; returns them all.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = self.received();
            if received.len() >= n || tokio::time::Instant::now() >= deadline {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        state.lock().expect("the sink's state").connections += 1;
        let (state, shutdown) = (state.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = session(stream, state) => {}
            }
        });
    }
}

/// One client's session; ends at `QUIT`, at end of input, or on an I/O error.
async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP test sink\r\n").await?;
    let (mut from, mut to) = (None::<String>, Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if read_line(&mut lines, &mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n",
            "HELO" | "NOOP" => b"250 OK\r\n",
            "RSET" => {
                (from, to) = (None, Vec::new());
                b"250 OK\r\n"
            }
            "MAIL" => {
                from = Some(address(&command));
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" if from.is_some() => {
                to.push(address(&command));
                b"250 OK\r\n"
            }
            "DATA" if !to.is_empty() => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let data = read_data(&mut lines).await?;
                let refused = {
                    let mut state = state.lock().expect("the sink's state");
                    match state.refuse_with.clone() {
                        Some(reply) => Some(reply),
                        None => {
                            let from = from.take().unwrap_or_default();
                            state.received.push(Received { from, to: std::mem::take(&mut to), data });
                            None
                        }
                    }
                };
                match refused {
                    Some(reply) => write.write_all(format!("{reply}\r\n").as_bytes()).await?,
                    None => write.write_all(b"250 OK queued\r\n").await?,
                }
                (from, to) = (None, Vec::new());
                continue;
            }
            "RCPT" | "DATA" => b"503 bad sequence of commands\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R, line: &mut String) -> std::io::Result<usize> {
    let n = reader.read_line(line).await?;
    if line.len() > MAX_MESSAGE {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(n)
}

/// The message after `DATA`, up to the line holding only ".", dot-unstuffed.
async fn read_data<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(data);
        }
        let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
        if data.len() > MAX_MESSAGE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "message too long"));
        }
    }
}

/// The address in `MAIL FROM:<a>` or `RCPT TO:<a>` (parameters after it ignored).
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}
