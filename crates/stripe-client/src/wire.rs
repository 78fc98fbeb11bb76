//! Stripe's JSON objects, as far as the sale reads them, and their mapping to the port's
//! types. Unknown fields are ignored; a status this crate does not know is an
//! unreadable answer, not a guess.

use std::collections::BTreeMap;

use sales::payment_provider::{Intent, IntentStatus, Refund, RefundStatus};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub(crate) struct PaymentIntentObject {
    pub id: String,
    pub status: IntentStatusWire,
    pub amount: i64,
    pub currency: String,
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub last_payment_error: Option<LastPaymentError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LastPaymentError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum IntentStatusWire {
    RequiresPaymentMethod,
    RequiresConfirmation,
    RequiresAction,
    Processing,
    RequiresCapture,
    Canceled,
    Succeeded,
}

impl From<PaymentIntentObject> for Intent {
    fn from(o: PaymentIntentObject) -> Self {
        let status = match o.status {
            IntentStatusWire::RequiresPaymentMethod => IntentStatus::RequiresPaymentMethod,
            IntentStatusWire::RequiresConfirmation => IntentStatus::RequiresConfirmation,
            IntentStatusWire::RequiresAction => IntentStatus::RequiresAction,
            IntentStatusWire::Processing => IntentStatus::Processing,
            IntentStatusWire::RequiresCapture => IntentStatus::RequiresCapture,
            IntentStatusWire::Canceled => IntentStatus::Canceled,
            IntentStatusWire::Succeeded => IntentStatus::Succeeded,
        };
        Intent {
            id: o.id,
            status,
            amount_minor: o.amount,
            currency: o.currency.to_ascii_uppercase(),
            client_secret: o.client_secret,
            metadata: o.metadata,
            // The decline code says most (insufficient_funds); else the error's code.
            last_payment_error: o.last_payment_error.and_then(|e| e.decline_code.or(e.code)),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RefundObject {
    pub id: String,
    /// Stripe names the intent (`null` for refunds of bare charges, which we never make).
    #[serde(default)]
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub status: RefundStatusWire,
    /// Why a refund failed (`expired_or_canceled_card`, `lost_or_stolen_card`, …).
    #[serde(default)]
    pub failure_reason: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RefundStatusWire {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

impl From<RefundObject> for Refund {
    fn from(o: RefundObject) -> Self {
        let status = match o.status {
            RefundStatusWire::Pending => RefundStatus::Pending,
            RefundStatusWire::RequiresAction => RefundStatus::RequiresAction,
            RefundStatusWire::Succeeded => RefundStatus::Succeeded,
            RefundStatusWire::Failed => RefundStatus::Failed,
            RefundStatusWire::Canceled => RefundStatus::Canceled,
        };
        Refund {
            id: o.id,
            payment_intent: o.payment_intent.unwrap_or_default(),
            amount_minor: o.amount,
            status,
            failure_reason: o.failure_reason,
            metadata: o.metadata,
        }
    }
}

/// Stripe's error envelope.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub decline_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}
