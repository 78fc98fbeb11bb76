//! Booking throughput through the real gateway, scenario by scenario, beside the
//! pgbench ceiling for comparable SQL measured in the same run.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::client::{one_section_event, Gateway, Outcome};
use crate::load::{closed_loop, Report};
use crate::pgbench::{self, Ceiling};
use crate::server_cost;
use crate::Target;

/// Places per benchmark event: more than any run can sell.
const PLACES: u32 = 100_000;
/// Tickets per check-in event, all sold before the scans start: more than a run scans.
const CHECKIN_PLACES: u32 = 80_000;
/// How many seats contended clients all aim at.
const HOT_SEATS: u64 = 32;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Scenario {
    /// Every client books its own seats: no two requests want the same row.
    #[value(name = "distinct")]
    DistinctChosenSeats,
    /// Every client holds one of the same 32 seats and, when it gets it, releases it
    /// again: fans all clicking the front row, most of them changing their minds.
    #[value(name = "contended")]
    ContendedChosenSeats,
    /// Every client books one place in the same general-admission section.
    #[value(name = "hot-ga")]
    HotGeneralAdmission,
    /// Every client holds its own free seat and confirms it: the free path of checkout.
    #[value(name = "hold-confirm")]
    FreeHoldConfirm,
    /// Every client holds its own paid seat, checks out, pays on the sandbox's page and
    /// comes back until its payment names the booking (as a fan back from the page does:
    /// the gateway asks the provider, or the webhook got there first).
    #[value(name = "paid-checkout")]
    PaidCheckout,
    /// Every client scans its own tickets at a gate of its own (`POST …/checkins`), each
    /// ticket once: recorded check-ins per second, each committed, exactly once.
    #[value(name = "checkins")]
    Checkins,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::DistinctChosenSeats => "distinct chosen seats",
            Self::ContendedChosenSeats => "contended chosen seats",
            Self::HotGeneralAdmission => "one hot GA section",
            Self::FreeHoldConfirm => "free hold + confirm",
            Self::PaidCheckout => "paid checkout + pay",
            Self::Checkins => "check-ins",
        }
    }

    fn ceiling(self) -> Ceiling {
        match self {
            Self::DistinctChosenSeats => Ceiling::DistinctSeatsNowait,
            Self::ContendedChosenSeats => Ceiling::HotSeatsNowait,
            Self::HotGeneralAdmission => Ceiling::HotRowAtomicUpdate,
            Self::FreeHoldConfirm | Self::PaidCheckout => Ceiling::DistinctSeatsNowait,
            Self::Checkins => Ceiling::SingleInsert,
        }
    }

    fn section(self) -> serde_json::Value {
        // Free places, except for the paid checkout: one-step orders of paid places are
        // refused 402.
        let amount = if matches!(self, Self::PaidCheckout) { 5000 } else { 0 };
        let price = json!({ "amount_minor": amount, "currency": "EUR" });
        match self {
            Self::HotGeneralAdmission => {
                json!({ "name": "Floor", "kind": "general_admission", "price": price, "capacity": PLACES })
            }
            Self::Checkins => {
                json!({ "name": "Floor", "kind": "general_admission", "price": price, "capacity": CHECKIN_PLACES })
            }
            _ => json!({ "name": "Hall", "kind": "reserved", "price": price, "seats": PLACES }),
        }
    }
}

/// The payments sandbox the paid scenario pays through, in this process: the gateway is
/// pointed at `listen` with `secret_key`, and accepts webhooks signed with
/// `webhook_secret` (scripts/bench-gateway sets both sides).
pub struct Sandbox {
    pub listen: std::net::SocketAddr,
    pub secret_key: String,
    pub webhook_secret: String,
}

/// How long each order scenario runs on an event of its own before it is measured.
const WARM_UP: Duration = Duration::from_secs(2);

/// What every scenario's events are created with.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventOptions {
    /// Each event limits places per fan to this (`max_per_fan`), so every order runs the
    /// database's limit check (the fan's lock and count, migrations/*_fan_limits.sql);
    /// each client then acts as a new fan every this many orders, so none is refused and
    /// no fan's count grows past what a real limit allows. None: no limit, and each
    /// client is one fan throughout, as before the limit existed.
    pub max_per_fan: Option<u32>,
}

pub async fn run(
    target: &Target,
    database_url: &str,
    scenarios: &[Scenario],
    client_counts: &[usize],
    duration: Duration,
    sandbox: &Sandbox,
    options: EventOptions,
) -> anyhow::Result<()> {
    let max_clients = client_counts.iter().copied().max().unwrap_or(1);
    let _payments = match scenarios.iter().any(|s| matches!(s, Scenario::PaidCheckout)) {
        true => {
            let running =
                payments_sandbox::spawn(sandbox.listen, payments_sandbox::SandboxConfig::new(&sandbox.secret_key))
                    .await
                    .context("starting the payments sandbox")?;
            let webhooks = format!("{}/v1/payments/webhooks", target.gateway.trim_end_matches('/'));
            // Subscribed as a production endpoint at Stripe would be: to what the gateway
            // acts on.
            running.set_webhook(
                payments_sandbox::WebhookEndpoint::new(webhooks, &sandbox.webhook_secret)
                    .only(stripe_client::EVENTS_TO_SUBSCRIBE),
            );
            Some(running)
        }
        false => None,
    };
    let gateway = Arc::new(Gateway::connect(target, max_clients)?);
    let pool = PgPool::connect(database_url).await.context("connecting to the benchmark database")?;
    pgbench::prepare(&pool).await?;
    println!(
        "boxoffice gateway benchmark: {}s per measurement, closed loop, synchronous_commit as configured, {}",
        duration.as_secs(),
        match options.max_per_fan {
            Some(n) => format!("max_per_fan {n} (a new fan every {n} orders of a client)"),
            None => "no max_per_fan".into(),
        }
    );
    println!(
        "{:<24} {:>7} {:>10} {:>8} {:>8} {:>9} {:>12} {:>7}",
        "scenario", "clients", "booked/s", "p50 ms", "p99 ms", "rejected", "ceiling/s", "ratio"
    );
    let mut events = Vec::new();
    let mut rates: Vec<(Scenario, usize, f64)> = Vec::new();
    let mut ratios: Vec<(Scenario, usize, f64)> = Vec::new();
    let new_event = |scenario: Scenario| {
        let mut event = one_section_event(scenario.name(), scenario.section());
        if let Some(max_per_fan) = options.max_per_fan {
            event["max_per_fan"] = json!(max_per_fan);
        }
        event
    };
    for &scenario in scenarios {
        if !matches!(scenario, Scenario::Checkins) {
            // A warm-up on an event of its own fills the tables this scenario writes, so
            // that the statistics below are those of a database in use: planned against
            // empty tables, statements scan them whole once they have grown.
            let (event_id, sections) = gateway.create_event(new_event(scenario)).await?;
            events.push(event_id);
            let fans = Fans::new(&gateway, event_id, max_clients, options.max_per_fan);
            ours(&gateway, scenario, event_id, sections[0], fans, WARM_UP.min(duration)).await?;
        }
        for &clients in client_counts {
            let (event_id, sections) = gateway.create_event(new_event(scenario)).await?;
            events.push(event_id);
            // What autovacuum does for a production database, done here because the
            // database under test may run without it (this machine's does): every
            // measurement starts with fresh statistics and without the dead rows of the
            // ones before it, so scenarios run later are not measured on a dirtier table.
            sqlx::query("VACUUM ANALYZE").execute(&pool).await.context("vacuuming before a measurement")?;
            let before = server_cost::sample(&pool, target.gateway_pid).await?;
            let report = match scenario {
                Scenario::Checkins => checkins(&gateway, &pool, event_id, clients, duration).await?,
                _ => {
                    let fans = Fans::new(&gateway, event_id, clients, options.max_per_fan);
                    ours(&gateway, scenario, event_id, sections[0], fans, duration).await?
                }
            };
            let cost = before.cost_until(&server_cost::sample(&pool, target.gateway_pid).await?, report.successes);
            rates.push((scenario, clients, report.successes_per_sec()));
            let ceiling = pgbench::measure(database_url, &pool, scenario.ceiling(), clients, duration).await?;
            ratios.push((scenario, clients, report.successes_per_sec() / ceiling));
            println!(
                "{:<24} {:>7} {:>10.0} {:>8.1} {:>8.1} {:>8.1}% {:>12.0} {:>6.2}x",
                scenario.name(),
                clients,
                report.successes_per_sec(),
                report.percentile_ms(0.50),
                report.percentile_ms(0.99),
                report.rejected_percent(),
                ceiling,
                report.successes_per_sec() / ceiling
            );
            let errors: Vec<String> =
                report.outcomes.iter().filter(|(c, _)| *c != "created").map(|(c, n)| format!("{c}={n}")).collect();
            if !errors.is_empty() {
                println!("{:<24} {:>7} refused: {}", "", "", errors.join(", "));
            }
            println!(
                "{:<24} {:>7} per success: server CPU {:.0} µs (gateway {}, PostgreSQL {:.0}), WAL {:.0} B; load generator CPU {:.0} µs",
                "",
                "",
                cost.server_cpu_us(),
                cost.gateway_cpu_us.map_or("not measured".into(), |us| format!("{us:.0}")),
                cost.postgres_cpu_us,
                cost.wal_bytes,
                cost.load_generator_cpu_us
            );
        }
    }
    println!();
    for &(scenario, clients, rate) in &ratios {
        if matches!(scenario, Scenario::Checkins) {
            println!("recorded check-ins ÷ single-insert ceiling at {clients} clients: {rate:.2} (target ≥ 0.50)");
        }
    }
    for &(scenario, clients, paid) in &rates {
        let free = rates.iter().find(|(s, c, _)| matches!(s, Scenario::FreeHoldConfirm) && *c == clients);
        if let (Scenario::PaidCheckout, Some(&(_, _, free))) = (scenario, free) {
            println!("paid ÷ free bookings/s at {clients} clients: {:.2} (target ≥ 0.50)", paid / free);
        }
    }
    for ceiling in
        [Ceiling::DistinctSeatsNowait, Ceiling::HotSeatsNowait, Ceiling::HotRowAtomicUpdate, Ceiling::SingleInsert]
    {
        println!("ceiling {:?}: {}", ceiling, ceiling.describe());
    }
    check_no_oversell(&pool, &events).await
}

/// The fan each client orders as, and its access token: one fan per client, or a new
/// one every `max_per_fan` orders (a token is signed once per fan, not per order).
struct Fans {
    gateway: Arc<Gateway>,
    event_id: Uuid,
    max_per_fan: Option<u32>,
    /// Per client: the generation of its current fan, and that fan's token.
    current: Vec<std::sync::Mutex<(u64, String)>>,
}

impl Fans {
    fn new(gateway: &Arc<Gateway>, event_id: Uuid, clients: usize, max_per_fan: Option<u32>) -> Arc<Self> {
        let current =
            (0..clients).map(|c| std::sync::Mutex::new((0, gateway.token(&format!("bench-{c}"), event_id)))).collect();
        Arc::new(Self { gateway: gateway.clone(), event_id, max_per_fan, current })
    }

    fn clients(&self) -> usize {
        self.current.len()
    }

    /// The token of the fan `client` orders as at its `iteration`th order.
    fn token(&self, client: usize, iteration: u64) -> String {
        let generation = self.max_per_fan.map_or(0, |n| iteration / u64::from(n.max(1)));
        let mut current = self.current[client].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if current.0 != generation {
            *current = (generation, self.gateway.token(&format!("bench-{client}-{generation}"), self.event_id));
        }
        current.1.clone()
    }
}

async fn ours(
    gateway: &Arc<Gateway>,
    scenario: Scenario,
    event_id: Uuid,
    section_id: Uuid,
    fans: Arc<Fans>,
    duration: Duration,
) -> anyhow::Result<Report> {
    let clients = fans.clients();
    let gateway = gateway.clone();
    closed_loop(clients, duration, move |client, iteration| {
        let (gateway, fans) = (gateway.clone(), fans.clone());
        async move {
            let token = fans.token(client, iteration);
            let request = match scenario {
                Scenario::DistinctChosenSeats => {
                    let seat = client as u64 + 1 + iteration * clients as u64;
                    json!({ "seats": [seat.to_string()] })
                }
                Scenario::ContendedChosenSeats => {
                    let seat = rand::thread_rng().gen_range(1..=HOT_SEATS);
                    let request = json!({ "seats": [seat.to_string()] });
                    let outcome = gateway.hold(event_id, &token, &request).await?;
                    if let Some(hold_id) = outcome.body["id"].as_str() {
                        gateway.release(event_id, &token, hold_id).await?;
                    }
                    return Ok(outcome);
                }
                Scenario::HotGeneralAdmission => json!({ "section_id": section_id, "quantity": 1 }),
                Scenario::Checkins => anyhow::bail!("check-ins are measured by checkins(), not as orders"),
                Scenario::FreeHoldConfirm | Scenario::PaidCheckout => {
                    let seat = client as u64 + 1 + iteration * clients as u64;
                    let held = gateway.hold(event_id, &token, &json!({ "seats": [seat.to_string()] })).await?;
                    let Some(hold_id) = held.body["id"].as_str() else { return Ok(held) };
                    let hold = format!("/v1/events/{event_id}/holds/{hold_id}");
                    return match scenario {
                        Scenario::PaidCheckout => pay(&gateway, &token, &hold).await,
                        _ => gateway.post(&format!("{hold}/confirm"), &token).await,
                    };
                }
            };
            gateway.book(event_id, &token, &request).await
        }
    })
    .await
}

/// Sells every place of the check-in event in one booking (written straight in the
/// database, tickets included, as the booking statements write them: the sale is not
/// what is measured), reads the secrets as the fan, then has each client scan its own
/// share of the tickets once each at its own gate.
async fn checkins(
    gateway: &Arc<Gateway>,
    pool: &PgPool,
    event_id: Uuid,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Report> {
    let booking_id = Uuid::new_v4();
    sqlx::query(
        "WITH places AS (
             SELECT id FROM seats WHERE event_id = $1
         ), booking AS (
             INSERT INTO bookings (id, event_id, fan_id, quantity, total_minor)
             SELECT $2, $1, 'bench-checkins', count(*), 0 FROM places
         ), items AS (
             INSERT INTO booking_seats (booking_id, seat_id, price_minor) SELECT $2, id, 0 FROM places
         ), booked AS (
             UPDATE seats SET state = 'booked', booking_id = $2 WHERE id IN (SELECT id FROM places)
         )
         INSERT INTO tickets (id, event_id, booking_id, seat_id) SELECT gen_random_uuid(), $1, $2, id FROM places",
    )
    .bind(event_id)
    .bind(booking_id)
    .execute(pool)
    .await
    .context("selling the check-in event's places")?;
    let token = gateway.token("bench-checkins", event_id);
    let secrets = Arc::new(gateway.ticket_secrets(event_id, booking_id, &token).await?);
    let key = Arc::new(gateway.scanner_key(event_id).await?);
    let gateway = gateway.clone();
    closed_loop(clients, duration, move |client, iteration| {
        let (gateway, secrets, key) = (gateway.clone(), secrets.clone(), key.clone());
        async move {
            let index = client + iteration as usize * clients;
            let secret = secrets.get(index).context("the run scanned every ticket: raise CHECKIN_PLACES")?;
            gateway.check_in(event_id, &key, secret, &format!("gate {client}")).await
        }
    })
    .await
}

/// Checks the hold out, pays on the sandbox's page with a card that succeeds, then asks
/// for the payment until it names the booking (at most 5 s).
async fn pay(gateway: &Gateway, token: &str, hold: &str) -> anyhow::Result<Outcome> {
    let checkout = gateway.post(&format!("{hold}/checkout"), token).await?;
    let Some(page) = checkout.body["payment_page_url"].as_str() else { return Ok(checkout) };
    crate::client::ensure_loopback(page)?;
    let secret = checkout.body["client_secret"].as_str().unwrap_or_default();
    let paid = gateway
        .http
        .post(page.split('?').next().unwrap_or(page))
        .header("Accept", "application/json")
        .form(&[("client_secret", secret), ("card_number", "4242424242424242")])
        .send()
        .await?;
    anyhow::ensure!(paid.status().is_success(), "the sandbox refused the payment: {}", paid.status());
    for _ in 0..500 {
        let payment = gateway.get(&format!("{hold}/payment"), token).await?;
        if payment.body["booking_id"].is_string() {
            return Ok(Outcome { status: 201, code: "created".into(), body: payment.body });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Outcome { status: 504, code: "not_booked_in_time".into(), body: serde_json::Value::Null })
}

/// After the load: no seat in two live bookings, no section sold beyond capacity.
async fn check_no_oversell(pool: &PgPool, events: &[Uuid]) -> anyhow::Result<()> {
    let (double_booked, oversold_sections): (i64, i64) = sqlx::query_as(
        "SELECT
            (SELECT count(*) FROM (SELECT seat_id FROM booking_seats WHERE live GROUP BY seat_id HAVING count(*) > 1) d),
            (SELECT count(*) FROM (SELECT s.id FROM sections s JOIN seats st ON st.section_id = s.id
                                   WHERE s.event_id = ANY($1)
                                   GROUP BY s.id, s.capacity HAVING count(*) FILTER (WHERE st.state = 'booked') > s.capacity) o)",
    )
    .bind(events)
    .fetch_one(pool)
    .await?;
    let (booked,): (i64,) = sqlx::query_as("SELECT count(*) FROM seats WHERE event_id = ANY($1) AND state = 'booked'")
        .bind(events)
        .fetch_one(pool)
        .await?;
    println!("oversell check: {booked} seats booked in this run, {double_booked} seats in two bookings, {oversold_sections} sections over capacity");
    anyhow::ensure!(double_booked == 0 && oversold_sections == 0, "OVERSOLD");
    Ok(())
}
