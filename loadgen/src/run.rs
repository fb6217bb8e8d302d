//! The open-loop and closed-loop drivers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::progress::Progress;
use crate::report::Report;
use crate::stats::{Recorder, RunInfo, lock};
use crate::target::{Source, Target};

/// How a run offers load.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Open loop: a fixed offered `rate` in tx/s for `duration`.
    ///
    /// Batches go round-robin over the ledgers; batch `k` is *due* at
    /// `start + k * batch_size / rate`, for every due time before `start + duration`. A batch
    /// is sent when due, whether or not earlier ones have answered (one spawned task per batch).
    /// `max_in_flight` bounds outstanding batches (0 means no bound): when it is reached the
    /// sender waits for a free slot, but latency still counts from the due time, so the wait is
    /// not hidden (no coordinated omission). Batches still waiting for a slot when the duration
    /// ends are not sent and are reported as [`Report::unsent`].
    ///
    /// Tokio's timer has millisecond granularity: when batches are due more often than once a
    /// millisecond they are sent in per-millisecond bursts, and a batch sent up to 1 ms after
    /// its due time has that lateness included in its latency.
    Open {
        /// Offered rate in transactions per second (> 0).
        rate: f64,
        /// How long to send for.
        duration: Duration,
        /// Maximum number of outstanding batches; 0 for no bound.
        max_in_flight: usize,
    },
    /// Closed loop: `concurrency` workers each send a batch, wait for the answer, then send the
    /// next, until `duration` has elapsed. Latency counts from the send time, so this mode
    /// under-reports latency when the target stalls (coordinated omission); use it to model a
    /// fixed number of synchronous clients.
    Closed {
        /// Number of workers (≥ 1).
        concurrency: usize,
        /// How long to keep starting new batches.
        duration: Duration,
    },
}

impl Mode {
    /// How long the mode sends for.
    pub fn duration(&self) -> Duration {
        match self {
            Mode::Open { duration, .. } | Mode::Closed { duration, .. } => *duration,
        }
    }

    /// The offered rate in tx/s (open loop only).
    pub fn offered_rate(&self) -> Option<f64> {
        match self {
            Mode::Open { rate, .. } => Some(*rate),
            Mode::Closed { .. } => None,
        }
    }

    /// A one-line human-readable description.
    pub fn describe(&self, batch_size: usize) -> String {
        match self {
            Mode::Open { rate, duration, max_in_flight } => {
                let bound = if *max_in_flight == 0 {
                    "unbounded in flight".to_owned()
                } else {
                    format!("at most {max_in_flight} batches in flight")
                };
                format!(
                    "open loop, {rate:.0} tx/s offered for {:.1} s (batches of {batch_size}, {bound})",
                    duration.as_secs_f64()
                )
            }
            Mode::Closed { concurrency, duration } => format!(
                "closed loop, {concurrency} worker{} for {:.1} s (batches of {batch_size})",
                if *concurrency == 1 { "" } else { "s" },
                duration.as_secs_f64()
            ),
        }
    }

    fn short_name(&self) -> &'static str {
        match self {
            Mode::Open { .. } => "open",
            Mode::Closed { .. } => "closed",
        }
    }
}

/// The next sequence number to request from a [`Source`] for each ledger.
///
/// A cursor is a cheap handle (clones share state). Pass the same cursor to several
/// [`run_with_cursor`] calls — a warm-up and a measurement, or the stages of
/// [`find_max`](crate::find_max) — to keep consuming the source where the previous run stopped,
/// so no batch is ever submitted twice.
#[derive(Debug, Clone, Default)]
pub struct Cursor {
    next: Arc<Mutex<Vec<u64>>>,
}

impl Cursor {
    /// A cursor at sequence number 0 for every ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next sequence number that will be requested for `ledger`.
    pub fn position(&self, ledger: usize) -> u64 {
        lock(&self.next).get(ledger).copied().unwrap_or(0)
    }

    /// Takes the next batch of `ledger`, advancing only if the source had one.
    fn take<B, S: Source<B> + ?Sized>(&self, source: &S, ledger: usize) -> Option<Arc<B>> {
        let mut next = lock(&self.next);
        if next.len() <= ledger {
            next.resize(ledger + 1, 0);
        }
        let batch = source.batch(ledger, next[ledger])?;
        next[ledger] += 1;
        Some(batch)
    }
}

/// Runs `mode` against `target` with batches from `source`, starting at sequence number 0 on
/// every ledger, and waits for every submitted batch before reporting.
///
/// # Panics
///
/// Panics if the source has no ledgers or a batch size of 0, if an open-loop rate is not a
/// positive finite number, if a closed loop has no workers, or if the target panics.
pub async fn run<T: Target, S: Source<T::Batch>>(
    target: Arc<T>,
    source: Arc<S>,
    mode: Mode,
    progress: Progress,
) -> Report {
    run_with_cursor(target, source, mode, progress, &Cursor::new()).await
}

/// Like [`run`], but takes batches from `source` where `cursor` points and advances it.
///
/// # Panics
///
/// As [`run`].
pub async fn run_with_cursor<T: Target, S: Source<T::Batch>>(
    target: Arc<T>,
    source: Arc<S>,
    mode: Mode,
    progress: Progress,
    cursor: &Cursor,
) -> Report {
    let ledgers = source.ledgers();
    let batch_size = source.batch_size();
    assert!(ledgers > 0, "the source has no ledgers");
    assert!(batch_size > 0, "the source's batch size is 0");
    let start = Instant::now();
    let planned_end = start + mode.duration();
    let recorder = Arc::new(Recorder::new(start, ledgers, batch_size));
    let guard = progress.start(recorder.clone(), mode.offered_rate());

    let unsent = match mode {
        Mode::Open { rate, duration, max_in_flight } => {
            assert!(rate.is_finite() && rate > 0.0, "open-loop rate must be > 0, got {rate}");
            let open = OpenLoop {
                interval_s: batch_size as f64 / rate,
                start,
                end: start + duration,
                ledgers,
            };
            open.run(target, source.clone(), cursor, &recorder, max_in_flight).await
                * batch_size as u64
        }
        Mode::Closed { concurrency, .. } => {
            assert!(concurrency > 0, "closed loop needs at least one worker");
            closed_loop(target, source.clone(), cursor, &recorder, concurrency, planned_end).await;
            0
        }
    };
    drop(guard);

    recorder.report(RunInfo {
        name: mode.short_name().to_owned(),
        mode: mode.describe(batch_size),
        offered_tps: mode.offered_rate(),
        planned_end,
        unsent,
        ledger_names: (0..ledgers).map(|i| source.ledger_name(i)).collect(),
    })
}

/// The open-loop schedule.
struct OpenLoop {
    /// Seconds between two due times.
    interval_s: f64,
    start: Instant,
    end: Instant,
    ledgers: usize,
}

impl OpenLoop {
    fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 * self.interval_s)
    }

    /// Number of batches due before the end.
    fn total_due(&self) -> u64 {
        let span = self.end.saturating_duration_since(self.start).as_secs_f64();
        let mut n = (span / self.interval_s).ceil() as u64;
        while n > 0 && self.due(n - 1) >= self.end {
            n -= 1;
        }
        while self.due(n) < self.end {
            n += 1;
        }
        n
    }

    /// Sends on schedule; returns the number of batches that were due but not sent.
    async fn run<T: Target, S: Source<T::Batch>>(
        &self,
        target: Arc<T>,
        source: Arc<S>,
        cursor: &Cursor,
        recorder: &Arc<Recorder>,
        max_in_flight: usize,
    ) -> u64 {
        let permits = if max_in_flight == 0 { Semaphore::MAX_PERMITS } else { max_in_flight };
        let slots = Arc::new(Semaphore::new(permits));
        let mut tasks = JoinSet::new();
        let mut unsent = 0;
        let mut k: u64 = 0;
        loop {
            let due = self.due(k);
            if due >= self.end {
                break;
            }
            if due > Instant::now() {
                sleep_until(due).await;
            }
            while let Some(joined) = tasks.try_join_next() {
                propagate_panic(joined);
            }
            // Wait for a free slot, but never send at or after the end.
            let permit = match timeout_at(self.end, slots.clone().acquire_owned()).await {
                Ok(Ok(permit)) if Instant::now() < self.end => permit,
                _ => {
                    unsent = self.total_due() - k;
                    break;
                }
            };
            let ledger = (k % self.ledgers as u64) as usize;
            let Some(batch) = cursor.take(&*source, ledger) else {
                recorder.on_exhausted(Instant::now());
                break;
            };
            recorder.on_send(ledger, Instant::now());
            let target = target.clone();
            let recorder = recorder.clone();
            tasks.spawn(async move {
                let result = target.submit(ledger, batch).await;
                recorder.on_complete(ledger, due, Instant::now(), result);
                drop(permit);
            });
            k += 1;
        }
        while let Some(joined) = tasks.join_next().await {
            propagate_panic(joined);
        }
        unsent
    }
}

/// `concurrency` workers, each sending its next batch when the previous one answered.
async fn closed_loop<T: Target, S: Source<T::Batch>>(
    target: Arc<T>,
    source: Arc<S>,
    cursor: &Cursor,
    recorder: &Arc<Recorder>,
    concurrency: usize,
    end: Instant,
) {
    let ledgers = source.ledgers() as u64;
    let counter = Arc::new(AtomicU64::new(0));
    let exhausted = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (target, source, cursor, recorder) =
            (target.clone(), source.clone(), cursor.clone(), recorder.clone());
        let (counter, exhausted) = (counter.clone(), exhausted.clone());
        tasks.spawn(async move {
            loop {
                let sent_at = Instant::now();
                if sent_at >= end || exhausted.load(Ordering::Relaxed) {
                    break;
                }
                let ledger = (counter.fetch_add(1, Ordering::Relaxed) % ledgers) as usize;
                let Some(batch) = cursor.take(&*source, ledger) else {
                    exhausted.store(true, Ordering::Relaxed);
                    recorder.on_exhausted(sent_at);
                    break;
                };
                recorder.on_send(ledger, sent_at);
                let result = target.submit(ledger, batch).await;
                recorder.on_complete(ledger, sent_at, Instant::now(), result);
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        propagate_panic(joined);
    }
}

/// Re-raises a panic of a batch task in the caller.
fn propagate_panic(joined: Result<(), JoinError>) {
    if let Err(err) = joined
        && err.is_panic()
    {
        std::panic::resume_unwind(err.into_panic());
    }
}
