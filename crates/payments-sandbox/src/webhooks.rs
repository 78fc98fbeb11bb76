//! Webhook delivery, at least once, from background tasks: API answers never wait on it.
//!
//! One dispatcher takes events in the order they happened. Each event, unless the drop
//! fault takes it, is delivered in `copies` copies (the duplicate fault) at once, after
//! the delay fault; with the reorder fault the dispatcher gathers the events of a window
//! and delivers them newest first. A copy whose attempt fails (non-2xx, connection
//! error, timeout, no endpoint yet) is retried on its own task with the configured
//! backoff, up to the configured attempts. Every attempt is recorded on its event.
//!
//! Each attempt is signed as Stripe signs: `Stripe-Signature: t=<unix secs>,v1=<hex
//! HMAC-SHA256(secret, "{t}.{body}")>`, the key being the whole `whsec_…` string.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::state::{self, DeliveryAttempt, State};
use crate::Shared;

/// The `Stripe-Signature` value for `body` signed at `timestamp` with `secret`.
pub fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return format!("t={timestamp}");
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) async fn dispatch(shared: Arc<Shared>, mut events: UnboundedReceiver<String>) {
    let cancel = shared.cancel.clone();
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => return,
            next = events.recv() => match next { Some(id) => id, None => return },
        };
        let mut batch = vec![first];
        let window = shared.lock().faults.webhook_reorder_window_ms;
        if window > 0 {
            let until = tokio::time::sleep(Duration::from_millis(window));
            tokio::pin!(until);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = &mut until => break,
                    next = events.recv() => match next { Some(id) => batch.push(id), None => break },
                }
            }
            batch.reverse();
        }
        // Each event's fate is drawn here, by the one dispatcher, in the batch's order:
        // the same seed and the same events make the same decisions.
        let (delay, late_by, plan, late) = {
            let mut state = shared.lock();
            let delay = Duration::from_millis(state.faults.webhook_delay_ms);
            let late_by = Duration::from_millis(state.faults.webhook_late_ms);
            let late_probability = state.faults.webhook_late_probability;
            let (mut plan, mut late) = (Vec::new(), Vec::new());
            for id in batch {
                let copies = copies_of(&mut state, &id);
                match state::chance(&mut state.webhook_rng, late_probability) {
                    true => late.push((id, copies)),
                    false => plan.push((id, copies)),
                }
            }
            (delay, late_by, plan, late)
        };
        // Delivered on tasks of their own so a delayed batch does not hold up the next
        // one; the events of one batch go out in the batch's order, the late ones after.
        spawn_deliveries(shared.clone(), delay, plan);
        if !late.is_empty() {
            spawn_deliveries(shared.clone(), delay + late_by, late);
        }
    }
}

fn spawn_deliveries(shared: Arc<Shared>, after: Duration, plan: Vec<(String, u32)>) {
    tokio::spawn(async move {
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(after) => {}
        }
        for (id, copies) in plan {
            deliver_event(&shared, &id, copies).await;
        }
    });
}

/// How many copies of the event go out: 0 when the drop fault takes it, else 1 plus
/// the duplicate fault's extra copies. Recorded on the event.
fn copies_of(state: &mut State, id: &str) -> u32 {
    let faults = state.faults.clone();
    let dropped = state::chance(&mut state.webhook_rng, faults.webhook_drop_probability);
    let extra = faults.webhook_duplicates
        + u32::from(state::chance(&mut state.webhook_rng, faults.webhook_duplicate_probability));
    let copies = if dropped { 0 } else { 1 + extra };
    if let Some(event) = state.event_mut(id) {
        event.dropped = dropped;
        event.copies = copies;
    }
    copies
}

/// The first attempt of each copy at once; failed copies go on retrying on their own
/// tasks.
async fn deliver_event(shared: &Arc<Shared>, id: &str, copies: u32) {
    let firsts = (0..copies).map(|copy| async move {
        if !attempt(shared, id, copy, 1).await {
            let shared = shared.clone();
            let id = id.to_owned();
            tokio::spawn(async move { retry(shared, id, copy).await });
        }
    });
    futures::future::join_all(firsts).await;
}

async fn retry(shared: Arc<Shared>, id: String, copy: u32) {
    for n in 2..=shared.retry.max_attempts {
        let wait = shared.retry.delay_after(n - 1);
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if attempt(&shared, &id, copy, n).await {
            return;
        }
    }
}

/// One signed POST of the event's body; records it and says whether it was answered 2xx.
async fn attempt(shared: &Shared, id: &str, copy: u32, n: u32) -> bool {
    let (body, endpoint) = {
        let state = shared.lock();
        let Some(event) = state.event(id) else { return true };
        (event.body.clone(), state.webhook.clone())
    };
    let at_ms = state::now_millis();
    let (status, error) = match endpoint {
        None => (None, Some("no webhook endpoint configured".to_owned())),
        Some(endpoint) => {
            let signature = signature_header(&endpoint.secret, state::now_secs(), body.as_bytes());
            let sent = shared
                .http
                .post(&endpoint.url)
                .header("content-type", "application/json; charset=utf-8")
                .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
                .header("stripe-signature", signature)
                .body(body)
                .timeout(shared.delivery_timeout);
            tokio::select! {
                _ = shared.cancel.cancelled() => return true,
                answer = sent.send() => match answer {
                    Ok(answer) => (Some(answer.status().as_u16()), None),
                    Err(e) => (None, Some(describe(&e))),
                },
            }
        }
    };
    let record = DeliveryAttempt { copy, attempt: n, at_ms, status, error };
    let ok = record.succeeded();
    tracing::debug!(event = id, copy, attempt = n, status = ?record.status, error = ?record.error, "webhook delivery attempt");
    let mut state = shared.lock();
    if let Some(event) = state.event_mut(id) {
        event.delivered |= ok;
        event.attempts.push(record);
    }
    ok
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_stripes_recipe() {
        // HMAC-SHA256("whsec_test", "1700000000.{}"), computed independently with
        // Python's hmac module.
        assert_eq!(
            signature_header("whsec_test", 1_700_000_000, b"{}"),
            "t=1700000000,v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
    }
}
