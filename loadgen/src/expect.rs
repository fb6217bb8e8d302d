//! Pass/fail thresholds on a [`Report`].

use serde::Serialize;

use crate::report::Report;

/// Thresholds a run must meet, e.g. "≥ 10,000 tx/s with p99 ≤ 1,000 ms and ≤ 1% errors".
/// `None` fields are not checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Expect {
    /// Minimum achieved throughput ([`Report::throughput_tps`]) in tx/s.
    pub tps: Option<f64>,
    /// Maximum p99 latency of committed transactions in ms.
    pub p99_ms: Option<f64>,
    /// Maximum fraction of completed transactions that failed ([`Report::error_ratio`]).
    pub max_error_ratio: Option<f64>,
}

/// How the thresholds are named in messages.
pub(crate) struct Labels<'a> {
    pub tps: &'a str,
    pub p99_ms: &'a str,
    pub max_error_ratio: &'a str,
}

const FLAG_LABELS: Labels<'static> = Labels {
    tps: "--expect-tps",
    p99_ms: "--expect-p99-ms",
    max_error_ratio: "--expect-error-ratio",
};

impl Expect {
    /// Checks `report` against every set threshold; on failure returns one message per missed
    /// threshold, e.g. `"throughput 812.0 tx/s is below --expect-tps 1000"`.
    ///
    /// A p99 threshold fails when no transaction committed, and an error-ratio threshold fails
    /// when no transaction completed, since neither can then be shown to hold. Exhaustion of the
    /// source is not checked here (see [`Report::exhausted`]).
    pub fn check(&self, report: &Report) -> Result<(), Vec<String>> {
        self.check_labelled(report, &FLAG_LABELS)
    }

    pub(crate) fn check_labelled(
        &self,
        report: &Report,
        labels: &Labels,
    ) -> Result<(), Vec<String>> {
        let mut failures = Vec::new();
        if let Some(min) = self.tps
            && report.throughput_tps < min
        {
            failures.push(format!(
                "throughput {:.1} tx/s is below {} {min}",
                report.throughput_tps, labels.tps
            ));
        }
        if let Some(max) = self.p99_ms {
            if report.latency.count == 0 {
                failures.push(format!(
                    "p99 latency is unknown (no transaction committed); {} {max} not met",
                    labels.p99_ms
                ));
            } else if report.latency.p99_ms > max {
                failures.push(format!(
                    "p99 latency {:.1} ms is above {} {max}",
                    report.latency.p99_ms, labels.p99_ms
                ));
            }
        }
        if let Some(max) = self.max_error_ratio {
            match report.error_ratio() {
                None => failures.push(format!(
                    "error ratio is unknown (no transaction completed); {} {max} not met",
                    labels.max_error_ratio
                )),
                Some(ratio) if ratio > max => failures.push(format!(
                    "error ratio {ratio:.4} ({} of {} tx failed) is above {} {max}",
                    report.fail,
                    report.succ + report.fail,
                    labels.max_error_ratio
                )),
                Some(_) => {}
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures) }
    }
}
