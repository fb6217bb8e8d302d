//! The commit bench's loop without the signing, for profilers: blocks of 1,000
//! transactions, each writing one 200-byte value to a new key, executed and committed on
//! RocksDB (one fsync per block). Every transaction carries the same (real) endorsement
//! and the signature verdicts are given (`SignatureCheck::Verified`), so nearly all the
//! process's time is execution and commit — what `perf record` should see.
//!
//! Run: `cargo run --profile bench -p storage-rocksdb --example profile_commit -- [blocks]`
//! (default 30). It prints wall time and the engine thread's CPU time per transaction:
//! their difference in the commit is mostly waiting for the fsync. With
//! `POLYLEDGER_DUMP_BATCH=1` it prints, for one block, the records its commit batch
//! writes per table; with `POLYLEDGER_NO_SYNC=1` RocksDB does not fsync (a measurement
//! of what the fsync costs, never a production setting); with `POLYLEDGER_SIGN=1` each
//! transaction is signed for real before its block runs, as the criterion bench does
//! (untimed); with `POLYLEDGER_PAUSE_MS=N` the thread sleeps N ms before each block
//! (what an idle engine thread costs the next block: cold caches); with
//! `POLYLEDGER_PIPELINE=1` each block is committed with `commit_unsynced` and a second
//! thread fsyncs the WAL (`KvStore::sync`) while the next block executes, as the node
//! does; the time includes waiting for the last block's fsync. With
//! `POLYLEDGER_WARMUP=N`, N blocks are committed first, untimed (a ledger of N thousand
//! keys, and a memtable that has been flushed and refilled: the memory a long-running
//! node reuses rather than fresh pages).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto_parallel::HashAlgorithm;
use engine::ledger::SignatureCheck;
use engine::model::{Address, Transaction};
use engine::store::WriteOp;
use storage_rocksdb::{RocksOptions, RocksStore};

/// The node's allocator (`cli/src/main.rs`), so the bench measures what the node runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/support/mod.rs"]
mod support;

const BLOCK_TXS: usize = 1_000;

fn main() {
    let blocks: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("usage: profile_commit [blocks]"),
        None => 30,
    };
    let dump = std::env::var_os("POLYLEDGER_DUMP_BATCH").is_some();
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions {
        sync_writes: std::env::var_os("POLYLEDGER_NO_SYNC").is_none(),
        ..RocksOptions::default()
    };
    let store = Arc::new(RocksStore::open_with(dir.path(), &options).unwrap());
    let pipeline = std::env::var_os("POLYLEDGER_PIPELINE").is_some();
    let mut syncer = pipeline.then(|| support::Syncer::start(Arc::clone(&store), thread_cpu_time));
    let sign = std::env::var_os("POLYLEDGER_SIGN").is_some();
    let pause = std::env::var("POLYLEDGER_PAUSE_MS")
        .ok()
        .map(|ms| Duration::from_millis(ms.parse().expect("POLYLEDGER_PAUSE_MS: milliseconds")));
    let warmup: u64 = std::env::var("POLYLEDGER_WARMUP")
        .map_or(0, |blocks| blocks.parse().expect("POLYLEDGER_WARMUP: a number of blocks"));
    let (mut ledger, key, first) = support::trace_ledger(store, HashAlgorithm::Sm3);
    let endorsements = first.endorsements;

    let (mut execute, mut commit) = (Duration::ZERO, Duration::ZERO);
    let (mut execute_cpu, mut commit_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut nonce = 1u64;
    for block in 0..warmup + blocks {
        let timed = block >= warmup;
        let first_nonce = nonce;
        nonce += BLOCK_TXS as u64;
        let id = ledger.id();
        let make = || -> Vec<Transaction> {
            (first_nonce + 1..=first_nonce + BLOCK_TXS as u64)
                .map(|nonce| {
                    let data_key = format!("trace-code-{nonce:016}").into_bytes();
                    let content = support::trace_write(id, nonce, data_key, -1);
                    if sign {
                        return Transaction::sign(content, &[&key]).unwrap();
                    }
                    Transaction { content, endorsements: endorsements.clone() }
                })
                .collect()
        };
        let transactions = make();
        if let Some(pause) = &pause {
            std::thread::sleep(*pause);
        }
        let verdicts = SignatureCheck::Verified(vec![true; BLOCK_TXS]);
        let (started, started_cpu) = (Instant::now(), thread_cpu_time());
        let executed =
            ledger.execute_block(transactions, verdicts, nonce, Address([1; 32])).unwrap();
        let (executed_at, executed_cpu) = (Instant::now(), thread_cpu_time());
        if dump && block == warmup + blocks / 2 {
            print_batch(&executed.batch);
        }
        match &mut syncer {
            Some(syncer) => syncer.commit(&mut ledger, executed),
            None => ledger.commit(executed).unwrap(),
        }
        if timed {
            execute += executed_at - started;
            commit += executed_at.elapsed();
            execute_cpu += executed_cpu - started_cpu;
            commit_cpu += thread_cpu_time() - executed_cpu;
        }
    }
    let mut sync_cpu = Duration::ZERO;
    if let Some(syncer) = syncer {
        // The last block is committed once its fsync is done: that wait is commit time.
        let waiting = Instant::now();
        // The fsync thread's CPU over all blocks, warm-up included: its share of the
        // timed ones.
        sync_cpu = syncer.finish().mul_f64(blocks as f64 / (warmup + blocks) as f64);
        commit += waiting.elapsed();
    }
    let transactions = (blocks as usize * BLOCK_TXS) as f64;
    let per_tx = |time: Duration| time.as_secs_f64() * 1e6 / transactions;
    println!(
        "{blocks} blocks: execute {:.1} µs/tx, commit {:.1} µs/tx, {:.0} tx/s; engine thread CPU: execute {:.1} µs/tx, commit {:.1} µs/tx, {:.0} tx/s per CPU second",
        per_tx(execute),
        per_tx(commit),
        transactions / (execute + commit).as_secs_f64(),
        per_tx(execute_cpu),
        per_tx(commit_cpu),
        transactions / (execute_cpu + commit_cpu).as_secs_f64(),
    );
    if pipeline {
        println!(
            "fsync thread CPU: {:.2} µs/tx; both threads: {:.0} tx/s per CPU second",
            per_tx(sync_cpu),
            transactions / (execute_cpu + commit_cpu + sync_cpu).as_secs_f64(),
        );
    }
}

/// CPU time of the calling thread (user and system).
#[allow(unsafe_code)] // one libc call, justified below
fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid, exclusive pointer;
    // CLOCK_THREAD_CPUTIME_ID is supported by Linux for the calling thread.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(result, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

/// Records, key bytes and value bytes per table (the byte after the 32-byte ledger id).
fn print_batch(batch: &engine::store::WriteBatch) {
    let mut tables = BTreeMap::<u8, (usize, usize, usize)>::new();
    for op in batch.ops() {
        if let WriteOp::Put { key, value } = op {
            let entry = tables.entry(key.get(32).copied().unwrap_or(0)).or_default();
            entry.0 += 1;
            entry.1 += key.len();
            entry.2 += value.len();
        }
    }
    for (table, (records, key_bytes, value_bytes)) in tables {
        println!(
            "table {table:#04x}: {records} records, {key_bytes} key bytes, {value_bytes} value bytes"
        );
    }
}
