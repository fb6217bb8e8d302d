//! `Expect::check`.

use std::sync::Arc;
use std::time::Duration;

use loadgen::{Expect, Mode, Progress, Report, run};

use crate::common::{FixedDelay, FlakyTarget, TestSource};

/// 100 ms per batch, one batch in flight, 10 tx per batch: at most ~100 tx/s.
async fn capped_run() -> Report {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(100) });
    let mode = Mode::Open { rate: 1000.0, duration: Duration::from_secs(2), max_in_flight: 1 };
    run(target, TestSource::new(1, 10), mode, Progress::Hidden).await
}

#[tokio::test(start_paused = true)]
async fn capped_throughput_fails_the_tps_expectation() {
    let report = capped_run().await;
    assert!((90.0..=110.0).contains(&report.throughput_tps), "{}", report.throughput_tps);
    // The batches that could not be sent are reported, not silently dropped.
    assert!(report.unsent > 1500, "unsent {}", report.unsent);
    assert_eq!(report.sent + report.unsent, 2000);

    let err = Expect { tps: Some(1000.0), ..Expect::default() }.check(&report).unwrap_err();
    assert_eq!(
        err,
        vec![format!("throughput {:.1} tx/s is below --expect-tps 1000", report.throughput_tps)]
    );
    assert!(err[0].starts_with("throughput 10") || err[0].starts_with("throughput 9"), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_slot_counts_as_latency() {
    // Sent batches waited for the single slot; latency counts from their due time, so p99 is
    // far above the target's 100 ms service time.
    let report = capped_run().await;
    assert!(report.latency.p99_ms > 1000.0, "p99 {} ms", report.latency.p99_ms);
    let err = Expect { p99_ms: Some(1000.0), ..Expect::default() }.check(&report).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err[0].starts_with("p99 latency ") && err[0].ends_with(" ms is above --expect-p99-ms 1000")
    );
}

#[tokio::test(start_paused = true)]
async fn all_thresholds_pass_and_fail_together() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(10) });
    let mode = Mode::Open { rate: 1000.0, duration: Duration::from_secs(1), max_in_flight: 0 };
    let report = run(target, TestSource::new(2, 10), mode, Progress::Hidden).await;
    let ok = Expect { tps: Some(900.0), p99_ms: Some(11.0), max_error_ratio: Some(0.0) };
    assert_eq!(ok.check(&report), Ok(()));
    assert_eq!(Expect::default().check(&report), Ok(()));

    let mode = Mode::Open { rate: 1200.0, duration: Duration::from_secs(1), max_in_flight: 0 };
    let flaky =
        run(Arc::new(FlakyTarget::default()), TestSource::new(1, 4), mode, Progress::Hidden).await;
    let strict = Expect { tps: Some(10_000.0), p99_ms: Some(1.0), max_error_ratio: Some(0.01) };
    let err = strict.check(&flaky).unwrap_err();
    assert_eq!(err.len(), 3, "{err:?}");
    assert!(err[0].contains("below --expect-tps 10000"));
    assert!(err[1].contains("above --expect-p99-ms 1"));
    assert!(
        err[2].starts_with(
            "error ratio 0.5000 (600 of 1200 tx failed) is above --expect-error-ratio 0.01"
        ),
        "{}",
        err[2]
    );
}
