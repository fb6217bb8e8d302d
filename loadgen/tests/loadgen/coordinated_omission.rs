//! The open loop does not hide a stall; the closed loop does (coordinated omission).

use std::sync::Arc;
use std::time::Duration;

use loadgen::{Mode, Progress, Report, run};
use tokio::time::Instant;

use crate::common::{StallTarget, TestSource};

const MS: u64 = 1000; // microseconds per millisecond

/// A target answering after 10 ms, frozen between t = 1.0 s and t = 1.5 s of the run.
fn stalling() -> Arc<StallTarget> {
    Arc::new(StallTarget {
        t0: Instant::now(),
        delay: Duration::from_millis(10),
        stall_from: Duration::from_millis(1000),
        stall_to: Duration::from_millis(1500),
    })
}

/// Committed samples with latency above `ms`.
fn above(report: &Report, ms: u64) -> u64 {
    let h = report.latency_histogram();
    h.len() - h.count_between(0, ms * MS)
}

#[tokio::test(start_paused = true)]
async fn open_loop_records_the_stall() {
    let mode = Mode::Open { rate: 2000.0, duration: Duration::from_secs(3), max_in_flight: 1000 };
    let report = run(stalling(), TestSource::new(2, 10), mode, Progress::Hidden).await;

    assert_eq!(report.sent, 6000);
    assert_eq!(report.succ, 6000);
    assert_eq!(report.fail, 0);
    assert_eq!(report.unsent, 0);
    assert_eq!(report.latency_histogram().len(), 6000);
    // Batches due from 0.99 s to 1.5 s wait for the end of the stall: ~100 batches of 10 tx
    // with latencies spread from ~520 ms down to ~15 ms.
    let slow = above(&report, 20);
    assert!((900..=1100).contains(&slow), "{slow} samples above 20 ms");
    // About half of them (due before ~1.26 s) waited more than 250 ms.
    let very_slow = above(&report, 250);
    assert!((400..=700).contains(&very_slow), "{very_slow} samples above 250 ms");
    let l = &report.latency;
    assert!(l.max_ms >= 490.0 && l.max_ms <= 530.0, "max {} ms", l.max_ms);
    assert!((9.9..=10.1).contains(&l.p50_ms), "p50 {} ms", l.p50_ms);
    assert!(l.p99_ms > 400.0, "p99 {} ms", l.p99_ms);
    // Sending kept to the schedule despite the stall.
    assert!((report.send_rate_tps - 2000.0).abs() < 1.0, "send rate {}", report.send_rate_tps);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_hides_the_stall() {
    let open = Mode::Open { rate: 2000.0, duration: Duration::from_secs(3), max_in_flight: 1000 };
    let open = run(stalling(), TestSource::new(2, 10), open, Progress::Hidden).await;

    let closed = Mode::Closed { concurrency: 1, duration: Duration::from_secs(3) };
    let closed = run(stalling(), TestSource::new(2, 10), closed, Progress::Hidden).await;

    // The single closed-loop worker is stuck on one batch during the whole stall: that batch
    // is the only slow sample, and nothing is sent (so nothing is measured) meanwhile.
    let closed_slow = above(&closed, 250);
    let open_slow = above(&open, 250);
    assert_eq!(closed_slow, 10, "one batch of 10 tx");
    assert!(open_slow >= 40 * closed_slow, "open {open_slow} vs closed {closed_slow}");
    // The closed loop's p99 looks perfectly healthy although users would have waited ~0.5 s.
    assert!(closed.latency.p99_ms < 20.0, "closed p99 {} ms", closed.latency.p99_ms);
    assert!(open.latency.p99_ms > 400.0, "open p99 {} ms", open.latency.p99_ms);
    // Its max still shows the stall, but only once.
    assert!(closed.latency.max_ms >= 490.0);
    // And it silently offered far less load than the open loop during the run.
    assert!(closed.sent < open.sent / 2, "closed sent {}", closed.sent);
    println!("open loop:\n{}\nclosed loop:\n{}", open.text(), closed.text());
    println!("samples > 250 ms: open {open_slow}, closed {closed_slow}");
}
