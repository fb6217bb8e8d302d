//! The result of a run and its text, Markdown and JSON renderings.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{quantile_ms, us_to_ms};

/// Latency statistics of the committed transactions, in milliseconds.
///
/// All values are 0 when no transaction committed (`count == 0`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples (committed transactions).
    pub count: u64,
    /// Smallest latency.
    pub min_ms: f64,
    /// Mean latency.
    pub avg_ms: f64,
    /// Largest latency.
    pub max_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
}

impl LatencySummary {
    /// Summarises a histogram of latencies in microseconds.
    pub fn from_histogram(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return LatencySummary {
                count: 0,
                min_ms: 0.0,
                avg_ms: 0.0,
                max_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
            };
        }
        LatencySummary {
            count: hist.len(),
            min_ms: us_to_ms(hist.min()),
            avg_ms: hist.mean() / 1000.0,
            max_ms: us_to_ms(hist.max()),
            p50_ms: quantile_ms(hist, 0.5),
            p90_ms: quantile_ms(hist, 0.9),
            p99_ms: quantile_ms(hist, 0.99),
            p999_ms: quantile_ms(hist, 0.999),
        }
    }
}

/// Per-ledger results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerRow {
    /// Ledger index, as passed to [`Target::submit`](crate::Target::submit).
    pub index: usize,
    /// Display name, from [`Source::ledger_name`](crate::Source::ledger_name).
    pub name: String,
    /// Transactions sent to this ledger.
    pub sent: u64,
    /// Committed transactions.
    pub succ: u64,
    /// Failed transactions (per-transaction failures and whole-batch errors).
    pub fail: u64,
    /// Committed transactions per second over the measured phase ([`Report::duration_s`]).
    pub throughput_tps: f64,
    /// Median latency of committed transactions, ms.
    pub p50_ms: f64,
    /// 99th-percentile latency of committed transactions, ms.
    pub p99_ms: f64,
}

/// The result of one run.
///
/// Time definitions:
///
/// * the run **starts** when the first batch is due (open loop) or sent (closed loop);
/// * the **sending period** ([`send_period_s`](Self::send_period_s)) runs from the start to the
///   end of the mode's duration, or to the moment the source was exhausted if that came first
///   (or to the last send, if a batch was sent later than that);
/// * the **measured phase** ([`duration_s`](Self::duration_s)) runs from the start to the end of
///   the sending period or the last completion of any batch, whichever is later. Achieved
///   throughput is committed transactions divided by it, so a system that falls behind and
///   drains its backlog after the sending period gets a correspondingly lower throughput.
///
/// Latency of a committed transaction is its batch's completion time minus the batch's due time
/// (open loop) or send time (closed loop). Failed transactions never enter the latency
/// statistics.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Short label for the first column of the table (e.g. `"open"`, `"stage 3"`).
    pub name: String,
    /// Human-readable description of the mode.
    pub mode: String,
    /// Offered rate in tx/s (open loop only).
    pub offered_tps: Option<f64>,
    /// Transactions per batch.
    pub batch_size: usize,
    /// Transactions sent.
    pub sent: u64,
    /// Transactions that were due (open loop) but not sent before the end of the run because
    /// `max_in_flight` batches were outstanding. Not counted as failures; 0 when exhausted.
    pub unsent: u64,
    /// Committed transactions.
    pub succ: u64,
    /// Failed transactions (per-transaction failures plus every transaction of a failed batch).
    pub fail: u64,
    /// Failed transactions by error code.
    pub errors: BTreeMap<String, u64>,
    /// The first detail message seen for each whole-batch error code.
    pub error_details: BTreeMap<String, String>,
    /// Length of the measured phase in seconds (see the type documentation).
    pub duration_s: f64,
    /// Length of the sending period in seconds (see the type documentation).
    pub send_period_s: f64,
    /// Achieved throughput: `succ / duration_s`.
    pub throughput_tps: f64,
    /// Send rate: `sent / send_period_s`.
    pub send_rate_tps: f64,
    /// Latency statistics of committed transactions.
    pub latency: LatencySummary,
    /// Per-ledger results, in ledger order.
    pub ledgers: Vec<LedgerRow>,
    /// Whether the source ran out of batches, so sending stopped before the mode's duration.
    pub exhausted: bool,
    #[serde(skip)]
    pub(crate) histogram: Histogram<u64>,
}

const MAIN_HEADER: [&str; 8] = [
    "Name",
    "Succ",
    "Fail",
    "Send Rate (TPS)",
    "Max Latency (s)",
    "Min Latency (s)",
    "Avg Latency (s)",
    "Throughput (TPS)",
];

const LEDGER_HEADER: [&str; 7] =
    ["Ledger", "Sent", "Succ", "Fail", "Throughput (TPS)", "p50 (s)", "p99 (s)"];

impl Report {
    /// The histogram of committed-transaction latencies, in microseconds (3 significant
    /// figures). Its `len()` is the number of committed transactions.
    pub fn latency_histogram(&self) -> &Histogram<u64> {
        &self.histogram
    }

    /// Failed transactions as a fraction of completed ones, `None` if none completed.
    pub fn error_ratio(&self) -> Option<f64> {
        let total = self.succ + self.fail;
        (total > 0).then(|| self.fail as f64 / total as f64)
    }

    /// Replaces the label shown in the first column of the table.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Pretty-printed JSON (the [`Serialize`] form).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    fn main_row(&self) -> Vec<String> {
        let l = &self.latency;
        let lat = |ms: f64| if l.count == 0 { "-".to_owned() } else { seconds(ms) };
        vec![
            self.name.clone(),
            self.succ.to_string(),
            self.fail.to_string(),
            tps(self.send_rate_tps),
            lat(l.max_ms),
            lat(l.min_ms),
            lat(l.avg_ms),
            tps(self.throughput_tps),
        ]
    }

    fn ledger_rows(&self) -> Vec<Vec<String>> {
        self.ledgers
            .iter()
            .map(|r| {
                let lat = |ms: f64| if r.succ == 0 { "-".to_owned() } else { seconds(ms) };
                vec![
                    r.name.clone(),
                    r.sent.to_string(),
                    r.succ.to_string(),
                    r.fail.to_string(),
                    tps(r.throughput_tps),
                    lat(r.p50_ms),
                    lat(r.p99_ms),
                ]
            })
            .collect()
    }

    fn percentile_line(&self) -> String {
        let l = &self.latency;
        if l.count == 0 {
            return "Latency percentiles: none (no transaction committed)".to_owned();
        }
        format!(
            "Latency percentiles (s): p50 {} | p90 {} | p99 {} | p99.9 {} ({} committed samples)",
            seconds(l.p50_ms),
            seconds(l.p90_ms),
            seconds(l.p99_ms),
            seconds(l.p999_ms),
            l.count
        )
    }

    fn phase_line(&self) -> String {
        format!(
            "Sent {} tx over {:.3} s; measured phase {:.3} s (start -> later of end of sending \
             and last completion)",
            self.sent, self.send_period_s, self.duration_s
        )
    }

    fn error_lines(&self) -> Vec<String> {
        self.errors
            .iter()
            .map(|(code, n)| match self.error_details.get(code) {
                Some(detail) => format!("{code}: {n} tx (e.g. {detail:?})"),
                None => format!("{code}: {n} tx"),
            })
            .collect()
    }

    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.unsent > 0 {
            out.push(format!(
                "UNSENT: {} tx were due but not sent before the end (max_in_flight reached); \
                 the target did not keep up with the offered rate",
                self.unsent
            ));
        }
        if self.exhausted {
            out.push(format!(
                "EXHAUSTED: the workload ran out of batches after {} tx; sending stopped early \
                 at {:.3} s",
                self.sent, self.send_period_s
            ));
        }
        out
    }

    /// A Caliper-style plain-text report: the main table, the percentile line, errors by code,
    /// per-ledger rows and any warnings (unsent transactions, exhausted workload).
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Mode: {}", self.mode);
        out.push_str(&ascii_table(&MAIN_HEADER, &[self.main_row()]));
        let _ = writeln!(out, "{}", self.percentile_line());
        let _ = writeln!(out, "{}", self.phase_line());
        let errors = self.error_lines();
        if errors.is_empty() {
            out.push_str("Errors by code: none\n");
        } else {
            out.push_str("Errors by code:\n");
            for line in errors {
                let _ = writeln!(out, "  {line}");
            }
        }
        out.push_str("Per ledger:\n");
        out.push_str(&ascii_table(&LEDGER_HEADER, &self.ledger_rows()));
        for w in self.warnings() {
            let _ = writeln!(out, "{w}");
        }
        out
    }

    /// The same content as [`text`](Self::text), as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "**Mode:** {}\n", self.mode);
        out.push_str(&markdown_table(&MAIN_HEADER, &[self.main_row()]));
        let _ = writeln!(out, "\n{}\n\n{}\n", self.percentile_line(), self.phase_line());
        let errors = self.error_lines();
        if errors.is_empty() {
            out.push_str("**Errors by code:** none\n\n");
        } else {
            out.push_str("**Errors by code:**\n\n");
            for line in errors {
                let _ = writeln!(out, "- {line}");
            }
            out.push('\n');
        }
        out.push_str("**Per ledger:**\n\n");
        out.push_str(&markdown_table(&LEDGER_HEADER, &self.ledger_rows()));
        for w in self.warnings() {
            let _ = writeln!(out, "\n> **{w}**");
        }
        out
    }
}

/// Milliseconds shown as seconds with millisecond resolution.
pub(crate) fn seconds(ms: f64) -> String {
    format!("{:.3}", ms / 1000.0)
}

/// A rate with one decimal.
pub(crate) fn tps(rate: f64) -> String {
    format!("{rate:.1}")
}

/// A bordered plain-text table with left-aligned cells.
pub(crate) fn ascii_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let border = {
        let mut b = String::from("+");
        for w in &widths {
            b.push_str(&"-".repeat(w + 2));
            b.push('+');
        }
        b.push('\n');
        b
    };
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::from("|");
        for (w, cell) in widths.iter().zip(cells) {
            let _ = write!(l, " {cell:<w$} |");
        }
        l.push('\n');
        l
    };
    let mut out = border.clone();
    out.push_str(&line(&mut header.iter().copied()));
    out.push_str(&border);
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out.push_str(&border);
    out
}

/// A Markdown table.
pub(crate) fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push('|');
    for _ in header {
        out.push_str("---|");
    }
    out.push('\n');
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}
