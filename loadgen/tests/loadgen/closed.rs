//! Closed-loop behaviour and a real-time smoke test on the multi-threaded runtime.

use std::sync::Arc;
use std::time::Duration;

use loadgen::{Mode, Progress, run};

use crate::common::{FixedDelay, TestSource};

#[tokio::test(start_paused = true)]
async fn closed_loop_spreads_batches_round_robin() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(10) });
    let mode = Mode::Closed { concurrency: 4, duration: Duration::from_secs(1) };
    let report = run(target, TestSource::new(2, 10), mode, Progress::Hidden).await;
    // 4 workers × 100 batches (one every 10 ms) × 10 tx.
    assert_eq!(report.sent, 4000);
    assert_eq!(report.succ, 4000);
    assert_eq!(report.offered_tps, None);
    assert!(!report.exhausted);
    assert_eq!(report.ledgers.len(), 2);
    assert_eq!(report.ledgers[0].succ, 2000);
    assert_eq!(report.ledgers[1].succ, 2000);
    assert_eq!(report.latency.min_ms, 10.0);
    assert!(report.latency.max_ms <= 10.01);
    assert!((report.throughput_tps - 4000.0).abs() < 1.0, "{}", report.throughput_tps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_smoke_test() {
    // Wall-clock run: only counts are asserted, never timings.
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(2) });
    let mode = Mode::Open { rate: 5000.0, duration: Duration::from_millis(300), max_in_flight: 0 };
    let report = run(target.clone(), TestSource::new(3, 10), mode, Progress::Hidden).await;
    // A heavily loaded machine may fall behind the schedule and leave batches unsent.
    assert_eq!(report.sent + report.unsent, 1500);
    assert_eq!(report.succ, report.sent);
    assert_eq!(report.latency.count, report.sent);

    let mode = Mode::Closed { concurrency: 4, duration: Duration::from_millis(200) };
    let report = run(target, TestSource::new(3, 10), mode, Progress::Hidden).await;
    assert!(report.succ > 0);
    assert_eq!(report.succ, report.sent);
}
