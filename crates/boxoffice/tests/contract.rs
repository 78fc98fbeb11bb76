//! The published contract attacked by an independent tool (issue 20, D11): schemathesis
//! runs against both services' `/openapi.json`, with a sale seeded through their own
//! APIs and real credentials (`contract/run.py`, `contract/hooks.py`), the abuse limits
//! lifted so that what is tested is the logic behind them. Every answer must match the
//! description, none may be a 5xx, nine operations in ten must have answered a 2xx at
//! least once, and afterwards the database must hold every invariant.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use support::{System, TempDir, ADMIN, WEBHOOK_SECRET};

/// Where `scripts/ensure-python` installs schemathesis (see scripts/python-requirements.txt).
fn python() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join("target/python/bin/python")
}

/// Settings lifting every abuse limit far above what the run sends.
fn limits_lifted() -> Vec<(String, String)> {
    let limits = [
        "GATEWAY__LIMIT_GLOBAL",
        "GATEWAY__LIMIT_PER_ADDRESS",
        "GATEWAY__LIMIT_PUBLIC_READS_PER_ADDRESS",
        "GATEWAY__LIMIT_PER_FAN",
        "WAITROOM__JOIN_LIMIT_PER_ADDRESS",
        "WAITROOM__JOIN_LIMIT_PER_FAN",
        "WAITROOM__POLL_LIMIT_PER_ADDRESS",
        "WAITROOM__POLL_LIMIT_PER_TICKET",
    ];
    limits
        .iter()
        .flat_map(|limit| {
            ["PER_SECOND", "BURST"].map(|key| (format!("BOXOFFICE__{limit}__{key}"), "1000000".to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_every_answer_as_described_and_the_sale_intact() {
    // Ticket and receipt keys, so that tickets, check-ins and receipts answer.
    let keys = TempDir::new("bo-contract-keys");
    let mut settings = limits_lifted();
    for purpose in ["tickets", "receipts"] {
        let (dir, kid) = (keys.0.join(purpose), format!("{purpose}-contract"));
        access_token::KeyPair::generate(&kid).unwrap().write_to_dir(&dir).unwrap();
        let section = purpose.to_uppercase();
        settings.push((format!("BOXOFFICE__{section}__KEYS_DIR"), dir.display().to_string()));
        settings.push((format!("BOXOFFICE__{section}__SIGNING_KID"), kid));
    }
    let system = System::start_with(&settings).await;
    let work = TempDir::new("bo-contract-run");

    let output = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/contract/run.py"))
        .env("GATEWAY", &system.gateway)
        .env("WAITROOM", &system.waitroom)
        .env("ADMIN_KEY", ADMIN)
        .env("WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("WORK_DIR", &work.0)
        .env("SCHEMATHESIS", python().with_file_name("schemathesis"))
        .output()
        .expect("scripts/ensure-python installed target/python");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "run.py failed: {stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("run.py prints its summary");
    eprintln!("{summary:#}");

    let mut problems = Vec::new();
    for service in ["gateway", "waitroom"] {
        let run = &summary[service];
        let (answered, operations) = (run["answered_2xx"].as_f64().unwrap(), run["operations"].as_f64().unwrap());
        let clean =
            run["exit_code"] == 0 && run["failures"] == Value::Array(vec![]) && run["errors"] == Value::Array(vec![]);
        if !clean || answered / operations < 0.9 {
            let log = std::fs::read_to_string(run["log"].as_str().unwrap()).unwrap_or_default();
            problems.push(format!("{service}: {answered} of {operations} operations answered a 2xx\n{log}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    let pool = sqlx::PgPool::connect(&system.database_url).await.unwrap();
    let violations =
        sales::store::invariants::check(&mut pool.begin().await.unwrap(), Default::default()).await.unwrap();
    assert_eq!(violations, Default::default());
}
