//! Execute + state root + RocksDB commit, the engine's hot path, signature checks
//! excluded (they run before, batched on all cores; see crypto-parallel's benches).
//!
//! - `commit/distinct_keys_1000tx`: blocks of 1,000 transactions, each writing one
//!   200-byte value to a new key (goal ≥ 50,000 tx/s on one core), committed as the
//!   node commits them (`block.pipelined_commit`): each block written without an
//!   fsync, a second thread fsyncing the WAL while the next block executes, and the
//!   block before durable before the next is written; the time includes the wait for
//!   the last block's fsync;
//! - `commit/distinct_keys_1000tx_fsync_each_block`: the same, each block fsync'd in
//!   its own write before the next executes (the node with `pipelined_commit = false`);
//! - `commit/hot_keys_10pct_1000tx`: the same with 10% of writes to 50 hot keys with the
//!   version the client last saw (many conflict, as with real contention);
//! - `commit/distinct_keys_1000tx_sha256`: the first case on a SHA-256 ledger, to show
//!   the share of SM3 in the cost;
//! - `history/read_100_versions`: reading a key's full 100-version history;
//! - printed after the run: bytes stored per transaction (RocksDB live data / tx count).
//!
//! Every block is fsync'd before the next one is written, as in production.
//!
//! The blocks of a measurement are signed first, on every core, then executed and
//! committed back to back, timed: that is how the node's engine thread meets them
//! under load (clients sign, the other cores check signatures). Signing 1,000
//! transactions on this thread right before each timed block, as this bench once did,
//! left the engine's caches cold at every block and limited a measurement to ~20
//! blocks (the signing was 90% of the wall time): `profile_commit` with
//! `POLYLEDGER_PAUSE_MS=40` shows what such a pause costs.
//! Run: `cargo bench -p storage-rocksdb --bench commit`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use crypto_parallel::{HashAlgorithm, PrivateKey};
use engine::ledger::{Ledger, SignatureCheck};
use engine::model::{Address, Operation, Transaction, TransactionContent};
use storage_rocksdb::RocksStore;

/// The node's allocator (`cli/src/main.rs`), so the bench measures what the node runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod support;
use support::VALUE_LEN;

const BLOCK_TXS: usize = 1_000;

struct Bench {
    _dir: tempfile::TempDir,
    ledger: Ledger<Arc<RocksStore>>,
    /// With the pipelined commit: the fsync thread.
    syncer: Option<support::Syncer>,
    key: PrivateKey,
    nonce: u64,
    /// The version each hot key will have when the next block built runs (-1: none).
    hot_versions: std::collections::HashMap<Vec<u8>, i64>,
    transactions: u64,
    /// Time in `execute_block` (validation, overlay, state and transaction roots).
    execute_time: Duration,
    /// Time in `commit` (one RocksDB write batch, fsync'd).
    commit_time: Duration,
}

impl Bench {
    fn new(hash_algorithm: HashAlgorithm, pipelined: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RocksStore::open(dir.path()).unwrap());
        let syncer = pipelined.then(|| support::Syncer::start(store.clone(), || Duration::ZERO));
        let (ledger, key, _) = support::trace_ledger(store, hash_algorithm);
        Bench {
            _dir: dir,
            ledger,
            syncer,
            key,
            nonce: 1,
            hot_versions: std::collections::HashMap::new(),
            transactions: 1,
            execute_time: Duration::ZERO,
            commit_time: Duration::ZERO,
        }
    }

    /// `count` blocks of signed transactions; `hot_share` of each block's write one of 50
    /// hot keys with the version the ledger holds when the block runs (so later writers
    /// in the block conflict, as with real contention). The versions are tracked here as
    /// the blocks are built: the first write of a hot key in a block commits.
    fn blocks(&mut self, count: u64, hot_share: f64) -> Vec<Vec<Transaction>> {
        let mut contents = Vec::new();
        for _ in 0..count {
            let mut block = Vec::with_capacity(BLOCK_TXS);
            let mut written = std::collections::BTreeSet::new();
            for i in 0..BLOCK_TXS {
                self.nonce += 1;
                let hot = (i as f64) < hot_share * BLOCK_TXS as f64;
                let (key, expected_version) = if hot {
                    let key = format!("hot-{}", self.nonce % 50).into_bytes();
                    let version = *self.hot_versions.entry(key.clone()).or_insert_with(|| {
                        self.ledger.latest("trace", &key).unwrap().map_or(-1, |v| v.version as i64)
                    });
                    written.insert(key.clone());
                    (key, version)
                } else {
                    (format!("trace-code-{:016}", self.nonce).into_bytes(), -1)
                };
                block.push(support::trace_write(
                    self.ledger.id(),
                    self.nonce,
                    key,
                    expected_version,
                ));
            }
            for key in written {
                *self.hot_versions.get_mut(&key).expect("tracked") += 1;
            }
            contents.push(block);
        }
        let key = &self.key;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        contents
            .into_iter()
            .map(|block| {
                let chunk = block.len().div_ceil(threads);
                std::thread::scope(|scope| {
                    let signers: Vec<_> = block
                        .chunks(chunk)
                        .map(|part| {
                            scope.spawn(move || {
                                part.iter()
                                    .map(|content| {
                                        Transaction::sign(content.clone(), &[key]).unwrap()
                                    })
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    signers.into_iter().flat_map(|signer| signer.join().unwrap()).collect()
                })
            })
            .collect()
    }

    /// Waits until every block written is durable; returns how long that took (commit
    /// time: a measurement ends with its blocks durable).
    fn settle(&mut self) -> Duration {
        let start = Instant::now();
        if let Some(syncer) = &mut self.syncer {
            syncer.settle();
        }
        let waited = start.elapsed();
        self.commit_time += waited;
        waited
    }

    /// Executes and commits one block; returns the time it took (signing excluded).
    fn commit(&mut self, transactions: Vec<Transaction>) -> Duration {
        let count = transactions.len();
        let verdicts = SignatureCheck::Verified(vec![true; count]);
        let start = Instant::now();
        let height = self.ledger.head().height + 1;
        let executed =
            self.ledger.execute_block(transactions, verdicts, height, Address([1; 32])).unwrap();
        let executed_at = Instant::now();
        match &mut self.syncer {
            Some(syncer) => syncer.commit(&mut self.ledger, executed),
            None => self.ledger.commit(executed).unwrap(),
        }
        let done = Instant::now();
        self.execute_time += executed_at - start;
        self.commit_time += done - executed_at;
        self.transactions += count as u64;
        done - start
    }
}

fn commit_blocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit");
    group.throughput(Throughput::Elements(BLOCK_TXS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    let cases = [
        ("distinct_keys_1000tx", 0.0, HashAlgorithm::Sm3, true),
        ("distinct_keys_1000tx_fsync_each_block", 0.0, HashAlgorithm::Sm3, false),
        ("hot_keys_10pct_1000tx", 0.1, HashAlgorithm::Sm3, true),
        // The same with SHA-256 ledgers: shows how much of the cost is SM3 hashing.
        ("distinct_keys_1000tx_sha256", 0.0, HashAlgorithm::Sha256, true),
    ];
    for (name, hot_share, hash_algorithm, pipelined) in cases {
        let mut bench = Bench::new(hash_algorithm, pipelined);
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let blocks = bench.blocks(iterations, hot_share);
                let time: Duration = blocks.into_iter().map(|block| bench.commit(block)).sum();
                time + bench.settle()
            })
        });
        report_size(name, &bench);
    }
    group.finish();
}

fn report_size(name: &str, bench: &Bench) {
    if bench.transactions <= 1 {
        return; // filtered out on the command line
    }
    let store = bench.ledger.store();
    store.flush().unwrap();
    let live = store.live_data_bytes();
    let sst = store.sst_files_bytes();
    let transactions = bench.transactions as f64;
    let timed = bench.execute_time + bench.commit_time;
    println!(
        "{name}: execute {:.1} µs/tx ({:.0}%), RocksDB commit {:.1} µs/tx",
        bench.execute_time.as_secs_f64() * 1e6 / transactions,
        100.0 * bench.execute_time.as_secs_f64() / timed.as_secs_f64(),
        bench.commit_time.as_secs_f64() * 1e6 / transactions,
    );
    println!(
        "{name}: {} transactions at height {}: SST files {} bytes = {:.0} bytes/tx; live data estimate {:.0} bytes/tx",
        bench.transactions,
        bench.ledger.head().height,
        sst,
        sst as f64 / transactions,
        live as f64 / transactions,
    );
}

fn history_reads(c: &mut Criterion) {
    let mut bench = Bench::new(HashAlgorithm::Sm3, false);
    // One key written 100 times, one version per block, among other traffic.
    for version in 0..100i64 {
        let mut block = bench.blocks(1, 0.0).remove(0);
        block.truncate(99);
        bench.nonce += 1;
        let content = TransactionContent {
            ledger_id: bench.ledger.id(),
            nonce: bench.nonce,
            timestamp_ms: 0,
            operations: vec![Operation::WriteKv {
                account: "trace".into(),
                key: b"LOT-100".to_vec(),
                value: vec![b'h'; VALUE_LEN],
                expected_version: version - 1,
            }],
        };
        block.push(Transaction::sign(content, &[&bench.key]).unwrap());
        bench.commit(block);
    }
    assert_eq!(bench.ledger.history("trace", b"LOT-100", 0, 1000).unwrap().len(), 100);
    let mut group = c.benchmark_group("history");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group.bench_function("read_100_versions", |b| {
        b.iter(|| {
            let history = bench.ledger.history("trace", b"LOT-100", 0, 100).unwrap();
            assert_eq!(history.len(), 100);
        })
    });
    group.finish();
}

criterion_group!(benches, commit_blocks, history_reads);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
