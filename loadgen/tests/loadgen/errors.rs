//! Failures are counted by code and never as successes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use loadgen::{BatchResult, MISSING_RESULT, Mode, Progress, Target, TxResult, run};

use crate::common::{FlakyTarget, TestBatch, TestSource};

#[tokio::test(start_paused = true)]
async fn errors_are_counted_by_code() {
    // 400 tx/s in batches of 4 for 1 s: exactly 100 batches, due every 10 ms.
    let mode = Mode::Open { rate: 400.0, duration: Duration::from_secs(1), max_in_flight: 0 };
    let target = Arc::new(FlakyTarget::default());
    let report = run(target.clone(), TestSource::new(1, 4), mode, Progress::Hidden).await;

    assert_eq!(target.calls.load(std::sync::atomic::Ordering::Relaxed), 100);
    // 33 batches (n % 3 == 2) fail whole: 132 tx. 67 batches commit 3 tx and fail 1.
    assert_eq!(report.sent, 400);
    assert_eq!(report.succ, 67 * 3);
    assert_eq!(report.fail, 33 * 4 + 67);
    assert_eq!(report.succ + report.fail, report.sent);
    let expected: BTreeMap<String, u64> =
        [("HTTP_503".to_owned(), 132), ("VERSION_CONFLICT".to_owned(), 67)].into();
    assert_eq!(report.errors, expected);
    assert_eq!(report.error_details["HTTP_503"], "service unavailable");
    // Only committed transactions are latency samples.
    assert_eq!(report.latency_histogram().len(), 201);
    assert_eq!(report.latency.count, 201);
    assert_eq!(report.ledgers[0].succ, 201);
    assert_eq!(report.ledgers[0].fail, 199);
    assert!((report.throughput_tps - 201.0 / report.duration_s).abs() < 1e-9);
    assert!((report.error_ratio().unwrap() - 199.0 / 400.0).abs() < 1e-12);
}

/// Answers with fewer results than transactions, or with a batch error.
struct Short;

impl Target for Short {
    type Batch = TestBatch;

    async fn submit(&self, ledger: usize, _batch: Arc<TestBatch>) -> BatchResult {
        if ledger == 0 {
            BatchResult::Done(vec![TxResult::Committed])
        } else {
            BatchResult::error("TIMEOUT", "no answer in 30 s")
        }
    }
}

#[tokio::test(start_paused = true)]
async fn missing_results_are_failures() {
    let mode = Mode::Closed { concurrency: 2, duration: Duration::from_secs(1) };
    let source = TestSource::limited(2, 5, 3);
    let report = run(Arc::new(Short), source, mode, Progress::Hidden).await;
    assert!(report.exhausted);
    assert_eq!(report.sent, 30);
    assert_eq!(report.succ, 3);
    assert_eq!(report.fail, 27);
    let expected: BTreeMap<String, u64> =
        [(MISSING_RESULT.to_owned(), 12), ("TIMEOUT".to_owned(), 15)].into();
    assert_eq!(report.errors, expected);
    assert_eq!(report.latency.count, 3);
    assert_eq!(report.ledgers[1].succ, 0);
    assert_eq!(report.ledgers[1].fail, 15);
}
