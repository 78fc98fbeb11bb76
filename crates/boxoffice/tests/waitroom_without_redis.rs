//! `boxoffice waitroom` as deployed: it starts while its Redis is down, says so on
//! `/readyz`, and serves once Redis is up, without a restart.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use access_token::KeyPair;
use serde_json::{json, Value};
use test_support::redis_server::RedisServer;
use test_support::{redis_prefix, TestDatabase};

const ADMIN: &str = "waitroom-admin-key-0123456789";

/// The process, killed on drop; its key directory, removed on drop.
struct Waitroom {
    child: Child,
    keys: std::path::PathBuf,
}

impl Drop for Waitroom {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.keys);
    }
}

async fn get(http: &reqwest::Client, url: String) -> Option<(u16, Value)> {
    let response = http.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn boxoffice_waitroom_starts_while_redis_is_down_and_serves_once_it_is_up() {
    let db = TestDatabase::new(&schema::MIGRATOR, 1).await.unwrap();
    let mut redis = RedisServer::start().await.unwrap();
    redis.stop(); // its port is known; nothing listens on it
    let keys = std::env::temp_dir().join(format!("bo-waitroom-{}", redis_prefix()));
    KeyPair::generate("wr").unwrap().write_to_dir(&keys).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let management = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let probes = format!("http://127.0.0.1:{management}");
    let child = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .arg("waitroom")
        .env("BOXOFFICE__DATABASE__URL", &db.url)
        .env("BOXOFFICE__REDIS__URL", redis.url())
        .env("BOXOFFICE__REDIS__KEY_PREFIX", redis_prefix())
        .env("BOXOFFICE__TOKENS__KEYS_DIR", &keys)
        .env("BOXOFFICE__TOKENS__SIGNING_KID", "wr")
        .env("BOXOFFICE__WAITROOM__LISTEN", format!("127.0.0.1:{port}"))
        .env("BOXOFFICE__WAITROOM__MANAGEMENT_LISTEN", format!("127.0.0.1:{management}"))
        .env("BOXOFFICE__WAITROOM__ADMIN_API_KEY", ADMIN)
        .env("BOXOFFICE__LOG__FORMAT", "json")
        .env("BOXOFFICE__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("the boxoffice binary starts");
    let mut waitroom = Waitroom { child, keys };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Up and alive, though Redis is not.
    let started = Instant::now();
    while get(&http, format!("{base}/healthz")).await.map(|(status, _)| status) != Some(200) {
        assert!(waitroom.child.try_wait().unwrap().is_none(), "boxoffice waitroom exited while Redis was down");
        assert!(started.elapsed() < Duration::from_secs(30), "/healthz never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(&http, format!("{probes}/readyz")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failing"], json!(["redis"]), "names only: {body}");
    let event = uuid::Uuid::new_v4();
    let response = http.post(format!("{base}/v1/events/{event}/queue")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "unavailable");

    redis.restart().await.unwrap();
    let started = Instant::now();
    while get(&http, format!("{probes}/readyz")).await.map(|(status, _)| status) != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(15), "not ready after Redis came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = http
        .put(format!("{base}/v1/admin/events/{event}/waitroom"))
        .bearer_auth(ADMIN)
        .json(&json!({ "admit_rate": 10, "max_active": 10, "token_lifetime_secs": 600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = http.post(format!("{base}/v1/events/{event}/queue")).send().await.unwrap();
    assert_eq!(response.status(), 201);
    assert!(waitroom.child.try_wait().unwrap().is_none(), "the same process served throughout");
}
