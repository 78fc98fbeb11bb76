//! A `redis-server` process of a test's own, for tests that stop, restart or flush
//! Redis — which they must never do to the shared server on 6379 that other tests use.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use uuid::Uuid;

/// How long a fresh `redis-server` may take to answer PING.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` on `127.0.0.1:<free port>`, persisting nothing, killed on drop.
pub struct RedisServer {
    addr: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers PING.
    pub async fn start() -> anyhow::Result<RedisServer> {
        // The OS picks a free port, released for redis-server to bind; the OS hands
        // ports out in rotation, so another test binding port 0 meanwhile will not get it.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("bo-redis-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer { addr: (Ipv4Addr::LOCALHOST, port).into(), dir, child: None };
        server.spawn().await?;
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Deletes every key.
    pub async fn flushall(&self) -> anyhow::Result<()> {
        let mut conn = redis::Client::open(self.url())?.get_multiplexed_async_connection().await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Kills the server (SIGKILL, as a crash would) and waits for it to exit.
    /// Connections to it fail until [`restart`](Self::restart).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs and starts a new one on the same port; nothing is
    /// persisted, so it comes back empty.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run redis-server (is it installed and on PATH?)")?;
        self.child = Some(child);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if self.ping().await {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                self.stop();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("redis-server on {} did not answer PING ({exited:?}); its log:\n{log}", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else { return false };
        let Ok(Ok(mut conn)) =
            tokio::time::timeout(Duration::from_secs(1), client.get_multiplexed_async_connection()).await
        else {
            return false;
        };
        matches!(redis::cmd("PING").query_async::<String>(&mut conn).await.as_deref(), Ok("PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
