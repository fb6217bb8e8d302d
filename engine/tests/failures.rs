//! Injected storage failures: a failed commit changes nothing, the ledger stays at the
//! previous height, reopens there and verifies; the same block commits once the store
//! works again.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use crypto_parallel::{HashAlgorithm, SignatureAlgorithm};
use engine::ledger::{EngineError, Ledger, SignatureCheck};
use engine::model::Address;
use engine::store::{Direction, Entries, KvStore, MemoryStore, StoreError, WriteBatch};
use engine::verify::{Verdict, verify_ledger};

/// A fake store for fault injection: `MemoryStore` whose writes fail while `failing`.
struct FlakyStore {
    inner: MemoryStore,
    failing: AtomicBool,
}

impl KvStore for FlakyStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        self.inner.scan(start, end, direction, limit)
    }
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected failure: disk full".into()));
        }
        self.inner.write(batch)
    }
}

#[test]
fn failed_commit_changes_nothing() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let store = Arc::new(FlakyStore { inner: MemoryStore::new(), failing: AtomicBool::new(false) });
    let (mut ledger, mut admin) = ledger_with_account(store.clone(), &admin_key, "fish");
    let id = ledger.id();
    let head = ledger.head();
    let keys_before = store.inner.len();

    let tx = admin.tx(id, vec![write("fish", b"CATCH-1", b"landed", -1)]);
    let executed = ledger
        .execute_block(vec![tx.clone()], SignatureCheck::Verify, 5, Address([0; 32]))
        .unwrap();
    let retry =
        ledger.execute_block(vec![tx], SignatureCheck::Verify, 5, Address([0; 32])).unwrap();
    store.failing.store(true, Ordering::SeqCst);
    assert!(matches!(ledger.commit(executed), Err(EngineError::Store(_))));
    assert_eq!(ledger.head(), head, "in-memory head unchanged");
    assert_eq!(store.inner.len(), keys_before, "nothing written");
    drop(ledger);

    let mut reopened = Ledger::open(store.clone(), id).unwrap();
    assert_eq!(reopened.head(), head);
    assert_eq!(
        verify_ledger(store.clone(), id).unwrap(),
        Verdict::Valid { height: 1, transactions: 1 }
    );

    store.failing.store(false, Ordering::SeqCst);
    reopened.commit(retry).unwrap();
    assert_eq!(reopened.head().height, 2);
    assert_eq!(reopened.latest("fish", b"CATCH-1").unwrap().unwrap().value, b"landed");
    assert_eq!(verify_ledger(store, id).unwrap(), Verdict::Valid { height: 2, transactions: 2 });
}

#[test]
fn tampered_storage_is_reported_at_its_height() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let store = Arc::new(MemoryStore::new());
    let (mut ledger, mut admin) = ledger_with_account(store.clone(), &admin_key, "fish");
    let id = ledger.id();
    let victim = admin.tx(id, vec![write("fish", b"CATCH-1", b"landed", -1)]);
    append(&mut ledger, vec![victim.clone()]);
    append(&mut ledger, vec![admin.tx(id, vec![write("fish", b"CATCH-1", b"sold", 0)])]);
    assert!(matches!(verify_ledger(store.clone(), id).unwrap(), Verdict::Valid { height: 3, .. }));

    // Rewrite the stored value of version 0 behind the ledger's back: the history record
    // is not hashed directly, but replay recomputes the state root from transactions,
    // so rewrite the transaction itself (its signature no longer matches).
    let tx_key = engine::layout::tx_key(&id, &victim.hash(HashAlgorithm::Sm3));
    let mut record = store.get(&tx_key).unwrap().unwrap();
    let last = record.len() - 1;
    record[last] ^= 1; // flip a bit of the signature
    let mut batch = WriteBatch::new();
    batch.put(tx_key, record);
    store.write(batch).unwrap();
    match verify_ledger(store.clone(), id).unwrap() {
        Verdict::Invalid { height, reason } => {
            assert_eq!(height, 2, "{reason}");
        }
        valid => panic!("tampering not detected: {valid:?}"),
    }
}

#[test]
fn tampered_history_value_is_detected() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let store = Arc::new(MemoryStore::new());
    let (mut ledger, mut admin) = ledger_with_account(store.clone(), &admin_key, "fish");
    let id = ledger.id();
    append(&mut ledger, vec![admin.tx(id, vec![write("fish", b"CATCH-1", b"landed", -1)])]);
    let history_key = engine::layout::history_key(&id, "fish", b"CATCH-1", 0);
    let mut record = store.get(&history_key).unwrap().unwrap();
    *record.last_mut().unwrap() = b'X'; // "landeX"
    let mut batch = WriteBatch::new();
    batch.put(history_key, record);
    store.write(batch).unwrap();
    assert_eq!(ledger.latest("fish", b"CATCH-1").unwrap().unwrap().value, b"landeX");
    assert!(matches!(verify_ledger(store, id).unwrap(), Verdict::Invalid { .. }));
}
