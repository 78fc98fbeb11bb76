//! A small rehearsal against the real services (in-process, real PostgreSQL and Redis,
//! the payments sandbox on a free port): the report must agree with what the database
//! says was sold and paid.

use std::time::Duration;

use access_token::TokenSigner;
use gateway::GatewayConfig;
use payments_sandbox::{Sandbox, SandboxConfig};
use redis::aio::ConnectionManager;
use simulator::fan::Ending;
use simulator::scenario::{Arrival, Behaviour, Payments, Scenario, Waitlist};
use simulator::Targets;
use test_support::{RedisKeys, TestDatabase, TestKeys};
use tokio_util::sync::CancellationToken;
use waitroom::WaitroomConfig;

const ADMIN_KEY: &str = "sim-admin-key-0123456789";
const SANDBOX_KEY: &str = "sk_test_small_sale";
const WEBHOOK_SECRET: &str = "whsec_small_sale";

struct Services {
    waitroom: String,
    gateway: String,
    database_url: String,
    /// The payments sandbox, delivering its webhooks to the gateway.
    sandbox: Sandbox,
    shutdown: CancellationToken,
    /// The waiting room's keys on the shared Redis, deleted when the test ends.
    _redis_keys: RedisKeys,
}

impl Services {
    /// Where the rehearsal plays: these services, and the sandbox whose faults it sets.
    fn targets(&self) -> Targets {
        Targets {
            waitrooms: vec![self.waitroom.clone()],
            gateways: vec![self.gateway.clone()],
            waitroom_admin_key: ADMIN_KEY.into(),
            gateway_admin_key: ADMIN_KEY.into(),
            database_url: self.database_url.clone(),
            faults_file: None,
            payments_sandbox: Some(simulator::api::Sandbox { url: self.sandbox.url(), secret_key: SANDBOX_KEY.into() }),
        }
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The services of a sale; `admission_budget` off leaves admission to the organizer's
/// rate alone, as before the waiting room knew the inventory (issue 18).
async fn start_services(admission_budget: bool) -> Services {
    let db = TestDatabase::new(&schema::MIGRATOR, 20).await.unwrap();
    let keys = TestKeys::new();
    let shutdown = CancellationToken::new();

    let mut sandbox_config = SandboxConfig::new(SANDBOX_KEY);
    // Failed deliveries retried within the sale, not over minutes.
    sandbox_config.retry.base = Duration::from_millis(50);
    sandbox_config.retry.max_delay = Duration::from_millis(500);
    let sandbox = payments_sandbox::spawn("127.0.0.1:0".parse().unwrap(), sandbox_config).await.unwrap();
    let api_base = sandbox.url();
    let gateway_config: GatewayConfig =
        test_support::config(&[("admin_api_key", ADMIN_KEY)], |c: &mut GatewayConfig| {
            c.payments.payment_page_url = format!("{api_base}/pay/{{intent_id}}?client_secret={{client_secret}}");
            c.payments.api_base = api_base;
            c.payments.secret_key = SANDBOX_KEY.to_owned().into();
            c.payments.webhook_secrets = vec![WEBHOOK_SECRET.to_owned().into()];
            // Short payment windows, so fans who pay late do it within the sale.
            c.payments.checkout_extension_secs = 3;
            c.payments.refund_retry_first_ms = 50;
            c.payments.refund_retry_max_ms = 500;
        });
    // Ticket keys: waitlist offers carry their capability links, which fans use.
    let tickets =
        sales::tickets::TicketKeys::new(access_token::KeyPair::generate("small-sale-tickets").unwrap(), Vec::new());
    let gateway = gateway::Application::build(
        &gateway_config,
        db.service_database(16),
        keys.verifier(),
        Some(std::sync::Arc::new(tickets)),
    )
    .await
    .unwrap();
    let gateway_url = format!("http://{}", gateway.local_addr());
    sandbox.set_webhook_endpoint(format!("{gateway_url}/v1/payments/webhooks"), WEBHOOK_SECRET);
    tokio::spawn(gateway.run(shutdown.clone()));

    let waitroom_config: WaitroomConfig = test_support::config(
        &[("admin_api_key", ADMIN_KEY), ("abandon_after_secs", "30"), ("admitter_tick_ms", "20")],
        |c: &mut WaitroomConfig| c.inventory.enabled = admission_budget,
    );
    let redis_keys = RedisKeys::new();
    let redis = ConnectionManager::new(redis_keys.config().client().unwrap()).await.unwrap();
    let waitroom = waitroom::Application::build(
        &waitroom_config,
        redis,
        redis_keys.prefix(),
        db.service_database(4),
        TokenSigner::new(&keys.pair),
        &[keys.pair.public_key()],
        None,
    )
    .await
    .unwrap();
    let waitroom_url = format!("http://{}", waitroom.local_addr());
    tokio::spawn(waitroom::run_admitter(waitroom.admitter(), shutdown.clone()));
    tokio::spawn(waitroom.run(shutdown.clone()));

    Services {
        waitroom: waitroom_url,
        gateway: gateway_url,
        database_url: db.url,
        sandbox,
        shutdown,
        _redis_keys: redis_keys,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_sale_sells_each_place_once_and_the_report_matches_the_database() {
    // Without the admission budget: this test also checks the organizer's rate, which
    // the budget lowers by design once the places left cannot use everyone admitted.
    let services = start_services(false).await;
    let scenario = Scenario {
        fans: 450,
        rows: 5,
        seats_per_row: 20,
        general_admission: 100,
        arrival: Arrival::AllAtOnce,
        // Nine seconds of admissions: fans still come in after the first holds lapse,
        // and take places that late payers then find gone.
        admit_rate: 50.0,
        hold_ttl_secs: 5,
        think_ms: 50,
        poll_interval_ms: 200,
        max_seconds: 30,
        behaviour: Behaviour { abandon_checkout: 5, pay_late: 5, ..Behaviour::default() },
        // A tenth of the fans' first card is declined; some webhooks come twice, some
        // never (the fans' own questions, relayed by the gateway to the provider, then
        // settle those payments).
        payments: Payments {
            decline_rate: 0.1,
            webhook_duplicate_rate: 0.5,
            webhook_drop_rate: 0.05,
            ..Payments::default()
        },
        ..Scenario::default()
    };
    let report = simulator::run(&scenario, services.targets(), false).await.unwrap();

    // Shown with `--nocapture`: the figures of a run.
    eprintln!("{report}");
    assert!(report.broken.is_empty(), "{report}");
    let db = &report.database;
    assert_eq!(db.capacity, 200);
    assert!(db.seats_sold <= db.capacity, "{report}");
    assert_eq!(db.violations, Default::default(), "{report}");
    let count = |ending| report.endings.get(&ending).copied().unwrap_or(0);
    assert_eq!(report.endings.values().sum::<usize>(), 450, "every fan is accounted for: {report}");
    assert_eq!(report.joined, 450);
    assert_eq!(db.bookings as usize, count(Ending::Booked), "bookings in the database = fans who booked: {report}");
    assert_eq!(db.seats_sold as u64, report.seats_booked_by_fans, "places sold = places fans hold: {report}");
    assert!(count(Ending::Booked) > 0 && count(Ending::SoldOut) > 0, "the crowd outnumbers the places: {report}");
    assert_eq!(report.fairness.overtakes, 0, "admitted in arrival order: {report}");
    let sent: u64 = report.latency_ms.values().map(|p| p.count).sum();
    assert_eq!(sent, report.requests, "every request is in the latency table: {report}");
    assert_eq!(report.connection_wait_ms.count, report.requests, "and waited (if at all) once: {report}");
    let achieved = report.admission_rate.achieved.expect("fans waited in line for three seconds");
    assert!((achieved - 50.0).abs() < 10.0, "admitted at {achieved}/s, configured 50/s: {report}");

    // Checkout: every payment a fan made was booked or refunded, exactly as the fans
    // were told; nothing is left pending but the checkouts fans walked away from.
    let (fans, paid) = (&report.payments, &db.payments);
    let resolved = |what: &str| paid.resolutions.get(what).copied().unwrap_or(0);
    let refunds = |reason: &str| paid.refunds.get(reason).copied().unwrap_or(0);
    assert_eq!(paid.violations, Default::default(), "{report}");
    assert_eq!(paid.paid_unsettled, 0, "{report}");
    assert_eq!(
        resolved("booked") + resolved("late_booked") + resolved("refunded"),
        fans.paid as i64,
        "every payment fans made is booked or refunded: {report}"
    );
    assert_eq!(
        resolved("booked") + resolved("late_booked"),
        (count(Ending::Booked) + count(Ending::Cancelled)) as i64,
        "a paid booking for every fan told of one: {report}"
    );
    assert_eq!(resolved("refunded"), count(Ending::Refunded) as i64, "{report}");
    assert_eq!(refunds("late_payment"), resolved("refunded"), "late payments refunded once each: {report}");
    assert_eq!(paid.needs_attention, resolved("refunded"), "each flagged for the organizer: {report}");
    assert_eq!(refunds("cancellation"), count(Ending::Cancelled) as i64, "cancellations refunded: {report}");
    assert_eq!(refunds("duplicate_payment"), 0, "{report}");
    let refunded: i64 = paid.refunds.values().sum();
    assert_eq!(paid.refunds_by_state.get("succeeded").copied().unwrap_or(0), refunded, "all confirmed: {report}");
    assert_eq!(paid.pending, count(Ending::AbandonedCheckout) as i64, "abandoned checkouts stay pending: {report}");
    assert!(fans.paid_late > 0 && resolved("late_booked") + resolved("refunded") >= fans.paid_late as i64, "{report}");
    assert!(fans.cards_declined > 0, "a tenth of first cards are declined: {report}");
    assert!(paid.attempts.get("failed").copied().unwrap_or(0) > 0, "declines are recorded: {report}");

    // Both ways a verdict reaches the gateway ran: the provider's webhooks (some
    // duplicated, applied once) and the fans' questions for the ones dropped.
    let events = services.sandbox.events();
    let succeeded: Vec<_> = events.iter().filter(|e| e.kind == "payment_intent.succeeded").collect();
    assert!(succeeded.iter().any(|e| e.copies > 1), "some webhooks came twice: {report}");
    assert!(succeeded.iter().any(|e| e.delivered), "webhooks were delivered: {report}");
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_provider_events WHERE type = 'payment_intent'")
        .fetch_one(&sqlx::PgPool::connect(&services.database_url).await.unwrap())
        .await
        .unwrap();
    assert!(applied > 0, "webhooks were applied: {report}");
}

/// With the admission budget (issue 18), a show that sells out lets in hardly more fans
/// than it has places, and tells everyone still in line that it is sold out: nobody is
/// left waiting for nothing, and few are admitted only to find nothing left.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sold_out_show_tells_its_line_and_lets_nobody_more_in() {
    let services = start_services(true).await;
    let scenario = Scenario {
        fans: 300,
        rows: 0,
        seats_per_row: 0,
        general_admission: 40,
        arrival: Arrival::AllAtOnce,
        admit_rate: 100.0,
        think_ms: 50,
        poll_interval_ms: 200,
        // Half the line waits on the standing stream, half polls.
        stream_share: 0.5,
        max_seconds: 25,
        behaviour: Behaviour {
            chosen_seats: 0,
            best_available: 0,
            general_admission: 1,
            abandon_hold: 0,
            cancel: 0,
            abandon_checkout: 0,
            pay_late: 0,
            ..Behaviour::default()
        },
        payments: Payments { decline_rate: 0.0, ..Payments::default() },
        ..Scenario::default()
    };
    let report = simulator::run(&scenario, services.targets(), false).await.unwrap();

    assert!(report.broken.is_empty(), "{report}");
    let sell_out = report.sell_out.expect("the show sold out");
    assert!(sell_out.streaming_then > 0 && sell_out.told_on_stream > 0, "streams told the line: {report}");
    assert_eq!((report.database.seats_sold, report.database.capacity), (40, 40), "{report}");
    let count = |ending| report.endings.get(&ending).copied().unwrap_or(0);
    assert_eq!(report.endings.values().sum::<usize>(), 300, "{report}");
    assert_eq!(count(Ending::NotAdmitted), 0, "nobody left waiting for nothing: {report}");
    assert_eq!(count(Ending::SoldOutInLine), 300 - report.admitted, "the rest told in line: {report}");
    // Two places per order: 20 orders sell the show. Without the budget all 300 were
    // admitted within three seconds.
    assert!(report.admitted <= 80, "admitted at most twice the places: {report}");
}

/// Fans who pay and close the tab never ask the gateway anything after paying: only the
/// provider's webhooks (late, and each twice) book their places, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fans_who_pay_and_leave_are_booked_by_the_webhooks_alone() {
    let services = start_services(true).await;
    let scenario = Scenario {
        fans: 60,
        rows: 2,
        seats_per_row: 20,
        general_admission: 40,
        arrival: Arrival::AllAtOnce,
        admit_rate: 100.0,
        think_ms: 50,
        poll_interval_ms: 200,
        max_seconds: 30,
        behaviour: Behaviour {
            chosen_seats: 0,
            best_available: 1,
            general_admission: 1,
            abandon_hold: 0,
            cancel: 0,
            pay_and_leave: 2,
            ..Behaviour::default()
        },
        payments: Payments {
            decline_rate: 0.0,
            webhook_delay_ms: 300,
            webhook_duplicate_rate: 1.0,
            settle_secs: 10,
            ..Payments::default()
        },
        ..Scenario::default()
    };
    let report = simulator::run(&scenario, services.targets(), false).await.unwrap();

    assert!(report.broken.is_empty(), "{report}");
    let (db, paid) = (&report.database, &report.database.payments);
    let count = |ending| report.endings.get(&ending).copied().unwrap_or(0);
    assert_eq!(report.endings.values().sum::<usize>(), 60, "{report}");
    assert!(count(Ending::PaidAndLeft) > 0, "{report}");
    assert_eq!(paid.paid_unsettled, 0, "the webhooks settled every payment: {report}");
    assert_eq!(paid.violations, Default::default(), "{report}");
    assert_eq!(paid.resolutions.get("booked").copied().unwrap_or(0), report.payments.paid as i64, "{report}");
    assert_eq!(
        db.bookings as usize,
        count(Ending::Booked) + count(Ending::PaidAndLeft),
        "one booking per payment, whoever asked: {report}"
    );
    assert_eq!(paid.refunds.values().sum::<i64>(), 0, "nothing paid twice, nothing refunded: {report}");
    // The sandbox records a delivery once the gateway's answer is back, just after the
    // gateway committed: wait (bounded) for the record.
    let twice =
        |e: &payments_sandbox::EventRecord| e.kind != "payment_intent.succeeded" || (e.copies == 2 && e.delivered);
    let events = services.sandbox.wait_for_events(Duration::from_secs(5), |events| events.iter().all(twice)).await;
    let events = events.unwrap_or_else(|events| panic!("each webhook delivered twice: {events:?}"));
    let succeeded = events.iter().filter(|e| e.kind == "payment_intent.succeeded").count();
    assert_eq!(succeeded, report.payments.paid, "{report}");
}

/// Fans who find the show sold out wait on its waitlist; cancellations, released offers
/// and lapsed holds (the sweep running as the scheduler would) become offers, which fans
/// take, decline or let lapse through the offers' links. The database says every offer
/// was made in line order and no place went to anyone else while the line waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sold_out_show_serves_its_waitlist_in_order_before_anyone_else() {
    // With the admission budget: fans still in line join with the waitlist token the
    // waiting room hands them (DECISIONS.md D2). Fans who join the waitlist free their
    // place in the room (`waitlist.joined`); before they did, they held the budget of a
    // show with a few places left in other sections, and the line stalled behind them
    // (one run in six).
    let services = start_services(true).await;
    let sweeping = CancellationToken::new();
    let pool = sqlx::PgPool::connect(&services.database_url).await.unwrap();
    let sweep = {
        let (pool, sweeping) = (pool.clone(), sweeping.clone());
        tokio::spawn(async move {
            while !sweeping.is_cancelled() {
                let mut tx = pool.begin().await.unwrap();
                sales::waitlist::release_expired_holds(&mut tx, 100).await.unwrap();
                tx.commit().await.unwrap();
                // As the scheduler's sweep, every two seconds: lapsed holds stay
                // unoffered (kept from sale) that long, while fans still arrive and shop.
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    };
    let scenario = Scenario {
        fans: 150,
        rows: 2,
        seats_per_row: 10,
        general_admission: 20,
        // Fans keep arriving for fifteen seconds, shopping while holds lapse.
        arrival: Arrival::Ramp,
        arrival_secs: 15.0,
        admit_rate: 20.0,
        hold_ttl_secs: 2,
        price_minor: 0,
        think_ms: 50,
        poll_interval_ms: 200,
        max_seconds: 25,
        behaviour: Behaviour {
            chosen_seats: 30,
            best_available: 20,
            general_admission: 20,
            abandon_hold: 30,
            cancel: 15,
            ..Behaviour::default()
        },
        waitlist: Waitlist { enabled: true, offer_ttl_secs: 3, accept_rate: 0.6, decline_rate: 0.2 },
        ..Scenario::default()
    };

    let report = simulator::run(&scenario, services.targets(), false).await.unwrap();
    sweeping.cancel();
    sweep.await.unwrap();

    eprintln!("{report}");
    assert!(report.broken.is_empty(), "{report}");
    let (db, waitlist) = (&report.database, &report.database.waitlist);
    let count = |ending| report.endings.get(&ending).copied().unwrap_or(0);
    let offers = |what: &str| waitlist.offers.get(what).copied().unwrap_or(0) as usize;
    assert_eq!(report.endings.values().sum::<usize>(), 150, "{report}");
    assert_eq!(db.violations, Default::default(), "the watchdog's waitlist checks too: {report}");
    assert_eq!((waitlist.out_of_order, waitlist.sold_past_the_line), (0, 0), "{report}");
    assert!(waitlist.entries > 0 && offers("taken") > 0, "fans waited and took offers: {report}");
    assert_eq!(offers("taken"), count(Ending::WaitlistBooked), "each offer taken is a fan told so: {report}");
    assert_eq!(offers("declined"), count(Ending::WaitlistDeclined), "{report}");
    assert!(offers("lapsed") + offers("open") >= count(Ending::WaitlistLapsed), "{report}");
    assert_eq!(
        db.bookings as usize,
        count(Ending::Booked) + count(Ending::WaitlistBooked),
        "bookings in the database = fans who booked, from the line or not: {report}"
    );
    assert_eq!(db.seats_sold as u64, report.seats_booked_by_fans, "places sold = places fans hold: {report}");
}
