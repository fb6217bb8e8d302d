//! Fake targets and sources.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadgen::{BatchResult, Source, Target, TxResult};
use tokio::time::{Instant, sleep_until};

/// A batch as the fakes see it.
pub struct TestBatch {
    pub size: usize,
}

pub fn committed(n: usize) -> BatchResult {
    BatchResult::Done(vec![TxResult::Committed; n])
}

/// Hands out batches, optionally at most `limit` per ledger, and panics if a batch is requested
/// twice.
pub struct TestSource {
    pub ledgers: usize,
    pub batch_size: usize,
    pub limit: Option<u64>,
    pub requested: Mutex<HashSet<(usize, u64)>>,
}

impl TestSource {
    pub fn new(ledgers: usize, batch_size: usize) -> Arc<Self> {
        Arc::new(TestSource { ledgers, batch_size, limit: None, requested: Mutex::default() })
    }

    pub fn limited(ledgers: usize, batch_size: usize, limit: u64) -> Arc<Self> {
        Arc::new(TestSource {
            ledgers,
            batch_size,
            limit: Some(limit),
            requested: Mutex::default(),
        })
    }

    /// Sequence numbers handed out for `ledger`, sorted.
    pub fn seqs(&self, ledger: usize) -> Vec<u64> {
        let mut seqs: Vec<u64> = self
            .requested
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l == ledger)
            .map(|(_, s)| *s)
            .collect();
        seqs.sort_unstable();
        seqs
    }
}

impl Source<TestBatch> for TestSource {
    fn ledgers(&self) -> usize {
        self.ledgers
    }

    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn batch(&self, ledger: usize, seq: u64) -> Option<Arc<TestBatch>> {
        if self.limit.is_some_and(|limit| seq >= limit) {
            return None;
        }
        assert!(
            self.requested.lock().unwrap().insert((ledger, seq)),
            "batch {ledger}/{seq} replayed"
        );
        Some(Arc::new(TestBatch { size: self.batch_size }))
    }

    fn ledger_name(&self, ledger: usize) -> String {
        format!("chain-{ledger}")
    }
}

/// Answers every batch after a fixed delay.
pub struct FixedDelay {
    pub delay: Duration,
}

impl Target for FixedDelay {
    type Batch = TestBatch;

    async fn submit(&self, _ledger: usize, batch: Arc<TestBatch>) -> BatchResult {
        tokio::time::sleep(self.delay).await;
        committed(batch.size)
    }
}

/// Answers after `delay`, except that nothing answers during the stall window
/// `[t0 + stall_from, t0 + stall_to)`: batches that would complete in it complete at
/// `t0 + stall_to + delay` instead.
pub struct StallTarget {
    pub t0: Instant,
    pub delay: Duration,
    pub stall_from: Duration,
    pub stall_to: Duration,
}

impl Target for StallTarget {
    type Batch = TestBatch;

    async fn submit(&self, _ledger: usize, batch: Arc<TestBatch>) -> BatchResult {
        let now = Instant::now();
        let normal = now + self.delay;
        let done = if normal >= self.t0 + self.stall_from && now < self.t0 + self.stall_to {
            self.t0 + self.stall_to + self.delay
        } else {
            normal
        };
        sleep_until(done).await;
        committed(batch.size)
    }
}

/// Every 3rd batch fails with HTTP_503; the others commit all but one transaction, which fails
/// with VERSION_CONFLICT.
#[derive(Default)]
pub struct FlakyTarget {
    pub calls: AtomicU64,
}

impl Target for FlakyTarget {
    type Batch = TestBatch;

    async fn submit(&self, _ledger: usize, batch: Arc<TestBatch>) -> BatchResult {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if n % 3 == 2 {
            return BatchResult::error("HTTP_503", "service unavailable");
        }
        let mut results = vec![TxResult::Committed; batch.size - 1];
        results.push(TxResult::failed("VERSION_CONFLICT"));
        BatchResult::Done(results)
    }
}

/// A single FIFO server processing `capacity_tps` transactions per second, plus a fixed
/// network/finality delay: latency stays flat below capacity and grows without bound above it.
pub struct CapacityServer {
    pub capacity_tps: f64,
    pub base: Duration,
    pub next_free: Mutex<Option<Instant>>,
}

impl CapacityServer {
    pub fn new(capacity_tps: f64, base: Duration) -> Arc<Self> {
        Arc::new(CapacityServer { capacity_tps, base, next_free: Mutex::new(None) })
    }
}

impl Target for CapacityServer {
    type Batch = TestBatch;

    async fn submit(&self, _ledger: usize, batch: Arc<TestBatch>) -> BatchResult {
        let now = Instant::now();
        let finish = {
            let mut next_free = self.next_free.lock().unwrap();
            let begin = next_free.map_or(now, |t| t.max(now));
            let finish = begin + Duration::from_secs_f64(batch.size as f64 / self.capacity_tps);
            *next_free = Some(finish);
            finish
        };
        sleep_until(finish + self.base).await;
        committed(batch.size)
    }
}
