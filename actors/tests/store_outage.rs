//! A ledger whose store stops answering (a TiKV cluster lost mid-run) waits instead of
//! halting: the block in hand is not acknowledged, new submissions are refused with
//! STORE_UNAVAILABLE, `store_unavailable()` (readiness, metric) says so; when the store
//! answers again the block is written and commits resume. Nothing acknowledged is lost,
//! including a block whose write applied although its answer was lost.
//!
//! `OutageStore` is a fake (MemoryStore behind a switch): no TiKV is reachable here. The
//! real TiKV client's errors map to the same `StoreError::Unavailable`/`Timeout`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use actors::{Node, Rejection, TxStatus};
use common::*;
use engine::ledger::Ledger;
use engine::model::ResultCode;
use engine::store::{Direction, Entries, KvStore, MemoryStore, StoreError, WriteBatch};

/// Fake: a `MemoryStore` that can go down. While down every call fails with
/// `Unavailable`. Armed, it goes down at the next write: `LOSE` first applies that write
/// and loses the answer, `REFUSE` does not apply it.
#[derive(Default)]
struct OutageStore {
    inner: MemoryStore,
    down: AtomicBool,
    armed: AtomicU8,
}

const REFUSE: u8 = 1;
const LOSE: u8 = 2;

impl OutageStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("fake outage: no PD answers".into()));
        }
        Ok(())
    }
}

impl KvStore for OutageStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.inner.get(key)
    }
    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.check()?;
        self.inner.multi_get(keys)
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.check()?;
        self.inner.scan(start, end, direction, limit)
    }
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.check()?;
        match self.armed.swap(0, Ordering::SeqCst) {
            REFUSE => {
                self.down.store(true, Ordering::SeqCst);
                Err(StoreError::Timeout(5000))
            }
            LOSE => {
                self.inner.write(batch)?;
                self.down.store(true, Ordering::SeqCst);
                Err(StoreError::Timeout(5000))
            }
            _ => self.inner.write(batch),
        }
    }
}

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn commits_wait_for_a_lost_store_and_resume_when_it_returns() {
    init_tracing();
    for mode in [REFUSE, LOSE] {
        let store = Arc::new(OutageStore::default());
        let node_key = key(60);
        let ledger = settings("dairy-0", "solo", vec![node_key.public_key()]);
        let node = Node::start(options(1, node_key, vec![ledger]), store.clone()).unwrap();
        let handle = node.ledgers()[0].clone();
        let admin = admin();
        let mut acknowledged = Vec::new();
        let outcome = register_trace_account(&handle).await;
        assert!(matches!(outcome.status, TxStatus::Committed { .. }), "{outcome:?}");
        let txs =
            (1..=10).map(|n| tx(&admin, handle.id(), n, vec![write(&format!("k{n}"), b"v", -1)]));
        for outcome in submit_and_wait(&handle, txs.collect()).await {
            assert!(matches!(
                outcome.status,
                TxStatus::Committed { result: ResultCode::Committed, .. }
            ));
            acknowledged.push(outcome.hash);
        }
        let before = handle.head();

        // The store goes down while the next block is written.
        store.armed.store(mode, Ordering::SeqCst);
        let batch: Vec<_> = (11..=15)
            .map(|n| tx(&admin, handle.id(), n, vec![write(&format!("k{n}"), b"v", -1)]))
            .collect();
        let submitted = handle.submit(batch).await.unwrap();
        let waiting = actix_rt::spawn(async move { submitted.wait().await });
        wait_until("outage reported", Duration::from_secs(5), || {
            handle.store_unavailable().is_some()
        })
        .await;
        assert!(handle.halted().is_none(), "an outage halted the ledger");
        actix_rt::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "acknowledged while the store was down");
        assert_eq!(handle.head(), before, "the head moved while the store was down");
        // New work is refused, clearly, while it lasts.
        let refused = submit_and_wait(
            &handle,
            vec![tx(&admin, handle.id(), 100, vec![write("k100", b"v", -1)])],
        )
        .await;
        assert!(
            matches!(&refused[0].status, TxStatus::Rejected(Rejection::StoreUnavailable(_))),
            "{refused:?}"
        );

        // It answers again: the waiting block commits, then new work does.
        store.down.store(false, Ordering::SeqCst);
        let outcomes = actix_rt::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("commits resumed")
            .unwrap()
            .unwrap();
        for outcome in outcomes {
            assert!(
                matches!(outcome.status, TxStatus::Committed { result: ResultCode::Committed, .. }),
                "mode {mode}: {outcome:?}"
            );
            acknowledged.push(outcome.hash);
        }
        assert!(handle.store_unavailable().is_none());
        let after =
            (16..=20).map(|n| tx(&admin, handle.id(), n, vec![write(&format!("k{n}"), b"v", -1)]));
        for outcome in submit_and_wait(&handle, after.collect()).await {
            assert!(matches!(
                outcome.status,
                TxStatus::Committed { result: ResultCode::Committed, .. }
            ));
            acknowledged.push(outcome.hash);
        }
        let id = handle.id();
        node.shutdown(Duration::from_secs(2)).await;
        let copy = Ledger::open(store.clone(), id).unwrap();
        for hash in &acknowledged {
            assert!(copy.transaction(hash).unwrap().is_some(), "mode {mode}: acknowledged lost");
        }
        let verdict = engine::verify::verify_ledger(store.clone(), id).unwrap();
        assert!(matches!(verdict, engine::verify::Verdict::Valid { .. }), "{verdict:?}");
    }
}

/// An outage seen only by a read (nothing waits to be written) is reported, and the
/// report ends with the next read that succeeds: readiness does not stay "down".
#[actix_rt::test]
async fn an_outage_seen_by_a_read_ends_when_the_next_read_succeeds() {
    init_tracing();
    let store = Arc::new(OutageStore::default());
    let node_key = key(61);
    let ledger = settings("dairy-1", "solo", vec![node_key.public_key()]);
    let node = Node::start(options(1, node_key, vec![ledger]), store.clone()).unwrap();
    let handle = node.ledgers()[0].clone();
    let admin = admin();
    let outcome = register_trace_account(&handle).await;
    assert!(matches!(outcome.status, TxStatus::Committed { .. }), "{outcome:?}");

    store.down.store(true, Ordering::SeqCst);
    let refused =
        submit_and_wait(&handle, vec![tx(&admin, handle.id(), 1, vec![write("k1", b"v", -1)])])
            .await;
    assert!(
        matches!(&refused[0].status, TxStatus::Rejected(Rejection::StoreUnavailable(_))),
        "{refused:?}"
    );
    assert!(handle.store_unavailable().is_some(), "the outage is reported");

    store.down.store(false, Ordering::SeqCst);
    let outcomes =
        submit_and_wait(&handle, vec![tx(&admin, handle.id(), 2, vec![write("k2", b"v", -1)])])
            .await;
    assert!(
        matches!(outcomes[0].status, TxStatus::Committed { result: ResultCode::Committed, .. }),
        "{outcomes:?}"
    );
    assert!(handle.store_unavailable().is_none(), "still reported after the store answered");
    assert!(handle.halted().is_none());
    node.shutdown(Duration::from_secs(2)).await;
}
