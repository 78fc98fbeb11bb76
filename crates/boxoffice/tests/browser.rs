//! The pages in a real browser (issue 17, D10): Debian's Chromium, headless, driven over
//! WebDriver (`chromedriver`, the `fantoccini` client) against `boxoffice all` and the
//! payments sandbox, as a fan and an organizer use them. Every scenario ends by checking
//! what the pages showed against the database. Each page is checked with axe-core's WCAG
//! 2.1 AA rules once its data has loaded (0 violations, no rule disabled) and at 360 px
//! wide (no horizontal scrolling). Screenshots of each step are kept in
//! `target/browser-screenshots/` (`scripts/test` installs Chromium and axe-core).

mod support;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use access_token::AccessClaims;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Method;
use serde_json::{json, Value};
use support::{System, TempDir, ADMIN};
use test_support::unix_now;

/// How long a page may take to show what a step waits for. Generous: the debug build on
/// two busy cores; the delivery figures are measured by the benchmarks (D9).
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_goes_from_the_catalogue_through_the_queue_to_a_paid_ticket_by_keyboard() {
    let (system, _keys) = start_system().await;
    let event = create_event(&system, "Keyboard concert", 0, 1000).await;
    open_waiting_room(&system, &event, json!({ "admit_rate": 20.0, "max_active": 100, "token_lifetime_secs": 600 }))
        .await;
    let browser = Browser::open().await;

    browser.goto(&format!("{}/", system.gateway)).await;
    browser.find(&format!("article.event a.get-tickets[href='/e/{event}']")).await.click().await.unwrap();
    browser.wait_for_path(&format!("/e/{event}/seats")).await;
    browser.find("[data-seat='A-1']").await;
    browser.screenshot("journey-1-seat-map").await;

    // Keyboard only: into the map, right twice, down a row, select, then to the button.
    browser.client.execute("document.querySelector('[data-seat][tabindex=\"0\"]').focus()", vec![]).await.unwrap();
    for key in [Key::Right, Key::Right, Key::Down] {
        browser.client.active_element().await.unwrap().send_keys(&key.to_string()).await.unwrap();
    }
    let focused = browser.client.active_element().await.unwrap();
    assert_eq!(focused.attr("data-seat").await.unwrap().as_deref(), Some("B-3"), "arrow keys moved to B-3");
    focused.send_keys(&Key::Enter.to_string()).await.unwrap();
    assert_eq!(browser.find("[data-seat='B-3']").await.attr("aria-selected").await.unwrap().as_deref(), Some("true"));
    browser.find("#hold-seats").await.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.find("#hold").await;
    browser.wait_for_state("B-3", "mine").await;
    browser.screenshot("journey-2-held").await;
    // Leaving releases the hold (a beacon); a reload is leaving too, and holds it again.
    browser.client.refresh().await.unwrap();
    browser.find("#hold").await;
    browser.wait_for_state("B-3", "mine").await;

    browser.find("#to-checkout").await.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.find("#hold-countdown").await;
    browser.screenshot("journey-3-checkout").await;
    browser.find("#pay").await.send_keys(&Key::Enter.to_string()).await.unwrap();
    let card = browser.find("input[name='card_number']").await;
    card.send_keys("4242 4242 4242 4242").await.unwrap();
    browser.screenshot("journey-4-payment-page").await;
    card.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.find("#confirmation").await;
    browser.screenshot("journey-5-confirmation").await;
    browser.find("#booking-link").await.send_keys(&Key::Enter.to_string()).await.unwrap();
    browser.find("article.ticket img.qr").await;
    browser
        .wait_until(
            "the QR code loaded",
            "return [...document.querySelectorAll('img.qr')].every(i => i.naturalWidth > 0)",
        )
        .await;
    browser.screenshot("journey-6-tickets").await;

    let booked = query(
        &system,
        "SELECT coalesce(json_agg(json_build_array(s.label, b.status, p.status)), '[]') FROM seats s \
         JOIN bookings b ON b.id = s.booking_id JOIN payments p ON p.id = b.payment_id",
    )
    .await;
    assert_eq!(booked, json!([["B-3", "confirmed", "succeeded"]]));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seat_one_fan_holds_turns_taken_on_anothers_map_and_the_slower_fan_is_told() {
    let (system, _keys) = start_system().await;
    let event = create_event(&system, "Two fans", 0, 1000).await;
    let (fan_a, fan_b) = (Browser::open().await, Browser::open().await);
    for (browser, fan) in [(&fan_a, "fan-a"), (&fan_b, "fan-b")] {
        browser.sign_in(&system, &event, fan).await;
        browser.goto(&format!("{}/e/{event}/seats", system.gateway)).await;
        browser.wait_for_state("A-2", "available").await;
    }

    fan_a.find("[data-seat='A-2']").await.click().await.unwrap();
    fan_a.find("#hold-seats").await.click().await.unwrap();
    fan_a.wait_for_state("A-2", "mine").await;
    fan_b.wait_for_state("A-2", "held").await;
    fan_b.screenshot("two-fans-1-taken-on-b").await;

    // Fan B picks A-3 while someone else holds it behind B's back: B's hold is refused.
    fan_b.find("[data-seat='A-3']").await.click().await.unwrap();
    let (status, other) = system
        .call(
            Method::POST,
            format!("{}/v1/events/{event}/holds", system.gateway),
            Some(&token(&system, &event, "fan-c")),
            Some(json!({ "seats": ["A-3"] })),
        )
        .await;
    assert_eq!(status, 201, "{other}");
    fan_b.find("#hold-seats").await.click().await.unwrap();
    fan_b
        .wait_until(
            "the faster fan named",
            "return /faster/i.test(document.querySelector('#seat-message').textContent)",
        )
        .await;
    fan_b.screenshot("two-fans-2-someone-was-faster").await;

    let holders = query(
        &system,
        "SELECT coalesce(json_agg(json_build_array(s.label, h.fan_id) ORDER BY s.label), '[]') FROM seats s \
         JOIN holds h ON h.id = s.hold_id WHERE s.state = 'held'",
    )
    .await;
    assert_eq!(holders, json!([["A-2", "fan-a"], ["A-3", "fan-c"]]));
    fan_a.close().await;
    fan_b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_a_phone_once_its_data_has_loaded() {
    let (system, _keys) = start_system().await;
    let event = create_event(&system, "Accessible evening", 24, 0).await;
    let opens_at = chrono::Utc::now() + chrono::Duration::hours(1);
    open_waiting_room(
        &system,
        &event,
        json!({ "admit_rate": 5.0, "max_active": 10, "token_lifetime_secs": 600, "opens_at": opens_at.to_rfc3339() }),
    )
    .await;
    let fan = token(&system, &event, "fan-axe");
    let hold =
        api(&system, Method::POST, &format!("/v1/events/{event}/holds"), &fan, json!({ "seats": ["B-1"] })).await;
    let booked =
        api(&system, Method::POST, &format!("/v1/events/{event}/bookings"), &fan, json!({ "seats": ["B-2"] })).await;
    let browser = Browser::open().await;

    let booking =
        format!("/e/{event}/bookings/{}?link={}", booked["id"].as_str().unwrap(), booked["link"].as_str().unwrap());
    let pages = [
        ("home", "/".to_owned(), "article.event"),
        ("waiting", format!("/e/{event}"), "#standing"),
        ("seats", format!("/e/{event}/seats"), "[data-seat='A-1'][data-state='available']"),
        ("checkout", format!("/e/{event}/checkout/{}", hold["id"].as_str().unwrap()), "#confirm"),
        ("booking", booking, "article.ticket img.qr"),
        ("organizer", "/admin".to_owned(), "#admin-key"),
    ];
    let mut problems = Vec::new();
    for (name, path, loaded) in pages {
        if name == "seats" {
            // Admitted from here on (the waiting page before showed the pre-queue).
            browser.sign_in(&system, &event, "fan-axe").await;
        }
        for (width, height) in [(1280, 900), (360, 800)] {
            browser.client.set_window_size(width, height).await.unwrap();
            browser.goto(&format!("{}{path}", system.gateway)).await;
            browser.find(loaded).await;
            browser.screenshot(&format!("page-{name}-{width}")).await;
            let scrolls = browser.run("return document.documentElement.scrollWidth > window.innerWidth").await;
            if scrolls == json!(true) {
                problems.push(format!("{name} scrolls sideways at {width} px"));
            }
            for violation in browser.axe_violations().await {
                problems.push(format!("{name} at {width} px: {violation}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organizer_creates_an_event_opens_its_room_and_watches_it() {
    let (system, _keys) = start_system().await;
    let browser = Browser::open().await;
    browser.goto(&format!("{}/admin", system.gateway)).await;
    let key = browser.find("#admin-key").await;
    key.send_keys(ADMIN).await.unwrap();
    key.send_keys(&Key::Enter.to_string()).await.unwrap();
    // The tools are in the page from the start, hidden until the key is checked.
    browser.wait_until("the key accepted", "return !document.querySelector('#organizer-work').hidden").await;

    for (field, value) in [
        ("#event-name", "Made in the browser"),
        ("#section-name", "Balcony"),
        ("#section-price", "30"),
        ("#section-rows", "2"),
        ("#section-seats-per-row", "5"),
    ] {
        let input = browser.find(field).await;
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    browser.find("#add-section").await.click().await.unwrap();
    browser.find("#create-event button[type='submit']").await.click().await.unwrap();
    browser
        .wait_until(
            "the event created",
            "return /was created/.test(document.querySelector('#create-status').textContent)",
        )
        .await;
    let deadline = Instant::now() + PATIENCE;
    let event = loop {
        let created =
            query(&system, "SELECT coalesce(json_agg(id), '[]') FROM events WHERE name = 'Made in the browser'").await;
        if let Some(id) = created[0].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no event created");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let seats = query(&system, &format!("SELECT count(*) FROM seats WHERE event_id = '{event}'")).await;
    assert_eq!(seats, json!(10));

    // The page goes on to the new event by itself, its waiting-room form ready.
    let chosen = format!(
        "return document.querySelector('#manage-event').value === {} && !document.querySelector('#waitroom-submit').disabled \
         && !document.querySelector('#waitroom-current .loading')",
        json!(event)
    );
    browser.wait_until("the new event chosen to run", &chosen).await;
    browser.find("#waitroom-submit").await.click().await.unwrap();
    browser
        .wait_until("the room opened", "return /is open/.test(document.querySelector('#waitroom-status').textContent)")
        .await;
    browser.wait_until("the live figures", "return document.querySelector('#oversold')?.dataset.count === '0'").await;
    browser.run("document.querySelector('#live').scrollIntoView()").await;
    browser.screenshot("organizer-live").await;
    let (status, room) = system
        .call(Method::GET, format!("{}/v1/admin/events/{event}/waitroom/stats", system.waitroom), Some(ADMIN), None)
        .await;
    assert_eq!(status, 200, "the organizer's form opened the waiting room: {room}");
    browser.close().await;
}

/// The system with ticket keys of its own, so that bookings show their tickets (the
/// directory lives as long as the returned guard).
async fn start_system() -> (System, TempDir) {
    let keys = TempDir::new("bo-browser-keys");
    let kid = "tickets-browser";
    access_token::KeyPair::generate(kid).unwrap().write_to_dir(&keys.0).unwrap();
    let settings = [
        ("BOXOFFICE__TICKETS__KEYS_DIR".to_owned(), keys.0.display().to_string()),
        ("BOXOFFICE__TICKETS__SIGNING_KID".to_owned(), kid.to_owned()),
    ];
    (System::start_with(&settings).await, keys)
}

/// A reserved section of rows A and B, 4 seats each at `price_minor` EUR cents, with a
/// refund policy, published; `starts_in_hours` 0 for no date.
async fn create_event(system: &System, name: &str, starts_in_hours: i64, price_minor: i64) -> String {
    let starts_at =
        (starts_in_hours > 0).then(|| (chrono::Utc::now() + chrono::Duration::hours(starts_in_hours)).to_rfc3339());
    let event = api(
        system,
        Method::POST,
        "/v1/events",
        ADMIN,
        json!({ "name": name, "published": true, "starts_at": starts_at, "max_per_order": 4,
            "refund_policy": [{ "before_hours": 1, "refund_percent": 100 }],
            "sections": [{ "name": "Stalls", "kind": "reserved", "price": { "amount_minor": price_minor, "currency": "EUR" },
                "rows": [{ "label": "A", "seats": 4 }, { "label": "B", "seats": 4 }] }] }),
    )
    .await;
    event["id"].as_str().unwrap().to_owned()
}

async fn open_waiting_room(system: &System, event: &str, settings: Value) {
    let url = format!("{}/v1/admin/events/{event}/waitroom", system.waitroom);
    let (status, answer) = system.call(Method::PUT, url, Some(ADMIN), Some(settings)).await;
    assert_eq!(status, 200, "{answer}");
}

fn token(system: &System, event: &str, fan: &str) -> String {
    system.signer.sign(&AccessClaims::new(fan, event.parse().unwrap(), unix_now(), 600))
}

/// A gateway call that must succeed.
async fn api(system: &System, method: Method, path: &str, bearer: &str, body: Value) -> Value {
    let (status, answer) = system.call(method, format!("{}{path}", system.gateway), Some(bearer), Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

/// One JSON value from the system's database.
async fn query(system: &System, sql: &str) -> Value {
    let pool = sqlx::PgPool::connect(&system.database_url).await.unwrap();
    let value: Value = sqlx::query_scalar(&format!("SELECT to_json(({sql}))")).fetch_one(&pool).await.unwrap();
    pool.close().await;
    value
}

/// A headless Chromium of its own (fresh profile) behind a chromedriver of its own.
struct Browser {
    client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    async fn open() -> Browser {
        for program in ["chromium", "chromedriver"] {
            let found =
                Command::new(program).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
            assert!(found, "{program} is missing: scripts/test installs Debian's chromium and chromium-driver");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // A process group of its own, so that the browser it starts ends with it.
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let profile = TempDir::new("bo-browser-profile");
        let arguments = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,900",
        ]
        .map(str::to_owned)
        .into_iter()
        .chain([format!("--user-data-dir={}", profile.0.display())])
        .collect::<Vec<_>>();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), json!({ "binary": "/usr/bin/chromium", "args": arguments }));
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connected = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
            match connected {
                Ok(client) => break client,
                Err(why) if Instant::now() > deadline => panic!("no browser session: {why}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// The fan's access token in this browser's session storage for the gateway's
    /// origin, as the waiting page leaves it on admission.
    async fn sign_in(&self, system: &System, event: &str, fan: &str) {
        self.goto(&format!("{}/", system.gateway)).await;
        let script = "sessionStorage.setItem('boxoffice.token.' + arguments[0], arguments[1])";
        self.client.execute(script, vec![json!(event), json!(token(system, event, fan))]).await.unwrap();
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|why| panic!("{url}: {why}"));
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.wait().at_most(PATIENCE).for_element(Locator::Css(css)).await {
            Ok(element) => element,
            Err(why) => {
                self.screenshot("failed").await;
                let main = self.run("return document.querySelector('main')?.innerText").await;
                panic!("{css} never appeared ({why}); the page said: {main}")
            }
        }
    }

    async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|why| panic!("{script}: {why}"))
    }

    async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.run(script).await != json!(true) {
            if Instant::now() > deadline {
                self.screenshot("failed").await;
                let main = self.run("return document.querySelector('main')?.innerText").await;
                panic!("{what} never happened; the page said: {main}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_path(&self, path: &str) {
        let script = format!("return location.pathname === {}", json!(path));
        self.wait_until(&format!("arriving at {path}"), &script).await;
    }

    async fn wait_for_state(&self, seat: &str, state: &str) {
        let script = format!("return document.querySelector(\"[data-seat='{seat}']\")?.dataset.state === '{state}'");
        self.wait_until(&format!("{seat} shown {state}"), &script).await;
    }

    /// axe-core's WCAG 2.0/2.1 A and AA rules on the page as it is, each violation with
    /// the elements it names.
    async fn axe_violations(&self) -> Vec<String> {
        self.client
            .execute(&std::fs::read_to_string(axe_script()).expect("scripts/test installs axe-core"), vec![])
            .await
            .unwrap();
        let run = "const done = arguments[arguments.length - 1];\
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })\
              .then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
              .catch(e => done(['axe failed: ' + e]));";
        let violations = self.client.execute_async(run, vec![]).await.unwrap();
        violations.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    async fn screenshot(&self, name: &str) {
        let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
        std::fs::create_dir_all(&directory).unwrap();
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(directory.join(format!("{name}.png")), png).unwrap();
        }
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// chromedriver and the browser it started end, also when a test failed half-way
    /// (killed alone, chromedriver would leave its browser running).
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

fn axe_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/node_modules/axe-core/axe.min.js")
}
