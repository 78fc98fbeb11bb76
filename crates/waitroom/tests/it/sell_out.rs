//! Issue 18's sale: 50 places for 500 fans, sold for real through the sale's own use
//! cases (`sales::Sales`, as the gateway runs them) while the waiting room admits. Once
//! every place is sold nobody more is let in and every fan in line is told `sold_out`;
//! before that, holds that lapse bring admission back, in line order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use sales::orders::SeatRequest;
use sales::FanScope;
use uuid::Uuid;
use waitroom::domain::budget::SaleState;

use crate::helpers::{settings, spawn_app_with, TestApp};
use crate::release::sales_of;

const PLACES: i32 = 50;
const FANS: usize = 500;

/// Reads the sale's counts until the room sees it in `state` (at most 30 s).
async fn read_until(app: &TestApp, event: Uuid, state: SaleState) {
    for _ in 0..300 {
        app.inventory.refresh(event).await.unwrap();
        if app.inventory.sale_state(event) == Some(state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the room never saw the sale {state:?}: {:?}", app.inventory.budget(event));
}

/// Delivers every pending slot release.
async fn release_all(app: &TestApp) {
    while app.admitter.release_slots().await.unwrap().attempts > 0 {}
}

#[tokio::test]
async fn fifty_places_for_five_hundred_fans_sell_out_tell_the_line_and_lapsed_holds_bring_admission_back() {
    let app = spawn_app_with(|c| c.inventory.shoppers_per_place = 1.0).await;
    let sales = sales_of(&app).await;
    let event = test_support::general_admission_event(&app.db, PLACES).await.unwrap();
    sqlx::query("UPDATE sections SET price_minor = 0 WHERE event_id = $1").bind(event).execute(&app.db).await.unwrap();
    sqlx::query("UPDATE events SET hold_ttl_seconds = 1 WHERE id = $1").bind(event).execute(&app.db).await.unwrap();
    let section: Uuid =
        sqlx::query_scalar("SELECT id FROM sections WHERE event_id = $1").bind(event).fetch_one(&app.db).await.unwrap();
    assert_eq!(app.put_settings(event, &settings(1000.0, FANS as u32)).await.status, StatusCode::OK);
    app.admitter.release_slots().await.unwrap();
    let fans: Vec<String> = (0..FANS).map(|i| format!("fan-{i:03}")).collect();
    let mut tickets = Vec::with_capacity(FANS);
    for fan in &fans {
        tickets.push(app.join_ok(event, fan).await["ticket"].as_str().unwrap().to_owned());
    }
    read_until(&app, event, SaleState::OnSale).await;
    let one = SeatRequest { seats: None, section_id: Some(section), quantity: Some(1), email: None };
    let scope = |fan: &str| FanScope { event_id: event, fan_id: fan.to_owned() };

    assert_eq!(app.admit(event, FANS, 25).await, fans[..50], "as many shoppers as places, in line order");
    // 45 book; 5 hold and walk away (they close the page: their holds lapse after 1 s).
    for fan in &fans[..45] {
        sales.book(&scope(fan), &one, None).await.unwrap();
    }
    for (fan, ticket) in fans[45..50].iter().zip(&tickets[45..50]) {
        sales.hold(&scope(fan), &one, None).await.unwrap();
        assert_eq!(app.leave(event, ticket).await.status, StatusCode::NO_CONTENT);
    }
    release_all(&app).await;
    read_until(&app, event, SaleState::AllHeld).await;
    assert_eq!(app.admit(event, 1, 5).await, Vec::<String>::new(), "every place is in a basket");
    let waiting = app.poll_ok(event, &tickets[50]).await;
    assert_eq!((&waiting["sale_state"], &waiting["position"]), (&"all_held".into(), &1.into()));

    read_until(&app, event, SaleState::OnSale).await;
    assert_eq!(app.admit(event, FANS, 25).await, fans[50..55], "the lapsed holds' places, to the next in line");
    for fan in &fans[50..55] {
        sales.book(&scope(fan), &one, None).await.unwrap();
    }
    let sold_at: DateTime<Utc> = sqlx::query_scalar("SELECT max(created_at) FROM bookings WHERE event_id = $1")
        .bind(event)
        .fetch_one(&app.db)
        .await
        .unwrap();
    read_until(&app, event, SaleState::SoldOut).await;
    release_all(&app).await;

    assert_eq!(app.admit(event, 1, 10).await, Vec::<String>::new(), "nobody is let in to a sold-out show");
    let stats = app.stats(event).await;
    assert_eq!((&stats["admitted_total"], &stats["active"]), (&55.into(), &0.into()));
    for (place, ticket) in tickets[55..].iter().enumerate() {
        let told = app.poll_ok(event, ticket).await;
        assert_eq!((&told["sale_state"], &told["position"]), (&"sold_out".into(), &(place + 1).into()));
    }
    // The tight figure (2 s) is the rehearsal's to measure (D9); here, by the database's
    // clock, every one of the 445 was told well within a generous bound.
    let all_told: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&app.db).await.unwrap();
    let took = all_told - sold_at;
    assert!(took < chrono::Duration::seconds(20), "the line was told {took} after the last place sold");
    let sold: i64 = sqlx::query_scalar("SELECT count(*) FROM seats WHERE event_id = $1 AND state = 'booked'")
        .bind(event)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(sold, PLACES as i64);
}
