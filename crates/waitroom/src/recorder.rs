//! Records every admission in PostgreSQL, and every admitted fan who left early, without
//! ever holding admission up.
//!
//! Each admission step hands the fans it admitted to [`Recorder::push`] (a fan who
//! leaves is pushed the same way, after their admission), which only
//! appends them to a buffer in memory. A task of its own ([`Recorder::run`]) writes
//! the buffer in one batched `INSERT … SELECT * FROM unnest(…)` per round (and one
//! `UPDATE` for the departures, in the same transaction) — normally
//! one statement per admitter tick, whatever the number of events or fans. A write
//! that fails (PostgreSQL down, partitioned, slower than its deadline) leaves the
//! records in the buffer for the next round and is counted; meanwhile admission goes
//! on, so a database outage never stops the sale. The buffer is bounded: past
//! [`CAPACITY`] records the oldest are dropped (and counted), since the newest are the
//! live admissions a rebuild after a wipe needs most.
//!
//! A retried write may repeat records whose first write did commit (its outcome was
//! unknown): the table's primary key skips them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::ledger::{Ledger, Record};

/// Records kept while PostgreSQL cannot take them: at 1,000 admissions a second,
/// about 100 s of outage (~15 MB).
pub const CAPACITY: usize = 100_000;
/// Records per statement; a backlog is written in several.
const BATCH: usize = 5_000;
/// How often a failing recorder repeats its warning.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(10);

pub struct Recorder {
    ledger: Ledger,
    buffer: Mutex<Buffer>,
    /// One flush at a time, so a write never races another for the same records.
    flushing: tokio::sync::Mutex<()>,
    wake: Notify,
}

#[derive(Default)]
struct Buffer {
    /// Records not yet known to be written, oldest first, each with a sequence number.
    pending: VecDeque<(u64, Record)>,
    next: u64,
}

impl Recorder {
    pub fn new(ledger: Ledger) -> Self {
        Self { ledger, buffer: Mutex::default(), flushing: tokio::sync::Mutex::new(()), wake: Notify::new() }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues records for the next write, in order, and wakes the writer. Never waits.
    pub fn push(&self, records: impl IntoIterator<Item = Record>) {
        let mut buffer = self.buffer();
        for record in records {
            let seq = buffer.next;
            buffer.next += 1;
            buffer.pending.push_back((seq, record));
        }
        let over = buffer.pending.len().saturating_sub(CAPACITY);
        if over > 0 {
            buffer.pending.drain(..over);
            crate::metrics::admission_records_dropped(over as u64);
            tracing::error!(dropped = over, "admission record buffer full: oldest records dropped unwritten");
        }
        crate::metrics::admission_records_pending(buffer.pending.len());
        drop(buffer);
        self.wake.notify_one();
    }

    /// Records waiting to be written.
    pub fn pending(&self) -> usize {
        self.buffer().pending.len()
    }

    /// Writes every pending record, a batch per statement; stops at the first failure,
    /// keeping what was not written. Returns how many records were written.
    pub async fn flush(&self) -> Result<usize, Error> {
        let _one_at_a_time = self.flushing.lock().await;
        let mut written = 0;
        loop {
            let batch: Vec<(u64, Record)> = self.buffer().pending.iter().take(BATCH).cloned().collect();
            let Some(&(last, _)) = batch.last() else { break };
            let size = batch.len();
            let result = self.ledger.record(batch.into_iter().map(|(_, record)| record).collect()).await;
            if let Err(e) = result {
                crate::metrics::admission_record_failed();
                return Err(e);
            }
            // Records dropped meanwhile (buffer full) are gone from the front already;
            // everything up to `last` is written.
            let mut buffer = self.buffer();
            while buffer.pending.front().is_some_and(|&(seq, _)| seq <= last) {
                buffer.pending.pop_front();
            }
            crate::metrics::admission_records_pending(buffer.pending.len());
            written += size;
            if size < BATCH {
                break;
            }
        }
        Ok(written)
    }

    /// Writes records as they come until `shutdown`, then tries once more. After a
    /// failure it waits `retry` before trying again.
    pub async fn run(&self, retry: Duration, shutdown: CancellationToken) {
        let mut failing: Option<(Instant, Instant, u64)> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(retry) => {}
            }
            if self.pending() == 0 {
                continue;
            }
            match (self.flush().await, failing) {
                (Ok(_), None) => {}
                (Ok(_), Some((since, _, failures))) => {
                    tracing::info!(
                        failing_for_ms = since.elapsed().as_millis() as u64,
                        failures,
                        "admission records written again"
                    );
                    failing = None;
                }
                (Err(e), None) => {
                    tracing::warn!(error = %e, pending = self.pending(), "cannot record admissions; retrying");
                    failing = Some((Instant::now(), Instant::now(), 1));
                    tokio::time::sleep(retry).await;
                }
                (Err(e), Some((since, reported, failures))) => {
                    let now = Instant::now();
                    if now.duration_since(reported) >= FAILURE_LOG_EVERY {
                        tracing::warn!(
                            error = %e,
                            pending = self.pending(),
                            failing_for_ms = since.elapsed().as_millis() as u64,
                            "still cannot record admissions"
                        );
                        failing = Some((since, now, failures + 1));
                    } else {
                        failing = Some((since, reported, failures + 1));
                    }
                    tokio::time::sleep(retry).await;
                }
            }
        }
        if self.pending() > 0 {
            if let Err(e) = self.flush().await {
                tracing::error!(error = %e, unwritten = self.pending(), "admissions left unrecorded at shutdown");
            }
        }
    }
}
