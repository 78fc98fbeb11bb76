//! A small rehearsal against the real services (in-process, real PostgreSQL and Redis):
//! the report must agree with what the database says was sold.

use access_token::TokenSigner;
use gateway::GatewayConfig;
use redis::aio::ConnectionManager;
use simulator::fan::Ending;
use simulator::scenario::{Arrival, Scenario};
use simulator::Targets;
use test_support::{RedisKeys, TestDatabase, TestKeys};
use tokio_util::sync::CancellationToken;
use waitroom::WaitroomConfig;

const ADMIN_KEY: &str = "sim-admin-key-0123456789";

struct Services {
    waitroom: String,
    gateway: String,
    database_url: String,
    shutdown: CancellationToken,
    /// The waiting room's keys on the shared Redis, deleted when the test ends.
    _redis_keys: RedisKeys,
}

impl Drop for Services {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start_services() -> Services {
    let db = TestDatabase::new(&schema::MIGRATOR, 20).await.unwrap();
    let keys = TestKeys::new();
    let shutdown = CancellationToken::new();

    let gateway_config: GatewayConfig = test_support::config(&[("admin_api_key", ADMIN_KEY)], |_| {});
    let gateway = gateway::Application::build(&gateway_config, db.service_database(16), keys.verifier()).await.unwrap();
    let gateway_url = format!("http://{}", gateway.local_addr());
    tokio::spawn(gateway.run(shutdown.clone()));

    let waitroom_config: WaitroomConfig = test_support::config(
        &[("admin_api_key", ADMIN_KEY), ("abandon_after_secs", "30"), ("admitter_tick_ms", "20")],
        |_| {},
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
    )
    .await
    .unwrap();
    let waitroom_url = format!("http://{}", waitroom.local_addr());
    tokio::spawn(waitroom::run_admitter(waitroom.admitter(), shutdown.clone()));
    tokio::spawn(waitroom.run(shutdown.clone()));

    Services { waitroom: waitroom_url, gateway: gateway_url, database_url: db.url, shutdown, _redis_keys: redis_keys }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_sale_sells_each_place_once_and_the_report_matches_the_database() {
    let services = start_services().await;
    let scenario = Scenario {
        fans: 450,
        rows: 5,
        seats_per_row: 20,
        general_admission: 100,
        arrival: Arrival::AllAtOnce,
        admit_rate: 150.0,
        think_ms: 50,
        poll_interval_ms: 200,
        max_seconds: 30,
        ..Scenario::default()
    };
    let targets = Targets {
        waitrooms: vec![services.waitroom.clone()],
        gateways: vec![services.gateway.clone()],
        waitroom_admin_key: ADMIN_KEY.into(),
        gateway_admin_key: ADMIN_KEY.into(),
        database_url: services.database_url.clone(),
        faults_file: None,
    };
    let report = simulator::run(&scenario, targets, false).await.unwrap();

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
    assert!((achieved - 150.0).abs() < 30.0, "admitted at {achieved}/s, configured 150/s: {report}");
}
