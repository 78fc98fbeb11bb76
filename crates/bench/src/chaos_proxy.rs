//! `boxoffice-bench chaos-proxy`: [`test_support::chaos::ChaosProxy`] driven line by line
//! from stdin, so a shell script can partition a service from PostgreSQL (or Redis)
//! through a FIFO: `freeze` (no byte flows, sockets stay open), `thaw`, `drop` (close
//! every current connection). Each command is acknowledged on stdout with a timestamp;
//! end of input stops the proxy.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use test_support::chaos::ChaosProxy;
use tokio::io::{AsyncBufReadExt, BufReader};

pub async fn run(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        bail!("--listen must be a loopback address");
    }
    let proxy = ChaosProxy::start_on(listen, upstream).await.with_context(|| format!("listening on {listen}"))?;
    println!("listening {}", proxy.addr());
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        match line.trim() {
            "freeze" => proxy.freeze(),
            "thaw" => proxy.thaw(),
            "drop" => proxy.drop_connections(),
            "" => continue,
            other => {
                eprintln!("unknown command {other:?}: expected freeze, thaw or drop");
                continue;
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        println!("{} {:.3}", line.trim(), now.as_secs_f64());
    }
    Ok(())
}
