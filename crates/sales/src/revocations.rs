//! The organizer revoking admissions, and what the gateway replicas read to refuse
//! revoked tokens. Access tokens themselves are the gateway's business: here they are
//! only a token id (`jti`) or a fan of an event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::Invalid;
use crate::error::Result;
use crate::model::Revocation;
use crate::store::revocations;
use crate::Sales;

/// What to revoke: one token, or every token a fan holds for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// The token with this id (`jti`): one admission.
    Token(Uuid),
    /// Every token of this fan for the event issued up to the revocation.
    Fan(String),
}

impl Revoke {
    /// Exactly one of the two, and a fan id as the waiting room issues them (1–64
    /// characters, no control characters).
    pub fn new(jti: Option<Uuid>, fan_id: Option<String>) -> Result<Self, Invalid> {
        let invalid = |m: &str| Invalid::new("invalid_revocation", m);
        match (jti, fan_id) {
            (Some(jti), None) => Ok(Self::Token(jti)),
            (None, Some(fan)) if (1..=64).contains(&fan.chars().count()) && !fan.chars().any(char::is_control) => {
                Ok(Self::Fan(fan))
            }
            (None, Some(_)) => Err(invalid("fan_id must be 1-64 characters without control characters")),
            _ => Err(invalid("name exactly one of \"jti\" (one token) or \"fan_id\" (every token of the fan)")),
        }
    }
}

/// A replica's view of the revocations after one poll.
pub struct RevocationsRead {
    pub revocations: Vec<Revocation>,
    /// The database's clock just before the read: the next poll asks for what was
    /// revoked since a little before it (see [`Sales::revocations_since`]).
    pub read_at: DateTime<Utc>,
}

/// How far a poll reaches back before the previous one. A revocation's row becomes
/// visible when its statement commits, which can be after its `revoked_at` (the
/// statement's start) by up to the statement's deadline, seconds; rows re-read from
/// this overlap are few (the organizer writes them) and replace themselves.
pub const POLL_OVERLAP: Duration = Duration::from_secs(300);

impl Sales {
    /// Revokes one token or one fan's tokens for the event (404 if no such event);
    /// revoking the same token again answers the first revocation.
    #[tracing::instrument(skip(self), fields(kind = "revoke"))]
    pub async fn revoke(&self, event_id: Uuid, what: Revoke) -> Result<Revocation> {
        self.event_rules(event_id).await?;
        self.db
            .write(move |conn| {
                Box::pin(async move {
                    match what {
                        Revoke::Token(jti) => revocations::revoke_token(conn, event_id, jti).await,
                        Revoke::Fan(fan_id) => revocations::revoke_fan(conn, event_id, &fan_id).await,
                    }
                })
            })
            .await
    }

    /// Unexpired revocations written since `previous` (the `read_at` of the previous
    /// read, less [`POLL_OVERLAP`]); every unexpired one for `None`.
    #[tracing::instrument(level = "debug", skip(self), fields(kind = "revocations_since"))]
    pub async fn revocations_since(&self, previous: Option<DateTime<Utc>>) -> Result<RevocationsRead> {
        self.db
            .read(move |conn| {
                Box::pin(async move {
                    let read_at = revocations::now(conn).await?;
                    let overlap = chrono::TimeDelta::from_std(POLL_OVERLAP).expect("five minutes fit a TimeDelta");
                    let since = previous.map(|at| at - overlap);
                    Ok(RevocationsRead { revocations: revocations::since(conn, since).await?, read_at })
                })
            })
            .await
    }
}
