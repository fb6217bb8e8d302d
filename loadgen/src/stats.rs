//! Shared, mutex-protected measurement state of one run.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::report::{LatencySummary, LedgerRow, Report};
use crate::target::{BatchResult, MISSING_RESULT, TxResult};

/// Highest latency the histograms track, in microseconds (one hour); larger values saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds with 3 significant figures.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Locks a mutex, ignoring poisoning (the state stays consistent: every update is a few
/// counter increments that cannot panic half-way in a way that matters for a report).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-ledger counters.
struct LedgerStats {
    sent: u64,
    succ: u64,
    fail: u64,
    hist: Histogram<u64>,
}

/// Everything measured so far.
struct State {
    sent: u64,
    last_send: Option<Instant>,
    succ: u64,
    fail: u64,
    errors: BTreeMap<String, u64>,
    error_details: BTreeMap<String, String>,
    hist: Histogram<u64>,
    ledgers: Vec<LedgerStats>,
    last_completion: Option<Instant>,
    exhausted_at: Option<Instant>,
}

impl State {
    fn count_failure(&mut self, ledger: usize, code: String, n: u64) {
        if n == 0 {
            return;
        }
        self.fail += n;
        self.ledgers[ledger].fail += n;
        *self.errors.entry(code).or_insert(0) += n;
    }
}

/// A cheap copy of the live counters for the progress line.
pub(crate) struct Snapshot {
    pub succ: u64,
    pub fail: u64,
    pub p99_ms: Option<f64>,
}

/// Static facts about a run needed to build its [`Report`].
pub(crate) struct RunInfo {
    pub name: String,
    pub mode: String,
    pub offered_tps: Option<f64>,
    /// When sending was planned to stop (start + mode duration).
    pub planned_end: Instant,
    /// Transactions that were due but could not be sent before the end.
    pub unsent: u64,
    pub ledger_names: Vec<String>,
}

/// Collects the outcome of every batch of a run.
pub(crate) struct Recorder {
    start: Instant,
    batch_size: usize,
    state: Mutex<State>,
}

impl Recorder {
    pub(crate) fn new(start: Instant, ledgers: usize, batch_size: usize) -> Self {
        let ledgers = (0..ledgers)
            .map(|_| LedgerStats { sent: 0, succ: 0, fail: 0, hist: new_histogram() })
            .collect();
        Recorder {
            start,
            batch_size,
            state: Mutex::new(State {
                sent: 0,
                last_send: None,
                succ: 0,
                fail: 0,
                errors: BTreeMap::new(),
                error_details: BTreeMap::new(),
                hist: new_histogram(),
                ledgers,
                last_completion: None,
                exhausted_at: None,
            }),
        }
    }

    /// When the run started (due time of the first batch).
    pub(crate) fn start(&self) -> Instant {
        self.start
    }

    /// A batch for `ledger` was handed to the target at `at`.
    pub(crate) fn on_send(&self, ledger: usize, at: Instant) {
        let n = self.batch_size as u64;
        let mut s = lock(&self.state);
        s.sent += n;
        s.ledgers[ledger].sent += n;
        s.last_send = Some(s.last_send.map_or(at, |t| t.max(at)));
    }

    /// The source ran out of batches at `at` (the first report wins).
    pub(crate) fn on_exhausted(&self, at: Instant) {
        let mut s = lock(&self.state);
        if s.exhausted_at.is_none() {
            s.exhausted_at = Some(at);
        }
    }

    /// A batch for `ledger` whose latency counts from `origin` completed at `done`.
    pub(crate) fn on_complete(
        &self,
        ledger: usize,
        origin: Instant,
        done: Instant,
        result: BatchResult,
    ) {
        let latency_us =
            u64::try_from(done.saturating_duration_since(origin).as_micros()).unwrap_or(u64::MAX);
        let size = self.batch_size;
        let mut s = lock(&self.state);
        s.last_completion = Some(s.last_completion.map_or(done, |t| t.max(done)));
        match result {
            BatchResult::Done(results) => {
                let mut committed = 0u64;
                let returned = results.len().min(size);
                for tx in results.into_iter().take(size) {
                    match tx {
                        TxResult::Committed => committed += 1,
                        TxResult::Failed { code } => s.count_failure(ledger, code, 1),
                    }
                }
                s.count_failure(ledger, MISSING_RESULT.to_owned(), (size - returned) as u64);
                if committed > 0 {
                    s.succ += committed;
                    s.hist.saturating_record_n(latency_us, committed);
                    let l = &mut s.ledgers[ledger];
                    l.succ += committed;
                    l.hist.saturating_record_n(latency_us, committed);
                }
            }
            BatchResult::Error { code, detail } => {
                if !s.error_details.contains_key(&code) {
                    s.error_details.insert(code.clone(), detail);
                }
                s.count_failure(ledger, code, size as u64);
            }
        }
    }

    /// Live counters for the progress line.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let s = lock(&self.state);
        let p99_ms = (!s.hist.is_empty()).then(|| us_to_ms(s.hist.value_at_quantile(0.99)));
        Snapshot { succ: s.succ, fail: s.fail, p99_ms }
    }

    /// Builds the final report. Call once every batch has completed.
    pub(crate) fn report(&self, info: RunInfo) -> Report {
        let s = lock(&self.state);
        let exhausted = s.exhausted_at.is_some();
        // Sending stopped at the exhaustion time or at the planned end, or later if a batch was
        // (late) sent after that.
        let stop = s.exhausted_at.unwrap_or(info.planned_end);
        let send_end = s.last_send.map_or(stop, |t| t.max(stop));
        // The measured phase runs until sending stopped or the last batch completed, whichever
        // is later.
        let measured_end = s.last_completion.map_or(send_end, |t| t.max(send_end));
        let send_period_s = secs(send_end.saturating_duration_since(self.start));
        let duration_s = secs(measured_end.saturating_duration_since(self.start));
        let ledgers = s
            .ledgers
            .iter()
            .enumerate()
            .map(|(index, l)| LedgerRow {
                index,
                name: info
                    .ledger_names
                    .get(index)
                    .cloned()
                    .unwrap_or_else(|| format!("ledger-{index}")),
                sent: l.sent,
                succ: l.succ,
                fail: l.fail,
                throughput_tps: per_second(l.succ, duration_s),
                p50_ms: quantile_ms(&l.hist, 0.5),
                p99_ms: quantile_ms(&l.hist, 0.99),
            })
            .collect();
        Report {
            name: info.name,
            mode: info.mode,
            offered_tps: info.offered_tps,
            batch_size: self.batch_size,
            sent: s.sent,
            unsent: if exhausted { 0 } else { info.unsent },
            succ: s.succ,
            fail: s.fail,
            errors: s.errors.clone(),
            error_details: s.error_details.clone(),
            duration_s,
            send_period_s,
            throughput_tps: per_second(s.succ, duration_s),
            send_rate_tps: per_second(s.sent, send_period_s),
            latency: LatencySummary::from_histogram(&s.hist),
            ledgers,
            exhausted,
            histogram: s.hist.clone(),
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// `count / seconds`, or 0 when no time elapsed.
fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

/// Microseconds to milliseconds.
pub(crate) fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// A quantile in milliseconds, 0 for an empty histogram.
pub(crate) fn quantile_ms(hist: &Histogram<u64>, q: f64) -> f64 {
    if hist.is_empty() { 0.0 } else { us_to_ms(hist.value_at_quantile(q)) }
}
