//! A solo node with many ledgers in parallel: every transaction becomes final, and what
//! each ledger committed equals executing the same blocks sequentially through the
//! engine. Runs on the in-memory fake and on RocksDB, with the pipelined commit (the
//! default) and on RocksDB also without it; a failed WAL sync halts the ledger and
//! reports nothing of the block committed.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use actors::{Node, Rejection, SubmitError, TxStatus};
use common::*;
use engine::ledger::{Ledger, SignatureCheck};
use engine::model::{ResultCode, Transaction};
use engine::store::MemoryStore;
use engine::verify::{Verdict, verify_ledger};

const LEDGERS: usize = 4;
const WRITERS: u64 = 4;
const TXS_PER_WRITER: u64 = 60;

async fn many_ledgers(kind: TestStore, pipelined_commit: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&kind, dir.path());
    let node_key = key(100);
    let ledgers = (0..LEDGERS)
        .map(|i| settings(&format!("category-{i}"), "solo", vec![node_key.public_key()]))
        .collect();
    let mut opts = options(1, node_key, ledgers);
    opts.ledger_options.pipelined_commit = pipelined_commit;
    let node = Node::start(opts, store.clone()).unwrap();
    let admin = admin();

    // Every ledger: a data account first, then writers race on a few shared keys (so
    // some writes conflict) and on their own keys.
    let mut tasks = Vec::new();
    for handle in node.ledgers().iter() {
        let outcome = register_trace_account(handle).await;
        assert!(matches!(
            outcome.status,
            TxStatus::Committed { result: ResultCode::Committed, .. }
        ));
        for writer in 0..WRITERS {
            let handle = handle.clone();
            let admin = admin.clone();
            tasks.push(actix_rt::spawn(async move {
                let mut finals = Vec::new();
                for batch in 0..TXS_PER_WRITER / 10 {
                    let transactions: Vec<Transaction> = (0..10)
                        .map(|i| {
                            let n = batch * 10 + i;
                            let nonce = 1 + writer * 1000 + n;
                            let op = if n % 3 == 0 {
                                write("shared", format!("w{writer}-{n}").as_bytes(), -1)
                            } else {
                                write(&format!("own-{writer}-{n}"), b"v", -1)
                            };
                            tx(&admin, handle.id(), nonce, vec![op])
                        })
                        .collect();
                    finals.extend(submit_and_wait(&handle, transactions).await);
                }
                finals
            }));
        }
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.unwrap());
    }
    assert_eq!(outcomes.len() as u64, LEDGERS as u64 * WRITERS * TXS_PER_WRITER);
    let mut conflicts = 0;
    for outcome in &outcomes {
        match outcome.status {
            TxStatus::Committed { result: ResultCode::Committed, .. } => {}
            TxStatus::Committed { result: ResultCode::VersionConflict, .. } => conflicts += 1,
            ref other => panic!("unexpected outcome {other:?}"),
        }
    }
    // "shared" is written with expected version -1 by every writer: exactly one wins per
    // ledger.
    let shared_writes = LEDGERS as u64 * WRITERS * TXS_PER_WRITER.div_ceil(3);
    assert_eq!(conflicts, shared_writes - LEDGERS as u64);

    // Resubmitting a committed transaction is rejected and changes nothing.
    let first = node.ledgers()[0].clone();
    let again = tx(&admin, first.id(), 0, vec![register_account()]);
    let head_before = first.head();
    let outcome = first.submit(vec![again]).await.unwrap().wait().await.unwrap();
    assert!(matches!(
        outcome[0].status,
        TxStatus::Rejected(Rejection::AlreadyCommitted { height: 1 })
    ));
    assert_eq!(first.head(), head_before);

    // A broken signature is rejected at submission and never reaches a block.
    let mut forged = tx(&admin, first.id(), 9_999_999, vec![write("forged", b"x", -1)]);
    forged.content.nonce += 1;
    let outcome = first.submit(vec![forged]).await.unwrap().wait().await.unwrap();
    assert_eq!(outcome[0].status, TxStatus::Rejected(Rejection::BadSignature));
    assert_eq!(first.head(), head_before);

    node.shutdown(Duration::from_secs(2)).await;

    // Sequential replay through the engine, block by block, gives the same blocks.
    for i in 0..LEDGERS {
        let ledger = Ledger::open(store.clone(), settings_id(&store, i)).unwrap();
        let mut replay =
            Ledger::create(MemoryStore::new(), ledger.settings().clone()).expect("same genesis");
        assert_eq!(replay.id(), ledger.id());
        let mut seen = HashSet::new();
        for height in 1..=ledger.head().height {
            let block = ledger.block(height).unwrap().unwrap();
            let transactions: Vec<Transaction> = block
                .transactions
                .iter()
                .map(|(hash, _)| {
                    assert!(seen.insert(*hash), "transaction committed twice");
                    ledger.transaction(hash).unwrap().unwrap().transaction
                })
                .collect();
            let replayed = replay
                .append_block(
                    transactions,
                    SignatureCheck::Verify,
                    block.header.timestamp_ms,
                    block.header.proposer,
                )
                .unwrap();
            assert_eq!(replayed, block, "height {height} differs from sequential execution");
        }
        assert_eq!(seen.len() as u64, 1 + WRITERS * TXS_PER_WRITER);
        assert!(matches!(
            verify_ledger(store.clone(), ledger.id()).unwrap(),
            Verdict::Valid { .. }
        ));
    }
}

fn settings_id(
    store: &std::sync::Arc<dyn engine::store::KvStore>,
    i: usize,
) -> engine::model::LedgerId {
    let node_key = key(100);
    let scratch = Ledger::create(
        MemoryStore::new(),
        settings(&format!("category-{i}"), "solo", vec![node_key.public_key()]),
    )
    .unwrap();
    let _ = store;
    scratch.id()
}

#[actix_rt::test]
async fn solo_node_many_ledgers_memory() {
    many_ledgers(TestStore::Memory, true).await;
}

#[actix_rt::test]
async fn solo_node_many_ledgers_rocksdb() {
    many_ledgers(TestStore::Rocks, true).await;
}

#[actix_rt::test]
async fn solo_node_many_ledgers_rocksdb_each_block_fsynced() {
    many_ledgers(TestStore::Rocks, false).await;
}

/// A block whose WAL sync fails is never reported committed: its transactions are told
/// the ledger halted, the published head stays at the block before, the ledger halts
/// (the store cannot say what reached the disk) and refuses new submissions.
#[actix_rt::test]
async fn a_failed_wal_sync_halts_the_ledger_and_reports_nothing_committed() {
    let store = std::sync::Arc::new(FailingSyncStore::default());
    let node_key = key(100);
    let ledgers = vec![settings("fsync-0", "solo", vec![node_key.public_key()])];
    let node = Node::start(options(1, node_key, ledgers), store.clone()).unwrap();
    let handle = node.ledgers()[0].clone();
    let outcome = register_trace_account(&handle).await;
    assert!(matches!(outcome.status, TxStatus::Committed { result: ResultCode::Committed, .. }));
    let head = handle.head();

    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let admin = admin();
    let transactions = vec![tx(&admin, handle.id(), 1, vec![write("k", b"v", -1)])];
    let outcomes = handle.submit(transactions).await.unwrap().wait().await.unwrap();
    match &outcomes[0].status {
        TxStatus::Rejected(Rejection::Halted(reason)) => {
            assert!(reason.contains("WAL sync failed"), "{reason}");
            assert!(reason.contains("input/output error"), "{reason}");
        }
        other => panic!("expected a halt, got {other:?}"),
    }
    assert_eq!(handle.head(), head, "the unsynced block was published");
    assert!(handle.halted().is_some_and(|reason| reason.contains("WAL sync failed")));
    let later = vec![tx(&admin, handle.id(), 2, vec![write("k2", b"v", -1)])];
    let outcomes = handle.submit(later).await.unwrap().wait().await.unwrap();
    assert!(
        matches!(outcomes[0].status, TxStatus::Rejected(Rejection::Halted(_))),
        "a halted ledger took a transaction: {:?}",
        outcomes[0].status
    );
    assert_eq!(handle.head(), head);
    node.shutdown(Duration::from_secs(1)).await;
}

/// A full mempool answers `Busy` at once, and accepts again once blocks drain it.
#[actix_rt::test]
async fn full_mempool_is_busy_then_recovers() {
    let node_key = key(100);
    let mut opts =
        options(1, node_key.clone(), vec![settings("busy-0", "solo", vec![node_key.public_key()])]);
    // Blocks close only on time (2 s), so the mempool fills deterministically.
    opts.ledger_options.mempool_capacity = 300;
    opts.ledger_options.max_block_txs = 1000;
    opts.ledger_options.max_block_delay = Duration::from_secs(2);
    let node = Node::start(opts, std::sync::Arc::new(MemoryStore::new())).unwrap();
    let handle = node.ledgers()[0].clone();
    let admin = admin();
    register_trace_account(&handle).await;
    let batch = |start: u64, n: u64| -> Vec<Transaction> {
        (start..start + n)
            .map(|nonce| {
                tx(&admin, handle.id(), nonce, vec![write(&format!("k{nonce}"), b"v", -1)])
            })
            .collect()
    };
    // Fill it without waiting: the third batch of 150 exceeds the capacity of 300.
    let first = handle.submit(batch(1, 150)).await.unwrap();
    let second = handle.submit(batch(1000, 150)).await.unwrap();
    let busy = handle.submit(batch(2000, 150)).await;
    assert!(matches!(busy, Err(SubmitError::Busy { .. })), "expected Busy, got {:?}", busy.err());
    let mut finals = first.wait().await.unwrap();
    finals.extend(second.wait().await.unwrap());
    assert!(
        finals
            .iter()
            .all(|o| matches!(o.status, TxStatus::Committed { result: ResultCode::Committed, .. }))
    );
    assert_eq!(handle.pending(), 0);
    // Load dropped: accepted again, and the refused batch was never partly applied.
    let outcomes = handle.submit(batch(2000, 150)).await.unwrap().wait().await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o.status, TxStatus::Committed { result: ResultCode::Committed, .. }))
    );
    node.shutdown(Duration::from_secs(1)).await;
}
