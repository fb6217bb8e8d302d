//! The node's Prometheus metrics (`polyledger_*`, base units, labelled by `ledger` name —
//! never by trace code, key or transaction hash). They live in the process's default
//! registry; the gateway's `/metrics` refreshes the sampled gauges (`refresh`) and
//! encodes `prometheus::gather()`.
//!
//! The hot path pays an atomic add per counter and a bucket search per histogram
//! observation; per-ledger series are resolved once, when the actor starts
//! (`LedgerMetrics::new`), never per transaction.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    exponential_buckets, register_histogram, register_histogram_vec, register_int_counter,
    register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
};

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register_int_counter_vec!(Opts::new(name, help), labels).expect("metric registers once")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register_int_gauge_vec!(Opts::new(name, help), labels).expect("metric registers once")
}

fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    register_histogram_vec!(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("metric registers once")
}

/// 1 ms … ~16 s, doubling.
fn seconds_buckets() -> Vec<f64> {
    exponential_buckets(0.001, 2.0, 15).expect("valid buckets")
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns recording on or off (on by default). Off exists to measure what recording
/// costs (`polyledger demo --metrics-overhead`); the sampled gauges still answer.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Every metric family of the node.
pub struct Families {
    received: IntCounterVec,
    committed: IntCounterVec,
    rejected: IntCounterVec,
    results: IntCounterVec,
    blocks: IntCounterVec,
    block_transactions: HistogramVec,
    finality: HistogramVec,
    execute: HistogramVec,
    state_root: HistogramVec,
    commit: HistogramVec,
    written: IntCounterVec,
    proposals: IntCounterVec,
    consensus_commit: HistogramVec,
    elections: IntCounterVec,
    /// Consensus-group messages sent, by ledger and type.
    pub messages_sent: IntCounterVec,
    /// Consensus-group messages received, by ledger and type.
    pub messages_received: IntCounterVec,
    height: IntGaugeVec,
    halted: IntGaugeVec,
    store_unavailable: IntGaugeVec,
    mempool: IntGaugeVec,
    capacity: IntGaugeVec,
    leader: IntGaugeVec,
    term: IntGaugeVec,
    /// Signatures checked (all batches: submissions and other leaders' blocks).
    pub signatures_verified: IntCounter,
    /// Signatures that did not verify.
    pub signature_failures: IntCounter,
    /// Items per verification batch.
    pub verify_batch_size: Histogram,
    /// Seconds per verification batch.
    pub verify_batch_seconds: Histogram,
    /// `polyledger_rocksdb_write_stall`.
    pub write_stall: IntGauge,
    /// `polyledger_rocksdb_compaction_pending_bytes`.
    pub compaction_pending: IntGauge,
    /// `polyledger_storage_disk_available_bytes`.
    pub disk_available: IntGauge,
}

/// The node's metric families (registered on first use).
pub static METRICS: LazyLock<Families> = LazyLock::new(|| {
    let ledger = &["ledger"];
    let build = register_int_gauge_vec!(
        Opts::new("polyledger_build_info", "Always 1; labels say which build runs."),
        &["version", "commit"]
    )
    .expect("metric registers once");
    build
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            option_env!("POLYLEDGER_COMMIT").unwrap_or("unknown"),
        ])
        .set(1);
    Families {
        received: counter_vec(
            "polyledger_transactions_received_total",
            "Transactions submitted to this node (before signature checks).",
            ledger,
        ),
        committed: counter_vec(
            "polyledger_transactions_committed_total",
            "Transactions in blocks this node committed (any result).",
            ledger,
        ),
        rejected: counter_vec(
            "polyledger_transactions_rejected_total",
            "Transactions refused before entering a block, by reason.",
            &["ledger", "reason"],
        ),
        results: counter_vec(
            "polyledger_transaction_results_total",
            "Results of committed transactions (the ledger's rules: committed, version_conflict, ...).",
            &["ledger", "result"],
        ),
        blocks: counter_vec(
            "polyledger_blocks_committed_total",
            "Blocks committed by this node since it started.",
            ledger,
        ),
        block_transactions: histogram_vec(
            "polyledger_block_transactions",
            "Transactions per committed block.",
            ledger,
            exponential_buckets(1.0, 2.0, 16).expect("valid buckets"),
        ),
        finality: histogram_vec(
            "polyledger_finality_seconds",
            "From a transaction's arrival at this node to its commit.",
            ledger,
            seconds_buckets(),
        ),
        execute: histogram_vec(
            "polyledger_block_execute_seconds",
            "Executing a block: validation, state changes and the state root.",
            ledger,
            seconds_buckets(),
        ),
        state_root: histogram_vec(
            "polyledger_block_state_root_seconds",
            "Computing a block's state root (the authenticated state tree; part of execute).",
            ledger,
            seconds_buckets(),
        ),
        commit: histogram_vec(
            "polyledger_block_commit_seconds",
            "Writing a block (one atomic, fsync'd write batch).",
            ledger,
            seconds_buckets(),
        ),
        written: counter_vec(
            "polyledger_storage_written_bytes_total",
            "Bytes of keys and values written to the store by block commits.",
            ledger,
        ),
        proposals: counter_vec(
            "polyledger_consensus_proposals_total",
            "Blocks this node proposed as leader.",
            ledger,
        ),
        consensus_commit: histogram_vec(
            "polyledger_consensus_commit_seconds",
            "From proposing a block to its commit on this node (the leader's view).",
            ledger,
            seconds_buckets(),
        ),
        elections: counter_vec(
            "polyledger_consensus_elections_total",
            "Leader changes this node observed.",
            ledger,
        ),
        messages_sent: counter_vec(
            "polyledger_consensus_messages_sent_total",
            "Node-to-node messages sent for the ledger, by type.",
            &["ledger", "type"],
        ),
        messages_received: counter_vec(
            "polyledger_consensus_messages_received_total",
            "Node-to-node messages received for the ledger, by type.",
            &["ledger", "type"],
        ),
        height: gauge_vec(
            "polyledger_ledger_height",
            "Height of the ledger's latest committed block on this node.",
            ledger,
        ),
        halted: gauge_vec(
            "polyledger_ledger_halted",
            "1 when this node halted the ledger (divergence or a failed write; see the error log).",
            ledger,
        ),
        store_unavailable: gauge_vec(
            "polyledger_store_unavailable",
            "1 while the ledger's store does not answer (commits wait; they resume by themselves).",
            ledger,
        ),
        mempool: gauge_vec(
            "polyledger_mempool_transactions",
            "Transactions accepted and not yet final.",
            ledger,
        ),
        capacity: gauge_vec(
            "polyledger_mempool_capacity",
            "The mempool bound (submissions beyond it answer BUSY).",
            ledger,
        ),
        leader: gauge_vec(
            "polyledger_consensus_leader",
            "1 when this node leads the ledger's consensus group.",
            ledger,
        ),
        term: gauge_vec(
            "polyledger_consensus_term",
            "The consensus group's term (Raft; 0 for solo).",
            ledger,
        ),
        signatures_verified: register_int_counter!(
            "polyledger_signatures_verified_total",
            "Signatures checked in verification batches."
        )
        .expect("metric registers once"),
        signature_failures: register_int_counter!(
            "polyledger_signature_failures_total",
            "Signatures that did not verify."
        )
        .expect("metric registers once"),
        verify_batch_size: register_histogram!(
            HistogramOpts::new(
                "polyledger_verify_batch_size",
                "Signatures per verification batch."
            )
            .buckets(exponential_buckets(1.0, 2.0, 16).expect("valid buckets"))
        )
        .expect("metric registers once"),
        verify_batch_seconds: register_histogram!(
            HistogramOpts::new(
                "polyledger_verify_batch_seconds",
                "Seconds per verification batch (all cores)."
            )
            .buckets(seconds_buckets())
        )
        .expect("metric registers once"),
        write_stall: register_int_gauge!(
            "polyledger_rocksdb_write_stall",
            "1 while RocksDB stops or delays writes."
        )
        .expect("metric registers once"),
        compaction_pending: register_int_gauge!(
            "polyledger_rocksdb_compaction_pending_bytes",
            "RocksDB's estimate of bytes compaction still has to rewrite."
        )
        .expect("metric registers once"),
        disk_available: register_int_gauge!(
            "polyledger_storage_disk_available_bytes",
            "Free bytes on the file system of the node's data directory."
        )
        .expect("metric registers once"),
    }
});

/// The series of one ledger, resolved once.
#[derive(Clone)]
pub struct LedgerMetrics {
    name: String,
    received: IntCounter,
    committed: IntCounter,
    blocks: IntCounter,
    block_transactions: Histogram,
    finality: Histogram,
    execute: Histogram,
    state_root: Histogram,
    commit: Histogram,
    written: IntCounter,
    proposals: IntCounter,
    consensus_commit: Histogram,
    elections: IntCounter,
    /// Messages sent and received, by position of their kind in `KINDS`.
    messages_sent: Vec<IntCounter>,
    messages_received: Vec<IntCounter>,
}

/// Transport message kinds with a series of their own; anything else counts as "other".
const KINDS: [u8; 4] = [
    crate::proposal::kind::CONSENSUS,
    crate::proposal::kind::FORWARD,
    crate::proposal::kind::SYNC_REQUEST,
    crate::proposal::kind::SYNC_RESPONSE,
];

/// What one committed block reports.
pub struct BlockFigures<'a> {
    /// Its transactions with their results.
    pub transactions: &'a [(engine::model::Hash32, engine::model::ResultCode)],
    /// Executing it (state root included).
    pub execute_seconds: f64,
    /// Of which the state root.
    pub state_root_seconds: f64,
    /// Writing it.
    pub commit_seconds: f64,
    /// Bytes of its write batch.
    pub written_bytes: usize,
    /// When this node proposed it, if it did.
    pub proposed: Option<Instant>,
}

impl LedgerMetrics {
    /// The series of ledger `name`.
    pub fn new(name: &str) -> Self {
        let m = &*METRICS;
        let l = &[name];
        // Every labelled series exists from the start (at 0), so dashboards and alerts
        // see a zero rather than no data, and `rate()` sees the first increase.
        for reason in [
            "bad_signature",
            "wrong_ledger",
            "already_pending",
            "already_committed",
            "halted",
            "shutting_down",
            "busy",
        ] {
            m.rejected.with_label_values(&[name, reason]);
        }
        for code in 0..=u8::MAX {
            if let Ok(result) = engine::model::ResultCode::from_u8(code) {
                m.results.with_label_values(&[name, result.name()]);
            }
        }
        LedgerMetrics {
            name: name.to_owned(),
            received: m.received.with_label_values(l),
            committed: m.committed.with_label_values(l),
            blocks: m.blocks.with_label_values(l),
            block_transactions: m.block_transactions.with_label_values(l),
            finality: m.finality.with_label_values(l),
            execute: m.execute.with_label_values(l),
            state_root: m.state_root.with_label_values(l),
            commit: m.commit.with_label_values(l),
            written: m.written.with_label_values(l),
            proposals: m.proposals.with_label_values(l),
            consensus_commit: m.consensus_commit.with_label_values(l),
            elections: m.elections.with_label_values(l),
            messages_sent: KINDS
                .iter()
                .chain(&[0])
                .map(|kind| m.messages_sent.with_label_values(&[name, kind_name(*kind)]))
                .collect(),
            messages_received: KINDS
                .iter()
                .chain(&[0])
                .map(|kind| m.messages_received.with_label_values(&[name, kind_name(*kind)]))
                .collect(),
        }
    }

    /// Transactions submitted to this node.
    pub fn received(&self, count: usize) {
        if enabled() {
            self.received.inc_by(count as u64);
        }
    }

    /// A transaction that arrived at `arrived` is committed.
    pub fn finality(&self, arrived: Instant) {
        if enabled() {
            self.finality.observe(arrived.elapsed().as_secs_f64());
        }
    }

    /// This node proposed a block.
    pub fn proposal(&self) {
        if enabled() {
            self.proposals.inc();
        }
    }

    /// The group got a (new) leader.
    pub fn election(&self) {
        self.elections.inc();
    }

    /// A block was committed.
    pub fn block(&self, figures: BlockFigures<'_>) {
        if !enabled() {
            return;
        }
        let count = figures.transactions.len();
        self.execute.observe(figures.execute_seconds);
        self.state_root.observe(figures.state_root_seconds);
        self.commit.observe(figures.commit_seconds);
        self.written.inc_by(figures.written_bytes as u64);
        self.blocks.inc();
        self.committed.inc_by(count as u64);
        self.block_transactions.observe(count as f64);
        if let Some(proposed) = figures.proposed {
            self.consensus_commit.observe(proposed.elapsed().as_secs_f64());
        }
        self.results(figures.transactions.iter().map(|(_, result)| *result));
    }

    /// A transaction refused before a block, by reason.
    pub fn rejected(&self, reason: &str, count: u64) {
        if enabled() {
            METRICS.rejected.with_label_values(&[&self.name, reason]).inc_by(count);
        }
    }

    /// Results of a committed block's transactions.
    fn results(&self, results: impl Iterator<Item = engine::model::ResultCode>) {
        let mut counts = [0u64; 8];
        for result in results {
            counts[(result as usize).min(7)] += 1;
        }
        for (code, count) in counts.iter().enumerate().filter(|(_, c)| **c > 0) {
            if let Ok(result) = engine::model::ResultCode::from_u8(code as u8) {
                METRICS.results.with_label_values(&[&self.name, result.name()]).inc_by(*count);
            }
        }
    }

    /// A node-to-node message of `kind` (transport kind byte) sent or received.
    pub fn message(&self, sent: bool, kind: u8) {
        if !enabled() {
            return;
        }
        let at = KINDS.iter().position(|k| *k == kind).unwrap_or(KINDS.len());
        let counters = if sent { &self.messages_sent } else { &self.messages_received };
        counters[at].inc();
    }
}

/// The label of a transport message kind.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        crate::proposal::kind::CONSENSUS => "consensus",
        crate::proposal::kind::FORWARD => "forward",
        crate::proposal::kind::SYNC_REQUEST => "sync_request",
        crate::proposal::kind::SYNC_RESPONSE => "sync_response",
        _ => "other",
    }
}

/// One ledger's sampled gauges ([`sample_ledger`]).
pub struct LedgerSample<'a> {
    /// The ledger's name (the label).
    pub name: &'a str,
    /// Its head height.
    pub height: u64,
    /// Halted on this node.
    pub halted: bool,
    /// Its store does not answer.
    pub store_unavailable: bool,
    /// Transactions pending.
    pub mempool: usize,
    /// The mempool bound.
    pub capacity: usize,
    /// This node leads (or proposes now).
    pub leader: bool,
    /// The consensus term.
    pub term: u64,
}

/// Sets the sampled gauges of one ledger (called at scrape time).
pub fn sample_ledger(sample: LedgerSample<'_>) {
    let LedgerSample { name, height, halted, store_unavailable, mempool, capacity, leader, term } =
        sample;
    let m = &*METRICS;
    let l = &[name];
    m.height.with_label_values(l).set(height as i64);
    m.halted.with_label_values(l).set(i64::from(halted));
    m.store_unavailable.with_label_values(l).set(i64::from(store_unavailable));
    m.mempool.with_label_values(l).set(mempool as i64);
    m.capacity.with_label_values(l).set(capacity as i64);
    m.leader.with_label_values(l).set(i64::from(leader));
    m.term.with_label_values(l).set(term as i64);
}

/// Records one verification batch.
pub fn verified_batch(items: usize, failures: usize, seconds: f64) {
    if !enabled() {
        return;
    }
    let m = &*METRICS;
    m.signatures_verified.inc_by(items as u64);
    m.signature_failures.inc_by(failures as u64);
    m.verify_batch_size.observe(items as f64);
    m.verify_batch_seconds.observe(seconds);
}

/// `engine::ledger::verify_signatures`, recorded as one verification batch.
pub fn verify_signatures(transactions: &[engine::model::Transaction]) -> Vec<bool> {
    let started = std::time::Instant::now();
    let verdicts = engine::ledger::verify_signatures(transactions);
    let signatures: usize = transactions.iter().map(|tx| tx.endorsements.len()).sum();
    let failures = verdicts.iter().filter(|valid| !**valid).count();
    verified_batch(signatures, failures, started.elapsed().as_secs_f64());
    verdicts
}

/// The Prometheus text exposition of every registered metric (process metrics included
/// on Linux).
pub fn encode() -> String {
    use prometheus::Encoder as _;
    static PROCESS: LazyLock<()> = LazyLock::new(|| {
        #[cfg(target_os = "linux")]
        {
            let _ = prometheus::register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
    });
    LazyLock::force(&PROCESS);
    LazyLock::force(&METRICS);
    let mut buffer = Vec::new();
    let _ = prometheus::TextEncoder::new().encode(&prometheus::gather(), &mut buffer);
    String::from_utf8(buffer).unwrap_or_default()
}
