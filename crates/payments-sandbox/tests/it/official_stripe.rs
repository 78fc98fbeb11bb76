//! Checked from outside our code (D11): the official `stripe` Python library verifies a
//! webhook the sandbox really delivered, refuses it tampered, and reads the sandbox's
//! PaymentIntent, Refund and Event (and creates an intent with its own form encoder).
//! The library lives in the virtualenv `scripts/ensure-python` makes (`target/python`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{create_intent, pay, post_form, sandbox, Receiver, KEY, WHSEC};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = workspace_root().join("target/python/bin/python");
    assert!(
        python.exists(),
        "no Python virtualenv at {}: run scripts/ensure-python (scripts/test does) to install the official stripe library",
        python.display()
    );
    python
}

#[tokio::test]
async fn the_official_stripe_library_verifies_our_webhooks_and_reads_our_objects() {
    let python = python();
    let receiver = Receiver::start().await;
    let sandbox = sandbox().await;
    sandbox.set_webhook_endpoint(&receiver.url, WHSEC);

    let intent = create_intent(&sandbox, "4200").await;
    let intent_id = intent["id"].as_str().expect("id").to_owned();
    assert_eq!(pay(&sandbox, &intent, "4242424242424242").await.0, 200);
    let (status, refund) =
        post_form(&sandbox, "/v1/refunds", &[("payment_intent", &intent_id), ("amount", "1200")], Some("refund-1"))
            .await;
    assert_eq!(status, 200, "{refund}");

    let hits = receiver.wait_for(3).await;
    let delivered = hits
        .iter()
        .find(|h| h.json()["type"] == "payment_intent.succeeded")
        .expect("the succeeded event was delivered");
    let dir = std::env::temp_dir().join(format!("payments-sandbox-{}-{}", std::process::id(), intent_id));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let body_file = dir.join("body.json");
    std::fs::write(&body_file, &delivered.body).expect("write body");

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/stripe_official.py");
    let (stdout_file, stderr_file) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(&python)
        .arg(&script)
        .env("SANDBOX_URL", sandbox.url())
        .env("SANDBOX_SECRET_KEY", KEY)
        .env("WEBHOOK_SECRET", WHSEC)
        .env("WEBHOOK_BODY_FILE", &body_file)
        .env("WEBHOOK_SIGNATURE", &delivered.signature)
        .env("INTENT_ID", &intent_id)
        .env("REFUND_ID", refund["id"].as_str().expect("refund id"))
        .stdout(std::fs::File::create(&stdout_file).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_file).expect("stderr file"))
        .spawn()
        .expect("Python starts");
    // Bounded: the sandbox keeps serving on this runtime while we poll.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for Python") {
            break status;
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the Python check took longer than 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "the official stripe library disagreed:\n{stdout}\n{stderr}");
    for check in [
        "webhook verified",
        "tampered body refused",
        "wrong secret refused",
        "intent read",
        "refund read",
        "event read",
        "intent created",
        "idempotency conflict refused",
        "wrong key refused",
    ] {
        assert!(stdout.contains(&format!("ok: {check}")), "missing check {check:?}:\n{stdout}\n{stderr}");
    }
}
