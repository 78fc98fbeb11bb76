//! Where the waiting room keeps its events in Redis. Public, so the benchmark reads
//! and writes the very keys the service uses rather than a copy of their layout.
//!
//! Per event, under the configured prefix and one hash tag (so an event's keys stay
//! together on one Redis Cluster slot and a script may touch them all):
//!
//! - `<prefix>:wr:{<event>}:settings` hash: the organizer's settings, the shuffle seed
//!   and its hash (copies of PostgreSQL's, see [`crate::ledger`]), whether the sale has
//!   opened, the epoch, when the event was last rebuilt after a wipe, and whether it
//!   was retired for idleness (`scripts/retain.lua`).
//! - `…:counters` hash: arrival sequence numbers, admission clock and fractional
//!   carry, totals, the measured-rate state, since when the room has been idle.
//! - `…:queue` sorted set: waiting fans. Arrivals after the opening time score their
//!   arrival sequence number (`epoch << 40` + 1, 2, …); fans who join before it score
//!   their shuffle draw minus 2^52, a negative number, so the pre-queue stands ahead
//!   of everyone in shuffled order from the start and opening the sale moves nobody.
//! - `…:seen` hash: fan → last poll (ms), for skipping abandoned fans.
//! - `…:admitted` sorted set: fan → admission expiry (ms); its live size is "active".
//!
//! - `…:pow:<challenge signature>` string, one per proof of work used: the fan who used
//!   it, until the challenge expires (a replay by anyone else is refused, `crate::pow`).
//!
//! `<prefix>:wr:events` is the set of configured events the admitter walks (closed and
//! idle-retired ones leave it).

use uuid::Uuid;

/// One of an event's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKey {
    Settings,
    Counters,
    Queue,
    Seen,
    Admitted,
}

impl EventKey {
    /// The `KEYS` of every per-event script, in this order (each script's header names
    /// them).
    pub const SCRIPT_ORDER: [Self; 5] = [Self::Settings, Self::Counters, Self::Queue, Self::Seen, Self::Admitted];

    fn name(self) -> &'static str {
        match self {
            Self::Settings => "settings",
            Self::Counters => "counters",
            Self::Queue => "queue",
            Self::Seen => "seen",
            Self::Admitted => "admitted",
        }
    }
}

/// One event's keys under one deployment's prefix.
#[derive(Debug, Clone, Copy)]
pub struct EventKeys<'a> {
    prefix: &'a str,
    event_id: Uuid,
}

impl<'a> EventKeys<'a> {
    pub fn new(prefix: &'a str, event_id: Uuid) -> Self {
        Self { prefix, event_id }
    }

    pub fn key(&self, key: EventKey) -> String {
        format!("{}:wr:{{{}}}:{}", self.prefix, self.event_id, key.name())
    }

    /// Where the use of one proof of work is remembered.
    pub fn pow_claim(&self, challenge_signature: &str) -> String {
        format!("{}:wr:{{{}}}:pow:{challenge_signature}", self.prefix, self.event_id)
    }

    /// The `KEYS` of every per-event script.
    pub fn script_keys(&self) -> [String; 5] {
        EventKey::SCRIPT_ORDER.map(|key| self.key(key))
    }
}

/// The set of configured events the admitter walks. Outside every event's hash tag,
/// so no script touches it.
pub fn events_index(prefix: &str) -> String {
    format!("{prefix}:wr:events")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_keys_share_one_hash_tag_under_the_prefix() {
        let event_id = Uuid::nil();
        let keys = EventKeys::new("boxoffice", event_id);
        assert_eq!(keys.key(EventKey::Queue), format!("boxoffice:wr:{{{event_id}}}:queue"));
        assert_eq!(
            keys.script_keys().map(|key| key.rsplit(':').next().unwrap().to_owned()),
            ["settings", "counters", "queue", "seen", "admitted"]
        );
        assert_eq!(events_index("boxoffice"), "boxoffice:wr:events");
    }
}
