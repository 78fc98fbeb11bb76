//! The live seat map's streams on one replica (issue 17, DECISIONS.md D3): however many
//! fans watch an event here, the replica reads the event's changes once per
//! `gateway.seat_stream.poll_ms` and sends every watcher the same update.
//!
//! Per event watched, a [`Hub`] keeps the map in memory (`seat_feed::live`), a task
//! reading the change feed from the map's position, and a broadcast channel of the
//! deltas. A client subscribes under the map's lock, so what it is sent first (a
//! snapshot, or the deltas it missed since its `Last-Event-ID`) and the deltas that
//! follow join without a gap; each delta says which positions it covers, and a client
//! finding one that does not fit (it fell behind the channel, or the hub started again
//! from a snapshot) is sent a fresh snapshot. A slow client therefore costs at most
//! `client_queue` queued updates, never memory without bound.
//!
//! Each message is framed as a Server-Sent Event once, and every client is handed the
//! same bytes (reference-counted): 10,000 viewers of a 50,000-seat venue share one
//! 72 kB snapshot instead of holding a copy each while their sockets drain.
//!
//! No doorbell is rung by the orders (a `NOTIFY` would add a statement to every order,
//! and D9 counts what orders pay): the poll is the fan-out's only cost, one indexed read
//! per event and replica per interval, and bursts within an interval go out as one
//! update. An event nobody has watched for `idle_secs` is no longer read.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::body::Bytes;
use sales::Sales;
use seat_feed::live::{CatchUp, Delta, Fit, LiveSeatMap, SeatsRead, Snapshot};
use seat_feed::Position;
use tokio::sync::{broadcast, OnceCell};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::SeatStreamConfig;
use crate::error::{Error, Result};

/// Every stream this replica serves.
pub struct SeatStreams {
    sales: Sales,
    config: SeatStreamConfig,
    hubs: Mutex<HashMap<Uuid, Arc<OnceCell<Arc<Hub>>>>>,
    open: Arc<AtomicUsize>,
    /// Cancelled when the replica shuts down: every stream ends, so the graceful
    /// shutdown does not wait for them.
    closing: CancellationToken,
}

/// One event's live map on this replica.
struct Hub {
    event_id: Uuid,
    live: Mutex<Live>,
    updates: broadcast::Sender<Update>,
}

struct Live {
    map: LiveSeatMap,
    /// Its task stopped: a client that found this hub takes a new one.
    retired: bool,
    /// The map's snapshot framed as an event, for as long as the map stays there.
    snapshot_frame: Option<(Position, Bytes)>,
}

impl Live {
    fn new(map: LiveSeatMap) -> Self {
        Self { map, retired: false, snapshot_frame: None }
    }

    /// The map now as a `snapshot` event, framed once per position.
    fn snapshot(&mut self) -> Message {
        let position = self.map.position();
        if let Some((framed_at, frame)) = &self.snapshot_frame {
            if *framed_at == position {
                return Message::Snapshot(frame.clone());
            }
        }
        let snapshot: Arc<Snapshot> = self.map.snapshot();
        let frame = frame("snapshot", snapshot.position, &snapshot.json);
        self.snapshot_frame = Some((position, frame.clone()));
        Message::Snapshot(frame)
    }
}

#[derive(Clone)]
enum Update {
    Delta(Arc<Delta>, Bytes),
    /// The hub started again from a snapshot (it fell behind the feed's pruning).
    Reset,
}

/// What a client is sent: Server-Sent Events, framed.
pub enum Message {
    Snapshot(Bytes),
    Delta(Bytes),
    /// A comment, so proxies keep an idle stream open.
    KeepAlive,
}

impl Message {
    pub fn into_frame(self) -> Bytes {
        match self {
            Self::Snapshot(frame) | Self::Delta(frame) => frame,
            Self::KeepAlive => Bytes::from_static(b": keep-alive\n\n"),
        }
    }
}

/// One event: its name, its id (the position), its data on one line (JSON has no
/// newline).
fn frame(event: &str, id: Position, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\nid: {id}\ndata: {data}\n\n"))
}

fn delta_message(delta: &Delta) -> Message {
    Message::Delta(frame("changes", delta.to, &delta.json))
}

/// A client's stream: [`Subscription::next`] until it ends.
pub struct Subscription {
    hub: Arc<Hub>,
    updates: broadcast::Receiver<Update>,
    /// Every change below it has been sent.
    position: Position,
    pending: VecDeque<Message>,
    ends_at: tokio::time::Instant,
    keep_alive: std::time::Duration,
    next_keep_alive: tokio::time::Instant,
    closing: CancellationToken,
    _open: OpenStream,
}

impl SeatStreams {
    pub fn new(sales: Sales, config: SeatStreamConfig) -> Self {
        Self { sales, config, hubs: Mutex::default(), open: Arc::default(), closing: CancellationToken::new() }
    }

    pub fn config(&self) -> &SeatStreamConfig {
        &self.config
    }

    /// Ends every stream and stops reading when `shutdown` is cancelled.
    pub fn end_all_on(&self, shutdown: CancellationToken) {
        let closing = self.closing.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            closing.cancel();
        });
    }

    /// A stream of the event's seats for a client that was at `last_event_id` (its
    /// last `id:`), or new. `404 event_not_found` for an event the sale does not know,
    /// `503 too_many_streams` past `max_streams`.
    pub async fn subscribe(self: &Arc<Self>, event_id: Uuid, last_event_id: Option<Position>) -> Result<Subscription> {
        let open = OpenStream::new(self)?;
        loop {
            let hub = self.hub(event_id).await?;
            let mut live = lock(&hub.live);
            if live.retired {
                drop(live);
                self.forget(event_id, &hub);
                continue;
            }
            let updates = hub.updates.subscribe();
            let mut pending = VecDeque::new();
            let catch_up = last_event_id.map_or(CatchUp::Snapshot, |since| live.map.catch_up(since));
            let position = match catch_up {
                CatchUp::UpToDate => last_event_id.unwrap_or_default(),
                CatchUp::Deltas(deltas) => {
                    let position = deltas.last().map_or(live.map.position(), |delta| delta.to);
                    pending.extend(deltas.iter().map(|delta| delta_message(delta)));
                    position
                }
                CatchUp::Snapshot => {
                    pending.push_back(live.snapshot());
                    live.map.position()
                }
            };
            drop(live);
            let now = tokio::time::Instant::now();
            return Ok(Subscription {
                hub,
                updates,
                position,
                pending,
                ends_at: now + self.config.max_stream(),
                keep_alive: self.config.keep_alive(),
                next_keep_alive: now + self.config.keep_alive(),
                closing: self.closing.clone(),
                _open: open,
            });
        }
    }

    /// The event's seats now, as a stream's first message carries them.
    pub async fn snapshot(self: &Arc<Self>, event_id: Uuid) -> Result<Arc<Snapshot>> {
        loop {
            let hub = self.hub(event_id).await?;
            let mut live = lock(&hub.live);
            if !live.retired {
                return Ok(live.map.snapshot());
            }
            drop(live);
            self.forget(event_id, &hub);
        }
    }

    /// The event's hub, started (a snapshot read, then its task) by the first client;
    /// clients arriving meanwhile wait for that one read.
    async fn hub(self: &Arc<Self>, event_id: Uuid) -> Result<Arc<Hub>> {
        let slot = lock(&self.hubs).entry(event_id).or_default().clone();
        let started = slot.get_or_try_init(|| self.start(event_id)).await.cloned();
        if started.is_err() {
            // An event that could not be read (unknown, or the database down) keeps no
            // slot: made-up event ids must not fill the map.
            let mut hubs = lock(&self.hubs);
            if hubs.get(&event_id).is_some_and(|kept| Arc::ptr_eq(kept, &slot) && kept.get().is_none()) {
                hubs.remove(&event_id);
            }
        }
        started
    }

    async fn start(self: &Arc<Self>, event_id: Uuid) -> Result<Arc<Hub>> {
        let (seats, kept_for_waitlist, position) = self.sales.live_seat_snapshot(event_id).await?;
        let map = LiveSeatMap::new(seats, kept_for_waitlist, position, self.config.history);
        let (updates, _) = broadcast::channel(self.config.client_queue);
        let hub = Arc::new(Hub { event_id, live: Mutex::new(Live::new(map)), updates });
        tokio::spawn(self.clone().follow(hub.clone()));
        self.report();
        Ok(hub)
    }

    /// Drops the event's slot if it still holds `hub`.
    fn forget(&self, event_id: Uuid, hub: &Arc<Hub>) {
        let mut hubs = lock(&self.hubs);
        if hubs.get(&event_id).and_then(|slot| slot.get()).is_some_and(|kept| Arc::ptr_eq(kept, hub)) {
            hubs.remove(&event_id);
        }
        drop(hubs);
        self.report();
    }

    /// The hub's task: reads the event's changes every `poll_ms` while anyone watches,
    /// and retires the hub once nobody has for `idle_secs`.
    async fn follow(self: Arc<Self>, hub: Arc<Hub>) {
        let mut every = tokio::time::interval(self.config.poll());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watched_at = Instant::now();
        loop {
            tokio::select! {
                _ = self.closing.cancelled() => break,
                _ = every.tick() => {}
            }
            if hub.updates.receiver_count() > 0 {
                watched_at = Instant::now();
            } else if watched_at.elapsed() >= self.config.idle() && self.retire(&hub) {
                break;
            }
            self.read(&hub).await;
        }
        lock(&hub.live).retired = true;
        self.forget(hub.event_id, &hub);
    }

    /// Marks the hub retired if still nobody watches; under its lock, so a client
    /// subscribing meanwhile either counts or sees it retired.
    fn retire(&self, hub: &Hub) -> bool {
        let mut live = lock(&hub.live);
        live.retired = hub.updates.receiver_count() == 0;
        live.retired
    }

    async fn read(&self, hub: &Hub) {
        let (event_id, since) = (hub.event_id, lock(&hub.live).map.position());
        let read = self.sales.live_seats_since(event_id, since, self.config.max_changes_per_read).await;
        match read {
            Ok(SeatsRead::Changed { seats, kept_for_waitlist, watermark }) => {
                crate::metrics::seat_stream_read("changes");
                let mut live = lock(&hub.live);
                if let Some(delta) = live.map.apply(&seats, kept_for_waitlist, watermark) {
                    // Sent under the lock: a client subscribing takes its snapshot either
                    // before this delta (and receives it) or after (and skips it).
                    let frame = frame("changes", delta.to, &delta.json);
                    let _ = hub.updates.send(Update::Delta(delta, frame));
                }
            }
            Ok(SeatsRead::Behind) => {
                crate::metrics::seat_stream_read("behind");
                match self.sales.live_seat_snapshot(event_id).await {
                    Ok((seats, kept_for_waitlist, position)) => {
                        let mut live = lock(&hub.live);
                        live.map = LiveSeatMap::new(seats, kept_for_waitlist, position, self.config.history);
                        live.snapshot_frame = None;
                        let _ = hub.updates.send(Update::Reset);
                    }
                    Err(e) => self.read_failed(event_id, e),
                }
            }
            Err(e) => self.read_failed(event_id, e),
        }
    }

    /// What the clients have stays; the next poll reads again from the same position.
    fn read_failed(&self, event_id: Uuid, error: sales::Error) {
        crate::metrics::seat_stream_read("failed");
        tracing::debug!(%event_id, error = ?error, "the seat feed could not be read for the streams");
    }

    fn report(&self) {
        let events = lock(&self.hubs).len();
        crate::metrics::seat_streams(self.open.load(Ordering::Relaxed), events);
    }
}

impl Subscription {
    /// The next message for the client; None when the stream ends (after
    /// `max_stream_secs`, or as the replica shuts down).
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                self.next_keep_alive = tokio::time::Instant::now() + self.keep_alive;
                return Some(message);
            }
            let update = tokio::select! {
                _ = self.closing.cancelled() => return None,
                _ = tokio::time::sleep_until(self.ends_at) => return None,
                _ = tokio::time::sleep_until(self.next_keep_alive) => {
                    self.next_keep_alive = tokio::time::Instant::now() + self.keep_alive;
                    return Some(Message::KeepAlive);
                }
                update = self.updates.recv() => update,
            };
            match update {
                Ok(Update::Delta(delta, frame)) => match delta.fit(self.position) {
                    Fit::Apply => {
                        self.position = delta.to;
                        self.next_keep_alive = tokio::time::Instant::now() + self.keep_alive;
                        return Some(Message::Delta(frame));
                    }
                    Fit::Skip => {}
                    Fit::Gap => self.send_snapshot(),
                },
                // Too slow for the channel, or the hub started again: what it missed
                // is gone, so it gets the map whole.
                Ok(Update::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => self.send_snapshot(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    fn send_snapshot(&mut self) {
        let mut live = lock(&self.hub.live);
        self.pending.push_back(live.snapshot());
        self.position = live.map.position();
    }
}

/// Counts an open stream for `max_streams` and the gauge, until dropped.
struct OpenStream {
    open: Arc<AtomicUsize>,
}

impl OpenStream {
    fn new(streams: &SeatStreams) -> Result<Self> {
        let max = streams.config.max_streams;
        if streams.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_err() {
            crate::metrics::seat_stream_refused();
            return Err(Error::TooManyStreams);
        }
        streams.report();
        Ok(Self { open: streams.open.clone() })
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let open = self.open.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!(crate::metrics::SEAT_STREAMS).set(open as f64);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
