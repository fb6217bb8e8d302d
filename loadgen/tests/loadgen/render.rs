//! Text, Markdown and JSON renderings, and the progress line.

use std::sync::Arc;
use std::time::Duration;

use loadgen::{Mode, Progress, Report, run};

use crate::common::{FixedDelay, FlakyTarget, TestSource};

async fn sample() -> Report {
    let mode = Mode::Open { rate: 1200.0, duration: Duration::from_secs(1), max_in_flight: 64 };
    run(Arc::new(FlakyTarget::default()), TestSource::new(2, 4), mode, Progress::Hidden).await
}

#[tokio::test(start_paused = true)]
async fn text_report() {
    let text = sample().await.text();
    for needle in [
        "| Name ",
        "| Succ ",
        "| Fail ",
        "Send Rate (TPS)",
        "Max Latency (s)",
        "Throughput (TPS)",
        "p50",
        "p99",
        "p99.9",
        "HTTP_503: 400 tx (e.g. \"service unavailable\")",
        "VERSION_CONFLICT: 200 tx",
        "chain-0",
        "chain-1",
        "open loop, 1200 tx/s offered",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("EXHAUSTED"));
    println!("{text}");
}

#[tokio::test(start_paused = true)]
async fn markdown_report() {
    let md = sample().await.markdown();
    assert!(md.contains("|---"), "{md}");
    assert!(md.contains("| Name | Succ | Fail |"), "{md}");
    assert!(md.contains("| chain-1 |"), "{md}");
    println!("{md}");
}

#[tokio::test(start_paused = true)]
async fn json_report() {
    let report = sample().await;
    let json = serde_json::to_string(&report).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["succ"], 600);
    assert_eq!(value["errors"]["HTTP_503"], 400);
    assert_eq!(value["offered_tps"], 1200.0);
    assert_eq!(value["ledgers"][1]["name"], "chain-1");
    assert!(value["latency"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(report.to_json().parse::<serde_json::Value>().unwrap(), value);
}

#[tokio::test(start_paused = true)]
async fn progress_bar_does_not_disturb_the_run() {
    let target = Arc::new(FixedDelay { delay: Duration::from_millis(10) });
    let mode = Mode::Open { rate: 1000.0, duration: Duration::from_secs(2), max_in_flight: 0 };
    let hidden = run(target.clone(), TestSource::new(1, 10), mode.clone(), Progress::Hidden).await;
    let bar = run(target, TestSource::new(1, 10), mode, Progress::Bar).await;
    assert_eq!(bar.succ, hidden.succ);
    assert_eq!(bar.duration_s, hidden.duration_s);
    assert_eq!(bar.latency, hidden.latency);
}
