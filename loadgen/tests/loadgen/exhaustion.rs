//! A run stops sending when the source runs dry, and says so.

use std::sync::Arc;
use std::time::Duration;

use loadgen::{Cursor, Mode, Progress, run, run_with_cursor};

use crate::common::{FixedDelay, TestSource};

#[tokio::test(start_paused = true)]
async fn open_loop_stops_when_the_source_is_exhausted() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(10) });
    // 100 tx/s in batches of 10: one batch every 100 ms, but only 5 batches exist.
    let mode = Mode::Open { rate: 100.0, duration: Duration::from_secs(10), max_in_flight: 0 };
    let report = run(target, TestSource::limited(1, 10, 5), mode, Progress::Hidden).await;
    assert!(report.exhausted);
    assert_eq!(report.sent, 5 * 10);
    assert_eq!(report.succ, 50);
    assert_eq!(report.unsent, 0);
    // Sending stopped when the 6th batch was due (0.5 s), not after 10 s.
    assert!((report.send_period_s - 0.5).abs() < 1e-9, "{}", report.send_period_s);
    assert!((report.send_rate_tps - 100.0).abs() < 1e-6);
    assert!(report.text().contains("EXHAUSTED"));
    assert!(report.markdown().contains("EXHAUSTED"));
    assert!(report.to_json().contains("\"exhausted\": true"));
}

#[tokio::test(start_paused = true)]
async fn closed_loop_stops_when_the_source_is_exhausted() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(10) });
    let mode = Mode::Closed { concurrency: 3, duration: Duration::from_secs(10) };
    let report = run(target, TestSource::limited(2, 10, 4), mode, Progress::Hidden).await;
    assert!(report.exhausted);
    assert_eq!(report.sent, 2 * 4 * 10);
    assert_eq!(report.succ, 80);
    assert!(report.send_period_s < 1.0);
}

#[tokio::test(start_paused = true)]
async fn a_cursor_continues_where_the_last_run_stopped() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(10) });
    let source = TestSource::new(2, 10);
    let cursor = Cursor::new();
    let mode = Mode::Open { rate: 200.0, duration: Duration::from_secs(1), max_in_flight: 0 };
    // Warm-up, then measurement: 20 batches each, 10 per ledger.
    run_with_cursor(target.clone(), source.clone(), mode.clone(), Progress::Hidden, &cursor).await;
    assert_eq!((cursor.position(0), cursor.position(1)), (10, 10));
    let report = run_with_cursor(target, source.clone(), mode, Progress::Hidden, &cursor).await;
    assert_eq!(report.sent, 200);
    assert_eq!(source.seqs(0), (0..20).collect::<Vec<_>>());
    assert_eq!(source.seqs(1), (0..20).collect::<Vec<_>>());
}
