//! # loadgen — an open-loop load generator core
//!
//! `loadgen` drives a system under test at a chosen load and measures how long each transaction
//! takes to become final, in the spirit of wrk2, k6 and Hyperledger Caliper. It is generic: it
//! knows nothing about ledgers, HTTP or transactions. The caller supplies
//!
//! * a [`Target`] — where batches go (an HTTP gateway, an in-process node, a fake in tests), and
//! * a [`Source`] — the pre-built batches, addressed by ledger and sequence number,
//!
//! and gets back a [`Report`] (Caliper-style text, Markdown or JSON) that [`Expect`] can check
//! against thresholds such as "10,000 tx/s with p99 ≤ 1 s". [`find_max`] ramps the rate up to
//! find the highest rate that still meets a latency objective.
//!
//! ## Open loop vs closed loop
//!
//! A **closed-loop** generator ([`Mode::Closed`]) runs a fixed number of workers; each sends a
//! batch, waits for the answer and only then sends the next one. The load it offers therefore
//! depends on how fast the system answers: when the system slows down, the generator slows down
//! with it.
//!
//! An **open-loop** generator ([`Mode::Open`]) follows a schedule fixed in advance: batch `k` is
//! *due* at `start + k * batch_size / rate`, and it is sent when it is due whether or not earlier
//! batches have been answered, just as independent users would keep arriving at a real service.
//! This is the mode to use when the question is "does the system sustain N tx/s".
//!
//! ## Coordinated omission
//!
//! Suppose the system stalls for 500 ms. A closed-loop worker sends one request just before the
//! stall, waits 500 ms, and records *one* slow sample; during the stall it sends nothing, so the
//! hundreds of requests real users would have sent — and which would all have waited — are never
//! measured. The generator has "coordinated" with the system under test to omit exactly the bad
//! samples, and its percentiles look far better than what users experience.
//!
//! `loadgen` avoids this in the open loop in two ways:
//!
//! * batches are sent on schedule (one task per batch), so batches keep arriving during a stall;
//! * latency is measured from the batch's **due time**, not from when it was actually sent. When
//!   the generator itself falls behind (for instance because `max_in_flight` batches are
//!   outstanding and the sender has to wait for a free slot) the waiting time still counts.
//!
//! The closed loop measures from the send time; it is offered for comparison and for
//! "N concurrent clients" style questions, and the test suite demonstrates the difference.
//!
//! ## Time
//!
//! All time is taken from [`tokio::time::Instant`] and waited on with
//! [`tokio::time::sleep_until`], so runs can be tested deterministically with tokio's paused
//! virtual clock (`#[tokio::test(start_paused = true)]`).
//!
//! ## Example
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use loadgen::{BatchResult, Mode, Progress, Source, Target, TxResult};
//!
//! struct Echo;
//! impl Target for Echo {
//!     type Batch = Vec<u64>;
//!     async fn submit(&self, _ledger: usize, batch: Arc<Vec<u64>>) -> BatchResult {
//!         tokio::time::sleep(Duration::from_millis(5)).await;
//!         BatchResult::Done(batch.iter().map(|_| TxResult::Committed).collect())
//!     }
//! }
//!
//! struct Numbers;
//! impl Source<Vec<u64>> for Numbers {
//!     fn ledgers(&self) -> usize { 2 }
//!     fn batch_size(&self) -> usize { 4 }
//!     fn batch(&self, _ledger: usize, seq: u64) -> Option<Arc<Vec<u64>>> {
//!         Some(Arc::new(vec![seq; 4]))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let mode = Mode::Open { rate: 400.0, duration: Duration::from_secs(1), max_in_flight: 100 };
//! let report = loadgen::run(Arc::new(Echo), Arc::new(Numbers), mode, Progress::Hidden).await;
//! assert_eq!(report.succ, 400);
//! println!("{}", report.text());
//! # }
//! ```

mod expect;
mod find_max;
pub mod ledger;
mod progress;
mod report;
mod run;
mod stats;
mod target;

pub use expect::Expect;
pub use find_max::{FindMax, FindMaxReport, StageReport, find_max};
pub use progress::Progress;
pub use report::{LatencySummary, LedgerRow, Report};
pub use run::{Cursor, Mode, run, run_with_cursor};
pub use target::{BatchResult, MISSING_RESULT, Source, Target, TxResult};

/// Re-export of the histogram type used in [`Report::latency_histogram`].
pub use hdrhistogram::Histogram;
