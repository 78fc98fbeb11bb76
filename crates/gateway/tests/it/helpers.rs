use std::future::Future;
use std::net::SocketAddr;

use access_token::TokenSigner;
use gateway::{Application, GatewayConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use service_kit::postgres::Database;
use sqlx::PgPool;
use test_support::chaos::ChaosProxy;
use test_support::{Reply, TestDatabase, TestKeys};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// The ticket key every test gateway in this process signs with (so a replica verifies
/// another's tickets, as replicas sharing `tickets.keys_dir` do).
pub fn ticket_keys() -> sales::tickets::TicketKeys {
    sales::tickets::TicketKeys::new(ticket_pair().clone(), Vec::new())
}

/// The public half of [`ticket_keys`] alone, as a replica without the private key's file
/// holds it.
pub fn ticket_public_keys() -> sales::tickets::TicketKeys {
    sales::tickets::TicketKeys::verify_only(vec![ticket_pair().public_key()])
}

fn ticket_pair() -> &'static access_token::KeyPair {
    static PAIR: std::sync::OnceLock<access_token::KeyPair> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| access_token::KeyPair::generate("tickets-test").expect("a valid kid"))
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub management_addr: SocketAddr,
    /// The test's own connections, straight to the database (never through a proxy).
    pub pool: PgPool,
    /// The gateway's connections.
    pub db: Database,
    pub keys: TestKeys,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_pool_size(10).await
}

pub async fn spawn_app_with_pool_size(max_connections: u32) -> TestApp {
    spawn_app_with(max_connections, |_| {}).await
}

/// The app with test settings, changed by `adjust` first.
pub async fn spawn_app_with(max_connections: u32, adjust: impl FnOnce(&mut GatewayConfig)) -> TestApp {
    let db = TestDatabase::new(&schema::MIGRATOR, max_connections).await.expect("test database");
    let database = db.service_database(max_connections);
    start(db.pool, database, adjust).await
}

/// The app with a database URL where nothing listens (the test's own `pool` is real).
pub async fn spawn_app_with_unreachable_database() -> TestApp {
    let db = TestDatabase::new(&schema::MIGRATOR, 1).await.expect("test database");
    let nowhere = test_support::postgres_config("postgres://postgres@127.0.0.1:1/nowhere", 2).database().unwrap();
    start(db.pool, nowhere, |_| {}).await
}

/// The app on a database whose `token_revocations` table is renamed away before the
/// gateway starts (to [`HELD_REVOCATIONS`]), so every read of the revocations fails
/// until the test renames it back.
pub async fn spawn_app_unable_to_read_revocations(adjust: impl FnOnce(&mut GatewayConfig)) -> TestApp {
    let db = TestDatabase::new(&schema::MIGRATOR, 4).await.expect("test database");
    let rename = format!("ALTER TABLE token_revocations RENAME TO {HELD_REVOCATIONS}");
    sqlx::query(&rename).execute(&db.pool).await.expect("the table is renamed");
    let database = db.service_database(4);
    start(db.pool, database, adjust).await
}

/// Where [`spawn_app_unable_to_read_revocations`] puts `token_revocations`.
pub const HELD_REVOCATIONS: &str = "token_revocations_held_back";

/// The app reaching its database through a [`ChaosProxy`], with a pool of
/// `max_connections`; the test's own `pool` connects directly.
pub async fn spawn_app_through_proxy(max_connections: u32) -> (TestApp, ChaosProxy) {
    spawn_app_through_proxy_with(max_connections, |_| {}).await
}

pub async fn spawn_app_through_proxy_with(
    max_connections: u32,
    adjust: impl FnOnce(&mut GatewayConfig),
) -> (TestApp, ChaosProxy) {
    let db = TestDatabase::new(&schema::MIGRATOR, 4).await.expect("test database");
    let (proxy, proxied) = db.behind_proxy().await.expect("chaos proxy");
    let database = test_support::postgres_config(&proxied, max_connections).database().unwrap();
    (start(db.pool, database, adjust).await, proxy)
}

async fn start(pool: PgPool, database: Database, adjust: impl FnOnce(&mut GatewayConfig)) -> TestApp {
    start_with_keys(pool, database, TestKeys::new(), Some(ticket_keys()), None, adjust).await
}

/// The app trusting the public keys in `dir` (which must hold `keys`' pair), reading
/// them again every `every`.
pub async fn spawn_app_reloading_keys(keys: TestKeys, dir: &std::path::Path, every: std::time::Duration) -> TestApp {
    let db = TestDatabase::new(&schema::MIGRATOR, 4).await.expect("test database");
    let database = db.service_database(4);
    start_with_keys(db.pool, database, keys, Some(ticket_keys()), Some((dir, every)), |_| {}).await
}

/// The app started with no ticket keys, reading `<dir>/<signing_kid>.private.pem` and
/// every public key in `dir` again every `every`.
pub async fn spawn_app_reloading_ticket_keys(
    dir: &std::path::Path,
    signing_kid: &str,
    every: std::time::Duration,
) -> TestApp {
    let db = TestDatabase::new(&schema::MIGRATOR, 4).await.expect("test database");
    let database = db.service_database(4);
    let keys = TestKeys::new();
    let config = test_support::config(&[("admin_api_key", ADMIN_KEY), ("seat_map_max_age_ms", "0")], |_| {});
    let app = Application::build(&config, database.clone(), keys.verifier(), None)
        .await
        .expect("gateway binds")
        .reload_ticket_keys_from(dir.to_owned(), signing_kid.to_owned(), every);
    let addr = app.local_addr();
    let management_addr = app.management_addr();
    let shutdown = CancellationToken::new();
    let server = Some(tokio::spawn(app.run(shutdown.clone())));
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    TestApp { addr, management_addr, pool: db.pool, db: database, keys, http, shutdown, server }
}

async fn start_with_keys(
    pool: PgPool,
    database: Database,
    keys: TestKeys,
    tickets: Option<sales::tickets::TicketKeys>,
    reload_keys: Option<(&std::path::Path, std::time::Duration)>,
    adjust: impl FnOnce(&mut GatewayConfig),
) -> TestApp {
    // Tests read the seat map right after changing it.
    let config = test_support::config(&[("admin_api_key", ADMIN_KEY), ("seat_map_max_age_ms", "0")], adjust);
    let tickets = tickets.map(std::sync::Arc::new);
    let mut app = Application::build(&config, database.clone(), keys.verifier(), tickets).await.expect("gateway binds");
    if let Some((dir, every)) = reload_keys {
        app = app.reload_keys_from(dir.to_owned(), every);
    }
    let addr = app.local_addr();
    let management_addr = app.management_addr();
    let shutdown = CancellationToken::new();
    let server = Some(tokio::spawn(app.run(shutdown.clone())));
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    TestApp { addr, management_addr, pool, db: database, keys, http, shutdown, server }
}

impl TestApp {
    /// Another gateway replica on the same database, trusting the same signing key.
    pub async fn another_replica(&self) -> TestApp {
        self.another_replica_with_ticket_keys(Some(ticket_keys())).await
    }

    /// Another gateway replica on the same database holding `tickets` as its ticket keys.
    pub async fn another_replica_with_ticket_keys(&self, tickets: Option<sales::tickets::TicketKeys>) -> TestApp {
        let keys = TestKeys { pair: self.keys.pair.clone(), signer: TokenSigner::new(&self.keys.pair) };
        start_with_keys(self.pool.clone(), self.db.clone(), keys, tickets, None, |_| {}).await
    }

    /// Stops the gateway as SIGTERM would, then closes its connections.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("the server task ends").expect("the server stops cleanly");
        }
        self.db.pool().close().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// On the management listener (probes and metrics).
    pub fn management_url(&self, path: &str) -> String {
        format!("http://{}{}", self.management_addr, path)
    }

    pub fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> impl Future<Output = Reply> + 'static {
        self.send_with(method, path, bearer, body, &[])
    }

    /// Builds the request now and sends it when awaited, so the future borrows nothing.
    pub fn send_with(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = Reply> + 'static {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::of(request)
    }

    /// Creates an event as the organizer and returns its details.
    pub async fn create_event(&self, body: Value) -> Value {
        let reply = self.send(Method::POST, "/v1/events", Some(ADMIN_KEY), Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "create event: {}", reply.body);
        reply.body
    }

    /// A free event with one reserved section of seats "1".."seats": booked without a
    /// payment, as most tests need.
    pub async fn numbered_event(&self, seats: u32) -> Event {
        self.numbered_event_priced(seats, 0).await
    }

    /// An event with one reserved section of seats "1".."seats" at `price_minor` EUR
    /// cents each; fans may cancel until the start for a full refund.
    pub async fn numbered_event_priced(&self, seats: u32, price_minor: i64) -> Event {
        let body = self
            .create_event(json!({
                "name": "Numbered show",
                "max_per_order": 10,
                "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }],
                "sections": [{ "name": "Hall", "kind": "reserved", "price": { "amount_minor": price_minor, "currency": "EUR" }, "seats": seats }]
            }))
            .await;
        Event::from_details(&body)
    }

    /// A free event with one general-admission section of `capacity` places.
    pub async fn ga_event(&self, capacity: u32) -> Event {
        self.ga_event_priced(capacity, 0).await
    }

    /// An event with one general-admission section of `capacity` places at `price_minor`.
    pub async fn ga_event_priced(&self, capacity: u32, price_minor: i64) -> Event {
        let body = self
            .create_event(json!({
                "name": "Standing show",
                "refund_policy": [{ "before_hours": 0, "refund_percent": 100 }],
                "sections": [{ "name": "Floor", "kind": "general_admission", "price": { "amount_minor": price_minor, "currency": "EUR" }, "capacity": capacity }]
            }))
            .await;
        Event::from_details(&body)
    }

    pub fn token(&self, fan: &str, event: &Event) -> String {
        self.keys.token(fan, event.id)
    }

    pub fn book(&self, event: &Event, fan: &str, request: Value) -> impl Future<Output = Reply> + 'static {
        let token = self.token(fan, event);
        self.send(Method::POST, &event.path("/bookings"), Some(&token), Some(request))
    }

    /// Books as a client of the API should: `seat_contended` means another order holds
    /// a row lock right now, so try again shortly. A refused order's locks last until
    /// its rollback reaches the database, which can be a moment after its reply.
    pub async fn book_retrying_contention(&self, event: &Event, fan: &str, request: Value) -> Reply {
        for _ in 0..50 {
            let reply = self.book(event, fan, request.clone()).await;
            if reply.code() != "seat_contended" {
                return reply;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.book(event, fan, request).await
    }

    pub fn hold(&self, event: &Event, fan: &str, request: Value) -> impl Future<Output = Reply> + 'static {
        let token = self.token(fan, event);
        self.send(Method::POST, &event.path("/holds"), Some(&token), Some(request))
    }

    pub async fn details(&self, event: &Event) -> Value {
        self.send(Method::GET, &format!("/v1/events/{}", event.id), None, None).await.body
    }

    /// Moves every active hold of the event, and its seats, a second past their expiry,
    /// as if its time had run out: the database's clock decides expiry, so no test
    /// waits for it.
    pub async fn lapse_holds(&self, event: &Event) {
        sqlx::query(
            "WITH lapsed AS (
                 UPDATE holds SET expires_at = now() - interval '1 second'
                 WHERE event_id = $1 AND status = 'active'
             )
             UPDATE seats SET held_until = now() - interval '1 second' WHERE event_id = $1 AND state = 'held'",
        )
        .bind(event.id)
        .execute(&self.pool)
        .await
        .unwrap();
    }

    /// Checks, straight in the database, every invariant that "never oversell" means,
    /// and returns the number of seats booked.
    pub async fn assert_inventory_consistent(&self, event: &Event) -> i64 {
        let (double_booked,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM (SELECT seat_id FROM booking_seats WHERE live GROUP BY seat_id HAVING count(*) > 1) d",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(double_booked, 0, "a seat is in two live bookings");
        let (mismatched,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM seats s
             WHERE (s.state = 'booked') <> EXISTS (SELECT 1 FROM booking_seats b WHERE b.seat_id = s.id AND b.live AND b.booking_id = s.booking_id)",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(mismatched, 0, "seat states disagree with live booking rows");
        let (quantity_mismatch,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM bookings b
             WHERE b.status = 'confirmed' AND b.quantity <> (SELECT count(*) FROM booking_seats s WHERE s.booking_id = b.id AND s.live)",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(quantity_mismatch, 0, "a confirmed booking's quantity differs from its live seats");
        let (untickted, stray_tickets): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM (SELECT booking_id, seat_id FROM booking_seats WHERE live
                                           EXCEPT SELECT booking_id, seat_id FROM tickets WHERE revoked_at IS NULL) x),
                    (SELECT count(*) FROM (SELECT booking_id, seat_id FROM tickets WHERE revoked_at IS NULL
                                           EXCEPT SELECT booking_id, seat_id FROM booking_seats WHERE live) y)",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap();
        assert_eq!(
            (untickted, stray_tickets),
            (0, 0),
            "booked places without a live ticket, live tickets without a place"
        );
        let (booked, capacity): (i64, i64) =
            sqlx::query_as("SELECT count(*) FILTER (WHERE state = 'booked'), count(*) FROM seats WHERE event_id = $1")
                .bind(event.id)
                .fetch_one(&self.pool)
                .await
                .unwrap();
        assert!(booked <= capacity, "booked {booked} > capacity {capacity}");
        let details = self.details(event).await;
        for section in details["sections"].as_array().unwrap() {
            let (remaining, held, sold, kept, capacity) = (
                section["remaining"].as_i64().unwrap(),
                section["held"].as_i64().unwrap(),
                section["booked"].as_i64().unwrap(),
                section["kept_for_waitlist"].as_i64().unwrap(),
                section["capacity"].as_i64().unwrap(),
            );
            assert!(remaining >= 0, "negative remaining");
            assert_eq!(remaining + held + sold + kept, capacity, "counts do not add up: {section}");
        }
        booked
    }
}

/// Runs SQL returning one count, with `id` as `$1`.
pub async fn count(pool: &PgPool, sql: &str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(id).fetch_one(pool).await.unwrap()
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: Uuid,
    pub sections: Vec<Uuid>,
}

impl Event {
    pub fn from_details(details: &Value) -> Self {
        Self {
            id: details["id"].as_str().unwrap().parse().unwrap(),
            sections: details["sections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_str().unwrap().parse().unwrap())
                .collect(),
        }
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/v1/events/{}{}", self.id, rest)
    }
}
