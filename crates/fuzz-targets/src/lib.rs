//! What boxoffice parses from strangers, as functions of the raw bytes (issue 20): the
//! `cargo fuzz` targets in `fuzz/` are each one line calling one of these, and
//! `tests/corpora.rs` replays every committed corpus file through them in CI. Each
//! function must end in a value or an error whatever the bytes: a panic is the bug a
//! fuzzer finds.
//!
//! Where a parser takes text, the bytes are read as UTF-8 with replacement (a header or
//! a JSON string reaches it as text). Keys are fixed per process: nothing here can
//! forge a signature, so valid inputs in a corpus exercise the parsing up to the check.

use std::sync::OnceLock;
use std::time::Duration;

use access_token::{KeyPair, TokenVerifier};
use secrecy::SecretString;
use uuid::Uuid;

/// A target: the bytes in, nothing out but a panic if it has a bug.
pub type Target = fn(&[u8]);

/// Every target by name: the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`.
pub const TARGETS: [(&str, Target); 7] = [
    ("access_token", access_token),
    ("queue_ticket", queue_ticket),
    ("fan_id", fan_id),
    ("idempotency_key", idempotency_key),
    ("stripe_signature", stripe_signature),
    ("ticket_secret", ticket_secret),
    ("capability_link", capability_link),
];

const EVENT: Uuid = Uuid::from_u128(0x0b0c_0f1c_e000_4000_8000_0000_0000_f022);

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// A fan's bearer token, as the gateway verifies it.
pub fn access_token(data: &[u8]) {
    static VERIFIER: OnceLock<TokenVerifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let pair = KeyPair::generate("fuzz").expect("a valid kid");
        TokenVerifier::new(&[pair.public_key()], 300)
    });
    let _ = verifier.verify(&text(data));
}

/// A queue ticket, as the waiting room reads it from a poll's path.
pub fn queue_ticket(data: &[u8]) {
    static KEY: OnceLock<waitroom::domain::ticket::TicketKey> = OnceLock::new();
    let key = KEY.get_or_init(|| {
        waitroom::domain::ticket::TicketKey::new(SecretString::from("fuzz-ticket-secret"), Duration::from_secs(3600))
    });
    let _ = key.verify(EVENT, &text(data), 1_800_000_000_000);
}

/// A fan id as a join carries it.
pub fn fan_id(data: &[u8]) {
    let _ = waitroom::domain::fan::FanId::parse(&text(data));
}

/// An `Idempotency-Key` header's raw bytes.
pub fn idempotency_key(data: &[u8]) {
    let _ = gateway::routes::extract::idempotency_key(data);
}

/// A payment webhook: the `Stripe-Signature` header, a NUL byte, then the body.
pub fn stripe_signature(data: &[u8]) {
    let (header, payload) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let secrets = [SecretString::from("whsec_fuzz")];
    let _ = stripe_client::verify_signature(payload, &text(header), &secrets, Duration::from_secs(300), 1_800_000_000);
}

/// A scanned ticket secret, as a gate sends it.
pub fn ticket_secret(data: &[u8]) {
    static KEY: OnceLock<access_token::keys::PublicKey> = OnceLock::new();
    let key = KEY.get_or_init(|| KeyPair::generate("fuzz-tickets").expect("a valid kid").public_key());
    let _ = sales::domain::ticket_secret::verify(&text(data), |kid, message, signature| {
        (kid == key.kid).then(|| key.verify_raw(message, signature))
    });
}

/// A booking's or an offer's capability link (`?link=`).
pub fn capability_link(data: &[u8]) {
    let token = text(data);
    let key = [7u8; 32];
    let _ = sales::domain::booking_link::BookingLink::decode(&token, &key, 1_800_000_000);
    let _ = sales::domain::offer_link::OfferLink::decode(&token, &key, 1_800_000_000);
}
