//! The change feed against a real PostgreSQL: a change committing late is read, not
//! skipped; counts kept from the feed by a reader that started from a snapshot while
//! writers ran equal a fresh count of the seats; a reader the pruning left behind is
//! told so.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use seat_feed::store::{self, Read};
use seat_feed::{Availability, EventCounts, Position};
use sqlx::{PgConnection, PgPool};
use test_support::{general_admission_event, TestDatabase};
use uuid::Uuid;

async fn database() -> TestDatabase {
    TestDatabase::new(&schema::MIGRATOR, 24).await.expect("a test database")
}

/// Reads on from `position`, applying every change, until the watermark has passed
/// every transaction that finished before this call; the new position. (Any
/// transaction of the cluster, another test's among them, holds the watermark back
/// while it runs, so one read may return nothing yet.)
async fn catch_up(pool: &PgPool, event: Uuid, counts: &mut EventCounts, mut position: Position) -> Position {
    let target: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint").fetch_one(pool).await.unwrap();
    loop {
        let mut conn = pool.acquire().await.unwrap();
        match store::changes_since(&mut conn, event, position, 1000).await.unwrap() {
            Read::Changes { changes, watermark } => {
                changes.iter().for_each(|change| counts.apply(change));
                position = watermark;
                if position > target {
                    return position;
                }
            }
            Read::Behind => panic!("behind at {position}"),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn snapshot(pool: &PgPool, event: Uuid) -> (EventCounts, Position) {
    let mut tx = pool.begin().await.unwrap();
    let snapshot = store::snapshot(&mut tx, event).await.unwrap();
    tx.commit().await.unwrap();
    snapshot
}

/// The event's places counted from its seats, by the database's own rule.
async fn counted(pool: &PgPool, event: Uuid) -> Availability {
    let (sellable, held): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(remaining), 0)::bigint, coalesce(sum(held), 0)::bigint
         FROM section_availability WHERE event_id = $1",
    )
    .bind(event)
    .fetch_one(pool)
    .await
    .unwrap();
    Availability { sellable, held }
}

/// Holds one seat of the event for `held_secs` (a free one, or one whose hold lapsed).
async fn hold_one(conn: &mut PgConnection, event: Uuid, held_secs: i64) -> Option<i64> {
    sqlx::query_scalar(
        "UPDATE seats SET state = 'held', hold_id = gen_random_uuid(), booking_id = NULL,
                held_until = now() + make_interval(secs => $2)
         WHERE id = (SELECT id FROM seats WHERE event_id = $1 AND seat_is_takeable(state, held_until)
                     ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(event)
    .bind(held_secs as f64)
    .fetch_optional(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_change_that_commits_after_a_later_one_is_read_not_skipped() {
    let db = database().await;
    let event = general_admission_event(&db.pool, 10).await.unwrap();
    let (mut counts, start) = snapshot(&db.pool, event).await;

    // The first writer takes its transaction id first and commits last.
    let mut early = db.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *early).await.unwrap();
    hold_one(&mut early, event, 60).await.unwrap();
    let mut late = db.pool.begin().await.unwrap();
    hold_one(&mut late, event, 60).await.unwrap();
    late.commit().await.unwrap();

    // The late writer has committed, but the early one still runs: the watermark stays
    // at or below the early one's id, so the late one's change is not read yet either.
    let mut position = start;
    for _ in 0..3 {
        let mut conn = db.pool.acquire().await.unwrap();
        let Read::Changes { changes, watermark } =
            store::changes_since(&mut conn, event, position, 1000).await.unwrap()
        else {
            panic!("behind")
        };
        assert_eq!(changes, vec![], "nothing past a transaction still running is read, or it would be skipped");
        position = watermark;
    }
    // A reader that starts now sees the late change in its snapshot and will read it
    // again from the feed: it is counted once.
    let (mut joined, joined_at) = snapshot(&db.pool, event).await;
    early.commit().await.unwrap();
    catch_up(&db.pool, event, &mut counts, position).await;
    catch_up(&db.pool, event, &mut joined, joined_at).await;
    let held_two = Availability { sellable: 8, held: 2 };
    assert_eq!(counts.availability(Utc::now(), &HashSet::new()), held_two);
    assert_eq!(joined.availability(Utc::now(), &HashSet::new()), held_two, "the late change counted once");
    assert_eq!(counted(&db.pool, event).await, held_two);
}

#[tokio::test]
async fn counts_kept_from_a_snapshot_taken_while_writers_run_equal_the_seats() {
    let db = database().await;
    let event = general_admission_event(&db.pool, 200).await.unwrap();

    // Writers hold seats, book some, give some back, with pauses inside their
    // transactions so that commits come out of transaction-id order.
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                for n in 0..40u64 {
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query("SELECT pg_current_xact_id()").execute(&mut *tx).await.unwrap();
                    tokio::time::sleep(Duration::from_millis((w * 7 + n * 3) % 11)).await;
                    if let Some(seat) = hold_one(&mut tx, event, 1 + (n % 3) as i64 * 60).await {
                        let then = match n % 4 {
                            0 => {
                                "UPDATE seats SET state = 'booked', hold_id = NULL, held_until = NULL,
                                         booking_id = gen_random_uuid() WHERE id = $1"
                            }
                            1 => {
                                "UPDATE seats SET state = 'available', hold_id = NULL, held_until = NULL WHERE id = $1"
                            }
                            _ => "SELECT $1",
                        };
                        sqlx::query(then).bind(seat).execute(&mut *tx).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(150)).await;
    let (mut counts, mut position) = snapshot(&db.pool, event).await;
    while !writers.iter().all(|w| w.is_finished()) {
        position = catch_up(&db.pool, event, &mut counts, position).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }
    catch_up(&db.pool, event, &mut counts, position).await;

    // The 1-second holds lapse first, so none lapses between the two counts below.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let now: chrono::DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&db.pool).await.unwrap();
    let truth = counted(&db.pool, event).await;
    let kept = counts.availability(now, &HashSet::new());
    assert_eq!(kept, truth);
    assert!(truth.held > 0 && truth.sellable < 200, "the writers changed something: {truth:?}");
    let (fresh, _) = snapshot(&db.pool, event).await;
    assert_eq!(counts, fresh, "the same counts, section by section and hold time by hold time");
}

#[tokio::test]
async fn a_reader_behind_the_pruning_is_told_so_and_a_snapshot_carries_on() {
    let db = database().await;
    let event = general_admission_event(&db.pool, 10).await.unwrap();
    let (_, start) = snapshot(&db.pool, event).await;
    let mut conn = db.pool.acquire().await.unwrap();
    hold_one(&mut conn, event, 60).await.unwrap();
    hold_one(&mut conn, event, 60).await.unwrap();

    assert_eq!(store::prune(&mut conn, 3600.0, 100).await.unwrap(), 0, "nothing is older than the retention");
    let mut counts = EventCounts::default();
    catch_up(&db.pool, event, &mut counts, start).await;
    let held: i64 = counts.sections.values().map(|s| s.held(Utc::now())).sum();
    assert_eq!(held, 2, "both holds read before any pruning");
    assert_eq!(
        store::changes_since(&mut conn, event, start, 1).await.unwrap(),
        Read::Behind,
        "more changes than asked for"
    );

    assert_eq!(store::prune(&mut conn, 0.0, 100).await.unwrap(), 2);
    assert_eq!(store::changes_since(&mut conn, event, start, 1000).await.unwrap(), Read::Behind);

    let (mut counts, position) = snapshot(&db.pool, event).await;
    hold_one(&mut conn, event, 60).await.unwrap();
    catch_up(&db.pool, event, &mut counts, position).await;
    assert_eq!(counts.availability(Utc::now(), &HashSet::new()), Availability { sellable: 7, held: 3 });
}
