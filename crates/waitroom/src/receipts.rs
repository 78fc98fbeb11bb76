//! The audit's use cases (issue 18): a fan's admission receipt, and the event's
//! admission log for the organizer to publish. Both read PostgreSQL's record of
//! admissions (`waitroom_admissions`, D1), never Redis: a receipt attests only an
//! admission the published log will show.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::fan::FanId;
use crate::domain::receipt::{AdmissionLog, Receipt, ReceiptKeys};
use crate::error::{Error, Result};
use crate::ledger::Ledger;

#[derive(Clone)]
pub struct Receipts {
    /// `None`: no receipt key configured; receipts and the log answer 503.
    keys: Option<Arc<ReceiptKeys>>,
    ledger: Ledger,
}

impl Receipts {
    pub fn new(keys: Option<Arc<ReceiptKeys>>, ledger: Ledger) -> Self {
        Self { keys, ledger }
    }

    fn keys(&self) -> Result<&ReceiptKeys> {
        self.keys.as_deref().ok_or(Error::ReceiptsUnavailable)
    }

    /// The receipt keys' JWKs, for the waiting room's `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Vec<serde_json::Value> {
        self.keys.as_deref().map(ReceiptKeys::jwks).unwrap_or_default()
    }

    /// The signed receipt of the fan's latest recorded admission, and what it says.
    /// Admissions are recorded within about a second of being made (`crate::recorder`).
    pub async fn receipt(&self, event_id: Uuid, fan: &FanId) -> Result<(String, Receipt)> {
        let keys = self.keys()?;
        let admission = self.ledger.latest_admission(event_id, fan).await?.ok_or(Error::NotFound("admission"))?;
        Ok(keys.receipt(event_id, &admission))
    }

    /// The event's admission log, fans blinded.
    pub async fn log(&self, event_id: Uuid) -> Result<AdmissionLog> {
        let keys = self.keys()?;
        if self.ledger.event(event_id).await?.is_none() {
            return Err(Error::NotFound("event"));
        }
        let (admissions, skips) = self.ledger.admission_log(event_id).await?;
        Ok(keys.log(event_id, &admissions, &skips))
    }
}
