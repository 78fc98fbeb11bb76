//! The takeable rule is a SQL function (`migrations/*_seat_takeable.sql`); these tests
//! show PostgreSQL inlines it, so the any-N reads still go through the partial indexes
//! `seats_available` and `seats_held_by_expiry`, under the generic plans the services use.

use sales::domain::event::{Layout, NewEvent, NewSection, Row};
use sales::store::{events, inventory};
use sqlx::PgConnection;
use test_support::TestDatabase;
use uuid::Uuid;

/// Sections per event: a section is then a small part of the seats table, as in a
/// database holding many events.
const SECTIONS: usize = 20;

/// An event of `SECTIONS` sections, half general admission (500 places) and half
/// reserved (10 rows of 50), with a tenth of its seats held; statistics up to date.
/// Returns a general-admission section and a reserved one.
async fn event_with_holds(conn: &mut PgConnection) -> (Uuid, Uuid) {
    let sections = (0..SECTIONS)
        .map(|n| NewSection {
            name: format!("Section {n}"),
            price_minor: 1000,
            layout: if n % 2 == 0 {
                Layout::GeneralAdmission(500)
            } else {
                Layout::Reserved((0..10).map(|r| Row { label: Some(format!("S{n}R{r}")), seats: 50 }).collect())
            },
        })
        .collect();
    let event = NewEvent {
        name: "Plans".into(),
        starts_at: None,
        currency: "EUR".into(),
        max_per_order: 10,
        hold_ttl_seconds: 600,
        sections,
        refund_policy: None,
        max_per_fan: None,
        waitlist: Default::default(),
        published: false,
    };
    let event_id = events::insert(conn, &event).await.unwrap();
    sqlx::query(
        "UPDATE seats SET state = 'held', hold_id = gen_random_uuid(), held_until = now() + interval '1 minute'
         WHERE event_id = $1 AND id % 10 = 0",
    )
    .bind(event_id)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("ANALYZE seats").execute(&mut *conn).await.unwrap();
    let kinds: Vec<(Uuid, bool)> =
        sqlx::query_as("SELECT id, kind = 'general_admission' FROM sections WHERE event_id = $1 ORDER BY position")
            .bind(event_id)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let general = kinds.iter().find(|(_, ga)| *ga).unwrap().0;
    let reserved = kinds.iter().find(|(_, ga)| !*ga).unwrap().0;
    (general, reserved)
}

/// The generic plan of `sql` (as services run it: `plan_cache_mode = force_generic_plan`)
/// for `arguments`, as text.
async fn generic_plan(conn: &mut PgConnection, sql: &str, types: &str, arguments: &str) -> String {
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan").execute(&mut *conn).await.unwrap();
    sqlx::raw_sql(&format!("DEALLOCATE ALL; PREPARE planned ({types}) AS {sql}")).execute(&mut *conn).await.unwrap();
    let lines: Vec<String> =
        sqlx::query_scalar(&format!("EXPLAIN EXECUTE planned ({arguments})")).fetch_all(&mut *conn).await.unwrap();
    lines.join("\n")
}

#[tokio::test]
async fn general_admission_takes_places_through_both_partial_indexes() {
    let db = TestDatabase::new(&schema::MIGRATOR, 1).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let (general, _) = event_with_holds(&mut conn).await;
    let plan =
        generic_plan(&mut conn, inventory::TAKE_NEXT, "uuid, bigint, boolean", &format!("'{general}', 4, false")).await;
    assert!(plan.contains("seats_available"), "{plan}");
    assert!(plan.contains("seats_held_by_expiry"), "{plan}");
}

#[tokio::test]
async fn best_available_reads_candidates_through_both_partial_indexes() {
    let db = TestDatabase::new(&schema::MIGRATOR, 1).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let (_, reserved) = event_with_holds(&mut conn).await;
    let plan = generic_plan(
        &mut conn,
        inventory::BEST_AVAILABLE_CANDIDATES,
        "uuid, integer, bigint, boolean",
        &format!("'{reserved}', 0, 256, false"),
    )
    .await;
    // Available seats in index order from the window's start, so a window reads its own
    // size, not the section's.
    assert!(plan.contains("Index Scan using seats_available"), "{plan}");
    assert!(plan.contains("seats_held_by_expiry"), "{plan}");
}
