//! The whole system as users run it: the `boxoffice` binary in its own process, real
//! PostgreSQL and Redis, real HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use access_token::{AccessClaims, KeyPair, TokenSigner};
use serde_json::{json, Value};
use test_support::{unix_now, RedisKeys, Reply, TestDatabase};

const ADMIN: &str = "e2e-admin-key-0123456789";

const SANDBOX_KEY: &str = "sk_test_e2e";
const WEBHOOK_SECRET: &str = "whsec_e2e";

/// `boxoffice all` on free ports, against its own database and Redis prefix, paying
/// through `boxoffice payments-sandbox`, a process of its own.
struct System {
    child: Child,
    sandbox: Child,
    payments: String,
    gateway: String,
    waitroom: String,
    signer: TokenSigner,
    http: reqwest::Client,
    _keys: TempDir,
    /// The system's keys on the shared Redis, deleted after `drop` has killed it.
    _redis_keys: RedisKeys,
    /// What answers once the system is ready.
    readiness: Vec<String>,
}

struct TempDir(std::path::PathBuf);

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
    async fn start() -> System {
        let mut attempt = 1;
        loop {
            let mut system = System::spawn().await;
            match system.ready().await {
                Ok(()) => return system,
                Err(why) if attempt < 3 => eprintln!("starting the system again: {why}"),
                Err(why) => panic!("the system did not start: {why}"),
            }
            attempt += 1;
        }
    }

    async fn spawn() -> System {
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
            .env("BOXOFFICE__SCHEDULER__LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("BOXOFFICE__LOG__FORMAT", "json")
            .env("BOXOFFICE__LOG__LEVEL", "warn")
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
    async fn ready(&mut self) -> Result<(), String> {
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

    async fn call(
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

    fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_goes_from_the_queue_to_a_confirmed_booking() {
    use reqwest::Method;
    let system = System::start().await;
    let (status, event) = system
        .call(
            Method::POST,
            format!("{}/v1/events", system.gateway),
            Some(ADMIN),
            Some(json!({ "name": "E2E", "sections": [{ "name": "Stalls", "kind": "reserved",
                "price": { "amount_minor": 5000, "currency": "EUR" }, "rows": [{ "label": "A", "seats": 10 }] }] })),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    let event_id = event["id"].as_str().unwrap().to_owned();
    let (status, settings) = system
        .call(
            Method::PUT,
            format!("{}/v1/admin/events/{event_id}/waitroom", system.waitroom),
            Some(ADMIN),
            Some(json!({ "admit_rate": 20.0, "max_active": 100, "token_lifetime_secs": 300 })),
        )
        .await;
    assert_eq!(status, 200, "{settings}");

    let (status, joined) =
        system.call(Method::POST, format!("{}/v1/events/{event_id}/queue", system.waitroom), None, None).await;
    assert_eq!(status, 201, "{joined}");
    let ticket = joined["ticket"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    let token = loop {
        let (_, polled) = system
            .call(Method::GET, format!("{}/v1/events/{event_id}/queue/{ticket}", system.waitroom), None, None)
            .await;
        if let Some(token) = polled["access_token"].as_str() {
            break token.to_owned();
        }
        assert!(Instant::now() < deadline, "never admitted: {polled}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let holds = format!("{}/v1/events/{event_id}/holds", system.gateway);
    let (status, refused) = system.call(Method::POST, holds.clone(), None, Some(json!({ "seats": ["A-1"] }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("missing_token")));
    let expired = system.signer.sign(&AccessClaims::new("e2e-fan", event_id.parse().unwrap(), unix_now() - 900, 300));
    let (status, refused) =
        system.call(Method::POST, holds.clone(), Some(&expired), Some(json!({ "seats": ["A-1"] }))).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (401, Some("token_expired")));

    let (status, hold) =
        system.call(Method::POST, holds.clone(), Some(&token), Some(json!({ "seats": ["A-1", "A-2"] }))).await;
    assert_eq!(status, 201, "{hold}");
    let hold_id = hold["id"].as_str().unwrap();
    let (status, refused) = system.call(Method::POST, format!("{holds}/{hold_id}/confirm"), Some(&token), None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (402, Some("payment_required")));

    // Pay on the provider's page, as the fan's browser would; its webhook books the seats.
    let (status, checkout) = system.call(Method::POST, format!("{holds}/{hold_id}/checkout"), Some(&token), None).await;
    assert_eq!(status, 200, "{checkout}");
    let page = checkout["payment_page_url"].as_str().unwrap();
    assert!(page.starts_with(&format!("{}/pay/", system.payments)), "{page}");
    let paid: Value = system
        .http
        .post(page.split('?').next().unwrap())
        .header("Accept", "application/json")
        .form(&[("client_secret", checkout["client_secret"].as_str().unwrap()), ("card_number", "4242424242424242")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paid["status"], "succeeded", "{paid}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let booking_id = loop {
        let (_, mine) = system
            .call(Method::GET, format!("{}/v1/events/{event_id}/bookings", system.gateway), Some(&token), None)
            .await;
        if let Some(booking) = mine["bookings"].as_array().and_then(|b| b.first()) {
            assert_eq!(booking["seats"].as_array().unwrap().len(), 2);
            assert_eq!(booking["payment_id"], checkout["payment_id"]);
            break booking["id"].clone();
        }
        assert!(Instant::now() < deadline, "the webhook never booked the seats");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (status, payment) = system.call(Method::GET, format!("{holds}/{hold_id}/payment"), Some(&token), None).await;
    assert_eq!(status, 200, "{payment}");
    assert_eq!((payment["status"].as_str(), payment["booking_id"].clone()), (Some("succeeded"), booking_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_sigterm_complete_and_the_process_exits_cleanly() {
    use reqwest::Method;
    let mut system = System::start().await;
    // Creating an event of 100,000 seats takes a second or more: long enough to be in
    // flight when the signal arrives.
    let create = system.call(
        Method::POST,
        format!("{}/v1/events", system.gateway),
        Some(ADMIN),
        Some(json!({ "name": "Big", "sections": [{ "name": "Floor", "kind": "general_admission",
            "price": { "amount_minor": 100, "currency": "EUR" }, "capacity": 100000 }] })),
    );
    let terminate = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        system.terminate();
    };
    let ((status, event), ()) = tokio::join!(create, terminate);
    assert_eq!(status, 201, "the in-flight request completed: {event}");
    assert_eq!(event["sections"][0]["remaining"], 100_000, "nothing half-written");

    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = system.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the process did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    assert!(system.http.get(format!("{}/healthz", system.gateway)).send().await.is_err(), "no longer accepting");
}
