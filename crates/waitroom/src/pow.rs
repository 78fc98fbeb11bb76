//! Proof of work at the door (issue 18): for an event whose organizer set a
//! `pow_difficulty`, a join must carry the solution of a fresh challenge the waiting
//! room signed for that event. A person's browser pays once per place in line; a bot
//! farm pays for every place it takes.
//!
//! The scheme is ALTCHA's Proof-of-Work v2, with the official `altcha` crate, in its
//! deterministic mode: the challenge hides a counter drawn between half the difficulty
//! and the difficulty, and shows the first half of the PBKDF2-SHA-256 key that counter
//! derives (`[waitroom.pow] cost` iterations); the solver tries counters from 0 until a
//! key starts with it. The challenge also carries an HMAC of the whole key, so checking
//! a solution costs one HMAC, not a derivation. (The crate's other verification path,
//! for challenges without that HMAC, re-derives the submitted counter's key without
//! checking it against the prefix: any counter would pass. Every challenge signed here
//! carries the key's HMAC, and a proof without it is refused.)
//!
//! Each challenge names its event and expires after `challenge_ttl_secs`; a used
//! proof is remembered in Redis until then, with the fan who used it, so a replay by
//! anyone else is refused while the same fan's retried join is not. A Redis wipe
//! forgets them: within that window a proof used before the wipe can be used once more.
//! Both HMAC secrets are derived from `waitroom.ticket_secret`, which every replica
//! shares.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use altcha::{CreateChallengeOptions, Payload, VerifySolutionOptions};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use moka::sync::Cache;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use uuid::Uuid;

pub use altcha::Challenge;

use crate::config::PowConfig;
use crate::domain::fan::FanId;
use crate::error::{Error, Result};
use crate::restore::Restorer;
use crate::store::Store;

/// ALTCHA's name for the key derivation every challenge uses.
const ALGORITHM: &str = "PBKDF2/SHA-256";
/// Events whose difficulty a replica keeps at once.
const KEPT_EVENTS: u64 = 10_000;

/// Why a proof of work was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No proof, for an event that asks for one.
    Missing,
    /// Not a base64 ALTCHA payload.
    Malformed,
    /// Not a challenge of ours for this event, or not its solution.
    Wrong,
    Expired,
    /// Already used by another fan.
    Replayed,
}

/// Makes and checks challenges: the scheme alone, with no I/O (`scripts/bench-pow`
/// measures it).
#[derive(Clone)]
pub struct Proofs {
    cost: u32,
    challenge_ttl_secs: u64,
    signature_secret: String,
    key_secret: String,
}

/// A proof that solves one of our challenges for the event, not yet known unused.
pub struct Verified {
    /// The challenge's signature: what a replay would repeat.
    pub challenge_signature: String,
    /// When the challenge expires (Unix seconds).
    pub expires_at: u64,
}

impl Proofs {
    pub fn new(config: PowConfig, ticket_secret: &SecretString) -> Self {
        let derive = |purpose: &str| {
            let mut mac = Hmac::<Sha256>::new_from_slice(ticket_secret.expose_secret().as_bytes())
                .expect("HMAC takes a key of any length");
            mac.update(purpose.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        Self {
            cost: config.cost,
            challenge_ttl_secs: config.challenge_ttl_secs,
            signature_secret: derive("boxoffice pow challenge signature v1"),
            key_secret: derive("boxoffice pow key signature v1"),
        }
    }

    /// A fresh challenge for a join to the event, hiding a counter up to `difficulty`.
    pub fn challenge(&self, event_id: Uuid, difficulty: u32) -> Result<Challenge> {
        let counter = rand::thread_rng().gen_range(difficulty.div_ceil(2)..=difficulty);
        let expires_at = unix_now() + self.challenge_ttl_secs;
        let data = BTreeMap::from([("event".to_owned(), serde_json::Value::from(event_id.to_string()))]);
        altcha::create_challenge(CreateChallengeOptions {
            algorithm: ALGORITHM.to_owned(),
            cost: self.cost,
            counter: Some(counter),
            data: Some(data),
            expires_at: Some(expires_at),
            hmac_signature_secret: Some(self.signature_secret.clone()),
            hmac_key_signature_secret: Some(self.key_secret.clone()),
            ..CreateChallengeOptions::default()
        })
        .map_err(|e| Error::Pow(e.to_string()))
    }

    /// Whether `proof` (base64 of an ALTCHA payload: the challenge and its solution)
    /// solves a challenge of ours for this event that has not expired.
    pub fn verify(&self, event_id: Uuid, proof: &str) -> Result<Verified, Refusal> {
        let payload: Payload = STANDARD
            .decode(proof.trim())
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(Refusal::Malformed)?;
        let (challenge, parameters) = (&payload.challenge, &payload.challenge.parameters);
        let ours = parameters.algorithm == ALGORITHM
            && parameters.key_signature.is_some()
            && parameters.data.as_ref().and_then(|data| data.get("event")) == Some(&event_id.to_string().into());
        let (Some(expires_at), Some(signature), true) = (parameters.expires_at, challenge.signature.clone(), ours)
        else {
            return Err(Refusal::Wrong);
        };
        let verified = altcha::verify_solution(VerifySolutionOptions {
            hmac_key_signature_secret: Some(self.key_secret.clone()),
            ..VerifySolutionOptions::new(challenge, &payload.solution, self.signature_secret.clone())
        })
        .map_err(|_| Refusal::Malformed)?;
        if verified.expired {
            return Err(Refusal::Expired);
        }
        if !verified.verified {
            return Err(Refusal::Wrong);
        }
        Ok(Verified { challenge_signature: signature, expires_at })
    }
}

/// The door of every event: its difficulty, and each proof used once.
#[derive(Clone)]
pub struct Door {
    store: Store,
    restorer: Arc<Restorer>,
    proofs: Proofs,
    /// Each event's difficulty, read from its settings in Redis.
    difficulties: Cache<Uuid, Option<u32>>,
}

impl Door {
    pub fn new(store: Store, restorer: Arc<Restorer>, config: PowConfig, ticket_secret: &SecretString) -> Self {
        let difficulties = Cache::builder()
            .max_capacity(KEPT_EVENTS)
            .time_to_live(Duration::from_millis(config.settings_max_age_ms))
            .build();
        Self { store, restorer, proofs: Proofs::new(config, ticket_secret), difficulties }
    }

    /// The event's difficulty; `None` when joins need no proof. An event Redis lost is
    /// rebuilt from PostgreSQL first, as a join would rebuild it.
    async fn difficulty(&self, event_id: Uuid) -> Result<Option<u32>> {
        if let Some(difficulty) = self.difficulties.get(&event_id) {
            return Ok(difficulty);
        }
        let mut event = self.store.event(event_id).await?;
        if event.is_none() && self.restorer.rebuild_if_known(event_id).await? {
            event = self.store.event(event_id).await?;
        }
        let event = event.ok_or(Error::NotFound("event"))?;
        let difficulty = event.settings.pow_difficulty;
        self.difficulties.insert(event_id, difficulty);
        Ok(difficulty)
    }

    /// A fresh challenge for a join to the event.
    pub async fn challenge(&self, event_id: Uuid) -> Result<Challenge> {
        let difficulty = self.difficulty(event_id).await?.ok_or(Error::PowNotRequired)?;
        self.proofs.challenge(event_id, difficulty)
    }

    /// Lets `fan` through if the event asks for no proof, or `proof` solves a
    /// challenge of ours for this event that has not expired and nobody else used.
    pub async fn check(&self, event_id: Uuid, fan: &FanId, proof: Option<&str>) -> Result<()> {
        if self.difficulty(event_id).await?.is_none() {
            return Ok(());
        }
        let proof = proof.ok_or(Error::PowRefused(Refusal::Missing))?;
        let verified = self.proofs.verify(event_id, proof).map_err(Error::PowRefused)?;
        let remembered_ms = (verified.expires_at.saturating_sub(unix_now()) + 1) * 1000;
        if !self.store.claim_proof(event_id, &verified.challenge_signature, fan, remembered_ms).await? {
            return Err(Error::PowRefused(Refusal::Replayed));
        }
        Ok(())
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}
