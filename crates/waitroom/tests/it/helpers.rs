use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use access_token::keys::PublicKey;
use access_token::{KeyPair, TokenSigner};
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use reqwest::{Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use service_kit::postgres::PostgresConfig;
use service_kit::redis_conn::RedisConfig;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use waitroom::{Admitter, Application, RateLimit, WaitroomConfig};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const KID: &str = "waitroom-test";

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub admitter: Admitter,
    pub public_keys: Vec<PublicKey>,
    pub redis: ConnectionManager,
    pub prefix: String,
    /// The test database, reached directly (not through any proxy the app may use),
    /// for checking what the waiting room recorded.
    pub db: PgPool,
    shutdown: CancellationToken,
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

/// The waiting room's database settings in tests: the timeouts of `config/default.toml`.
pub async fn database_config(prefix: &str) -> PostgresConfig {
    test_support::postgres_config(&database_url(prefix).await, 4)
}

pub fn test_config() -> WaitroomConfig {
    WaitroomConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_api_key: SecretString::from(ADMIN_KEY),
        ticket_secret: SecretString::from("test-ticket-secret-0123456789abcdef"),
        abandon_after_secs: 60,
        admitter_tick_ms: 50,
        join_limit_per_address: RateLimit { per_second: 100_000, burst: 100_000 },
        join_limit_per_fan: RateLimit { per_second: 1_000, burst: 1_000 },
        client_address: service_kit::client_address::ClientAddressConfig::peer_only(),
        fan_id_secret: None,
        database_max_connections: 4,
        shutdown_grace_secs: 1,
        http: test_support::http_config(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Serves a waiting room on port 0 under a fresh key prefix. No admitter runs unless
/// the test starts one, so each test decides when admission happens.
pub async fn spawn_app_with(customize: impl FnOnce(&mut WaitroomConfig)) -> TestApp {
    spawn_app_on(&test_support::redis_config(&test_support::redis_url()), customize).await
}

/// Serves a waiting room on port 0 against the Redis of `redis` (its URL, timeouts and
/// key prefix), built as `boxoffice waitroom` builds it: without waiting for Redis,
/// which need not be running yet.
pub async fn spawn_app_on(redis: &RedisConfig, customize: impl FnOnce(&mut WaitroomConfig)) -> TestApp {
    spawn_app_on_both(redis, &database_config(&redis.key_prefix).await, customize).await
}

/// As [`spawn_app_on`], with the waiting room's database reached through `database`
/// (which need not be reachable yet either).
pub async fn spawn_app_on_both(
    redis: &RedisConfig,
    database: &PostgresConfig,
    customize: impl FnOnce(&mut WaitroomConfig),
) -> TestApp {
    let mut config = test_config();
    customize(&mut config);
    config.validate().expect("test config is valid");
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
    )
    .await
    .unwrap();
    let base = format!("http://{}", app.local_addr());
    let admitter = app.admitter();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run(shutdown.clone()));
    let db =
        sqlx::postgres::PgPoolOptions::new().max_connections(2).connect_lazy(&database_url(&prefix).await).unwrap();
    TestApp { base, http: reqwest::Client::new(), admitter, public_keys, redis, prefix, db, shutdown }
}

impl TestApp {
    /// Configures a new event's waiting room and returns its id.
    pub async fn new_event(&self, settings: Value) -> Uuid {
        let event_id = Uuid::new_v4();
        let response = self.put_settings(event_id, &settings).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
        event_id
    }

    pub async fn put_settings(&self, event_id: Uuid, settings: &Value) -> Response {
        self.http
            .put(format!("{}/v1/admin/events/{event_id}/waitroom", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(settings)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, event_id: Uuid, action: &str) -> Response {
        self.http
            .post(format!("{}/v1/admin/events/{event_id}/waitroom/{action}", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
    }

    pub async fn stats(&self, event_id: Uuid) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/admin/events/{event_id}/waitroom/stats", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn public_event(&self, event_id: Uuid) -> Value {
        let response = self.http.get(format!("{}/v1/events/{event_id}/waitroom", self.base)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn join(&self, event_id: Uuid, fan_id: Option<&str>) -> Response {
        let request = self.http.post(format!("{}/v1/events/{event_id}/queue", self.base));
        let request = match fan_id {
            Some(fan_id) => request.json(&json!({ "fan_id": fan_id })),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// Joins and returns the answer, which must be a success.
    pub async fn join_ok(&self, event_id: Uuid, fan_id: &str) -> Value {
        let response = self.join(event_id, Some(fan_id)).await;
        assert!(response.status().is_success(), "join {fan_id}: {}", response.status());
        response.json().await.unwrap()
    }

    pub async fn poll(&self, event_id: Uuid, ticket: &str) -> Response {
        self.http.get(format!("{}/v1/events/{event_id}/queue/{ticket}", self.base)).send().await.unwrap()
    }

    pub async fn poll_ok(&self, event_id: Uuid, ticket: &str) -> Value {
        let response = self.poll(event_id, ticket).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    pub async fn leave(&self, event_id: Uuid, ticket: &str) -> Response {
        self.http.delete(format!("{}/v1/events/{event_id}/queue/{ticket}", self.base)).send().await.unwrap()
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

    /// Removes every key of this test's prefix.
    pub async fn cleanup(mut self) {
        let pattern = format!("{}:*", self.prefix);
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = self.redis.scan_match(&pattern).await.unwrap();
            let mut keys = Vec::new();
            while let Some(key) = futures::StreamExt::next(&mut iter).await {
                keys.push(key.unwrap());
            }
            keys
        };
        if !keys.is_empty() {
            let _: () = self.redis.del(keys).await.unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn settings(admit_rate: f64, max_active: u32) -> Value {
    json!({ "admit_rate": admit_rate, "max_active": max_active, "token_lifetime_secs": 600 })
}

pub async fn error_code(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"]["code"].as_str().unwrap_or_default().to_owned()
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
