//! `boxoffice gateway` killed with SIGKILL in the middle of a storm of bookings, then
//! started again on the same database and port: nothing is half-written, every booking
//! a client was told about is there, and every request that got no answer is settled —
//! by a retry with its `Idempotency-Key`, or (without one) by finding it whole or not
//! at all in the database.
//!
//! The process is the real binary (`env!("CARGO_BIN_EXE_boxoffice")`), as in `e2e.rs`:
//! SIGKILL gives it no chance to roll anything back or finish a reply, so what survives
//! is what PostgreSQL committed, and the transactions it had open die with their
//! connections.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use access_token::{AccessClaims, KeyPair, TokenSigner};
use serde_json::{json, Value};
use sqlx::{Connection, PgPool};
use test_support::{unix_now, TestDatabase};
use uuid::Uuid;

const ADMIN: &str = "sigkill-admin-key-0123456789";
const KID: &str = "sigkill";
/// Concurrent clients; even ones book general admission with a key, odd ones chosen
/// seats without.
const CLIENTS: usize = 16;
const GA_PLACES: u32 = 2_000;
/// Enough reserved seats that chosen seats are still on sale when the kill comes.
const ROWS: &[&str] = &["A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "Q", "R"];
const SEATS_PER_ROW: u32 = 50;
/// The storm runs at least this long before the kill, and this long after the restart.
const BEFORE_KILL: Duration = Duration::from_millis(1500);
const AFTER_RESTART: Duration = Duration::from_millis(1500);

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `boxoffice gateway` process, SIGKILLed on drop if still running.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The gateway on `port`, its probes and metrics on `management`.
fn start_gateway(db_url: &str, keys: &std::path::Path, port: u16, management: u16) -> Gateway {
    let child = Command::new(env!("CARGO_BIN_EXE_boxoffice"))
        .arg("gateway")
        .env("BOXOFFICE__DATABASE__URL", db_url)
        .env("BOXOFFICE__DATABASE__MAX_CONNECTIONS", "8")
        .env("BOXOFFICE__TOKENS__KEYS_DIR", keys)
        .env("BOXOFFICE__TOKENS__SIGNING_KID", KID)
        .env("BOXOFFICE__GATEWAY__LISTEN", format!("127.0.0.1:{port}"))
        .env("BOXOFFICE__GATEWAY__MANAGEMENT_LISTEN", format!("127.0.0.1:{management}"))
        .env("BOXOFFICE__GATEWAY__ADMIN_API_KEY", ADMIN)
        // Every client comes from 127.0.0.1: the per-address limit would be the test.
        .env("BOXOFFICE__GATEWAY__LIMIT_PER_ADDRESS__PER_SECOND", "1000000")
        .env("BOXOFFICE__GATEWAY__LIMIT_PER_ADDRESS__BURST", "1000000")
        .env("BOXOFFICE__GATEWAY__LIMIT_PUBLIC_READS_PER_ADDRESS__PER_SECOND", "1000000")
        .env("BOXOFFICE__GATEWAY__LIMIT_PUBLIC_READS_PER_ADDRESS__BURST", "1000000")
        .env("BOXOFFICE__GATEWAY__LIMIT_GLOBAL__PER_SECOND", "1000000")
        .env("BOXOFFICE__GATEWAY__LIMIT_GLOBAL__BURST", "1000000")
        .env("BOXOFFICE__LOG__FORMAT", "json")
        .env("BOXOFFICE__LOG__LEVEL", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("the boxoffice binary starts");
    Gateway(child)
}

async fn wait_ready(http: &reqwest::Client, base: &str, gateway: &mut Gateway) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(gateway.0.try_wait().unwrap().is_none(), "the gateway exited while starting");
        assert!(Instant::now() < deadline, "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What one booking request asked for.
#[derive(Debug, Clone)]
enum Ask {
    /// `quantity` general-admission places, with an `Idempotency-Key`.
    Places { key: String, quantity: u32 },
    /// These seats, without a key.
    Seats(Vec<String>),
}

/// One request and what its client saw.
#[derive(Debug)]
struct Attempt {
    fan: String,
    ask: Ask,
    body: Value,
    /// Status, body and whether it was a replay; `None` when the connection died
    /// before a whole answer arrived.
    answer: Option<(u16, Value, bool)>,
    /// When the request was sent (the last time, after refused connects).
    sent_at: Instant,
}

impl Attempt {
    fn code(&self) -> &str {
        self.answer.as_ref().and_then(|(_, body, _)| body["error"]["code"].as_str()).unwrap_or("")
    }
}

/// A small deterministic generator, seeded per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Storm {
    http: reqwest::Client,
    base: String,
    event: Uuid,
    floor: Uuid,
    signer: TokenSigner,
    stop: AtomicBool,
    created: AtomicUsize,
    /// Requests refused at connect (nothing sent) while no gateway listened; each was
    /// sent again unchanged.
    refused_connects: AtomicUsize,
}

impl Storm {
    fn token(&self, fan: &str) -> String {
        self.signer.sign(&AccessClaims::new(fan, self.event, unix_now(), 600))
    }

    /// Sends one booking request. A connection refused means nothing reached a gateway
    /// (none is listening: it was killed and its successor is not up yet), so the same
    /// request is sent again, as any client would; any other failure is "no answer".
    async fn send(&self, fan: &str, ask: &Ask, body: &Value) -> (Option<(u16, Value, bool)>, Instant) {
        loop {
            let sent_at = Instant::now();
            let mut request =
                self.http.post(format!("{}/v1/events/{}/bookings", self.base, self.event)).bearer_auth(self.token(fan));
            if let Ask::Places { key, .. } = ask {
                request = request.header("Idempotency-Key", key);
            }
            match request.json(body).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
                    return match response.bytes().await {
                        Ok(bytes) => {
                            (Some((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), replayed)), sent_at)
                        }
                        Err(_) => (None, sent_at),
                    };
                }
                Err(e) if e.is_connect() => {
                    self.refused_connects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => return (None, sent_at),
            }
        }
    }

    async fn client(self: Arc<Self>, client: usize) -> Vec<Attempt> {
        let mut rng = Rng(Uuid::new_v4().as_u64_pair().0);
        let mut attempts = Vec::new();
        for n in 0.. {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let fan = format!("fan-{client}-{n}");
            let ask = if client.is_multiple_of(2) {
                Ask::Places { key: format!("key-{client}-{n}"), quantity: 1 + rng.below(2) as u32 }
            } else {
                let row = ROWS[rng.below(ROWS.len() as u64) as usize];
                let count = 1 + rng.below(3) as u32;
                let first = 1 + rng.below(u64::from(SEATS_PER_ROW - count + 1)) as u32;
                Ask::Seats((first..first + count).map(|seat| format!("{row}-{seat}")).collect())
            };
            let body = match &ask {
                Ask::Places { quantity, .. } => json!({ "section_id": self.floor, "quantity": quantity }),
                Ask::Seats(labels) => json!({ "seats": labels }),
            };
            let (answer, sent_at) = self.send(&fan, &ask, &body).await;
            if answer.as_ref().is_some_and(|(status, _, _)| *status == 201) {
                self.created.fetch_add(1, Ordering::Relaxed);
            }
            attempts.push(Attempt { fan, ask, body, answer, sent_at });
        }
        attempts
    }
}

/// A booking as the database has it: status, quantity and its live seats' labels
/// (general-admission places have none).
#[derive(Debug, PartialEq)]
struct Stored {
    id: Uuid,
    status: String,
    quantity: i32,
    live_seats: i64,
    labels: Vec<String>,
}

async fn stored_bookings(pool: &PgPool, event: Uuid, fan: &str) -> Vec<Stored> {
    let rows: Vec<(Uuid, String, i32, i64, Vec<String>)> = sqlx::query_as(
        "SELECT b.id, b.status::text, b.quantity,
                (SELECT count(*) FROM booking_seats bs WHERE bs.booking_id = b.id AND bs.live),
                coalesce((SELECT array_agg(s.label) FROM booking_seats bs
                          JOIN seats s ON s.id = bs.seat_id
                          WHERE bs.booking_id = b.id AND bs.live AND s.label IS NOT NULL), '{}')
         FROM bookings b WHERE b.event_id = $1 AND b.fan_id = $2",
    )
    .bind(event)
    .bind(fan)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, status, quantity, live_seats, mut labels)| {
            labels.sort();
            Stored { id, status, quantity, live_seats, labels }
        })
        .collect()
}

/// The database holds exactly the booking `body` describes for this attempt's fan,
/// confirmed, with the seats it asked for.
async fn assert_booked(pool: &PgPool, event: Uuid, attempt: &Attempt, body: &Value, what: &str) -> Uuid {
    let id: Uuid = body["id"].as_str().unwrap_or_else(|| panic!("{what}: no id in {body}")).parse().unwrap();
    let stored = stored_bookings(pool, event, &attempt.fan).await;
    assert_eq!(stored.len(), 1, "{what}: {} has {stored:?}", attempt.fan);
    let booking = &stored[0];
    assert_eq!((booking.id, booking.status.as_str()), (id, "confirmed"), "{what}: {}", attempt.fan);
    let (quantity, labels) = match &attempt.ask {
        Ask::Places { quantity, .. } => (*quantity as i64, Vec::new()),
        Ask::Seats(labels) => {
            let mut labels = labels.clone();
            labels.sort();
            (labels.len() as i64, labels)
        }
    };
    assert_eq!(
        (i64::from(booking.quantity), booking.live_seats, &booking.labels),
        (quantity, quantity, &labels),
        "{what}: {}",
        attempt.fan
    );
    assert_eq!(body["seats"].as_array().map(Vec::len), Some(quantity as usize), "{what}: {body}");
    id
}

async fn assert_nothing_written(pool: &PgPool, event: Uuid, attempt: &Attempt, what: &str) {
    let stored = stored_bookings(pool, event, &attempt.fan).await;
    assert!(stored.is_empty(), "{what}: {} has {stored:?}", attempt.fan);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE event_id = $1 AND fan_id = $2")
        .bind(event)
        .bind(&attempt.fan)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(keys, 0, "{what}: {} has a claimed key", attempt.fan);
}

/// Waits (bounded) until no backend of the test database but this query's is inside a
/// transaction or running a statement; returns how many were at first, and how long
/// it took.
async fn wait_until_no_backend_in_transaction(pool: &PgPool) -> (i64, Duration) {
    let started = Instant::now();
    let mut first = None;
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND (state LIKE 'idle in transaction%' OR state = 'active')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let first = *first.get_or_insert(busy);
        if busy == 0 {
            return (first, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{busy} backends stayed in a transaction");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn count(pool: &PgPool, sql: &str, event: Uuid) -> i64 {
    sqlx::query_scalar(sql).bind(event).fetch_one(pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// How one unanswered request was settled.
#[derive(Debug, Default)]
struct Settled {
    /// Keyed, committed before the kill: the retry replayed it.
    replayed: usize,
    /// Keyed, not committed: the retry made the booking now.
    made_on_retry: usize,
    /// Keyed, not committed, and the retry was refused (sold out, say).
    refused_on_retry: usize,
    /// Without a key: found whole in the database.
    found_whole: usize,
    /// Without a key: not in the database at all.
    absent: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_storm_and_restarted_loses_no_answered_booking_and_leaves_nothing_half_written() {
    let started = Instant::now();
    let db = TestDatabase::new(&schema::MIGRATOR, 4).await.unwrap();
    let keys = TempDir(std::env::temp_dir().join(format!("bo-sigkill-{}", Uuid::new_v4().simple())));
    let pair = KeyPair::generate(KID).unwrap();
    pair.write_to_dir(&keys.0).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let management = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let probes = format!("http://127.0.0.1:{management}");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();

    let mut first = start_gateway(&db.url, &keys.0, port, management);
    wait_ready(&http, &probes, &mut first).await;
    let rows: Vec<Value> = ROWS.iter().map(|row| json!({ "label": row, "seats": SEATS_PER_ROW })).collect();
    let response = http
        .post(format!("{base}/v1/events"))
        .bearer_auth(ADMIN)
        // Free places: the storm books in one step (paid places go through checkout,
        // which tests/e2e.rs and the gateway's checkout tests cover).
        .json(&json!({ "name": "Killed mid-storm", "max_per_order": 6, "sections": [
            { "name": "Floor", "kind": "general_admission", "price": { "amount_minor": 0, "currency": "EUR" },
              "capacity": GA_PLACES },
            { "name": "Stalls", "kind": "reserved", "price": { "amount_minor": 0, "currency": "EUR" }, "rows": rows }
        ] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let event: Value = response.json().await.unwrap();
    let event_id: Uuid = event["id"].as_str().unwrap().parse().unwrap();
    let floor: Uuid = event["sections"][0]["id"].as_str().unwrap().parse().unwrap();

    let storm = Arc::new(Storm {
        http: http.clone(),
        base: base.clone(),
        event: event_id,
        floor,
        signer: TokenSigner::new(&pair),
        stop: AtomicBool::new(false),
        created: AtomicUsize::new(0),
        refused_connects: AtomicUsize::new(0),
    });
    let clients: Vec<_> = (0..CLIENTS).map(|c| tokio::spawn(storm.clone().client(c))).collect();

    // Mid-storm: the clients are busy and bookings are being answered.
    tokio::time::sleep(BEFORE_KILL).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while storm.created.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "the storm made no bookings before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created_before_kill = storm.created.load(Ordering::Relaxed);
    let killed = Instant::now();
    first.0.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    let exit = first.0.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&exit), Some(9), "{exit:?}");
    // The killed process's transactions die with its connections: PostgreSQL rolls
    // them back at once, not after idle_in_transaction_session_timeout (5 s).
    let (in_transaction_at_kill, sessions_ended_after) = wait_until_no_backend_in_transaction(&db.pool).await;

    // The successor, on the same database and port, as an orchestrator would restart it.
    let mut second = start_gateway(&db.url, &keys.0, port, management);
    wait_ready(&http, &probes, &mut second).await;
    let ready = Instant::now();
    let restart_took = ready - killed;
    tokio::time::sleep(AFTER_RESTART).await;
    storm.stop.store(true, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for client in clients {
        attempts.extend(client.await.unwrap());
    }

    // What the clients saw: sent before the kill (to the killed gateway), while no
    // gateway was ready (refused connects were sent again; what fails otherwise went
    // over a connection the kill had closed), after the successor was ready.
    let phase = |a: &Attempt| match a.sent_at {
        t if t < killed => "1 before kill",
        t if t < ready => "2 before the successor was ready",
        _ => "3 after restart",
    };
    let mut by_answer: HashMap<String, usize> = HashMap::new();
    for a in &attempts {
        let label = match &a.answer {
            Some((status, _, _)) => format!("{status} {}", a.code()),
            None => "no answer".to_owned(),
        };
        *by_answer.entry(format!("{}: {label}", phase(a))).or_default() += 1;
    }
    let unanswered: Vec<&Attempt> =
        attempts.iter().filter(|a| a.answer.is_none() || a.code() == "outcome_unknown").collect();
    assert!(
        unanswered.iter().any(|a| a.sent_at < killed),
        "the kill cut no request off, so it proved nothing: {by_answer:?}"
    );
    let created_after_restart =
        attempts.iter().filter(|a| a.sent_at >= ready && a.answer.as_ref().is_some_and(|(s, _, _)| *s == 201)).count();
    assert!(created_after_restart > 0, "the restarted gateway booked nothing: {by_answer:?}");

    // Every answer is true in the database. Each attempt is a fan of its own, so the
    // fan's rows are exactly what that attempt (and its retry) wrote.
    let pool = &db.pool;
    let mut known: HashSet<Uuid> = HashSet::new();
    for a in &attempts {
        match &a.answer {
            Some((201, body, _)) => {
                known.insert(assert_booked(pool, event_id, a, body, "answered 201").await);
            }
            Some((503, _, _)) if a.code() == "outcome_unknown" => {} // settled below
            Some((503, _, _)) if a.code() == "unavailable" => {
                assert_nothing_written(pool, event_id, a, "answered 503 unavailable").await
            }
            Some((status, body, _)) if (400..500).contains(status) => {
                assert!(
                    matches!(a.code(), "seat_unavailable" | "seat_contended" | "sold_out"),
                    "{}: unexpected refusal {status} {body}",
                    a.fan
                );
                assert_nothing_written(pool, event_id, a, "refused").await
            }
            Some((status, body, _)) => panic!("{}: unexpected answer {status} {body}", a.fan),
            None => {} // settled below
        }
    }

    // Every request without an answer is settled: with a key, by retrying it against
    // the restarted gateway, which must agree with what the database held before the
    // retry; without one, the order is in the database whole or not at all.
    let mut settled = Settled::default();
    for a in &unanswered {
        let before = stored_bookings(pool, event_id, &a.fan).await;
        match &a.ask {
            Ask::Places { .. } => {
                let (retry, _) = loop {
                    let retry = storm.send(&a.fan, &a.ask, &a.body).await;
                    match &retry.0 {
                        Some((409, body, _)) if body["error"]["code"] == "seat_contended" => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        _ => break retry,
                    }
                };
                let (status, body, replayed) = retry.unwrap_or_else(|| panic!("retry of {}: no answer", a.fan));
                match (before.as_slice(), status) {
                    ([committed], 201) => {
                        assert!(replayed, "retry of {}: not a replay of {committed:?}: {body}", a.fan);
                        assert_eq!(assert_booked(pool, event_id, a, &body, "replayed").await, committed.id);
                        known.insert(committed.id);
                        settled.replayed += 1;
                    }
                    ([], 201) => {
                        assert!(!replayed, "retry of {}: replayed nothing: {body}", a.fan);
                        known.insert(assert_booked(pool, event_id, a, &body, "made on retry").await);
                        settled.made_on_retry += 1;
                    }
                    ([], 409) if body["error"]["code"] == "sold_out" => {
                        assert_nothing_written(pool, event_id, a, "retry refused").await;
                        settled.refused_on_retry += 1;
                    }
                    _ => panic!("retry of {}: {status} {body} with {before:?} in the database", a.fan),
                }
            }
            Ask::Seats(labels) => match before.as_slice() {
                [] => settled.absent += 1,
                [booking] => {
                    let mut labels = labels.clone();
                    labels.sort();
                    let whole = Stored {
                        id: booking.id,
                        status: "confirmed".into(),
                        quantity: labels.len() as i32,
                        live_seats: labels.len() as i64,
                        labels,
                    };
                    assert_eq!(booking, &whole, "{}: half-written", a.fan);
                    known.insert(booking.id);
                    settled.found_whole += 1;
                }
                more => panic!("{} booked {} times: {more:?}", a.fan, more.len()),
            },
        }
    }

    // Nothing half-written, nothing unaccounted for.
    let all: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM bookings WHERE event_id = $1").bind(event_id).fetch_all(pool).await.unwrap();
    let unknown: Vec<&Uuid> = all.iter().filter(|id| !known.contains(id)).collect();
    assert!(unknown.is_empty(), "bookings no client was told about and no retry found: {unknown:?}");
    assert_eq!(all.len(), known.len());
    let violations =
        sales::store::invariants::check(&mut pool.begin().await.unwrap(), Default::default()).await.unwrap();
    assert_eq!(violations, Default::default(), "the watchdog finds violations");
    let checks = [
        (
            "bookings whose quantity differs from their live seats",
            "SELECT count(*) FROM bookings b WHERE b.event_id = $1 AND b.quantity <>
                 (SELECT count(*) FROM booking_seats bs WHERE bs.booking_id = b.id AND bs.live)",
        ),
        ("bookings not confirmed", "SELECT count(*) FROM bookings WHERE event_id = $1 AND status <> 'confirmed'"),
        (
            "seats booked without a live booking that claims them",
            "SELECT count(*) FROM seats s WHERE s.event_id = $1 AND s.state = 'booked' AND NOT EXISTS (
                 SELECT 1 FROM booking_seats bs JOIN bookings b ON b.id = bs.booking_id
                 WHERE bs.seat_id = s.id AND bs.live AND b.id = s.booking_id AND b.status = 'confirmed')",
        ),
        (
            "live booking seats whose seat is not booked by them",
            "SELECT count(*) FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id
             WHERE s.event_id = $1 AND bs.live AND (s.state <> 'booked' OR s.booking_id <> bs.booking_id)",
        ),
        (
            "seats sold twice",
            "SELECT count(*) FROM (SELECT bs.seat_id FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id
                                   WHERE s.event_id = $1 GROUP BY bs.seat_id HAVING count(*) > 1) twice",
        ),
        (
            "booking seats of no booking",
            "SELECT count(*) FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id
             WHERE s.event_id = $1 AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = bs.booking_id)",
        ),
        (
            "keys pointing at no booking",
            "SELECT count(*) FROM idempotency_keys k WHERE k.event_id = $1 AND (k.booking_id IS NULL OR
                 NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = k.booking_id))",
        ),
        ("holds (the storm made none)", "SELECT count(*) FROM holds WHERE event_id = $1"),
        ("seats held (the storm held none)", "SELECT count(*) FROM seats WHERE event_id = $1 AND state = 'held'"),
    ];
    for (what, sql) in checks {
        assert_eq!(count(pool, sql, event_id).await, 0, "{what}");
    }
    let booked_seats =
        count(pool, "SELECT count(*) FROM seats WHERE event_id = $1 AND state = 'booked'", event_id).await;
    let booked_reserved = count(
        pool,
        "SELECT count(*) FROM seats WHERE event_id = $1 AND state = 'booked' AND label IS NOT NULL",
        event_id,
    )
    .await;
    let sold =
        count(pool, "SELECT coalesce(sum(quantity), 0)::bigint FROM bookings WHERE event_id = $1", event_id).await;
    assert_eq!(booked_seats, sold, "seats booked vs places sold");
    // Every general-admission booking was made with a key and every claimed key made
    // one (a claim rolled back with its order leaves no key).
    let keys = count(pool, "SELECT count(*) FROM idempotency_keys WHERE event_id = $1", event_id).await;
    let ga_bookings = count(
        pool,
        "SELECT count(DISTINCT bs.booking_id) FROM booking_seats bs JOIN seats s ON s.id = bs.seat_id
         WHERE s.event_id = $1 AND s.label IS NULL",
        event_id,
    )
    .await;
    assert_eq!(keys, ga_bookings, "claimed keys vs general-admission bookings");

    // Nothing is left inside a transaction now the storm is over, and every seat can
    // be locked.
    wait_until_no_backend_in_transaction(pool).await;
    let mut conn = pool.acquire().await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let locked = sqlx::query("SELECT id FROM seats WHERE event_id = $1 FOR UPDATE NOWAIT")
        .bind(event_id)
        .fetch_all(&mut *tx)
        .await;
    assert!(locked.is_ok(), "a seat is still locked: {locked:?}");
    tx.rollback().await.unwrap();
    drop(conn);
    drop(second);

    let mut by_answer: Vec<_> = by_answer.into_iter().collect();
    by_answer.sort();
    println!(
        "sigkill storm: {} requests ({created_before_kill} booked before the kill, {created_after_restart} after the \
         restart); answers by when sent: {by_answer:?}; {} unanswered ({} in flight at the kill), settled: \
         {settled:?}; {} connects refused while down; restart to ready {restart_took:?}; {in_transaction_at_kill} backends in a transaction right after the kill, none after \
         {sessions_ended_after:?}; {} bookings, {sold} places \
         sold ({booked_seats} seats booked, {booked_reserved} of them reserved); wall {:?}",
        attempts.len(),
        unanswered.len(),
        unanswered.iter().filter(|a| a.sent_at < killed).count(),
        storm.refused_connects.load(Ordering::Relaxed),
        all.len(),
        started.elapsed(),
    );
}
