//! The two things a caller plugs in: where batches go ([`Target`]) and where they come from
//! ([`Source`]), plus the outcome types a target reports.

use std::future::Future;
use std::sync::Arc;

/// Error code recorded for the transactions of a batch whose [`BatchResult::Done`] carried fewer
/// results than [`Source::batch_size`].
pub const MISSING_RESULT: &str = "MISSING_RESULT";

/// What one transaction of a batch ended as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxResult {
    /// The transaction is final (committed).
    Committed,
    /// The transaction was rejected or did not commit.
    Failed {
        /// A short, stable code used to group failures, e.g. `"VERSION_CONFLICT"`.
        code: String,
    },
}

impl TxResult {
    /// A failed transaction with the given code.
    pub fn failed(code: impl Into<String>) -> Self {
        TxResult::Failed { code: code.into() }
    }
}

/// What a batch submission ended as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchResult {
    /// The batch was processed; one entry per transaction, in batch order.
    ///
    /// The vector should hold exactly [`Source::batch_size`] entries. Missing entries are counted
    /// as failures with code [`MISSING_RESULT`]; surplus entries are ignored.
    Done(Vec<TxResult>),
    /// The whole batch failed (transport error, rejection, timeout…). Every transaction of the
    /// batch is counted as failed under `code`.
    Error {
        /// A short, stable code used to group failures, e.g. `"HTTP_503"`, `"TIMEOUT"`,
        /// `"CONNECT"`.
        code: String,
        /// Free-form detail (the first one seen per code is kept in the report).
        detail: String,
    },
}

impl BatchResult {
    /// A whole-batch error with the given code and detail.
    pub fn error(code: impl Into<String>, detail: impl Into<String>) -> Self {
        BatchResult::Error { code: code.into(), detail: detail.into() }
    }
}

/// The system under test: accepts batches and tells when their transactions are final.
///
/// The generator calls [`Target::submit`] concurrently from many tasks. A target must enforce
/// its own timeouts (answering [`BatchResult::Error`] with e.g. code `"TIMEOUT"`): the run waits
/// for every submitted batch before it reports.
pub trait Target: Send + Sync + 'static {
    /// The batch type this target accepts (built by a [`Source`]).
    type Batch: Send + Sync + 'static;

    /// Submits one batch for `ledger` and resolves when its transactions are final (or it
    /// failed).
    fn submit(
        &self,
        ledger: usize,
        batch: Arc<Self::Batch>,
    ) -> impl Future<Output = BatchResult> + Send;
}

/// The workload: pre-built batches, addressed by ledger and per-ledger sequence number.
///
/// Batches should be built before the run so that building them does not slow the sender.
pub trait Source<B>: Send + Sync + 'static {
    /// Number of ledgers; batches go round-robin over ledgers `0..ledgers()`. Must be ≥ 1.
    fn ledgers(&self) -> usize;

    /// Number of transactions per batch. Must be ≥ 1.
    fn batch_size(&self) -> usize;

    /// The `seq`-th batch for `ledger`, or `None` when the workload is exhausted. The run stops
    /// sending at the first `None` from any ledger and marks its report
    /// [`exhausted`](crate::Report::exhausted).
    ///
    /// Every `(ledger, seq)` pair is requested at most once per [`Cursor`](crate::Cursor), with
    /// `seq` counting up from 0 for each ledger, so batches are never replayed.
    fn batch(&self, ledger: usize, seq: u64) -> Option<Arc<B>>;

    /// Display name of `ledger` in reports. Defaults to `ledger-{i}`.
    fn ledger_name(&self, ledger: usize) -> String {
        format!("ledger-{ledger}")
    }
}
