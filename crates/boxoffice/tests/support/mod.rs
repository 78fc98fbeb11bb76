//! The whole system as users run it, for the tests that need it: the `boxoffice`
//! binary in its own process on free ports, its own database and Redis prefix, paying
//! through `boxoffice payments-sandbox`. (Each test binary uses part of it.)
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use access_token::{KeyPair, TokenSigner};
use serde_json::Value;
use test_support::{RedisKeys, Reply, TestDatabase};

pub const ADMIN: &str = "e2e-admin-key-0123456789";

pub const SANDBOX_KEY: &str = "sk_test_e2e";
pub const WEBHOOK_SECRET: &str = "whsec_e2e";

/// `boxoffice all` on free ports, against its own database and Redis prefix, paying
/// through `boxoffice payments-sandbox`, a process of its own.
pub struct System {
    pub child: Child,
    pub sandbox: Child,
    pub payments: String,
    pub gateway: String,
    pub waitroom: String,
    pub signer: TokenSigner,
    pub http: reqwest::Client,
    pub database_url: String,
    _keys: TempDir,
    /// The system's keys on the shared Redis, deleted after `drop` has killed it.
    _redis_keys: RedisKeys,
    /// What answers once the system is ready.
    readiness: Vec<String>,
}

/// A directory of its own under the system's temporary directory, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for System {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.sandbox.kill();
        let _ = self.sandbox.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl System {
    /// Starts the system and waits until it is ready. Its ports are picked free and then
    /// bound by the child processes, so another process may take one in between (seen in
    /// CI: "Address already in use"): a system whose process exits before it is ready is
    /// started again on other ports, up to three times.
    pub async fn start() -> System {
        System::start_with(&[]).await
    }

    /// As [`System::start`], with more of `boxoffice all`'s settings (`BOXOFFICE__…`).
    pub async fn start_with(settings: &[(String, String)]) -> System {
        let mut attempt = 1;
        loop {
            let mut system = System::spawn(settings).await;
            match system.ready().await {
                Ok(()) => return system,
                Err(why) if attempt < 3 => eprintln!("starting the system again: {why}"),
                Err(why) => panic!("the system did not start: {why}"),
            }
            attempt += 1;
        }
    }

    async fn spawn(settings: &[(String, String)]) -> System {
        let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
        let redis_keys = RedisKeys::new();
        let keys = TempDir(std::env::temp_dir().join(format!("bo-e2e-{}", redis_keys.prefix())));
        let pair = KeyPair::generate("e2e").unwrap();
        pair.write_to_dir(&keys.0).unwrap();
        let (gateway_port, waitroom_port) = (free_port(), free_port());
        let (gateway_management, waitroom_management) = (free_port(), free_port());
        let payments = format!("http://127.0.0.1:{}", free_port());
        let sandbox = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .arg("payments-sandbox")
            .args(["--listen", payments.trim_start_matches("http://")])
            .args(["--secret-key", SANDBOX_KEY, "--webhook-secret", WEBHOOK_SECRET])
            .args(["--webhook-url", &format!("http://127.0.0.1:{gateway_port}/v1/payments/webhooks")])
            .args(["--retry-base-ms", "50", "--retry-max-delay-ms", "500"])
            .stdout(Stdio::null())
            .spawn()
            .expect("the payments sandbox starts");
        let child = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
            .arg("all")
            .env("BOXOFFICE__GATEWAY__PAYMENTS__API_BASE", &payments)
            .env("BOXOFFICE__GATEWAY__PAYMENTS__SECRET_KEY", SANDBOX_KEY)
            .env("BOXOFFICE__GATEWAY__PAYMENTS__WEBHOOK_SECRETS", WEBHOOK_SECRET)
            .env(
                "BOXOFFICE__GATEWAY__PAYMENTS__PAYMENT_PAGE_URL",
                format!("{payments}/pay/{{intent_id}}?client_secret={{client_secret}}"),
            )
            .env("BOXOFFICE__DATABASE__URL", &db.url)
            .env("BOXOFFICE__REDIS__URL", test_support::redis_url())
            .env("BOXOFFICE__REDIS__KEY_PREFIX", redis_keys.prefix())
            .env("BOXOFFICE__TOKENS__KEYS_DIR", &keys.0)
            .env("BOXOFFICE__TOKENS__SIGNING_KID", "e2e")
            .env("BOXOFFICE__GATEWAY__LISTEN", format!("127.0.0.1:{gateway_port}"))
            .env("BOXOFFICE__GATEWAY__ADMIN_API_KEY", ADMIN)
            .env("BOXOFFICE__WAITROOM__LISTEN", format!("127.0.0.1:{waitroom_port}"))
            .env("BOXOFFICE__GATEWAY__MANAGEMENT_LISTEN", format!("127.0.0.1:{gateway_management}"))
            .env("BOXOFFICE__WAITROOM__MANAGEMENT_LISTEN", format!("127.0.0.1:{waitroom_management}"))
            .env("BOXOFFICE__WAITROOM__ADMIN_API_KEY", ADMIN)
            // The pages, on the gateway's origin, call the waiting room on its own.
            .env("BOXOFFICE__GATEWAY__PAGES__WAITROOM_ORIGIN", format!("http://127.0.0.1:{waitroom_port}"))
            .env("BOXOFFICE__WAITROOM__PAGE_ORIGINS", format!("http://127.0.0.1:{gateway_port}"))
            .env("BOXOFFICE__SCHEDULER__LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("BOXOFFICE__LOG__FORMAT", "json")
            .env("BOXOFFICE__LOG__LEVEL", "warn")
            .envs(settings.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .spawn()
            .expect("the boxoffice binary starts");
        let sandbox_ready = format!("{payments}/v1/payment_intents/none");
        System {
            child,
            sandbox,
            payments,
            gateway: format!("http://127.0.0.1:{gateway_port}"),
            waitroom: format!("http://127.0.0.1:{waitroom_port}"),
            signer: TokenSigner::new(&pair),
            http: reqwest::Client::new(),
            database_url: db.url.clone(),
            _keys: keys,
            _redis_keys: redis_keys,
            readiness: vec![
                format!("http://127.0.0.1:{gateway_management}/readyz"),
                format!("http://127.0.0.1:{waitroom_management}/readyz"),
                // The sandbox has no probes: its API refusing a request without a key is ready.
                sandbox_ready,
            ],
        }
    }

    /// Waits until every readiness URL answers at all (2xx, or 401 from the sandbox's
    /// API); an error as soon as a process has exited, or after 30 s.
    pub async fn ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        for url in self.readiness.clone() {
            loop {
                for (name, process) in [("boxoffice all", &mut self.child), ("the payments sandbox", &mut self.sandbox)]
                {
                    if let Ok(Some(status)) = process.try_wait() {
                        return Err(format!("{name} exited ({status})"));
                    }
                }
                if let Ok(r) = self.http.get(&url).send().await {
                    if r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED {
                        break;
                    }
                }
                if Instant::now() >= deadline {
                    return Err(format!("{url} did not become ready"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, url);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply = Reply::of(request).await;
        (reply.status.as_u16(), reply.body)
    }

    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}
