//! The ramp finds the capacity of a queueing server.

use std::sync::Arc;
use std::time::Duration;

use loadgen::{FindMax, Progress, find_max};

use crate::common::{CapacityServer, FixedDelay, TestSource};

fn params(start_rate: f64, factor: f64, max_rate: f64) -> FindMax {
    FindMax {
        start_rate,
        factor,
        max_rate,
        stage: Duration::from_secs(2),
        p99_objective: Duration::from_millis(200),
        max_in_flight: 10_000,
    }
}

#[tokio::test(start_paused = true)]
async fn finds_the_capacity_of_a_5000_tps_server() {
    let server = CapacityServer::new(5000.0, Duration::from_millis(10));
    let source = TestSource::new(2, 10);
    let result =
        find_max(server, source.clone(), params(1000.0, 2.0, 16_000.0), Progress::Hidden).await;

    let rates: Vec<f64> = result.stages.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [1000.0, 2000.0, 4000.0, 8000.0]);
    let best = result.best_rate.expect("a stage passed");
    assert!((3000.0..=5000.0).contains(&best), "best {best}");
    assert_eq!(result.best_stage().unwrap().rate, 4000.0);
    let last = result.stages.last().unwrap();
    assert!(!last.passed);
    assert!(last.failures.iter().any(|f| f.contains("p99 objective")), "{:?}", last.failures);
    assert!(!result.exhausted);
    // Below capacity: latency is the flat 10 ms plus the 2 ms service time.
    let passing = &result.stages[2].report;
    assert!(passing.latency.p99_ms < 15.0, "{}", passing.latency.p99_ms);

    // The source was consumed across stages without reusing a batch: sequence numbers are
    // contiguous from 0 (the source itself panics on a replay).
    let batches: u64 = result.stages.iter().map(|s| s.report.sent / 10).sum();
    let seqs = source.seqs(0).len() + source.seqs(1).len();
    assert_eq!(seqs as u64, batches);
    assert_eq!(source.seqs(0), (0..source.seqs(0).len() as u64).collect::<Vec<_>>());

    assert!(result.text().contains("Highest passing rate: 4000.0 tx/s"));
    assert!(result.markdown().contains("|---"));
    println!("{}", result.text());
}

#[tokio::test(start_paused = true)]
async fn a_finer_ramp_gets_closer() {
    let server = CapacityServer::new(5000.0, Duration::from_millis(10));
    let result =
        find_max(server, TestSource::new(1, 10), params(3000.0, 1.25, 20_000.0), Progress::Hidden)
            .await;
    assert_eq!(result.best_rate, Some(4687.5));
    assert_eq!(result.stages.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_last_stage_runs_at_max_rate() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(5) });
    let result =
        find_max(target, TestSource::new(1, 10), params(1000.0, 2.0, 3000.0), Progress::Hidden)
            .await;
    let rates: Vec<f64> = result.stages.iter().map(|s| s.rate).collect();
    assert_eq!(rates, [1000.0, 2000.0, 3000.0]);
    assert!(result.stages.iter().all(|s| s.passed));
    assert_eq!(result.best_rate, Some(3000.0));
}

#[tokio::test(start_paused = true)]
async fn exhaustion_stops_the_ramp() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(5) });
    // 1000 tx/s for 2 s needs 200 batches; 300 exist, so the second stage runs dry.
    let source = TestSource::limited(1, 10, 300);
    let result = find_max(target, source, params(1000.0, 2.0, 8000.0), Progress::Hidden).await;
    assert_eq!(result.stages.len(), 2);
    assert!(result.exhausted);
    assert_eq!(result.best_rate, Some(1000.0));
    assert!(result.text().contains("EXHAUSTED"));
}
