//! Back-pressure from a really saturated gateway (issue 18): a gateway with a pool of one
//! connection to a database slowed by the chaos proxy reports distress through Redis,
//! and the waiting room's rate in force drops below the organizer's; once the latency
//! is gone it comes back to the organizer's rate, and it is never above it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use access_token::TokenSigner;
use gateway::GatewayConfig;
use redis::aio::ConnectionManager;
use serde_json::{json, Value};
use test_support::{RedisKeys, TestDatabase, TestKeys};
use tokio_util::sync::CancellationToken;
use waitroom::WaitroomConfig;

const ADMIN_KEY: &str = "backpressure-admin-key-0123456789";
const ADMIT_RATE: f64 = 100.0;

/// The waiting room's admission as its stats show it: (rate in force, reason).
async fn admission(http: &reqwest::Client, waitroom: &str, event: uuid::Uuid) -> (f64, String, Value) {
    let stats: Value = http
        .get(format!("{waitroom}/v1/admin/events/{event}/waitroom/stats"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admission = stats["admission"].clone();
    (admission["rate_in_force"].as_f64().unwrap(), admission["reason"].as_str().unwrap().to_owned(), admission)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_saturated_gateway_slows_admission_and_its_recovery_restores_the_organizers_rate() {
    let db = TestDatabase::new(&schema::MIGRATOR, 4).await.unwrap();
    let (proxy, proxied_url) = db.behind_proxy().await.unwrap();
    let keys = TestKeys::new();
    let redis_keys = RedisKeys::new();
    let shutdown = CancellationToken::new();
    let http = reqwest::Client::new();

    // The gateway: one connection, through the proxy; every seat-map read goes to it.
    let gateway_config: GatewayConfig =
        test_support::config(&[("admin_api_key", ADMIN_KEY), ("seat_map_max_age_ms", "0")], |c: &mut GatewayConfig| {
            c.distress.publish_every_ms = 100;
            c.distress.report_ttl_ms = 1000;
            c.distress.smoothing_ms = 1000;
        });
    let gateway_db = test_support::postgres_config(&proxied_url, 1).database().unwrap();
    let redis = ConnectionManager::new(redis_keys.config().client().unwrap()).await.unwrap();
    let report_to = gateway::distress::ReportTo { redis: redis.clone(), prefix: redis_keys.prefix().to_owned() };
    let gateway = gateway::Application::build(&gateway_config, gateway_db, keys.verifier(), None)
        .await
        .unwrap()
        .report_distress_to(report_to);
    let gateway_url = format!("http://{}", gateway.local_addr());
    tokio::spawn(gateway.run(shutdown.clone()));

    // The waiting room, on the same Redis, with its admitter running.
    let waitroom_config: WaitroomConfig =
        test_support::config(&[("admin_api_key", ADMIN_KEY)], |c: &mut WaitroomConfig| {
            c.backpressure.refresh_ms = 100;
            c.backpressure.stale_after_ms = 1000;
        });
    let waitroom = waitroom::Application::build(
        &waitroom_config,
        redis,
        redis_keys.prefix(),
        db.service_database(2),
        TokenSigner::new(&keys.pair),
        &[keys.pair.public_key()],
        None,
    )
    .await
    .unwrap();
    let waitroom_url = format!("http://{}", waitroom.local_addr());
    tokio::spawn(waitroom::run_admitter(waitroom.admitter(), shutdown.clone()));
    tokio::spawn(waitroom.run(shutdown.clone()));

    let event = test_support::general_admission_event(&db.pool, 10).await.unwrap();
    let settings = json!({ "admit_rate": ADMIT_RATE, "max_active": 1000, "token_lifetime_secs": 600 });
    let put = http
        .put(format!("{waitroom_url}/v1/admin/events/{event}/waitroom"))
        .bearer_auth(ADMIN_KEY)
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let calm = admission(&http, &waitroom_url, event).await;
    assert_eq!((calm.0, calm.1.as_str()), (ADMIT_RATE, "organizer_rate"), "{}", calm.2);

    // Saturate: 40 fans reading the seat map at once through one slow connection.
    proxy.set_latency(Duration::from_millis(30));
    let loading = Arc::new(AtomicBool::new(true));
    let load: Vec<_> = (0..40)
        .map(|_| {
            let (http, url, loading) =
                (http.clone(), format!("{gateway_url}/v1/events/{event}/seats"), loading.clone());
            tokio::spawn(async move {
                while loading.load(Ordering::Relaxed) {
                    let _ = http.get(&url).send().await;
                }
            })
        })
        .collect();
    let mut rates = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let slowed = loop {
        let seen = admission(&http, &waitroom_url, event).await;
        rates.push(seen.0);
        if seen.1 == "gateway_distress" && seen.0 < ADMIT_RATE * 0.8 {
            break seen;
        }
        assert!(Instant::now() < deadline, "the rate never dropped: {}", seen.2);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(slowed.2["backpressure"]["gateway_distress"].as_f64().unwrap() > 0.2, "{}", slowed.2);
    assert_eq!(slowed.2["backpressure"]["gateways_reporting"], 1);

    // Recover: no latency, no load.
    proxy.set_latency(Duration::ZERO);
    loading.store(false, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = admission(&http, &waitroom_url, event).await;
        rates.push(seen.0);
        if seen.1 == "organizer_rate" {
            assert_eq!(seen.0, ADMIT_RATE, "{}", seen.2);
            break;
        }
        assert!(Instant::now() < deadline, "the rate never recovered: {}", seen.2);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(rates.iter().all(|&rate| rate <= ADMIT_RATE), "never above the organizer's rate: {rates:?}");
    let minimum = ADMIT_RATE * waitroom_config.backpressure.min_rate_share;
    assert!(rates.iter().all(|&rate| rate >= minimum - 1e-9), "never below the floor: {rates:?}");
    shutdown.cancel();
}
