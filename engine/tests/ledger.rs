//! Execution rules: every rejection reason, atomicity of rejected transactions,
//! duplicates, history reads, and persistence of the head.

mod common;

use common::*;
use crypto_parallel::{HashAlgorithm, SignatureAlgorithm};
use engine::ledger::{Ledger, SignatureCheck};
use engine::model::{Address, Operation, ResultCode};
use engine::store::MemoryStore;
use engine::verify::{Verdict, verify_ledger};
use std::sync::Arc;

#[test]
fn traceability_flow_and_every_rejection_reason() {
    let admin_key = key(1, SignatureAlgorithm::Sm2);
    let store = Arc::new(MemoryStore::new());
    let mut ledger =
        Ledger::create(store.clone(), settings(&admin_key, HashAlgorithm::Sm3)).unwrap();
    assert_eq!(ledger.head().height, 0);
    let id = ledger.id();
    assert_eq!(ledger.id().0, ledger.block(0).unwrap().unwrap().hash);
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let brand_key = key(2, SignatureAlgorithm::Ed25519);
    let mut brand = Client { key: &brand_key, nonce: 0 };
    let stranger_key = key(3, SignatureAlgorithm::Sm2);
    let mut stranger = Client { key: &stranger_key, nonce: 0 };

    // Block 1: admin registers the brand and a data account; the stranger (unregistered)
    // is rejected.
    let block = append(
        &mut ledger,
        vec![
            admin.tx(id, vec![Operation::RegisterUser { public_key: brand_key.public_key() }]),
            admin.tx(id, vec![Operation::RegisterDataAccount { name: "milk".into() }]),
            stranger.tx(id, vec![Operation::RegisterDataAccount { name: "fake".into() }]),
        ],
    );
    let results: Vec<ResultCode> = block.transactions.iter().map(|(_, r)| *r).collect();
    assert_eq!(results, [ResultCode::Committed, ResultCode::Committed, ResultCode::UnknownAccount]);
    assert_eq!(ledger.data_account_owner("fake").unwrap(), None);

    // Block 2: writes and conflicts within one block see each other.
    let first = admin.tx(id, vec![write("milk", b"LOT-1", b"milked", -1)]);
    let block = append(
        &mut ledger,
        vec![
            first.clone(),
            admin.tx(id, vec![write("milk", b"LOT-1", b"pasteurised", 0)]),
            admin.tx(id, vec![write("milk", b"LOT-1", b"stale writer", 0)]),
            // Brand is a registered user but does not own "milk".
            brand.tx(id, vec![write("milk", b"LOT-1", b"not mine", 1)]),
            admin.tx(id, vec![write("nonexistent", b"k", b"v", -1)]),
            admin.tx(id, vec![Operation::RegisterDataAccount { name: "milk".into() }]),
            admin.tx(id, vec![Operation::RegisterUser { public_key: brand_key.public_key() }]),
            first.clone(), // same hash again within the block
        ],
    );
    let results: Vec<ResultCode> = block.transactions.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        results,
        [
            ResultCode::Committed,
            ResultCode::Committed,
            ResultCode::VersionConflict,
            ResultCode::NoPermission,
            ResultCode::UnknownAccount,
            ResultCode::AccountExists,
            ResultCode::AccountExists,
            ResultCode::Duplicate,
        ]
    );
    let latest = ledger.latest("milk", b"LOT-1").unwrap().unwrap();
    assert_eq!((latest.version, latest.value.as_slice()), (1, &b"pasteurised"[..]));
    let history = ledger.history("milk", b"LOT-1", 0, 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].value, b"milked");
    assert_eq!(history[0].tx_hash, first.hash(HashAlgorithm::Sm3));
    assert_eq!(history[1].height, 2);
    assert_eq!(ledger.version("milk", b"LOT-1", 0).unwrap().unwrap().value, b"milked");
    assert_eq!(ledger.version("milk", b"LOT-1", 2).unwrap(), None);

    // Block 3: a replay of a committed transaction in a later block; a transaction for
    // another ledger; a bad signature; an all-or-nothing transaction whose second write
    // conflicts (its first write must not land).
    let mut wrong_ledger = admin.tx(id, vec![write("milk", b"X", b"v", -1)]);
    wrong_ledger.content.ledger_id.0[0] ^= 1;
    let wrong_ledger =
        engine::model::Transaction::sign(wrong_ledger.content, &[&admin_key]).unwrap();
    let mut forged = admin.tx(id, vec![write("milk", b"Y", b"v", -1)]);
    forged.endorsements[0].signature = admin_key.sign(b"something else");
    let root_before = ledger.head().state_root;
    let block = append(
        &mut ledger,
        vec![
            first.clone(),
            wrong_ledger,
            forged,
            admin.tx(id, vec![write("milk", b"LOT-2", b"a", -1), write("milk", b"LOT-1", b"b", 0)]),
        ],
    );
    let results: Vec<ResultCode> = block.transactions.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        results,
        [
            ResultCode::Duplicate,
            ResultCode::WrongLedger,
            ResultCode::InvalidSignature,
            ResultCode::VersionConflict
        ]
    );
    assert_eq!(ledger.latest("milk", b"LOT-2").unwrap(), None, "rejected tx wrote nothing");
    assert_eq!(ledger.head().state_root, root_before, "rejections change no state");
    // The original record of the replayed transaction is untouched.
    let record = ledger.transaction(&first.hash(HashAlgorithm::Sm3)).unwrap().unwrap();
    assert_eq!((record.height, record.index, record.result), (2, 0, ResultCode::Committed));

    // The whole ledger verifies by replay, and reopening restores the head.
    let head = ledger.head();
    drop(ledger);
    let reopened = Ledger::open(store.clone(), head_id(&store, head)).unwrap();
    assert_eq!(reopened.head(), head);
    assert_eq!(
        verify_ledger(store.clone(), reopened.id()).unwrap(),
        Verdict::Valid { height: 3, transactions: 15 }
    );
}

fn head_id(store: &Arc<MemoryStore>, _head: engine::ledger::Head) -> engine::model::LedgerId {
    // One ledger in the store: its id is the first 32 bytes of any key.
    let (key, _) =
        store.scan(&[], &[0xff; 40], engine::store::Direction::Forward, 1).unwrap().remove(0);
    engine::model::LedgerId(key[..32].try_into().unwrap())
}

use engine::store::KvStore;

#[test]
fn empty_and_oversized_blocks_are_refused_and_change_nothing() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let mut ledger =
        Ledger::create(MemoryStore::new(), settings(&admin_key, HashAlgorithm::Sm3)).unwrap();
    let head = ledger.head();
    let id = ledger.id();
    assert!(ledger.execute_block(Vec::new(), SignatureCheck::Verify, 0, Address([0; 32])).is_err());
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let tx = admin.tx(id, vec![Operation::RegisterDataAccount { name: "a".into() }]);
    let verdict_mismatch =
        ledger.execute_block(vec![tx], SignatureCheck::Verified(vec![]), 0, Address([0; 32]));
    assert!(verdict_mismatch.is_err());
    assert_eq!(ledger.head(), head);
    // A block executed on an old head cannot be committed after another block landed.
    let tx1 = admin.tx(id, vec![Operation::RegisterDataAccount { name: "b".into() }]);
    let tx2 = admin.tx(id, vec![Operation::RegisterDataAccount { name: "c".into() }]);
    let stale =
        ledger.execute_block(vec![tx1], SignatureCheck::Verify, 1, Address([0; 32])).unwrap();
    append(&mut ledger, vec![tx2]);
    assert!(matches!(ledger.commit(stale), Err(engine::ledger::EngineError::NotNextBlock { .. })));
    assert_eq!(ledger.head().height, 1);
}

#[test]
fn sha256_ledgers_work_and_differ_from_sm3() {
    let admin_key = key(1, SignatureAlgorithm::Sm2);
    let sm3 = Ledger::create(MemoryStore::new(), settings(&admin_key, HashAlgorithm::Sm3)).unwrap();
    let mut sha =
        Ledger::create(MemoryStore::new(), settings(&admin_key, HashAlgorithm::Sha256)).unwrap();
    assert_ne!(sm3.id(), sha.id());
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let tx = admin.tx(sha.id(), vec![Operation::RegisterDataAccount { name: "a".into() }]);
    let block = append(&mut sha, vec![tx]);
    assert_eq!(block.transactions[0].1, ResultCode::Committed);
}

#[test]
fn a_forged_copy_does_not_block_the_genuine_transaction() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let store = Arc::new(MemoryStore::new());
    let (mut ledger, mut admin) = ledger_with_account(store.clone(), &admin_key, "rice");
    let id = ledger.id();
    let genuine = admin.tx(id, vec![write("rice", b"SACK-1", b"harvested", -1)]);
    let mut forged = genuine.clone();
    forged.endorsements[0].signature = admin_key.sign(b"not the content");
    // The forged copy lands first, in an earlier block, and again just before the genuine one.
    let block = append(&mut ledger, vec![forged.clone()]);
    assert_eq!(block.transactions[0].1, ResultCode::InvalidSignature);
    let block = append(&mut ledger, vec![forged, genuine.clone()]);
    assert_eq!(block.transactions[0].1, ResultCode::InvalidSignature);
    assert_eq!(block.transactions[1].1, ResultCode::Committed);
    let record = ledger.transaction(&genuine.hash(HashAlgorithm::Sm3)).unwrap().unwrap();
    assert_eq!(record.transaction, genuine);
    assert_eq!(ledger.latest("rice", b"SACK-1").unwrap().unwrap().value, b"harvested");
    assert!(matches!(verify_ledger(store, id).unwrap(), Verdict::Valid { height: 3, .. }));
}

/// A block executed and then dropped (a `bft` proposal that lost to another at its
/// height) leaves no trace: its state-tree nodes carry the same version as the block
/// that commits at that height, and only the committed block's may reach the ledger
/// handle's node cache. The next block comes out as on a ledger that never saw it.
#[test]
fn an_executed_block_that_is_dropped_changes_nothing_after() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let mut ledger =
        Ledger::create(MemoryStore::new(), settings(&admin_key, HashAlgorithm::Sm3)).unwrap();
    let mut twin =
        Ledger::create(MemoryStore::new(), settings(&admin_key, HashAlgorithm::Sm3)).unwrap();
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let setup = vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: "trace".into() }])];
    append(&mut ledger, setup.clone());
    append(&mut twin, setup);
    let mut writes = |label: &str| -> Vec<engine::model::Transaction> {
        (0..300)
            .map(|i| {
                admin.tx(id, vec![write("trace", format!("{label}-{i}").as_bytes(), b"v", -1)])
            })
            .collect()
    };
    let (kept, dropped, next) = (writes("kept"), writes("dropped"), writes("next"));
    let timestamp = 1_764_000_000_000 + ledger.head().height + 1;
    let executed = ledger
        .execute_block(kept.clone(), SignatureCheck::Verify, timestamp, Address([7; 32]))
        .unwrap();
    let lost =
        ledger.execute_block(dropped, SignatureCheck::Verify, timestamp, Address([7; 32])).unwrap();
    assert_ne!(lost.block.header.state_root, executed.block.header.state_root);
    drop(lost);
    ledger.commit(executed).unwrap();
    append(&mut twin, kept);
    let ours = append(&mut ledger, next.clone());
    let theirs = append(&mut twin, next);
    assert_eq!(ours.header.state_root, theirs.header.state_root);
    assert_eq!(ours.hash, theirs.hash);
    assert!(matches!(verify_ledger(ledger.store(), id).unwrap(), Verdict::Valid { .. }));
}

/// A block committed without an fsync is the committing handle's head at once and the
/// next block executes on it; a reader at the block before (a node's published head)
/// sees neither the block nor its transactions by hash or by proof. After `sync` the
/// ledger reopens at the new head and verifies.
#[test]
fn an_unsynced_block_is_invisible_to_a_reader_at_the_head_before_it() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let store = Arc::new(MemoryStore::new());
    let (mut ledger, mut admin) = ledger_with_account(store.clone(), &admin_key, "a");
    let id = ledger.id();
    let published = ledger.head();

    let first = admin.tx(id, vec![write("a", b"k", b"v1", -1)]);
    let first_hash = first.content.hash(HashAlgorithm::Sm3);
    let executed =
        ledger.execute_block(vec![first], SignatureCheck::Verify, 2, Address([0; 32])).unwrap();
    ledger.commit_unsynced(executed).unwrap();
    assert_eq!(ledger.head().height, published.height + 1);
    assert!(ledger.transaction(&first_hash).unwrap().is_some());

    let reader = Ledger::at_head(store.clone(), id, ledger.settings().clone(), published);
    assert_eq!(reader.head(), published);
    assert!(reader.block(published.height + 1).unwrap().is_none());
    assert!(reader.transaction(&first_hash).unwrap().is_none());
    assert!(reader.prove_transaction(&first_hash).unwrap().is_none());

    // The next block executes on the unsynced one.
    let second = admin.tx(id, vec![write("a", b"k", b"v2", 0)]);
    let block = append(&mut ledger, vec![second]);
    assert_eq!(block.transactions[0].1, ResultCode::Committed);
    engine::store::KvStore::sync(&*store).unwrap();
    let reopened = Ledger::open(store.clone(), id).unwrap();
    assert_eq!(reopened.head(), ledger.head());
    assert!(reopened.transaction(&first_hash).unwrap().is_some());
    assert!(matches!(verify_ledger(store, id).unwrap(), Verdict::Valid { .. }));
}
