//! `polyledger demo`, the README's main job, end to end in a temporary directory: it
//! runs, prints the report and where the data lives, writes report.json; a threshold it
//! misses makes it exit 3 with a clear message.
#![cfg(unix)]

use std::process::Command;

fn demo(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_polyledger"))
        .args(["demo", "--http", "127.0.0.1:0", "--ledgers", "2", "--rate", "400"])
        .args(["--duration", "2s", "--no-progress", "--batch", "50", "--data"])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn demo_runs_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let output = demo(&dir.path().join("demo"), &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for needle in ["Succ", "p99", "headline:", "verify ceiling", "data: ", "dairy-0", "liquor-0"] {
        assert!(stdout.contains(needle), "`{needle}` missing from:\n{stdout}");
    }
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("demo/report.json")).unwrap(),
    )
    .unwrap();
    assert!(report["succ"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["fail"], 0, "{report}");
    // A second run reuses the directory and its ledgers (new keys, no conflicts).
    let again = demo(&dir.path().join("demo"), &[]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}

#[test]
fn a_missed_threshold_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let output = demo(&dir.path().join("demo"), &["--expect-tps", "1000000"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("below --expect-tps 1000000"), "{stderr}");
}
