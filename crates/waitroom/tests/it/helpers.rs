use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use access_token::keys::PublicKey;
use access_token::{KeyPair, TokenSigner};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use service_kit::postgres::PostgresConfig;
use service_kit::redis_conn::RedisConfig;
use service_kit::settings::Section;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use test_support::chaos::ChaosProxy;
use test_support::{RedisKeys, Reply};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waitroom::backpressure::Backpressure;
use waitroom::domain::receipt::ReceiptKeys;
use waitroom::inventory::Inventory;
use waitroom::store::keys::{events_index, EventKeys};
use waitroom::{Admitter, Application, WaitroomConfig};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const KID: &str = "waitroom-test";
/// The receipt key's id (a key of its own, D6).
pub const RECEIPT_KID: &str = "receipts-test";

pub struct TestApp {
    pub base: String,
    /// The management listener's base URL: `/metrics`, `/readyz`, `/healthz`.
    pub management: String,
    pub http: reqwest::Client,
    pub admitter: Admitter,
    /// The replica's view of the sale's inventory (the admission budget).
    pub inventory: Inventory,
    /// The replica's view of the gateways' distress.
    pub backpressure: Backpressure,
    pub public_keys: Vec<PublicKey>,
    pub redis: ConnectionManager,
    pub prefix: String,
    /// The test database, reached directly (not through any proxy the app may use),
    /// for checking what the waiting room recorded.
    pub db: PgPool,
    shutdown: CancellationToken,
    /// On the shared Redis, this test's keys, deleted when the app is dropped (fields
    /// drop after `drop` has told the app to stop).
    _keys: Option<RedisKeys>,
}

/// The database of the waiting-room deployment whose Redis keys live under `prefix`,
/// created and migrated on first use: replicas of one deployment (one prefix) share it,
/// and no other test's admitter sees its events. (With one database for every test,
/// each test's admitters walked every test's events and rebuilt them in their own
/// Redis, as two deployments sharing one database would.) Only its URL is kept, as
/// each test's pools belong to that test's runtime.
pub async fn database_url(prefix: &str) -> String {
    static URLS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    if let Some(url) = URLS.lock().unwrap().get(prefix) {
        return url.clone();
    }
    let url = test_support::TestDatabase::new(&schema::MIGRATOR, 1).await.expect("a test database").url;
    URLS.lock().unwrap().entry(prefix.to_owned()).or_insert(url).clone()
}

/// A chaos proxy in front of the database of the deployment `keys` names, and the
/// settings that reach it through the proxy.
pub async fn database_behind_proxy(keys: &RedisKeys) -> (ChaosProxy, PostgresConfig) {
    let upstream: PgConnectOptions = database_url(keys.prefix()).await.parse().unwrap();
    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await.unwrap();
    let via_proxy = upstream.host("127.0.0.1").port(proxy.addr().port()).to_url_lossy().to_string();
    (proxy, test_support::postgres_config(&via_proxy, 4))
}

/// The waiting room's database settings in tests: the timeouts of `config/default.toml`.
pub async fn database_config(prefix: &str) -> PostgresConfig {
    test_support::postgres_config(&database_url(prefix).await, 4)
}

/// The waiting room's test settings ([`test_support::config`]: join limits no test
/// reaches unless it sets its own, a free port), with the development switch on, so
/// tests may join under fan ids of their choosing (`customize` may turn it off), then
/// `customize`; validated.
pub fn test_config(customize: impl FnOnce(&mut WaitroomConfig)) -> WaitroomConfig {
    test_support::config(&[("admin_api_key", ADMIN_KEY)], |config: &mut WaitroomConfig| {
        config.deployment.development = true;
        customize(config);
    })
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Serves a waiting room on port 0 under a fresh key prefix on the shared Redis, deleted
/// when the app is dropped. No admitter runs unless the test starts one, so each test
/// decides when admission happens.
pub async fn spawn_app_with(customize: impl FnOnce(&mut WaitroomConfig)) -> TestApp {
    let keys = RedisKeys::new();
    let database = database_config(keys.prefix()).await;
    spawn_app_with_database(keys, &database, customize).await
}

/// As [`spawn_app_with`], with the waiting room's database reached through `database`
/// (which need not be reachable yet): the test's database is [`database_url`] of
/// `keys.prefix()`.
pub async fn spawn_app_with_database(
    keys: RedisKeys,
    database: &PostgresConfig,
    customize: impl FnOnce(&mut WaitroomConfig),
) -> TestApp {
    start(&keys.config(), Some(keys), database, customize).await
}

/// Serves a waiting room on port 0 against a Redis of the test's own (its URL, timeouts
/// and key prefix in `redis`; its keys go with that server), built as `boxoffice
/// waitroom` builds it: without waiting for Redis, which need not be running yet.
pub async fn spawn_app_on(redis: &RedisConfig, customize: impl FnOnce(&mut WaitroomConfig)) -> TestApp {
    start(redis, None, &database_config(&redis.key_prefix).await, customize).await
}

async fn start(
    redis: &RedisConfig,
    keys: Option<RedisKeys>,
    database: &PostgresConfig,
    customize: impl FnOnce(&mut WaitroomConfig),
) -> TestApp {
    let config = test_config(customize);
    redis.validate().expect("test Redis config is valid");
    let prefix = redis.key_prefix.clone();
    let redis = redis.connection_manager().expect("a lazy connection manager");
    let pair = KeyPair::generate(KID).unwrap();
    let public_keys = vec![pair.public_key()];
    let app = Application::build(
        &config,
        redis.clone(),
        &prefix,
        database.database().expect("a valid database URL"),
        TokenSigner::new(&pair),
        &public_keys,
        Some(Arc::new(ReceiptKeys::new(KeyPair::generate(RECEIPT_KID).unwrap(), vec![]))),
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr());
    let management = format!("http://{}", app.management_addr());
    let admitter = app.admitter();
    let inventory = app.inventory();
    let backpressure = app.backpressure();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let db =
        sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_lazy(&database_url(&prefix).await).unwrap();
    TestApp {
        base,
        management,
        http: reqwest::Client::new(),
        admitter,
        inventory,
        backpressure,
        public_keys,
        redis,
        prefix,
        db,
        shutdown,
        _keys: keys,
    }
}

impl TestApp {
    /// This process's `/metrics`, as text.
    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(format!("{}/metrics", self.management)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(ADMIN_KEY)
    }

    /// Configures a new event's waiting room and returns its id.
    pub async fn new_event(&self, settings: Value) -> Uuid {
        let event_id = Uuid::new_v4();
        let reply = self.put_settings(event_id, &settings).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        event_id
    }

    pub async fn put_settings(&self, event_id: Uuid, settings: &Value) -> Reply {
        Reply::of(self.admin(Method::PUT, &format!("/v1/admin/events/{event_id}/waitroom")).json(settings)).await
    }

    /// A public GET.
    pub async fn get(&self, path: &str) -> Reply {
        Reply::of(self.request(Method::GET, path)).await
    }

    /// A public POST of a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Reply::of(self.request(Method::POST, path).json(body)).await
    }

    /// An organizer's GET, its body as sent (a document to publish and hash).
    pub async fn admin_get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self.admin(Method::GET, path).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    pub async fn admin_post(&self, event_id: Uuid, action: &str) -> Reply {
        Reply::of(self.admin(Method::POST, &format!("/v1/admin/events/{event_id}/waitroom/{action}"))).await
    }

    pub async fn stats(&self, event_id: Uuid) -> Value {
        let reply = Reply::of(self.admin(Method::GET, &format!("/v1/admin/events/{event_id}/waitroom/stats"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    pub async fn public_event(&self, event_id: Uuid) -> Value {
        let reply = Reply::of(self.request(Method::GET, &format!("/v1/events/{event_id}/waitroom"))).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    pub async fn join(&self, event_id: Uuid, fan_id: Option<&str>) -> Reply {
        self.join_with(event_id, fan_id, &[]).await
    }

    /// A join carrying `headers` (a forwarding header, say).
    pub async fn join_with(&self, event_id: Uuid, fan_id: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.request(Method::POST, &format!("/v1/events/{event_id}/queue"));
        if let Some(fan_id) = fan_id {
            request = request.json(&json!({ "fan_id": fan_id }));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::of(request).await
    }

    /// Joins and returns the answer, which must be a success.
    pub async fn join_ok(&self, event_id: Uuid, fan_id: &str) -> Value {
        let reply = self.join(event_id, Some(fan_id)).await;
        assert!(reply.status.is_success(), "join {fan_id}: {} {}", reply.status, reply.body);
        reply.body
    }

    pub async fn poll(&self, event_id: Uuid, ticket: &str) -> Reply {
        self.poll_with(event_id, ticket, &[]).await
    }

    /// A poll carrying `headers` (a forwarding header, say).
    pub async fn poll_with(&self, event_id: Uuid, ticket: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.request(Method::GET, &format!("/v1/events/{event_id}/queue/{ticket}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Reply::of(request).await
    }

    pub async fn poll_ok(&self, event_id: Uuid, ticket: &str) -> Value {
        let reply = self.poll(event_id, ticket).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    }

    pub async fn leave(&self, event_id: Uuid, ticket: &str) -> Reply {
        Reply::of(self.request(Method::DELETE, &format!("/v1/events/{event_id}/queue/{ticket}"))).await
    }

    /// Steps the admitter every 20 ms until `want` fans were admitted or `max_steps`
    /// steps passed; returns the admitted fans in admission order.
    pub async fn admit(&self, event_id: Uuid, want: usize, max_steps: usize) -> Vec<String> {
        let mut admitted = Vec::new();
        for _ in 0..max_steps {
            admitted.extend(self.admitter.step(event_id).await.unwrap().admitted);
            if admitted.len() >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        admitted
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The TTL in seconds of each of the event's keys (-2: gone, -1: never expires).
pub async fn ttls_of(app: &TestApp, event_id: Uuid) -> Vec<(String, i64)> {
    let mut redis = app.redis.clone();
    let mut ttls = Vec::new();
    for key in EventKeys::new(&app.prefix, event_id).script_keys() {
        let ttl: i64 = redis.ttl(&key).await.unwrap();
        ttls.push((key.rsplit(':').next().unwrap().to_owned(), ttl));
    }
    ttls
}

/// Whether the index the admitter walks lists the event.
pub async fn indexed(app: &TestApp, event_id: Uuid) -> bool {
    let mut redis = app.redis.clone();
    redis.sismember(events_index(&app.prefix), event_id.to_string()).await.unwrap()
}

pub fn settings(admit_rate: f64, max_active: u32) -> Value {
    json!({ "admit_rate": admit_rate, "max_active": max_active, "token_lifetime_secs": 600 })
}

/// Encodes as tickets and tokens do, for tests that forge them.
pub fn base64_url(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
}
