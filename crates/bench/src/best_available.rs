//! `best-available`: the cost of one best-available order, per order, beside the 5 ms
//! ceiling of issue 19 (item 5), on the two layouts the issue measured: 100 rows of
//! 1,000 seats and one row of 100,000.
//!
//! Each order runs as the gateway runs it, in its own transaction on a database of its
//! own: `sales::store::inventory::take_best` (read the free seats a window at a time,
//! rank, lock one choice with `SKIP LOCKED`), then the chosen seats are marked held so
//! the next order sees them gone. Only `take_best` is timed, after a few orders'
//! warm-up. `--before-orders` runs the
//! same orders through the algorithm it replaced (every free seat of the section read,
//! every block of a row ranked and scanned in lists), on a fresh copy of the layout.

use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use sales::domain::event::{Layout, NewEvent, NewSection, Row};
use sales::model::OrderSeat;
use sales::store::{events, inventory};
use sqlx::{Connection, PgConnection};
use test_support::TestDatabase;
use uuid::Uuid;

/// The target for one order.
const CEILING: Duration = Duration::from_millis(5);
/// Choices ranked per order, as `gateway.best_available_attempts` defaults to.
const ATTEMPTS: usize = 5;
/// Orders run before timing starts on each layout, as a running gateway's connections
/// have their statements prepared (and PostgreSQL its generic plans) already.
const WARM_UP: usize = 10;

pub struct Options {
    pub orders: usize,
    pub before_orders: usize,
    pub quantity: u32,
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let db = TestDatabase::new(&schema::MIGRATOR, 2).await.context("creating the benchmark database")?;
    let result = measure(&db, options).await;
    db.pool.close().await;
    let mut admin = PgConnection::connect(&test_support::admin_database_url()).await?;
    sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", db.name)).execute(&mut admin).await?;
    result
}

async fn measure(db: &TestDatabase, options: &Options) -> anyhow::Result<()> {
    println!(
        "best available: {} seats an order, {ATTEMPTS} choices ranked, ceiling {} ms an order",
        options.quantity,
        CEILING.as_millis()
    );
    println!(
        "{:<44} {:>7} {:>9} {:>9} {:>9} {:>9}  verdict",
        "layout / algorithm", "orders", "p50 ms", "p99 ms", "max ms", "mean ms"
    );
    for (name, rows, seats) in [("100 rows x 1,000 seats", 100, 1_000), ("1 row x 100,000 seats", 1, 100_000)] {
        for (algorithm, orders) in [("windowed", options.orders), ("before (quadratic)", options.before_orders)] {
            if orders == 0 {
                continue;
            }
            let mut conn = db.pool.acquire().await?;
            let section_id = section(&mut conn, rows, seats).await?;
            sqlx::query("ANALYZE seats").execute(&mut *conn).await?;
            let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
            for order in 0..WARM_UP + orders {
                let mut tx = conn.begin().await?;
                let started = Instant::now();
                let taken = if algorithm == "windowed" {
                    inventory::take_best(&mut tx, section_id, options.quantity, ATTEMPTS, inventory::Taker::Order)
                        .await?
                } else {
                    before::take_best(&mut tx, section_id, options.quantity as usize).await?
                };
                if order >= WARM_UP {
                    latency.record(started.elapsed().as_micros().max(1) as u64)?;
                }
                hold(&mut tx, &taken).await?;
                tx.commit().await?;
            }
            let ms = |micros: u64| micros as f64 / 1000.0;
            let p99 = latency.value_at_quantile(0.99);
            println!(
                "{:<44} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                format!("{name}, {algorithm}"),
                orders,
                ms(latency.value_at_quantile(0.5)),
                ms(p99),
                ms(latency.max()),
                latency.mean() / 1000.0,
                if Duration::from_micros(p99) < CEILING { "p99 under 5 ms" } else { "p99 OVER 5 ms" }
            );
        }
    }
    Ok(())
}

/// A new event of one reserved section of `rows` rows of `seats` seats; the section.
async fn section(conn: &mut PgConnection, rows: usize, seats: u32) -> anyhow::Result<Uuid> {
    let event = NewEvent {
        name: "Best available bench".into(),
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
    let event_id = events::insert(conn, &event).await?;
    Ok(sqlx::query_scalar("SELECT id FROM sections WHERE event_id = $1").bind(event_id).fetch_one(conn).await?)
}

/// Marks the order's seats held, as a hold would.
async fn hold(conn: &mut PgConnection, taken: &[OrderSeat]) -> anyhow::Result<()> {
    let ids: Vec<i64> = taken.iter().map(|seat| seat.seat_id).collect();
    sqlx::query(
        "UPDATE seats SET state = 'held', hold_id = gen_random_uuid(), held_until = now() + interval '1 hour'
         WHERE id = ANY($1)",
    )
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// The algorithm before issue 19, kept here only to measure against: every takeable
/// seat of the section read, every block of each row ranked and sorted, disjoint ones
/// picked with list scans.
mod before {
    use sales::domain::best_available::Candidate;
    use sales::model::OrderSeat;
    use sqlx::PgConnection;
    use uuid::Uuid;

    pub async fn take_best(
        conn: &mut PgConnection,
        section_id: Uuid,
        quantity: usize,
    ) -> anyhow::Result<Vec<OrderSeat>> {
        let candidates: Vec<Candidate> = sqlx::query_as::<_, (i64, i32, i32)>(
            "SELECT id, row_rank, seat_number FROM seats
             WHERE section_id = $1 AND seat_is_takeable(state, held_until)
             ORDER BY row_rank, seat_number",
        )
        .bind(section_id)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(id, row_rank, seat_number)| Candidate { id, row_rank, seat_number })
        .collect();
        for option in options(&candidates, quantity, super::ATTEMPTS) {
            let seats: Vec<OrderSeat> = sqlx::query_as(
                "SELECT id AS seat_id, section_id, label FROM seats
                 WHERE id = ANY($1) AND seat_is_takeable(state, held_until)
                 ORDER BY id FOR UPDATE SKIP LOCKED",
            )
            .bind(&option)
            .fetch_all(&mut *conn)
            .await?;
            if seats.len() == option.len() {
                return Ok(seats);
            }
        }
        anyhow::bail!("no seats left")
    }

    fn options(candidates: &[Candidate], quantity: usize, max_options: usize) -> Vec<Vec<i64>> {
        if quantity == 0 || candidates.len() < quantity {
            return Vec::new();
        }
        let mut chosen = Vec::new();
        for row in candidates.chunk_by(|a, b| a.row_rank == b.row_rank) {
            for block in blocks_in_row(row, quantity) {
                if chosen.len() == max_options {
                    return chosen;
                }
                chosen.push(block);
            }
        }
        if chosen.is_empty() {
            chosen = candidates.chunks_exact(quantity).take(max_options).map(ids).collect();
        }
        chosen
    }

    fn blocks_in_row(row: &[Candidate], quantity: usize) -> Vec<Vec<i64>> {
        let mut ranked: Vec<(u8, usize, &[Candidate])> = Vec::new();
        for run in row.chunk_by(|a, b| b.seat_number == a.seat_number + 1) {
            if run.len() < quantity {
                continue;
            }
            for start in 0..=run.len() - quantity {
                let left = start;
                let right = run.len() - start - quantity;
                let stranded = u8::from(left == 1) + u8::from(right == 1);
                ranked.push((stranded, start, &run[start..start + quantity]));
            }
        }
        ranked.sort_by_key(|(stranded, _, block)| (*stranded, block[0].seat_number));
        let mut taken: Vec<i64> = Vec::new();
        let mut blocks = Vec::new();
        for (_, _, block) in ranked {
            if block.iter().any(|seat| taken.contains(&seat.id)) {
                continue;
            }
            taken.extend(block.iter().map(|seat| seat.id));
            blocks.push(ids(block));
        }
        blocks
    }

    fn ids(seats: &[Candidate]) -> Vec<i64> {
        seats.iter().map(|seat| seat.id).collect()
    }
}
