//! The ceilings: what PostgreSQL itself does for comparable booking SQL, driven by
//! pgbench (a C client) against the same server and database in the same run.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::PgPool;

/// Rows in `ceiling_seats`; enough that 64 clients each have their own stripe.
const SEATS: i64 = 1_000_000;

#[derive(Debug, Clone, Copy)]
pub enum Ceiling {
    /// Each client locks its own random seat with NOWAIT, then updates it.
    DistinctSeatsNowait,
    /// Every client locks one of 32 hot seats with NOWAIT; a busy lock is a rejection.
    HotSeatsNowait,
    /// One section row: atomic `UPDATE … WHERE remaining >= 1`, then insert a booking.
    HotRowAtomicUpdate,
    /// One single-row insert per transaction: what a recorded check-in cannot beat.
    SingleInsert,
}

impl Ceiling {
    pub fn describe(self) -> &'static str {
        match self {
            Self::DistinctSeatsNowait => "pgbench: distinct seat FOR UPDATE NOWAIT + UPDATE",
            Self::HotSeatsNowait => "pgbench: one of 32 hot seats FOR UPDATE NOWAIT + UPDATE, busy = rejected",
            Self::HotRowAtomicUpdate => "pgbench: one hot row, atomic UPDATE + INSERT",
            Self::SingleInsert => "pgbench: one single-row INSERT per transaction",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Self::DistinctSeatsNowait => {
                "\\set id :client_id + :clients * random(0, 15000)\n\
                 BEGIN;\n\
                 SELECT taken FROM ceiling_seats WHERE id = :id FOR UPDATE NOWAIT;\n\
                 UPDATE ceiling_seats SET taken = taken + 1 WHERE id = :id;\n\
                 END;\n"
            }
            Self::HotSeatsNowait => "\\set id random(1, 32)\nSELECT ceiling_try_hot_seat(:id);\n",
            Self::SingleInsert => "INSERT INTO ceiling_checkins (gate) VALUES ('bench');\n",
            Self::HotRowAtomicUpdate => {
                "BEGIN;\n\
                 UPDATE ceiling_sections SET remaining = remaining - 1 WHERE id = 1 AND remaining >= 1;\n\
                 INSERT INTO ceiling_bookings (section_id) VALUES (1);\n\
                 END;\n"
            }
        }
    }
}

/// Creates the ceiling tables beside boxoffice's own (prefixed `ceiling_`).
pub async fn prepare(pool: &PgPool) -> anyhow::Result<()> {
    for statement in [
        "DROP TABLE IF EXISTS ceiling_seats, ceiling_hot_seats, ceiling_sections, ceiling_bookings, ceiling_checkins",
        "CREATE TABLE ceiling_checkins (id bigserial PRIMARY KEY, gate text NOT NULL, scanned_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE ceiling_seats (id int PRIMARY KEY, taken int NOT NULL DEFAULT 0)",
        "CREATE TABLE ceiling_hot_seats (id int PRIMARY KEY, taken int NOT NULL DEFAULT 0)",
        "CREATE TABLE ceiling_sections (id int PRIMARY KEY, remaining int NOT NULL CHECK (remaining >= 0))",
        "CREATE TABLE ceiling_bookings (id bigserial PRIMARY KEY, section_id int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())",
        "INSERT INTO ceiling_hot_seats (id) SELECT generate_series(1, 32)",
        "INSERT INTO ceiling_sections VALUES (1, 1000000000)",
        "CREATE OR REPLACE FUNCTION ceiling_try_hot_seat(p_id int) RETURNS boolean LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM 1 FROM ceiling_hot_seats WHERE id = p_id FOR UPDATE NOWAIT;
             UPDATE ceiling_hot_seats SET taken = taken + 1 WHERE id = p_id;
             RETURN true;
         EXCEPTION WHEN lock_not_available THEN
             RETURN false;
         END $$",
    ] {
        sqlx::query(statement).execute(pool).await?;
    }
    sqlx::query("INSERT INTO ceiling_seats (id) SELECT generate_series(1, $1)").bind(SEATS).execute(pool).await?;
    sqlx::query("VACUUM ANALYZE ceiling_seats").execute(pool).await?;
    Ok(())
}

/// Successful transactions per second for `ceiling` at `clients`.
pub async fn measure(
    database_url: &str,
    pool: &PgPool,
    ceiling: Ceiling,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("boxoffice-ceiling-{ceiling:?}.sql"));
    std::fs::write(&script, ceiling.script())?;
    let before = hot_seat_successes(pool).await?;
    let output = Command::new("pgbench")
        // Prepared statements, as the gateway's driver uses: the best PostgreSQL can do.
        .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", &clients.min(2).to_string()])
        .args(["-T", &duration.as_secs().to_string(), "-D", &format!("clients={clients}")])
        .arg("-f")
        .arg(&script)
        .arg(database_url)
        .output()
        .context("running pgbench (install postgresql-contrib or the PostgreSQL client)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {}\n{}", stdout, String::from_utf8_lossy(&output.stderr));
    }
    let tps = parse_tps(&stdout).with_context(|| format!("no tps in pgbench output:\n{stdout}"))?;
    Ok(match ceiling {
        Ceiling::HotSeatsNowait => (hot_seat_successes(pool).await? - before) as f64 / duration.as_secs_f64(),
        _ => tps,
    })
}

async fn hot_seat_successes(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT coalesce(sum(taken), 0)::bigint FROM ceiling_hot_seats").fetch_one(pool).await?)
}

fn parse_tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
