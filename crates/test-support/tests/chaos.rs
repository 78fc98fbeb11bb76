//! The chaos proxy against the real local PostgreSQL and a private redis-server, and
//! the private redis-server itself. Nothing here stops, restarts or flushes the shared
//! servers: PostgreSQL is only queried, and Redis faults use a `RedisServer` of their own.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{Connection, PgConnection};
use test_support::admin_database_url;
use test_support::chaos::{ChaosProxy, PgMatch};
use test_support::redis_server::RedisServer;
use tokio::time::timeout;

/// How long something that must not happen is given to happen anyway. A held query
/// proves nothing about speed, so this can be short without making tests flaky.
const HELD: Duration = Duration::from_millis(500);
/// Generous bound for what must happen, on a loaded two-core machine.
const SOON: Duration = Duration::from_secs(10);

/// A proxy in front of the test PostgreSQL, and options that connect through it.
async fn pg_proxy() -> (ChaosProxy, PgConnectOptions) {
    let direct: PgConnectOptions = admin_database_url().parse().unwrap();
    let upstream = tokio::net::lookup_host((direct.get_host(), direct.get_port())).await.unwrap().next().unwrap();
    let proxy = ChaosProxy::start(upstream).await.unwrap();
    // The proxy parses the protocol, so it must not be encrypted.
    let through = direct.host("127.0.0.1").port(proxy.addr().port()).ssl_mode(PgSslMode::Disable);
    (proxy, through)
}

async fn direct_connection() -> PgConnection {
    PgConnection::connect(&admin_database_url()).await.unwrap()
}

async fn select_one(conn: &mut PgConnection) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT 1").fetch_one(conn).await
}

async fn backend_state(direct: &mut PgConnection, pid: i32) -> Option<String> {
    sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1").bind(pid).fetch_one(direct).await.unwrap()
}

/// Polls `check` until it holds, failing the test after `SOON`.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + SOON;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {SOON:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Redis connection whose response timeout (500 ms by default) outlasts injected latency.
async fn redis_connection(url: &str) -> MultiplexedConnection {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(SOON)).set_connection_timeout(Some(SOON));
    redis::Client::open(url).unwrap().get_multiplexed_async_connection_with_config(&config).await.unwrap()
}

async fn ping(conn: &mut MultiplexedConnection) -> String {
    redis::cmd("PING").query_async(conn).await.unwrap()
}

#[tokio::test]
async fn a_frozen_proxy_holds_queries_and_new_connections_until_thawed() {
    let (proxy, options) = pg_proxy().await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    assert_eq!(select_one(&mut conn).await.unwrap(), 1);

    proxy.freeze();
    // Spawned rather than timed out in place: dropping a half-sent query would leave
    // the connection unusable, and the test wants to see this very query complete.
    let mut query = tokio::spawn(async move { select_one(&mut conn).await });
    assert!(timeout(HELD, &mut query).await.is_err(), "a query completed through a frozen proxy");
    let mut connect = tokio::spawn({
        let options = options.clone();
        async move { PgConnection::connect_with(&options).await }
    });
    assert!(timeout(HELD, &mut connect).await.is_err(), "a connection started up through a frozen proxy");

    proxy.thaw();
    assert_eq!(timeout(SOON, query).await.expect("held query completes after thaw").unwrap().unwrap(), 1);
    let mut fresh = timeout(SOON, connect).await.expect("held connect completes after thaw").unwrap().unwrap();
    assert_eq!(select_one(&mut fresh).await.unwrap(), 1);
}

#[tokio::test]
async fn dropped_connections_fail_and_refused_ones_never_start() {
    let (proxy, options) = pg_proxy().await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    assert_eq!(select_one(&mut conn).await.unwrap(), 1);

    proxy.drop_connections();
    let after_drop = timeout(SOON, select_one(&mut conn)).await.expect("a dropped connection fails, not hangs");
    assert!(after_drop.is_err(), "a query succeeded on a dropped connection: {after_drop:?}");
    let mut fresh = PgConnection::connect_with(&options).await.unwrap();
    assert_eq!(select_one(&mut fresh).await.unwrap(), 1, "connections opened after the drop work");

    proxy.refuse(true);
    let refused =
        timeout(SOON, PgConnection::connect_with(&options)).await.expect("a refused connect fails, not hangs");
    assert!(refused.is_err(), "connected through a refusing proxy");
    assert_eq!(select_one(&mut fresh).await.unwrap(), 1, "refusing leaves open connections alone");
    proxy.refuse(false);
    let mut again = PgConnection::connect_with(&options).await.unwrap();
    assert_eq!(select_one(&mut again).await.unwrap(), 1);
}

#[tokio::test]
async fn latency_delays_each_redis_command_both_ways() {
    let redis = RedisServer::start().await.unwrap();
    let proxy = ChaosProxy::start(redis.addr()).await.unwrap();
    let mut conn = redis_connection(&format!("redis://{}", proxy.addr())).await;
    assert_eq!(ping(&mut conn).await, "PONG");

    proxy.set_latency(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(ping(&mut conn).await, "PONG");
    let took = started.elapsed();
    // 200 ms before the request is forwarded and 200 ms before the reply is.
    assert!(took >= Duration::from_millis(400), "PING took {took:?} with 200 ms latency each way");

    proxy.set_latency(Duration::ZERO);
    assert_eq!(ping(&mut conn).await, "PONG");
}

#[tokio::test]
async fn a_pause_after_begin_leaves_the_backend_idle_in_transaction_until_resumed() {
    let (proxy, options) = pg_proxy().await;
    let mut direct = direct_connection().await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.unwrap();

    proxy.pause_after(PgMatch::query_starts_with("BEGIN"));
    let (began, mut has_begun) = tokio::sync::oneshot::channel();
    let mut client = tokio::spawn(async move {
        let mut tx = conn.begin().await?;
        let _ = began.send(());
        let one = select_one(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>((conn, one))
    });
    eventually("the BEGIN trigger fires", async || proxy.pause_hits() == 1).await;
    // The server got BEGIN and ran it; its reply is held, so the client is stuck there.
    eventually("the backend is idle in transaction", async || {
        backend_state(&mut direct, pid).await.as_deref() == Some("idle in transaction")
    })
    .await;
    assert!(timeout(HELD, &mut client).await.is_err(), "the client got past a paused BEGIN");
    assert!(has_begun.try_recv().is_err(), "begin() returned: the reply to BEGIN got through");
    assert_eq!(backend_state(&mut direct, pid).await.as_deref(), Some("idle in transaction"));

    proxy.resume();
    // The connection comes back so that its backend outlives the task.
    let (_conn, one) = timeout(SOON, client).await.expect("the client continues after resume").unwrap().unwrap();
    assert_eq!(one, 1);
    assert_eq!(proxy.pause_hits(), 1, "the trigger is one-shot");
    assert_eq!(backend_state(&mut direct, pid).await.as_deref(), Some("idle"), "the transaction committed");
}

#[tokio::test]
async fn a_pause_matches_the_parse_of_a_statement_not_yet_prepared() {
    let (proxy, options) = pg_proxy().await;
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    let query = "SELECT $1::int4 + 1";

    proxy.pause_after(PgMatch::query_starts_with("select"));
    let mut client = tokio::spawn(async move {
        let two: i32 = sqlx::query_scalar(query).bind(1).fetch_one(&mut conn).await?;
        Ok::<_, sqlx::Error>((conn, two))
    });
    eventually("the Parse trigger fires", async || proxy.pause_hits() == 1).await;
    assert!(timeout(HELD, &mut client).await.is_err(), "the statement completed while paused");
    proxy.resume();
    let (mut conn, two) = timeout(SOON, client).await.expect("continues after resume").unwrap().unwrap();
    assert_eq!(two, 2);

    // sqlx caches the prepared statement: running it again sends Bind/Execute/Sync and
    // no Parse, so there is no SQL for the armed trigger to match.
    proxy.pause_after(PgMatch::query_starts_with("SELECT"));
    let three: i32 = timeout(SOON, sqlx::query_scalar(query).bind(2).fetch_one(&mut conn)).await.unwrap().unwrap();
    assert_eq!(three, 3);
    assert_eq!(proxy.pause_hits(), 1, "a cached statement carries no SQL to match");
}

#[tokio::test]
async fn a_pause_after_the_nth_message_counts_from_the_first_after_startup() {
    let (proxy, options) = pg_proxy().await;
    let mut direct = direct_connection().await;
    // The backend is found by a name sent in the startup packet, which is untyped and
    // so not counted.
    let name = format!("chaos-{}", uuid::Uuid::new_v4().simple());
    let options = options.application_name(&name);
    proxy.pause_after(PgMatch::NthMessage(1));
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    assert_eq!(proxy.pause_hits(), 0, "connecting sends no typed message");

    // sqlx sends BEGIN as a simple query: the connection's first typed message.
    let mut client = tokio::spawn(async move {
        conn.begin().await?.commit().await?;
        Ok::<_, sqlx::Error>(conn)
    });
    eventually("the first message pauses", async || proxy.pause_hits() == 1).await;
    let state = || sqlx::query_scalar::<_, String>("SELECT state FROM pg_stat_activity WHERE application_name = $1");
    eventually("the backend is idle in transaction", async || {
        state().bind(&name).fetch_one(&mut direct).await.unwrap() == "idle in transaction"
    })
    .await;
    assert!(timeout(HELD, &mut client).await.is_err(), "the client got past its paused first message");

    proxy.resume();
    let _conn = timeout(SOON, client).await.expect("continues after resume").unwrap().unwrap();
    assert_eq!(proxy.pause_hits(), 1);
    assert_eq!(state().bind(&name).fetch_one(&mut direct).await.unwrap(), "idle");
}

#[tokio::test]
async fn a_private_redis_loses_its_data_on_flushall_and_restart() {
    let mut server = RedisServer::start().await.unwrap();
    let addr = server.addr();
    assert_eq!(server.url(), format!("redis://{addr}"));
    let mut conn = redis_connection(&server.url()).await;
    let get = || redis::cmd("GET").arg("k").clone();

    redis::cmd("SET").arg("k").arg("v").exec_async(&mut conn).await.unwrap();
    assert_eq!(get().query_async::<Option<String>>(&mut conn).await.unwrap().as_deref(), Some("v"));
    server.flushall().await.unwrap();
    assert_eq!(get().query_async::<Option<String>>(&mut conn).await.unwrap(), None);

    redis::cmd("SET").arg("k").arg("v").exec_async(&mut conn).await.unwrap();
    server.stop();
    let stopped = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await;
    assert!(stopped.is_err(), "connected to a stopped server");

    server.restart().await.unwrap();
    assert_eq!(server.addr(), addr, "restarted on the same port");
    let mut conn = redis_connection(&server.url()).await;
    assert_eq!(ping(&mut conn).await, "PONG");
    assert_eq!(get().query_async::<Option<String>>(&mut conn).await.unwrap(), None, "data survived a restart");
}
