//! Best available on long rows: the candidates are read a window at a time
//! (`inventory::take_best`), and the choice is still the contiguous block the ranking
//! prefers, locked.

use sales::domain::event::{Layout, NewEvent, NewSection, Row};
use sales::store::inventory::Taker;
use sales::store::{events, inventory};
use sqlx::PgConnection;
use test_support::TestDatabase;
use uuid::Uuid;

/// An event with one reserved section of `rows` rows of `seats` seats; returns the
/// section.
async fn section(conn: &mut PgConnection, rows: usize, seats: u32) -> Uuid {
    let event = NewEvent {
        name: "Long rows".into(),
        starts_at: None,
        currency: "EUR".into(),
        max_per_order: 10,
        hold_ttl_seconds: 600,
        sections: vec![NewSection {
            name: "Stalls".into(),
            price_minor: 1000,
            layout: Layout::Reserved((0..rows).map(|r| Row { label: Some(format!("R{r}")), seats }).collect()),
        }],
        refund_policy: None,
        max_per_fan: None,
        waitlist: Default::default(),
        published: false,
    };
    let event_id = events::insert(conn, &event).await.unwrap();
    sqlx::query_scalar("SELECT id FROM sections WHERE event_id = $1").bind(event_id).fetch_one(conn).await.unwrap()
}

/// Marks seats of the section, by seat number in row 0, held by someone else.
async fn hold(conn: &mut PgConnection, section_id: Uuid, numbers: &[i32]) {
    sqlx::query(
        "UPDATE seats SET state = 'held', hold_id = gen_random_uuid(), held_until = now() + interval '10 minutes'
         WHERE section_id = $1 AND row_rank = 0 AND seat_number = ANY($2)",
    )
    .bind(section_id)
    .bind(numbers)
    .execute(conn)
    .await
    .unwrap();
}

/// The (row, seat number) of the seats taken.
async fn places(conn: &mut PgConnection, taken: &[sales::model::OrderSeat]) -> Vec<(i32, i32)> {
    let ids: Vec<i64> = taken.iter().map(|seat| seat.seat_id).collect();
    sqlx::query_as("SELECT row_rank, seat_number FROM seats WHERE id = ANY($1) ORDER BY row_rank, seat_number")
        .bind(ids)
        .fetch_all(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_order_on_a_100000_seat_row_takes_a_contiguous_block() {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let section_id = section(&mut conn, 1, 100_000).await;
    // The row's first seats are held in a pattern leaving pairs: 1-2 free, 3 held, …
    hold(&mut conn, section_id, &(1..=300).filter(|n| n % 3 == 0).collect::<Vec<_>>()).await;
    let mut tx = db.pool.begin().await.unwrap();
    let taken = inventory::take_best(&mut tx, section_id, 4, 5, Taker::Order).await.unwrap();
    // No pair holds four: the first block of four is 301-304, and it strands nobody.
    assert_eq!(places(&mut tx, &taken).await, [(0, 301), (0, 302), (0, 303), (0, 304)]);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_block_stranding_nobody_further_along_a_long_row_is_found_past_the_first_windows() {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let section_id = section(&mut conn, 2, 100_000).await;
    // Row 0: runs of three free seats (every fourth held) up to seat 60,000, so every
    // pair there strands a seat; from 60,001 on it is free. Row 1 is wholly free.
    hold(&mut conn, section_id, &(1..=60_000).filter(|n| n % 4 == 0).collect::<Vec<_>>()).await;
    let mut tx = db.pool.begin().await.unwrap();
    let taken = inventory::take_best(&mut tx, section_id, 2, 5, Taker::Order).await.unwrap();
    assert_eq!(places(&mut tx, &taken).await, [(0, 60_001), (0, 60_002)]);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn a_locked_choice_is_passed_over_for_the_next() {
    let db = TestDatabase::new(&schema::MIGRATOR, 3).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let section_id = section(&mut conn, 100, 1_000).await;
    // Another order holds the lock on seat 1 of the best row.
    let mut other = db.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM seats WHERE section_id = $1 AND row_rank = 0 AND seat_number = 1 FOR UPDATE")
        .bind(section_id)
        .execute(&mut *other)
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let taken = inventory::take_best(&mut tx, section_id, 2, 5, Taker::Order).await.unwrap();
    assert_eq!(places(&mut tx, &taken).await, [(0, 3), (0, 4)]);
    tx.commit().await.unwrap();
    other.rollback().await.unwrap();
}
