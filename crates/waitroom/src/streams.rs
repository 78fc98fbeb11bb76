//! Fans' standing pushed over Server-Sent Events (issue 17):
//! `GET /v1/events/{event}/queue/{ticket}/stream`, polling's push twin.
//!
//! Per event streamed, a replica reads the line once per `waitroom.stream.tick_ms` for
//! all its streaming fans (`scripts/watch.lua`): how many fans have left the head of the
//! line so far, and who was admitted since the last read. Everyone behind the head moved
//! up by each departure there, so a fan's position is their last exact position less
//! the head's departures since — no Redis call per fan per tick. A fan is read exactly
//! (a poll, with its fresh ticket and the presence it records) when they connect, once
//! per third of the abandonment timeout (so a connected stream keeps its fan from being
//! skipped as gone, at the abandonment scale), when the tick names them
//! admitted (the update carries the access token, and the stream ends), and when the
//! room's state or the sale's changes (`sold_out` is told within a tick of this replica
//! learning it, with the waitlist token when there is a waitlist). A fan who left in the
//! middle of the line is not a head departure: positions between exact reads may be a
//! little high, never low.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::LineStreamConfig;
use crate::domain::budget::SaleState;
use crate::domain::settings::EventState;
use crate::domain::ticket::Ticket;
use crate::domain::{eta, poll};
use crate::error::{Error, Result};
use crate::inventory::Inventory;
use crate::model::FanView;
use crate::queue::Queue;
use crate::store::{LineWatch, Store};

/// Every stream this replica serves.
pub struct LineStreams {
    queue: Queue,
    store: Store,
    inventory: Inventory,
    config: LineStreamConfig,
    abandon_after_secs: u64,
    hubs: Mutex<HashMap<Uuid, Arc<Hub>>>,
    open: Arc<AtomicUsize>,
    /// Cancelled when the replica shuts down: every stream ends.
    closing: CancellationToken,
}

/// One event's line as this replica reads it for its streaming fans.
struct Hub {
    event_id: Uuid,
    ticks: broadcast::Sender<Arc<Tick>>,
    /// The latest tick, for fans who connect between two.
    latest: Mutex<Option<Arc<Tick>>>,
    /// Its task stopped: a fan who found this hub takes a new one.
    retired: Mutex<bool>,
}

/// One read of the line, shared by every fan streaming it.
struct Tick {
    line: LineWatch,
    admitted: HashSet<String>,
    sale_state: Option<SaleState>,
}

/// What a streaming fan is sent.
pub enum Update {
    /// The fan's standing, as a poll answers it.
    Standing(Box<FanView>),
    /// The stream ends on this refusal (the fan left, was skipped as gone, the queue
    /// was reset): what a poll would have answered.
    Refused(Error),
}

/// One fan's stream: [`FanStream::next`] until it ends.
pub struct FanStream {
    streams: Arc<LineStreams>,
    hub: Arc<Hub>,
    ticks: broadcast::Receiver<Arc<Tick>>,
    ticket: Ticket,
    /// The last standing sent.
    view: FanView,
    /// The fan's position at the last exact read (None: not in line yet, or admitted).
    exact_position: Option<u64>,
    /// The head's departures as of that read: from the latest tick then, or the next.
    left_head_base: Option<u64>,
    next_exact_read: tokio::time::Instant,
    pending: VecDeque<Update>,
    ended: bool,
    ends_at: tokio::time::Instant,
    _open: OpenStream,
}

impl LineStreams {
    pub fn new(
        queue: Queue,
        store: Store,
        inventory: Inventory,
        config: LineStreamConfig,
        abandon_after_secs: u64,
    ) -> Self {
        Self {
            queue,
            store,
            inventory,
            config,
            abandon_after_secs,
            hubs: Mutex::default(),
            open: Arc::default(),
            closing: CancellationToken::new(),
        }
    }

    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.config.keep_alive_secs)
    }

    /// Ends every stream and stops reading when `shutdown` is cancelled.
    pub fn end_all_on(&self, shutdown: CancellationToken) {
        let closing = self.closing.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            closing.cancel();
        });
    }

    /// The ticket's fan's stream, starting with their standing now. A refusal a poll
    /// would give (unknown ticket, event or fan) is answered before the stream starts.
    pub async fn subscribe(self: &Arc<Self>, event_id: Uuid, ticket: Ticket) -> Result<FanStream> {
        let open = OpenStream::new(self)?;
        let (hub, ticks) = self.hub(event_id);
        let mut stream = FanStream {
            streams: self.clone(),
            hub,
            ticks,
            view: self.queue.poll(event_id, ticket.clone()).await?,
            ticket,
            exact_position: None,
            left_head_base: None,
            next_exact_read: tokio::time::Instant::now(),
            pending: VecDeque::new(),
            ended: false,
            ends_at: tokio::time::Instant::now() + Duration::from_secs(self.config.max_stream_secs),
            _open: open,
        };
        let view = stream.view.clone();
        stream.took_exact(view);
        Ok(stream)
    }

    fn hub(self: &Arc<Self>, event_id: Uuid) -> (Arc<Hub>, broadcast::Receiver<Arc<Tick>>) {
        let mut hubs = lock(&self.hubs);
        if let Some(hub) = hubs.get(&event_id) {
            let retired = lock(&hub.retired);
            if !*retired {
                let ticks = hub.ticks.subscribe();
                drop(retired);
                return (hub.clone(), ticks);
            }
        }
        let (sender, ticks) = broadcast::channel(4);
        let hub = Arc::new(Hub { event_id, ticks: sender, latest: Mutex::default(), retired: Mutex::new(false) });
        hubs.insert(event_id, hub.clone());
        crate::metrics::line_streams(self.open.load(Ordering::Relaxed), hubs.len());
        tokio::spawn(self.clone().follow(hub.clone()));
        (hub, ticks)
    }

    /// The hub's task: reads the line every `tick_ms` while anyone streams it, and
    /// retires once nobody has for `idle_secs`.
    async fn follow(self: Arc<Self>, hub: Arc<Hub>) {
        let mut every = tokio::time::interval(Duration::from_millis(self.config.tick_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut watched_at, idle) = (Instant::now(), Duration::from_secs(self.config.idle_secs));
        // Admissions older than the hub are no news: each fan's first exact read saw them.
        let mut admitted_after_ms = chrono::Utc::now().timestamp_millis();
        loop {
            tokio::select! {
                _ = self.closing.cancelled() => break,
                _ = every.tick() => {}
            }
            if hub.ticks.receiver_count() > 0 {
                watched_at = Instant::now();
            } else if watched_at.elapsed() >= idle && self.retire(&hub) {
                break;
            }
            match self.store.watch(hub.event_id, admitted_after_ms).await {
                Ok(Some(line)) => {
                    crate::metrics::line_stream_read("ok");
                    admitted_after_ms = admitted_after_ms.max(line.newest_expiry_ms);
                    let admitted = line.admitted.iter().map(|(fan, _)| fan.clone()).collect();
                    let tick = Arc::new(Tick { line, admitted, sale_state: self.inventory.sale_state(hub.event_id) });
                    *lock(&hub.latest) = Some(tick.clone());
                    let _ = hub.ticks.send(tick);
                }
                // Lost in a wipe: each fan's next exact read rebuilds it or says why not.
                Ok(None) => crate::metrics::line_stream_read("unknown_event"),
                Err(e) => {
                    crate::metrics::line_stream_read("failed");
                    tracing::debug!(event_id = %hub.event_id, error = %e, "the line could not be read for its streams");
                }
            }
        }
        *lock(&hub.retired) = true;
        let mut hubs = lock(&self.hubs);
        if hubs.get(&hub.event_id).is_some_and(|kept| Arc::ptr_eq(kept, &hub)) {
            hubs.remove(&hub.event_id);
        }
        crate::metrics::line_streams(self.open.load(Ordering::Relaxed), hubs.len());
    }

    /// Retires the hub if still nobody streams it; under the hubs' lock, so a fan
    /// subscribing meanwhile either counts or finds it retired.
    fn retire(&self, hub: &Hub) -> bool {
        let _hubs = lock(&self.hubs);
        let mut retired = lock(&hub.retired);
        *retired = hub.ticks.receiver_count() == 0;
        *retired
    }
}

impl FanStream {
    /// The next update for the fan; None when the stream ends (admitted and told,
    /// refused, after `max_stream_secs`, or as the replica shuts down).
    pub async fn next(&mut self) -> Option<Update> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                return Some(update);
            }
            if self.ended {
                return None;
            }
            let tick = tokio::select! {
                _ = self.streams.closing.cancelled() => return None,
                _ = tokio::time::sleep_until(self.ends_at) => return None,
                _ = tokio::time::sleep_until(self.next_exact_read) => None,
                tick = self.ticks.recv() => match tick {
                    Ok(tick) => Some(tick),
                    // Ticks missed may have named this fan admitted: read them exactly.
                    Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            match tick {
                Some(tick) if !self.needs_exact_read(&tick) => self.estimate(&tick),
                _ => self.read_exactly().await,
            }
        }
    }

    /// Whether the tick changes what only an exact read tells: an admission (its
    /// token), a new state of the room or the sale (the waitlist token, the ETA's
    /// basis), the opening (a pre-queue fan's place).
    fn needs_exact_read(&self, tick: &Tick) -> bool {
        tick.admitted.contains(&self.view.fan_id)
            || tick.line.state != self.view.event_state
            || tick.sale_state != self.view.sale_state
            || (self.view.status == "pre_queue" && tick.line.opened)
    }

    async fn read_exactly(&mut self) {
        let event_id = self.view.event_id;
        match self.streams.queue.poll(event_id, self.ticket.clone()).await {
            Ok(view) => {
                if let Ok(ticket) = self.streams.queue.verify(event_id, &view.ticket) {
                    self.ticket = ticket;
                }
                self.took_exact(view);
            }
            // Out of reach for now: the fan keeps what they were told and the next tick
            // or pacing read tries again.
            Err(e) if e.is_transient() => {
                self.next_exact_read = tokio::time::Instant::now() + Duration::from_millis(self.streams.config.tick_ms);
            }
            Err(e) => {
                self.pending.push_back(Update::Refused(e));
                self.ended = true;
            }
        }
    }

    /// Sends an exact standing and takes it as the base of the estimates that follow.
    fn took_exact(&mut self, view: FanView) {
        self.exact_position = view.position;
        self.left_head_base = lock(&self.hub.latest).as_ref().map(|tick| tick.line.left_head_total);
        // Presence needs a read per third of the abandonment timeout, as the slowest
        // polling fan gives; positions come from the ticks meanwhile, and admissions,
        // openings and state changes bring a read of their own.
        let pacing = poll::longest_secs(self.streams.abandon_after_secs);
        self.next_exact_read = tokio::time::Instant::now() + Duration::from_secs(pacing);
        self.ended = view.status == "admitted";
        self.view = view.clone();
        self.pending.push_back(Update::Standing(Box::new(view)));
    }

    /// The fan's standing from the tick alone; sent if it changed.
    fn estimate(&mut self, tick: &Tick) {
        let left_head_base = *self.left_head_base.get_or_insert(tick.line.left_head_total);
        let Some(position) = self.exact_position else {
            return;
        };
        let moved_up = tick.line.left_head_total.saturating_sub(left_head_base);
        let position = position.saturating_sub(moved_up).max(1);
        let mut view = self.view.clone();
        view.position = Some(position);
        view.queue_length = tick.line.queue_length;
        view.eta_seconds = eta_secs(position, tick);
        if view.position != self.view.position
            || view.eta_seconds != self.view.eta_seconds
            || view.queue_length != self.view.queue_length
        {
            self.view = view.clone();
            self.pending.push_back(Update::Standing(Box::new(view)));
        }
    }
}

/// The wait for a fan at `position`, as a poll would estimate it; none once sold out.
fn eta_secs(position: u64, tick: &Tick) -> Option<u64> {
    let line = &tick.line;
    let state: EventState = line.state;
    eta::estimate_secs(position, state, line.measured_rate, line.admit_rate)
        .filter(|_| tick.sale_state != Some(SaleState::SoldOut))
}

/// Counts an open stream for `max_streams` and the gauge, until dropped.
struct OpenStream {
    open: Arc<AtomicUsize>,
}

impl OpenStream {
    fn new(streams: &LineStreams) -> Result<Self> {
        let max = streams.config.max_streams;
        if streams.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_err() {
            crate::metrics::line_stream_refused();
            return Err(Error::TooManyStreams);
        }
        crate::metrics::line_streams(streams.open.load(Ordering::Relaxed), lock(&streams.hubs).len());
        Ok(Self { open: streams.open.clone() })
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let open = self.open.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!(crate::metrics::LINE_STREAMS).set(open as f64);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
