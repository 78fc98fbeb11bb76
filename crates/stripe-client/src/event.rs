//! A verified webhook body parsed into the port's [`ProviderEvent`].

use sales::payment_provider::{ProviderEvent, ProviderEventKind};
use serde::Deserialize;
use serde_json::Value;

use crate::wire::{PaymentIntentObject, RefundObject};

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Not JSON, or not an event (`id`, `type`, `data.object`).
    #[error("not a Stripe event: {0}")]
    NotAnEvent(String),
    /// An event of a type we act on whose object we cannot read.
    #[error("event {id} ({kind}) carries an unreadable object: {reason}")]
    BadObject { id: String, kind: String, reason: String },
}

#[derive(Deserialize)]
struct EventWire {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: Value,
}

/// Parses a webhook body (verify its signature first): `payment_intent.*` →
/// [`ProviderEventKind::Intent`], `refund.*` and `charge.refund.updated` (both carry a
/// refund) → [`ProviderEventKind::Refund`], anything else → `Other(type)`.
pub fn parse_event(payload: &[u8]) -> Result<ProviderEvent, EventError> {
    let event: EventWire = serde_json::from_slice(payload).map_err(|e| EventError::NotAnEvent(e.to_string()))?;
    let bad = |reason: serde_json::Error| EventError::BadObject {
        id: event.id.clone(),
        kind: event.kind.clone(),
        reason: reason.to_string(),
    };
    let kind = if event.kind.starts_with("payment_intent.") {
        let object: PaymentIntentObject = serde_json::from_value(event.data.object.clone()).map_err(bad)?;
        ProviderEventKind::Intent(object.into())
    } else if event.kind.starts_with("refund.") || event.kind == "charge.refund.updated" {
        let object: RefundObject = serde_json::from_value(event.data.object.clone()).map_err(bad)?;
        ProviderEventKind::Refund(object.into())
    } else {
        ProviderEventKind::Other(event.kind.clone())
    };
    Ok(ProviderEvent { id: event.id, kind })
}

#[cfg(test)]
mod tests {
    use sales::payment_provider::{IntentStatus, RefundStatus};

    use super::*;

    #[test]
    fn a_succeeded_intent_event_is_an_intent() {
        let body = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","data":{"object":
            {"id":"pi_1","object":"payment_intent","amount":6500,"currency":"eur","status":"succeeded",
             "client_secret":"pi_1_secret_x","metadata":{"hold":"h1"},"last_payment_error":null}}}"#;
        let event = parse_event(body).map_err(|e| e.to_string());
        let Ok(ProviderEvent { id, kind: ProviderEventKind::Intent(intent) }) = event else { panic!("{event:?}") };
        assert_eq!(id, "evt_1");
        assert_eq!(
            (intent.status, intent.amount_minor, intent.currency.as_str()),
            (IntentStatus::Succeeded, 6500, "EUR")
        );
        assert_eq!(intent.metadata.get("hold").map(String::as_str), Some("h1"));
    }

    #[test]
    fn a_failed_payment_carries_its_decline_code() {
        let body = br#"{"id":"evt_2","type":"payment_intent.payment_failed","data":{"object":
            {"id":"pi_1","amount":1,"currency":"eur","status":"requires_payment_method",
             "last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds"}}}}"#;
        let Ok(ProviderEvent { kind: ProviderEventKind::Intent(intent), .. }) = parse_event(body) else { panic!() };
        assert_eq!(intent.last_payment_error.as_deref(), Some("insufficient_funds"));
    }

    #[test]
    fn refund_events_are_refunds_and_others_are_named() {
        let refund = br#"{"id":"evt_3","type":"charge.refund.updated","data":{"object":
            {"id":"re_1","object":"refund","amount":100,"payment_intent":"pi_1","status":"succeeded","metadata":{}}}}"#;
        let Ok(ProviderEvent { kind: ProviderEventKind::Refund(r), .. }) = parse_event(refund) else { panic!() };
        assert_eq!((r.id.as_str(), r.status, r.payment_intent.as_str()), ("re_1", RefundStatus::Succeeded, "pi_1"));
        let other = br#"{"id":"evt_4","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#;
        assert!(
            matches!(parse_event(other).map(|e| e.kind), Ok(ProviderEventKind::Other(t)) if t == "customer.created")
        );
    }

    #[test]
    fn garbage_and_unknown_statuses_are_errors_not_panics() {
        assert!(matches!(parse_event(b"\xff{"), Err(EventError::NotAnEvent(_))));
        assert!(matches!(parse_event(br#"{"id":"evt_5"}"#), Err(EventError::NotAnEvent(_))));
        let odd = br#"{"id":"evt_6","type":"payment_intent.succeeded","data":{"object":{"id":"pi","amount":1,"currency":"eur","status":"teleported"}}}"#;
        assert!(matches!(parse_event(odd), Err(EventError::BadObject { .. })));
    }
}
