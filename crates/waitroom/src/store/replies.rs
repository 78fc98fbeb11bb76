//! What the scripts answer, and one decoder per script reply. Each decoder reads the
//! fields its script's header lists, by name and in that order, so a reply and its
//! contract are read side by side.

use chrono::{DateTime, TimeZone, Utc};
use redis::Value;

use crate::domain::settings::EventState;
use crate::error::{Error, Result};

/// Where a fan stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Joined before opening; the place is drawn but not told until the sale opens.
    PreQueue,
    /// In line; 1 is next.
    Waiting { position: u64 },
    /// Admitted for an admission that runs over these times (Redis' clock, ms).
    Admitted { admitted_at_ms: i64, expires_at_ms: i64 },
}

/// How the fan came to be where a locate call found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Already in line or admitted before this call (a repeated join, a poll).
    AlreadyThere,
    /// This call put the fan in line.
    Joined,
    /// This call put the fan back at the place their ticket named, after a wipe.
    Restored,
}

/// The answer to a join or a poll that found the fan.
#[derive(Debug, Clone)]
pub struct Located {
    pub placement: Placement,
    pub arrival: Arrival,
    /// The fan's queue score while waiting (after opening, pre-queue fans included).
    pub score: Option<i64>,
    /// Redis' clock when it answered, ms: the ticket's issue time.
    pub now_ms: i64,
    pub epoch: u64,
    /// When the event was last rebuilt from PostgreSQL, ms.
    pub restored_at_ms: Option<i64>,
    pub queue_length: u64,
    pub state: EventState,
    pub admit_rate: f64,
    pub measured_rate: Option<f64>,
    pub opens_at: Option<DateTime<Utc>>,
}

/// What a locate call found.
#[derive(Debug, Clone)]
pub enum Location {
    Found(Located),
    UnknownEvent,
    /// A new join on a closed event.
    Closed,
    /// Polled, but the fan is not in line (left, skipped as abandoned, their admission
    /// expired, or Redis lost their place). `restored_at_ms`: when the event was last
    /// rebuilt after a wipe; `now_ms`: Redis' clock.
    NotFound {
        restored_at_ms: Option<i64>,
        now_ms: i64,
    },
}

/// What a settings write found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    /// The opening time cannot change once the sale has opened.
    AlreadyOpen,
    /// PostgreSQL had the event but Redis lost it: rebuild it instead.
    Lost,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub state: EventState,
    pub queue_length: u64,
    pub active: u64,
    pub admitted_total: u64,
    pub skipped_total: u64,
    pub measured_rate: Option<f64>,
    /// When an admitter last stepped this event: a stale value means no admitter runs.
    pub last_admission_step_at: Option<DateTime<Utc>>,
    /// When the event's state was last rebuilt from PostgreSQL after Redis lost it;
    /// admission pauses for a while after it.
    pub restored_at: Option<DateTime<Utc>>,
}

/// An event's line and room as an admission step left them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Room {
    pub queue_length: u64,
    /// Admitted fans whose admission has not expired.
    pub active: u64,
    pub max_active: u64,
    /// The organizer's rate while the event is running, else 0.
    pub admit_rate: f64,
    /// This step opened the sale: the pre-queue's places count from now on.
    pub sale_opened: bool,
}

/// What one admission step did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Admitted fans, in queue order.
    pub admitted: Vec<String>,
    /// The queue score each admitted fan was admitted from, in the same order.
    pub scores: Vec<i64>,
    /// When they were admitted, and when their admission expires (Redis time, ms).
    pub admitted_at_ms: i64,
    pub expires_at_ms: i64,
    /// Abandoned fans dropped without using an admission, with the queue score each
    /// was dropped from, in queue order.
    pub skipped: Vec<(String, i64)>,
    pub room: Room,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Stepped(Step),
    /// Paused, closed or not yet open: nobody was admitted.
    Idle(Room),
    /// Retired for idleness, by this step or before (see `scripts/admit.lua`): the
    /// caller takes it out of the admitter's walk.
    Retired,
    UnknownEvent,
}

/// `locate.lua`: `{status, joined, position, queue_length, expiry_ms, state, rate,
/// ewma, ewma_weight, opens_at_ms, score, now_ms, epoch, restored_at_ms,
/// admitted_at_ms, reviving}`, or `{'unknown_event'}`; with whether the event is being
/// brought back from retirement (the caller indexes it).
pub(super) fn location(reply: Vec<String>) -> Result<(Location, bool)> {
    let corrupt = || Error::Corrupt(format!("locate reply {reply:?}"));
    if reply.first().is_some_and(|status| status == "unknown_event") {
        return Ok((Location::UnknownEvent, false));
    }
    let [status, joined, position, queue_length, expiry_ms, state, rate, ewma, ewma_weight, opens_at_ms, score, now_ms, epoch, restored_at_ms, admitted_at_ms, reviving] =
        reply.as_slice()
    else {
        return Err(corrupt());
    };
    let reviving = match reviving.as_str() {
        "0" => false,
        "1" => true,
        _ => return Err(corrupt()),
    };
    // Every number comes back as text; integers are exact as doubles (all within 2^53).
    let number = |field: &String| field.parse::<f64>().map_err(|_| corrupt());
    let int = |field: &String| number(field).map(|n| n as i64);
    let now_ms = int(now_ms)?;
    let restored_at_ms = Some(int(restored_at_ms)?).filter(|&ms| ms > 0);
    let placement = match status.as_str() {
        "closed" => return Ok((Location::Closed, reviving)),
        "not_found" => return Ok((Location::NotFound { restored_at_ms, now_ms }, reviving)),
        "pre_queue" => Placement::PreQueue,
        "waiting" => Placement::Waiting { position: int(position)? as u64 },
        "admitted" => Placement::Admitted {
            // Never later than now, so the token is valid at once even if the organizer
            // shortened the token lifetime since this admission began.
            admitted_at_ms: int(admitted_at_ms)?.min(now_ms),
            expires_at_ms: int(expiry_ms)?,
        },
        _ => return Err(corrupt()),
    };
    let arrival = match joined.as_str() {
        "0" => Arrival::AlreadyThere,
        "1" => Arrival::Joined,
        "2" => Arrival::Restored,
        _ => return Err(corrupt()),
    };
    let located = Located {
        placement,
        arrival,
        score: Some(score).filter(|score| !score.is_empty()).map(int).transpose()?,
        now_ms,
        epoch: int(epoch)? as u64,
        restored_at_ms,
        queue_length: int(queue_length)? as u64,
        state: EventState::parse(state).ok_or_else(corrupt)?,
        admit_rate: number(rate)?,
        measured_rate: measured_rate(number(ewma)?, number(ewma_weight)?),
        opens_at: millis(int(opens_at_ms)?),
    };
    Ok((Location::Found(located), reviving))
}

/// `admit.lua`: `{code, opened_now, skipped, queue_length, active, max_active, rate,
/// now_ms, expiry_ms, fan, score, fan, score, …}`; codes -1 (unknown event) and 2
/// (retired) carry the first five, code 0 (nothing to do) the first seven, code 1
/// (stepped) all.
pub(super) fn step(reply: Vec<Value>) -> Result<StepOutcome> {
    let corrupt = || Error::Corrupt(format!("admit reply {reply:?}"));
    let int = |value: &Value| redis::from_redis_value_ref::<i64>(value).map_err(|_| corrupt());
    let count = |value: &Value| int(value).map(|n| n.max(0) as u64);
    let text = |value: &Value| redis::from_redis_value_ref::<String>(value).map_err(|_| corrupt());
    let code = int(reply.first().ok_or_else(corrupt)?)?;
    match code {
        -1 => return Ok(StepOutcome::UnknownEvent),
        2 => return Ok(StepOutcome::Retired),
        _ => {}
    }
    let [_, opened_now, skipped, queue_length, active, max_active, rate, stepped @ ..] = reply.as_slice() else {
        return Err(corrupt());
    };
    let room = Room {
        queue_length: count(queue_length)?,
        active: count(active)?,
        max_active: count(max_active)?,
        admit_rate: text(rate)?.parse().map_err(|_| corrupt())?,
        sale_opened: int(opened_now)? == 1,
    };
    if code == 0 {
        return Ok(StepOutcome::Idle(room));
    }
    let [now_ms, expiry_ms, fans_and_scores @ ..] = stepped else {
        return Err(corrupt());
    };
    // The admitted fans' pairs, then the skipped fans'.
    let skipped_pairs = count(skipped)? as usize * 2;
    if fans_and_scores.len() % 2 != 0 || fans_and_scores.len() < skipped_pairs {
        return Err(corrupt());
    }
    let (admitted_pairs, skipped_pairs) = fans_and_scores.split_at(fans_and_scores.len() - skipped_pairs);
    let fan_and_score = |pair: &[Value]| -> Result<(String, i64)> {
        // Scores come back as Redis formats doubles; every queue score is an integer
        // well inside 2^53, so the conversion is exact.
        Ok((text(&pair[0])?, text(&pair[1])?.parse::<f64>().map_err(|_| corrupt())? as i64))
    };
    let (mut admitted, mut scores) = (Vec::new(), Vec::new());
    for pair in admitted_pairs.chunks_exact(2) {
        let (fan, score) = fan_and_score(pair)?;
        admitted.push(fan);
        scores.push(score);
    }
    Ok(StepOutcome::Stepped(Step {
        admitted,
        scores,
        admitted_at_ms: int(now_ms)?,
        expires_at_ms: int(expiry_ms)?,
        skipped: skipped_pairs.chunks_exact(2).map(fan_and_score).collect::<Result<_>>()?,
        room,
    }))
}

/// `stats.lua`: `{}` for an unknown event, else `{state, queue_length, active,
/// admitted_total, skipped_total, ewma, ewma_weight, last_step_ms, restored_at_ms}`.
pub(super) fn stats(reply: Vec<String>) -> Result<Option<Stats>> {
    if reply.is_empty() {
        return Ok(None);
    }
    let corrupt = || Error::Corrupt(format!("stats reply {reply:?}"));
    let [state, queue_length, active, admitted_total, skipped_total, ewma, ewma_weight, last_step_ms, restored_at_ms] =
        reply.as_slice()
    else {
        return Err(corrupt());
    };
    let number = |field: &String| field.parse::<f64>().map_err(|_| corrupt());
    let count = |field: &String| number(field).map(|n| n as u64);
    Ok(Some(Stats {
        state: EventState::parse(state).ok_or_else(corrupt)?,
        queue_length: count(queue_length)?,
        active: count(active)?,
        admitted_total: count(admitted_total)?,
        skipped_total: count(skipped_total)?,
        measured_rate: measured_rate(number(ewma)?, number(ewma_weight)?),
        last_admission_step_at: millis(count(last_step_ms)? as i64),
        restored_at: millis(count(restored_at_ms)? as i64),
    }))
}

/// An event's line as a replica tells every fan streaming it, once per tick
/// (`watch.lua`).
#[derive(Debug, Clone, PartialEq)]
pub struct LineWatch {
    pub state: EventState,
    pub admit_rate: f64,
    /// The sale has opened: pre-queue fans have places now.
    pub opened: bool,
    pub queue_length: u64,
    /// Fans who have left the head of the line so far, admitted or skipped as gone.
    pub left_head_total: u64,
    pub measured_rate: Option<f64>,
    pub now_ms: i64,
    /// Where the next read of new admissions starts.
    pub newest_expiry_ms: i64,
    /// Fans admitted since the previous read, with their admission's expiry.
    pub admitted: Vec<(String, i64)>,
}

/// `watch.lua`: `{}` for an unknown event, else `{state, rate, opened, queue_length,
/// left_head_total, ewma, ewma_weight, now_ms, newest_expiry_ms, {fan, expiry_ms, …}}`.
pub(super) fn watch(reply: Vec<Value>) -> Result<Option<LineWatch>> {
    if reply.is_empty() {
        return Ok(None);
    }
    let corrupt = || Error::Corrupt(format!("watch reply {reply:?}"));
    let int = |value: &Value| redis::from_redis_value_ref::<i64>(value).map_err(|_| corrupt());
    let text = |value: &Value| redis::from_redis_value_ref::<String>(value).map_err(|_| corrupt());
    let number = |value: &Value| text(value)?.parse::<f64>().map_err(|_| corrupt());
    let [state, rate, opened, queue_length, left_head_total, ewma, ewma_weight, now_ms, newest_expiry_ms, admitted] =
        reply.as_slice()
    else {
        return Err(corrupt());
    };
    let admitted = redis::from_redis_value_ref::<Vec<String>>(admitted).map_err(|_| corrupt())?;
    let admitted = admitted
        .chunks_exact(2)
        .map(|pair| Ok((pair[0].clone(), pair[1].parse::<f64>().map_err(|_| corrupt())? as i64)))
        .collect::<Result<_>>()?;
    Ok(Some(LineWatch {
        state: EventState::parse(&text(state)?).ok_or_else(corrupt)?,
        admit_rate: number(rate)?,
        opened: int(opened)? == 1,
        queue_length: int(queue_length)?.max(0) as u64,
        left_head_total: number(left_head_total)? as u64,
        measured_rate: measured_rate(number(ewma)?, number(ewma_weight)?),
        now_ms: int(now_ms)?,
        newest_expiry_ms: number(newest_expiry_ms)? as i64,
        admitted,
    }))
}

/// `put_settings.lua`: `'ok'`, `'already_open'` or `'unknown_event'`.
pub(super) fn put_outcome(reply: String) -> Result<PutOutcome> {
    match reply.as_str() {
        "ok" => Ok(PutOutcome::Written),
        "already_open" => Ok(PutOutcome::AlreadyOpen),
        "unknown_event" => Ok(PutOutcome::Lost),
        _ => Err(Error::Corrupt(format!("put_settings reply {reply:?}"))),
    }
}

/// `set_state.lua`: 1 when the event exists (and its state was set), else 0.
pub(super) fn state_set(reply: i64) -> bool {
    reply == 1
}

/// `release.lua`: -1 for an unknown event, else how many places were released: `None`,
/// or whether the fan held one.
pub(super) fn released(reply: i64) -> Option<bool> {
    (reply >= 0).then_some(reply > 0)
}

/// A fan's leaving, as `Store::leave` did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Left {
    /// Whether the fan held a place (in line or admitted).
    pub removed: bool,
    /// The expiry of the admission their leaving ended, if they were admitted.
    pub admission_expiring_ms: Option<i64>,
    /// Redis time.
    pub at_ms: i64,
}

/// `leave.lua`: `{-1, 0, 0}` for an unknown event (`None`), else `{places removed, the
/// ended admission's expiry or 0, now}`.
pub(super) fn left(reply: (i64, i64, i64)) -> Option<Left> {
    let (removed, expiry_ms, now_ms) = reply;
    (removed >= 0).then_some(Left {
        removed: removed > 0,
        admission_expiring_ms: (expiry_ms > 0).then_some(expiry_ms),
        at_ms: now_ms,
    })
}

/// `restore.lua`: 1 when this call rebuilt the event, 0 when it was there already.
pub(super) fn rebuilt(reply: i64) -> bool {
    reply != 0
}

/// Zero means "not set" in the stored millisecond fields.
pub(super) fn millis(ms: i64) -> Option<DateTime<Utc>> {
    (ms > 0).then(|| Utc.timestamp_millis_opt(ms).single()).flatten()
}

/// Admissions per second from the script's weighted average and its weight; `None`
/// until there is at least a moment of observation to go on.
fn measured_rate(ewma: f64, weight: f64) -> Option<f64> {
    (weight > 0.01).then(|| ewma / weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|field| (*field).to_owned()).collect()
    }

    #[test]
    fn a_locate_reply_is_read_field_by_field() {
        let waiting = strings(&[
            "waiting",
            "1",
            "3",
            "7",
            "0",
            "running",
            "2.5",
            "5",
            "0.5",
            "0",
            "42",
            "1700000000000",
            "1",
            "0",
            "",
            "0",
        ]);
        let Location::Found(located) = location(waiting).unwrap().0 else { panic!("found") };
        assert_eq!(located.placement, Placement::Waiting { position: 3 });
        assert_eq!(located.arrival, Arrival::Joined);
        assert_eq!((located.score, located.queue_length, located.epoch), (Some(42), 7, 1));
        assert_eq!((located.admit_rate, located.measured_rate), (2.5, Some(10.0)));
        assert_eq!((located.now_ms, located.restored_at_ms, located.opens_at), (1_700_000_000_000, None, None));

        let not_found = strings(&[
            "not_found",
            "0",
            "0",
            "7",
            "0",
            "running",
            "2.5",
            "0",
            "0",
            "0",
            "",
            "1700000000000",
            "1",
            "5",
            "",
            "1",
        ]);
        let (not_found, reviving) = location(not_found).unwrap();
        assert!(matches!(not_found, Location::NotFound { restored_at_ms: Some(5), .. }));
        assert!(reviving, "the event is being brought back from retirement");
        assert!(matches!(location(strings(&["unknown_event"])).unwrap(), (Location::UnknownEvent, false)));
        // An admission that began before the organizer shortened the token lifetime
        // would seem to begin later than now: it begins now at the latest.
        let admitted = strings(&[
            "admitted",
            "0",
            "0",
            "7",
            "1700000600000",
            "running",
            "2.5",
            "0",
            "0",
            "0",
            "",
            "1700000000000",
            "1",
            "0",
            "1700000000250",
            "0",
        ]);
        let Location::Found(located) = location(admitted).unwrap().0 else { panic!("found") };
        let admission = Placement::Admitted { admitted_at_ms: 1_700_000_000_000, expires_at_ms: 1_700_000_600_000 };
        assert_eq!(located.placement, admission);
        assert!(location(strings(&["waiting", "1"])).is_err(), "a short reply is corrupt");
    }

    #[test]
    fn an_admit_reply_is_read_field_by_field() {
        let int = Value::Int;
        let text = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(step(vec![int(-1), int(0), int(0), int(0), int(0)]).unwrap(), StepOutcome::UnknownEvent);
        assert_eq!(step(vec![int(2), int(0), int(0), int(0), int(0)]).unwrap(), StepOutcome::Retired);
        let idle = step(vec![int(0), int(1), int(0), int(4), int(2), text("10"), text("0")]).unwrap();
        let room = Room { queue_length: 4, active: 2, max_active: 10, admit_rate: 0.0, sale_opened: true };
        assert_eq!(idle, StepOutcome::Idle(room));
        let stepped = step(vec![
            int(1),
            int(0),
            int(1),
            int(4),
            int(2),
            text("10"),
            text("5"),
            int(1000),
            int(61_000),
            text("fan-a"),
            text("7"),
            text("fan-b"),
            text("-4503599627370000"),
            text("fan-gone"),
            text("5"),
        ])
        .unwrap();
        let StepOutcome::Stepped(step) = stepped else { panic!("stepped") };
        assert_eq!(step.admitted, ["fan-a", "fan-b"]);
        assert_eq!(step.scores, [7, -4_503_599_627_370_000]);
        assert_eq!((step.admitted_at_ms, step.expires_at_ms), (1000, 61_000));
        assert_eq!(step.skipped, [("fan-gone".to_owned(), 5)]);
        assert_eq!(step.room.admit_rate, 5.0);
    }
}
