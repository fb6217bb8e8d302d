//! Ramp search for the highest sustainable rate.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::expect::{Expect, Labels};
use crate::progress::Progress;
use crate::report::{Report, ascii_table, markdown_table, seconds, tps};
use crate::run::{Cursor, Mode, run_with_cursor};
use crate::target::{Source, Target};

/// Fraction of the offered rate a stage must achieve to pass.
const MIN_ACHIEVED_FRACTION: f64 = 0.9;
/// Largest error ratio a passing stage may have.
const MAX_ERROR_RATIO: f64 = 0.01;

/// Parameters of a [`find_max`] ramp.
#[derive(Debug, Clone, PartialEq)]
pub struct FindMax {
    /// Rate of the first stage, tx/s (> 0).
    pub start_rate: f64,
    /// Each stage offers the previous stage's rate times `factor` (> 1).
    pub factor: f64,
    /// Highest rate tried; the last stage runs at exactly this rate if the geometric series
    /// would overshoot it.
    pub max_rate: f64,
    /// Duration of each stage.
    pub stage: Duration,
    /// A passing stage has p99 latency at most this.
    pub p99_objective: Duration,
    /// `max_in_flight` of each open-loop stage (0 for no bound).
    pub max_in_flight: usize,
}

/// One stage of a [`find_max`] ramp.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Offered rate, tx/s.
    pub rate: f64,
    /// Whether the stage met every criterion.
    pub passed: bool,
    /// Why it did not pass (empty if it did).
    pub failures: Vec<String>,
    /// The stage's full report.
    pub report: Report,
}

/// The outcome of a [`find_max`] ramp.
#[derive(Debug, Clone, Serialize)]
pub struct FindMaxReport {
    /// Every stage run, in order; all but possibly the last passed.
    pub stages: Vec<StageReport>,
    /// Index in `stages` of the best (highest passing) stage, if any passed.
    pub best: Option<usize>,
    /// Offered rate of the best stage, tx/s.
    pub best_rate: Option<f64>,
    /// Whether the ramp stopped because the source ran out of batches.
    pub exhausted: bool,
}

impl FindMaxReport {
    /// The best (highest passing) stage, if any passed.
    pub fn best_stage(&self) -> Option<&StageReport> {
        self.best.map(|i| &self.stages[i])
    }

    fn rows(&self) -> Vec<Vec<String>> {
        self.stages
            .iter()
            .map(|s| {
                let r = &s.report;
                let p99 =
                    if r.latency.count == 0 { "-".to_owned() } else { seconds(r.latency.p99_ms) };
                vec![
                    r.name.clone(),
                    tps(s.rate),
                    r.succ.to_string(),
                    r.fail.to_string(),
                    tps(r.throughput_tps),
                    p99,
                    if s.passed { "pass".to_owned() } else { s.failures.join("; ") },
                ]
            })
            .collect()
    }

    fn summary(&self) -> String {
        let mut out = match self.best_rate {
            Some(rate) => format!("Highest passing rate: {rate:.1} tx/s"),
            None => "No stage passed".to_owned(),
        };
        if self.exhausted {
            out.push_str(" (EXHAUSTED: the workload ran out of batches; the ramp stopped early)");
        }
        out
    }

    /// A plain-text table of the stages and the best rate.
    pub fn text(&self) -> String {
        let mut out = ascii_table(&STAGE_HEADER, &self.rows());
        let _ = writeln!(out, "{}", self.summary());
        out
    }

    /// The same content as [`text`](Self::text), as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = markdown_table(&STAGE_HEADER, &self.rows());
        let _ = writeln!(out, "\n**{}**", self.summary());
        out
    }
}

const STAGE_HEADER: [&str; 7] =
    ["Stage", "Offered (TPS)", "Succ", "Fail", "Throughput (TPS)", "p99 (s)", "Result"];

/// Ramps an open-loop rate up to find the highest rate the target sustains.
///
/// Stages run at `start_rate`, `start_rate * factor`, … (capped at `max_rate`), `stage` long
/// each. A stage passes when its p99 latency is at most `p99_objective`, its achieved throughput
/// is at least 90% of the offered rate and at most 1% of its transactions failed. The ramp stops
/// at the first failing stage, at `max_rate`, or when the source is exhausted (that stage does
/// not pass). The best rate is the last passing stage's.
///
/// The source is consumed across stages through one [`Cursor`], so no batch is submitted twice.
///
/// # Panics
///
/// Panics if `start_rate` or `max_rate` is not a positive finite number or `factor <= 1`, and as
/// [`run`](crate::run).
pub async fn find_max<T: Target, S: Source<T::Batch>>(
    target: Arc<T>,
    source: Arc<S>,
    params: FindMax,
    progress: Progress,
) -> FindMaxReport {
    let FindMax { start_rate, factor, max_rate, stage, p99_objective, max_in_flight } = params;
    assert!(start_rate.is_finite() && start_rate > 0.0, "start_rate must be > 0");
    assert!(max_rate.is_finite() && max_rate > 0.0, "max_rate must be > 0");
    assert!(factor.is_finite() && factor > 1.0, "factor must be > 1");
    let cursor = Cursor::new();
    let labels = Labels {
        tps: "the 90%-of-offered floor",
        p99_ms: "the p99 objective (ms)",
        max_error_ratio: "the error budget",
    };
    let mut stages: Vec<StageReport> = Vec::new();
    let mut rate = start_rate.min(max_rate);
    loop {
        let mode = Mode::Open { rate, duration: stage, max_in_flight };
        let report = run_with_cursor(target.clone(), source.clone(), mode, progress, &cursor).await;
        let report = report.with_name(format!("stage {}", stages.len() + 1));
        let expect = Expect {
            tps: Some(rate * MIN_ACHIEVED_FRACTION),
            p99_ms: Some(p99_objective.as_secs_f64() * 1000.0),
            max_error_ratio: Some(MAX_ERROR_RATIO),
        };
        let mut failures = expect.check_labelled(&report, &labels).err().unwrap_or_default();
        if report.exhausted {
            failures.push("the workload was exhausted during the stage".to_owned());
        }
        let passed = failures.is_empty();
        let exhausted = report.exhausted;
        stages.push(StageReport { rate, passed, failures, report });
        if !passed || exhausted || rate >= max_rate {
            break;
        }
        rate = (rate * factor).min(max_rate);
    }
    let best = stages.iter().rposition(|s| s.passed);
    FindMaxReport {
        best_rate: best.map(|i| stages[i].rate),
        best,
        exhausted: stages.last().is_some_and(|s| s.report.exhausted),
        stages,
    }
}
