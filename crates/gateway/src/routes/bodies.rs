//! Every request body the gateway reads, by operation, as a function of its raw bytes
//! (issue 20): read as its route reads it, then checked as its handler and use case
//! check it before anything is read or stored. The `gateway_bodies` fuzz target feeds
//! them bytes (a panic is the bug it looks for) and CI replays its corpus; the OpenAPI
//! test holds this list to the operations the description gives a request body.
//!
//! Checks that need the event (its own `max_per_order`, its sections) use the widest
//! value any event may have; the scanned secret and the beacon's access token have
//! fuzz targets of their own.

use serde::de::DeserializeOwned;

use sales::domain::event::MAX_PER_ORDER;
use sales::orders::SeatRequest;
use sales::tickets::{checked_batch, scanner_key_name, valid_gate};
use sales::waitlist::WaitlistRequest;

use super::{checkins, events, holds, revocations, webhooks};
use crate::error::{Error, Result};

/// One operation's body: `Ok` when it would reach its use case.
pub type BodyCheck = fn(&[u8]) -> Result<()>;

/// By `operationId`, as `/openapi.json` names them.
pub const REQUEST_BODIES: [(&str, BodyCheck); 13] = [
    ("create_event", create_event),
    ("change_event", change_event),
    ("create_hold", seat_request),
    ("book", seat_request),
    ("release_hold_on_leaving", release_hold_on_leaving),
    ("payment_webhook", payment_webhook),
    ("revoke_admission", revoke_admission),
    ("register_webhook", register_webhook),
    ("update_webhook", update_webhook),
    ("create_scanner_key", create_scanner_key),
    ("check_in", check_in),
    ("check_in_batch", check_in_batch),
    ("join_waitlist", join_waitlist),
];

/// As the `Json` extractor reads a body, its content type aside.
fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    axum::Json::<T>::from_bytes(bytes).map(|axum::Json(body)| body).map_err(|e| Error::BadRequest(e.body_text()))
}

fn create_event(bytes: &[u8]) -> Result<()> {
    json::<events::CreateEvent>(bytes)?.into_domain()?;
    Ok(())
}

fn change_event(bytes: &[u8]) -> Result<()> {
    json::<events::ChangeEvent>(bytes)?.into_domain()?;
    Ok(())
}

fn seat_request(bytes: &[u8]) -> Result<()> {
    json::<SeatRequest>(bytes)?.parse(MAX_PER_ORDER)?;
    Ok(())
}

fn release_hold_on_leaving(bytes: &[u8]) -> Result<()> {
    holds::LeavingBody::read(bytes)?;
    Ok(())
}

fn payment_webhook(bytes: &[u8]) -> Result<()> {
    stripe_client::parse_event(bytes).map_err(|e| Error::InvalidEvent(e.to_string()))?;
    Ok(())
}

fn revoke_admission(bytes: &[u8]) -> Result<()> {
    json::<revocations::RevokeBody>(bytes)?.into_domain()?;
    Ok(())
}

fn register_webhook(bytes: &[u8]) -> Result<()> {
    json::<webhooks::RegisterWebhook>(bytes)?.into_domain()?.url.refuse_private()?;
    Ok(())
}

fn update_webhook(bytes: &[u8]) -> Result<()> {
    json::<webhooks::UpdateWebhook>(bytes)?;
    Ok(())
}

fn create_scanner_key(bytes: &[u8]) -> Result<()> {
    scanner_key_name(&json::<checkins::ScannerKeyBody>(bytes)?.name)?;
    Ok(())
}

fn check_in(bytes: &[u8]) -> Result<()> {
    valid_gate(&json::<checkins::ScanBody>(bytes)?.gate)?;
    Ok(())
}

fn check_in_batch(bytes: &[u8]) -> Result<()> {
    checked_batch(json::<checkins::BatchBody>(bytes)?.scans, chrono::Utc::now())?;
    Ok(())
}

fn join_waitlist(bytes: &[u8]) -> Result<()> {
    json::<WaitlistRequest>(bytes)?.parse(MAX_PER_ORDER)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body each operation takes, and one it refuses for what it says (not for its
    /// JSON): each check does more than read.
    const EXAMPLES: [(&str, &str, &str); 13] = [
        (
            "create_event",
            r#"{"name":"Gig","sections":[{"name":"Floor","kind":"general_admission","capacity":10,"price":{"amount_minor":0,"currency":"EUR"}}]}"#,
            r#"{"name":"Gig","sections":[{"name":"Floor","kind":"balcony","capacity":10,"price":{"amount_minor":0,"currency":"EUR"}}]}"#,
        ),
        ("change_event", r#"{"max_per_fan":4}"#, r#"{"max_per_fan":0}"#),
        ("create_hold", r#"{"seats":["A-1","A-2"]}"#, r#"{"seats":[]}"#),
        (
            "book",
            r#"{"section_id":"0195f3a0-0000-7000-8000-000000000001","quantity":2}"#,
            r#"{"section_id":"0195f3a0-0000-7000-8000-000000000001","quantity":101}"#,
        ),
        ("release_hold_on_leaving", r#"{"access_token":"eyJ"}"#, r#"{"token":"eyJ"}"#),
        (
            "payment_webhook",
            r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"id":"pi_1","object":"payment_intent","amount":100,"currency":"eur","status":"succeeded","metadata":{}}}}"#,
            r#"{"id":"evt_1"}"#,
        ),
        ("revoke_admission", r#"{"jti":"0195f3a0-0000-7000-8000-000000000001"}"#, r#"{}"#),
        (
            "register_webhook",
            r#"{"url":"https://organizer.example/hooks","topics":["booking.confirmed"]}"#,
            r#"{"url":"http://127.0.0.1/hooks"}"#,
        ),
        ("update_webhook", r#"{"enabled":false}"#, r#"{"enabled":"no"}"#),
        ("create_scanner_key", r#"{"name":"North gate"}"#, r#"{"name":"  "}"#),
        ("check_in", r#"{"secret":"x","gate":"North"}"#, r#"{"secret":"x","gate":"\u0007"}"#),
        (
            "check_in_batch",
            r#"{"scans":[{"secret":"x","gate":"North","scanned_at":"2026-01-01T20:00:00Z"}]}"#,
            r#"{"scans":[{"secret":"x","gate":"North","scanned_at":"2999-01-01T20:00:00Z"}]}"#,
        ),
        (
            "join_waitlist",
            r#"{"quantity":2,"section_ids":["0195f3a0-0000-7000-8000-000000000001"],"email":"fan@example.com"}"#,
            r#"{"quantity":2,"section_ids":["0195f3a0-0000-7000-8000-000000000001"],"email":"not an address"}"#,
        ),
    ];

    #[test]
    fn each_operation_takes_a_valid_body_and_refuses_one_that_breaks_its_rules() {
        assert_eq!(EXAMPLES.map(|(operation, ..)| operation), REQUEST_BODIES.map(|(operation, _)| operation));
        for ((operation, check), (_, taken, refused)) in REQUEST_BODIES.into_iter().zip(EXAMPLES) {
            if let Err(e) = check(taken.as_bytes()) {
                panic!("{operation} refused {taken}: {e}");
            }
            assert!(check(refused.as_bytes()).is_err(), "{operation} took {refused}");
        }
    }
}
