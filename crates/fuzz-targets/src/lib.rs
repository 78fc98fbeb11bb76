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
use base64::Engine;
use secrecy::SecretString;
use uuid::Uuid;

/// A target: the bytes in, nothing out but a panic if it has a bug.
pub type Target = fn(&[u8]);

/// Every target by name: the names of `fuzz/fuzz_targets/*.rs` and `fuzz/corpus/*/`.
pub const TARGETS: [(&str, Target); 10] = [
    ("access_token", access_token),
    ("queue_ticket", queue_ticket),
    ("fan_id", fan_id),
    ("idempotency_key", idempotency_key),
    ("stripe_signature", stripe_signature),
    ("ticket_secret", ticket_secret),
    ("capability_link", capability_link),
    ("webhook_signature", webhook_signature),
    ("gateway_bodies", gateway_bodies),
    ("waitroom_bodies", waitroom_bodies),
];

const EVENT: Uuid = Uuid::from_u128(0x0b0c_0f1c_e000_4000_8000_0000_0000_f022);

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The bytes before the first NUL byte, and those after it.
fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
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
    let (header, payload) = split_at_nul(data);
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

/// A webhook the outbox relay sends, as its receiver checks it with Standard Webhooks'
/// reference library: the body, a NUL byte, then a `webhook-signature` header a stranger
/// made up. The header the relay signs during a secret rotation (two `v1`, and `v1a`)
/// verifies with either secret and the relay's public key, whatever the body; the
/// stranger's header for the same message never verifies.
pub fn webhook_signature(data: &[u8]) {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const PREVIOUS_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    static RELAY_KEY: OnceLock<KeyPair> = OnceLock::new();
    let relay_key = RELAY_KEY.get_or_init(|| KeyPair::generate("fuzz-webhooks").expect("a valid kid"));
    let (body, forged) = split_at_nul(data);
    let body = text(body);
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let signed = scheduler::relay::signature_header(SECRET, Some(PREVIOUS_SECRET), Some(relay_key), id, now, &body)
        .expect("well-formed secrets sign any body");
    let headers = |signature: http::HeaderValue| {
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", http::HeaderValue::from_static(id));
        headers.insert("webhook-timestamp", now.into());
        headers.insert("webhook-signature", signature);
        headers
    };
    let signed_headers = headers(http::HeaderValue::from_str(&signed).expect("base64 and spaces"));
    for secret in [SECRET, PREVIOUS_SECRET] {
        let receiver = standardwebhooks::Webhook::new(secret).expect("a valid secret");
        if let Err(e) = receiver.verify(body.as_bytes(), &signed_headers) {
            panic!("the relay's signature {signed:?} is refused with {secret}: {e}");
        }
    }
    let v1a = signed.split(' ').find_map(|entry| entry.strip_prefix("v1a,")).expect("a v1a entry");
    let v1a = base64::engine::general_purpose::STANDARD.decode(v1a).expect("base64");
    let v1a: [u8; 64] = v1a.try_into().expect("an Ed25519 signature");
    assert!(relay_key.public_key().verify_raw(format!("{id}.{now}.{body}").as_bytes(), &v1a));

    if let Ok(forged) = http::HeaderValue::from_bytes(forged) {
        let receiver = standardwebhooks::Webhook::new(SECRET).expect("a valid secret");
        assert!(receiver.verify(body.as_bytes(), &headers(forged)).is_err(), "a made-up signature verified");
    }
}

/// A request body of any gateway operation: the first byte picks the operation (of
/// `gateway::routes::bodies::REQUEST_BODIES`), the rest is the body.
pub fn gateway_bodies(data: &[u8]) {
    use gateway::routes::bodies::REQUEST_BODIES;
    if let Some((&pick, body)) = data.split_first() {
        let (_, check) = REQUEST_BODIES[usize::from(pick) % REQUEST_BODIES.len()];
        let _ = check(body);
    }
}

/// A request body of any waiting room operation, picked as in [`gateway_bodies`].
pub fn waitroom_bodies(data: &[u8]) {
    use waitroom::routes::bodies::REQUEST_BODIES;
    if let Some((&pick, body)) = data.split_first() {
        let (_, check) = REQUEST_BODIES[usize::from(pick) % REQUEST_BODIES.len()];
        let _ = check(body);
    }
}
