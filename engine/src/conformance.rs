//! The `KvStore` conformance suite: every backend runs these same checks (memory here,
//! RocksDB in `storage-rocksdb/tests`, TiKV when a cluster is configured), so no
//! implementation can drift from the others.
//!
//! Use: `engine::conformance::run_all(|| MyStore::open_fresh())` from a test. Each check
//! gets a fresh, empty store from the factory and panics with a description on failure.

use std::collections::BTreeMap;

use crate::store::{Direction, KvStore, WriteBatch, prefix_end, scan_prefix};

/// Runs every check, each on a fresh store made by `fresh`.
pub fn run_all<S: KvStore>(mut fresh: impl FnMut() -> S) {
    get_put_delete(&fresh());
    batch_is_ordered_and_last_write_wins(&fresh());
    multi_get_keeps_order(&fresh());
    scan_bounds_and_limits(&fresh());
    scan_binary_keys(&fresh());
    large_values(&fresh());
    random_operations_match_model(&fresh(), 0x5eed_0001);
    random_operations_match_model(&fresh(), 0x5eed_0002);
    ledger_events(&fresh());
    ledger_recalls(&fresh());
    ledger_versions(&fresh());
    expectations_are_compare_and_swap(&fresh());
    two_writers_cannot_both_advance_a_ledger(&fresh());
    unsynced_writes_read_at_once_and_sync(&fresh());
}

fn put(store: &dyn KvStore, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(key.to_vec(), value.to_vec());
    store.write(batch).expect("write");
}

/// Absent keys read as `None`; puts, overwrites and deletes are visible at once.
pub fn get_put_delete(store: &dyn KvStore) {
    assert_eq!(store.get(b"missing").unwrap(), None);
    put(store, b"k", b"v1");
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
    put(store, b"k", b"v2");
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    let mut batch = WriteBatch::new();
    batch.delete(b"k".to_vec());
    batch.delete(b"never-existed".to_vec());
    store.write(batch).unwrap();
    assert_eq!(store.get(b"k").unwrap(), None);
    // Empty values are values, not absence.
    put(store, b"empty", b"");
    assert_eq!(store.get(b"empty").unwrap(), Some(Vec::new()));
    // An empty batch is a no-op.
    store.write(WriteBatch::new()).unwrap();
}

/// `write_unsynced` applies a batch as `write` does (in order, last write wins,
/// expectations checked, a failed one writes nothing) and reads see it at once; `sync`
/// succeeds, also with nothing to sync, and leaves everything readable.
pub fn unsynced_writes_read_at_once_and_sync(store: &dyn KvStore) {
    use crate::store::StoreError;
    store.sync().expect("sync with nothing written");
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"1".to_vec());
    batch.put(b"a".to_vec(), b"2".to_vec());
    batch.put(b"b".to_vec(), b"1".to_vec());
    batch.delete(b"b".to_vec());
    batch.expect(b"head".to_vec(), None);
    batch.put(b"head".to_vec(), b"1".to_vec());
    store.write_unsynced(batch).unwrap();
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(
        store.multi_get(&[b"head", b"b"]).unwrap(),
        vec![Some(b"1".to_vec()), None],
        "an unsynced batch is visible to multi_get"
    );
    let mut stale = WriteBatch::new();
    stale.expect(b"head".to_vec(), None);
    stale.put(b"head".to_vec(), b"2".to_vec());
    stale.put(b"c".to_vec(), b"1".to_vec());
    assert!(matches!(store.write_unsynced(stale), Err(StoreError::Conflict(_))));
    assert_eq!(store.get(b"c").unwrap(), None, "a conflicting unsynced batch wrote");
    // A second unsynced batch after the first; one sync covers both.
    let mut batch = WriteBatch::new();
    batch.put(b"c".to_vec(), b"3".to_vec());
    store.write_unsynced(batch).unwrap();
    store.sync().expect("sync");
    let all = store.scan(b"", b"\xff", Direction::Forward, 10).unwrap();
    let keys: Vec<&[u8]> = all.iter().map(|(key, _)| key.as_slice()).collect();
    assert_eq!(keys, vec![&b"a"[..], b"c", b"head"]);
}

/// A conditional batch applies only when every expectation holds; otherwise it returns
/// a conflict and writes nothing.
pub fn expectations_are_compare_and_swap(store: &dyn KvStore) {
    use crate::store::StoreError;
    let mut batch = WriteBatch::new();
    batch.expect(b"head".to_vec(), None);
    batch.put(b"head".to_vec(), b"1".to_vec());
    batch.put(b"data-1".to_vec(), b"x".to_vec());
    store.write(batch).expect("expected absent, was absent");
    let mut batch = WriteBatch::new();
    batch.expect(b"head".to_vec(), None);
    batch.put(b"head".to_vec(), b"other".to_vec());
    batch.put(b"data-other".to_vec(), b"y".to_vec());
    assert!(matches!(store.write(batch), Err(StoreError::Conflict(_))), "absent expected");
    let mut batch = WriteBatch::new();
    batch.expect(b"head".to_vec(), Some(b"0".to_vec()));
    batch.put(b"head".to_vec(), b"other".to_vec());
    batch.put(b"data-other".to_vec(), b"y".to_vec());
    assert!(matches!(store.write(batch), Err(StoreError::Conflict(_))), "wrong value expected");
    assert_eq!(store.get(b"head").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(store.get(b"data-other").unwrap(), None, "a refused batch wrote something");
    let mut batch = WriteBatch::new();
    batch.expect(b"head".to_vec(), Some(b"1".to_vec()));
    batch.put(b"head".to_vec(), b"2".to_vec());
    batch.delete(b"data-1".to_vec());
    store.write(batch).expect("expected value held");
    assert_eq!(store.get(b"head").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get(b"data-1").unwrap(), None);
}

/// Two `Ledger`s opened on one store (two processes on one TiKV keyspace): the first to
/// commit a height wins; the other's block for that height is refused as a conflict and
/// changes nothing.
pub fn two_writers_cannot_both_advance_a_ledger(store: &dyn KvStore) {
    use crate::ledger::{Ledger, SignatureCheck};
    use crate::model::{Address, Operation, Transaction, TransactionContent};
    use crate::store::StoreError;

    let admin = fixed_key(1);
    let settings = solo_settings("two-writers", &[&admin]);
    let mut first = Ledger::create(store, settings).expect("create ledger");
    let id = first.id();
    let mut second = Ledger::open(store, id).expect("open ledger");
    let tx = |nonce: u64, name: &str| {
        let operations = vec![Operation::RegisterDataAccount { name: name.into() }];
        let content = TransactionContent { ledger_id: id, nonce, timestamp_ms: nonce, operations };
        Transaction::sign(content, &[&admin]).expect("sign")
    };
    let proposer = Address([0; 32]);
    let one = first.execute_block(vec![tx(1, "one")], SignatureCheck::Verify, 1, proposer);
    let two = second.execute_block(vec![tx(2, "two")], SignatureCheck::Verify, 1, proposer);
    first.commit(one.expect("execute")).expect("the first writer commits");
    let refused = second.commit(two.expect("execute"));
    assert!(
        matches!(&refused, Err(crate::ledger::EngineError::Store(StoreError::Conflict(_)))),
        "a second writer advanced the same ledger: {refused:?}"
    );
    let reopened = Ledger::open(store, id).expect("reopen");
    assert_eq!(reopened.head(), first.head(), "the refused block changed the head");
    assert!(reopened.data_account_owner("two").unwrap().is_none(), "the refused block wrote");
    assert!(reopened.data_account_owner("one").unwrap().is_some());
}

/// Within one batch, later changes to a key win over earlier ones.
pub fn batch_is_ordered_and_last_write_wins(store: &dyn KvStore) {
    let mut batch = WriteBatch::new();
    batch.put(b"a".to_vec(), b"1".to_vec());
    batch.put(b"a".to_vec(), b"2".to_vec());
    batch.put(b"b".to_vec(), b"1".to_vec());
    batch.delete(b"b".to_vec());
    batch.delete(b"c".to_vec());
    batch.put(b"c".to_vec(), b"3".to_vec());
    store.write(batch).unwrap();
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}

/// `multi_get` answers in the order asked, with `None` for absent keys and duplicates
/// answered twice.
pub fn multi_get_keeps_order(store: &dyn KvStore) {
    put(store, b"x", b"1");
    put(store, b"y", b"2");
    let got = store.multi_get(&[b"y", b"nope", b"x", b"y"]).unwrap();
    assert_eq!(got, vec![Some(b"2".to_vec()), None, Some(b"1".to_vec()), Some(b"2".to_vec())]);
    assert!(store.multi_get(&[]).unwrap().is_empty());

    // A block's probes: many keys sharing a long prefix (a ledger id), asked in no
    // order, some absent, some asked twice, some a prefix of another or differing only
    // in trailing zero bytes; the answers match key-by-key reads.
    let mut random = xorshift(0x2545_f491_4f6c_dd1d);
    let mut next = move |bound: u64| random() % bound;
    let shared = [0x5a_u8; 33];
    let mut batch = WriteBatch::new();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for at in 0..600u32 {
        let mut key = shared.to_vec();
        key.extend((0..next(20)).map(|_| [0u8, 1, 0x7f, 0xff][next(4) as usize]));
        if next(3) != 0 {
            batch.put(key.clone(), at.to_be_bytes().to_vec());
        }
        keys.push(key);
    }
    store.write(batch).expect("write");
    for _ in 0..100 {
        let again = keys[next(keys.len() as u64) as usize].clone();
        keys.push(again);
    }
    for at in (1..keys.len()).rev() {
        keys.swap(at, next(at as u64 + 1) as usize);
    }
    let asked: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let one_by_one: Vec<Option<Vec<u8>>> =
        asked.iter().map(|key| store.get(key).unwrap()).collect();
    assert!(one_by_one.iter().any(Option::is_none) && one_by_one.iter().any(Option::is_some));
    assert_eq!(
        store.multi_get(&asked).unwrap(),
        one_by_one,
        "a large multi-get, in the order asked"
    );
}

/// `start` is inclusive, `end` exclusive; limits cut from the scan's starting side.
pub fn scan_bounds_and_limits(store: &dyn KvStore) {
    let mut batch = WriteBatch::new();
    for i in 0u8..10 {
        batch.put(vec![b'k', i], vec![i]);
    }
    batch.put(b"j".to_vec(), b"before".to_vec());
    batch.put(b"l".to_vec(), b"after".to_vec());
    store.write(batch).unwrap();
    let keys = |entries: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<u8> {
        entries
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(k[1], v[0], "value belongs to key");
                k[1]
            })
            .collect()
    };
    let all = store.scan(&[b'k', 0], &[b'k', 10], Direction::Forward, 100).unwrap();
    assert_eq!(keys(all), (0..10).collect::<Vec<u8>>());
    let part = store.scan(&[b'k', 2], &[b'k', 5], Direction::Forward, 100).unwrap();
    assert_eq!(keys(part), vec![2, 3, 4]);
    let limited = store.scan(&[b'k', 0], &[b'k', 10], Direction::Forward, 3).unwrap();
    assert_eq!(keys(limited), vec![0, 1, 2]);
    let reverse = store.scan(&[b'k', 0], &[b'k', 10], Direction::Reverse, 3).unwrap();
    assert_eq!(keys(reverse), vec![9, 8, 7]);
    let reverse_part = store.scan(&[b'k', 2], &[b'k', 5], Direction::Reverse, 100).unwrap();
    assert_eq!(keys(reverse_part), vec![4, 3, 2]);
    assert!(store.scan(&[b'k', 5], &[b'k', 5], Direction::Forward, 10).unwrap().is_empty());
    assert!(store.scan(&[b'k', 6], &[b'k', 5], Direction::Reverse, 10).unwrap().is_empty());
    assert!(store.scan(&[b'k', 0], &[b'k', 10], Direction::Forward, 0).unwrap().is_empty());
    let prefixed = scan_prefix(store, b"k", Direction::Forward, 100).unwrap();
    assert_eq!(prefixed.len(), 10);
    let prefixed = scan_prefix(store, b"k", Direction::Reverse, 1).unwrap();
    assert_eq!(prefixed[0].0, vec![b'k', 9]);
}

/// Keys are compared as unsigned bytes: 0x00 and 0xff bytes, prefixes and big-endian
/// integers sort as the layout expects.
pub fn scan_binary_keys(store: &dyn KvStore) {
    let keys: Vec<Vec<u8>> = vec![
        vec![0x01],
        vec![0x01, 0x00],
        vec![0x01, 0x00, 0x00],
        vec![0x01, 0x7f],
        vec![0x01, 0x80],
        vec![0x01, 0xff],
        vec![0x01, 0xff, 0xff],
        vec![0x02],
    ];
    let mut batch = WriteBatch::new();
    for key in keys.iter().rev() {
        batch.put(key.clone(), key.clone());
    }
    store.write(batch).unwrap();
    let scanned: Vec<Vec<u8>> = store
        .scan(&[0x01], &[0x02], Direction::Forward, 100)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(scanned, keys[..7].to_vec());
    let prefixed = scan_prefix(store, &[0x01, 0xff], Direction::Forward, 100).unwrap();
    assert_eq!(prefixed.len(), 2);
    assert_eq!(prefix_end(&[0x01, 0xff]), Some(vec![0x02]));
    // Big-endian heights sort numerically.
    let mut batch = WriteBatch::new();
    for height in [1u64, 255, 256, 65_536, u64::MAX] {
        let mut key = b"h".to_vec();
        key.extend_from_slice(&height.to_be_bytes());
        batch.put(key, Vec::new());
    }
    store.write(batch).unwrap();
    let heights: Vec<u64> = scan_prefix(store, b"h", Direction::Forward, 100)
        .unwrap()
        .into_iter()
        .map(|(k, _)| u64::from_be_bytes(k[1..].try_into().unwrap()))
        .collect();
    assert_eq!(heights, vec![1, 255, 256, 65_536, u64::MAX]);
}

/// Values up to a megabyte round-trip exactly.
pub fn large_values(store: &dyn KvStore) {
    let value: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    put(store, b"big", &value);
    assert_eq!(store.get(b"big").unwrap(), Some(value));
}

/// xorshift64* from `seed` (not zero): deterministic, so a failure replays from its seed.
fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Random batches of puts and deletes over a small key space, checked against a
/// `BTreeMap` after every batch with gets and scans in both directions.
pub fn random_operations_match_model(store: &dyn KvStore, seed: u64) {
    let mut next = xorshift(seed);
    let mut model = BTreeMap::<Vec<u8>, Vec<u8>>::new();
    for round in 0..50 {
        let mut batch = WriteBatch::new();
        for _ in 0..(next() % 20) {
            let key = vec![b'r', (next() % 4) as u8, (next() % 16) as u8];
            if next().is_multiple_of(4) {
                model.remove(&key);
                batch.delete(key);
            } else {
                let value = (next() % 1000).to_be_bytes().to_vec();
                model.insert(key.clone(), value.clone());
                batch.put(key, value);
            }
        }
        store.write(batch).unwrap();
        let start = vec![b'r', (next() % 4) as u8];
        let end = vec![b'r', (next() % 5) as u8, (next() % 17) as u8];
        let limit = (next() % 10) as usize;
        for direction in [Direction::Forward, Direction::Reverse] {
            let got = store.scan(&start, &end, direction, limit).unwrap();
            let expected: Vec<(Vec<u8>, Vec<u8>)> = if start >= end {
                Vec::new()
            } else {
                let range = model.range(start.clone()..end.clone());
                let cloned = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
                match direction {
                    Direction::Forward => range.take(limit).map(cloned).collect(),
                    Direction::Reverse => range.rev().take(limit).map(cloned).collect(),
                }
            };
            assert_eq!(got, expected, "seed {seed:#x} round {round} {direction:?}");
        }
        for (key, value) in &model {
            assert_eq!(store.get(key).unwrap().as_ref(), Some(value), "seed {seed:#x}");
        }
    }
}

/// Settings of a solo SM3 ledger whose first users are `users` (Ed25519), as the ledger
/// checks use them.
fn solo_settings(
    name: &str,
    users: &[&crypto_parallel::PrivateKey],
) -> crate::model::LedgerSettings {
    crate::model::LedgerSettings {
        name: name.into(),
        hash_algorithm: crypto_parallel::HashAlgorithm::Sm3,
        signature_algorithms: vec![crypto_parallel::SignatureAlgorithm::Ed25519],
        consensus: "solo".into(),
        participants: vec![],
        initial_users: users.iter().map(|key| key.public_key()).collect(),
        regulators: Vec::new(),
        participant_quorum: 0,
        parents: Vec::new(),
        roles: Vec::new(),
        created_ms: 1_764_000_000_000,
    }
}

/// Signs the ledger checks' transactions: one signer each, nonces (and timestamps)
/// counting up from 1.
struct Signer {
    ledger_id: crate::model::LedgerId,
    nonce: u64,
}

impl Signer {
    fn new(ledger_id: crate::model::LedgerId) -> Self {
        Signer { ledger_id, nonce: 0 }
    }

    fn sign(
        &mut self,
        key: &crypto_parallel::PrivateKey,
        operations: Vec<crate::model::Operation>,
    ) -> crate::model::Transaction {
        self.nonce += 1;
        let content = crate::model::TransactionContent {
            ledger_id: self.ledger_id,
            nonce: self.nonce,
            timestamp_ms: self.nonce,
            operations,
        };
        crate::model::Transaction::sign(content, &[key]).expect("sign")
    }
}

/// A fixed Ed25519 key (the ledger checks sign fast and reproducibly).
fn fixed_key(seed: u8) -> crypto_parallel::PrivateKey {
    let mut raw = [seed; 32];
    raw[0] = 1;
    crypto_parallel::PrivateKey::from_raw(crypto_parallel::SignatureAlgorithm::Ed25519, &raw)
        .expect("fixed key")
}

/// A ledger on this store: event accounts, topics and ledger-wide event numbers are
/// assigned deterministically, rejected transactions publish nothing, every event is
/// readable by number and by topic, the topic's latest event is proven by the state
/// tree, and the whole ledger verifies by replay.
pub fn ledger_events(store: &dyn KvStore) {
    use crate::ledger::{Ledger, SignatureCheck};
    use crate::model::{Address, Operation, ResultCode, Transaction};
    use crate::proof::verify_state_proof;
    use crate::state::{StateKey, data_leaf_value};
    use crypto_parallel::{HashAlgorithm, PrivateKey};

    let algorithm = HashAlgorithm::Sm3;
    let (admin, other) = (fixed_key(1), fixed_key(2));
    let settings = solo_settings("events", &[&admin, &other]);
    let mut ledger = Ledger::create(store, settings).expect("create ledger");
    let id = ledger.id();
    let mut signer = Signer::new(id);
    let mut tx = |key: &PrivateKey, operations: Vec<Operation>| signer.sign(key, operations);
    let publish = |account: &str, topic: &str, payload: &str| Operation::PublishEvent {
        account: account.into(),
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
    };
    let append = |ledger: &mut Ledger<&dyn KvStore>, txs: Vec<Transaction>| {
        let height = ledger.head().height + 1;
        let block = ledger
            .append_block(txs, SignatureCheck::Verify, height, Address([9; 32]))
            .expect("append");
        block.transactions.iter().map(|(_, result)| *result).collect::<Vec<_>>()
    };
    let register = |name: &str| Operation::RegisterEventAccount { name: name.into() };

    // Block 1: registration and publication in one transaction; another in the same
    // block sees the account; a transaction that fails publishes nothing.
    let results = append(
        &mut ledger,
        vec![
            tx(&admin, vec![register("shipments"), publish("shipments", "arrived", "a0")]),
            tx(
                &admin,
                vec![publish("shipments", "arrived", "a1"), publish("shipments", "left", "l0")],
            ),
            tx(&other, vec![publish("shipments", "arrived", "not the owner")]),
            tx(&admin, vec![publish("shipments", "arrived", "lost"), publish("nowhere", "x", "y")]),
            tx(&admin, vec![register("$system")]),
            tx(&other, vec![register("shipments")]),
        ],
    );
    assert_eq!(
        results,
        [
            ResultCode::Committed,
            ResultCode::Committed,
            ResultCode::NoPermission,
            ResultCode::UnknownAccount,
            ResultCode::NoPermission,
            ResultCode::AccountExists,
        ],
        "event operations' results"
    );
    // Block 2: numbering and sequences continue from the store.
    let results =
        append(&mut ledger, vec![tx(&admin, vec![publish("shipments", "arrived", "a2")])]);
    assert_eq!(results, [ResultCode::Committed]);

    assert_eq!(ledger.event_count().expect("count"), 4, "ledger-wide event count");
    let all = ledger.events(0, 100).expect("events");
    let summary: Vec<(u64, &str, u64, &[u8], u64)> = all
        .iter()
        .map(|e| (e.number, e.topic.as_str(), e.sequence, e.payload.as_slice(), e.height))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "arrived", 0, &b"a0"[..], 1),
            (1, "arrived", 1, &b"a1"[..], 1),
            (2, "left", 0, &b"l0"[..], 1),
            (3, "arrived", 2, &b"a2"[..], 2),
        ],
        "events in commit order"
    );
    assert_eq!(ledger.events(2, 1).expect("page"), all[2..3], "paging by number");
    assert_eq!(ledger.event(3).expect("event"), Some(all[3].clone()));
    assert_eq!(ledger.event(4).expect("event"), None);
    let arrived = ledger.topic_events("shipments", "arrived", 1, 10).expect("topic");
    assert_eq!(arrived, vec![all[1].clone(), all[3].clone()], "topic from sequence 1");
    assert_eq!(ledger.topic_length("shipments", "arrived").expect("length"), 3);
    assert_eq!(ledger.topic_length("shipments", "never").expect("length"), 0);
    assert_eq!(ledger.event_account_owner("$system").expect("owner"), None);

    // The topic's latest event is in the state tree, proven against the block header.
    let key = StateKey::EventTopic { account: "shipments".into(), topic: "arrived".into() };
    let proof = ledger.prove_state(&key, 2).expect("prove");
    assert_eq!(proof.leaf_value, Some(data_leaf_value(algorithm, 2, b"a2")));
    verify_state_proof(algorithm, &proof).expect("topic proof verifies");
    let earlier = ledger.prove_state(&key, 1).expect("prove at 1");
    assert_eq!(earlier.leaf_value, Some(data_leaf_value(algorithm, 1, b"a1")));

    match crate::verify::verify_ledger(ledger.store(), id).expect("verify") {
        crate::verify::Verdict::Valid { height, .. } => assert_eq!(height, 2),
        invalid => panic!("ledger with events does not verify: {invalid:?}"),
    }
    // A tampered event is found by the replay.
    let key = crate::layout::event_key(&id, 1);
    let mut stored = store.get(&key).expect("get").expect("event 1 stored");
    *stored.last_mut().expect("payload") ^= 1;
    let mut batch = WriteBatch::new();
    batch.put(key, stored);
    store.write(batch).expect("tamper");
    assert!(
        matches!(
            crate::verify::verify_ledger(store, id).expect("verify"),
            crate::verify::Verdict::Invalid { .. }
        ),
        "a tampered event must fail verification"
    );
}

/// A ledger on this store with a regulator: only the regulator records a recall; a lot
/// is recalled once; the recall is a record, a provable state leaf and a system event
/// (`$system`/`recall`) that nobody else can publish; settings with regulators round-trip.
pub fn ledger_recalls(store: &dyn KvStore) {
    use crate::ledger::{Ledger, RECALL_TOPIC, SYSTEM_ACCOUNT, SignatureCheck};
    use crate::model::{
        Address, LedgerSettings, Operation, ResultCode, Transaction, TransactionContent,
    };
    use crate::state::{StateKey, data_leaf_value};
    use crypto_parallel::{HashAlgorithm, PrivateKey};

    let (admin, regulator) = (fixed_key(1), fixed_key(3));
    let settings = LedgerSettings {
        regulators: vec![regulator.public_key()],
        ..solo_settings("recalls", &[&admin])
    };
    let decoded = LedgerSettings::decode(&settings.encode()).expect("settings decode");
    assert_eq!(decoded, settings, "settings with regulators round-trip");
    let without = LedgerSettings { regulators: vec![], ..settings.clone() };
    assert_eq!(
        LedgerSettings::decode(&without.encode()).expect("decode").regulators,
        vec![],
        "no regulators: the encoding of before"
    );
    let mut ledger = Ledger::create(store, settings).expect("create ledger");
    let id = ledger.id();
    let mut signer = Signer::new(id);
    let mut tx = |key: &PrivateKey, operation: Operation| signer.sign(key, vec![operation]);
    let recall = |gtin: &str, lot: &str| Operation::Recall {
        gtin: gtin.into(),
        lot: lot.into(),
        reason: "Listeria \"monocytogenes\"".into(),
    };
    let block = ledger
        .append_block(
            vec![
                tx(&admin, recall("09506000134352", "LOT-7")),
                tx(&regulator, recall("09506000134352", "LOT-7")),
                tx(&regulator, recall("09506000134352", "LOT-7")),
                tx(
                    &admin,
                    Operation::PublishEvent {
                        account: SYSTEM_ACCOUNT.into(),
                        topic: RECALL_TOPIC.into(),
                        payload: b"forged".to_vec(),
                    },
                ),
            ],
            SignatureCheck::Verify,
            1,
            Address([9; 32]),
        )
        .expect("append");
    let results: Vec<ResultCode> = block.transactions.iter().map(|(_, r)| *r).collect();
    assert_eq!(
        results,
        [
            ResultCode::NoPermission,
            ResultCode::Committed,
            ResultCode::AccountExists,
            ResultCode::UnknownAccount
        ],
        "only the regulator recalls, once; nobody publishes as the system"
    );
    let record = ledger.recall("09506000134352", "LOT-7").expect("read").expect("recorded");
    assert_eq!((record.height, record.tx_hash), (1, block.transactions[1].0));
    assert_eq!(record.regulator, Address::of(HashAlgorithm::Sm3, &regulator.public_key()));
    assert_eq!(ledger.recall("09506000134352", "LOT-8").expect("read"), None);
    let events = ledger.topic_events(SYSTEM_ACCOUNT, RECALL_TOPIC, 0, 10).expect("events");
    assert_eq!(events.len(), 1, "one system event");
    let payload: &str = std::str::from_utf8(&events[0].payload).expect("UTF-8");
    assert!(
        payload.starts_with("{\"type\":\"recall\",\"gtin\":\"09506000134352\",\"lot\":\"LOT-7\""),
        "{payload}"
    );
    assert!(payload.contains("\\\"monocytogenes\\\""), "quotes escaped: {payload}");
    let key = StateKey::Recall { gtin: "09506000134352".into(), lot: "LOT-7".into() };
    let proof = ledger.prove_state(&key, 1).expect("prove");
    assert_eq!(
        proof.leaf_value,
        Some(data_leaf_value(HashAlgorithm::Sm3, 0, b"Listeria \"monocytogenes\""))
    );
    crate::proof::verify_state_proof(HashAlgorithm::Sm3, &proof).expect("recall proof verifies");
    // A malformed GTIN or lot never makes a transaction.
    for (gtin, lot) in
        [("09506000134353", "LOT-7"), ("9506000134352", "LOT-7"), ("09506000134352", "")]
    {
        let content = TransactionContent {
            ledger_id: id,
            nonce: 99,
            timestamp_ms: 0,
            operations: vec![recall(gtin, lot)],
        };
        assert!(Transaction::sign(content, &[&regulator]).is_err(), "{gtin}/{lot} refused");
    }
    match crate::verify::verify_ledger(ledger.store(), id).expect("verify") {
        crate::verify::Verdict::Valid { height, .. } => assert_eq!(height, 1),
        invalid => panic!("ledger with a recall does not verify: {invalid:?}"),
    }
}

/// A data key's versions as the engine reads them from this store: the expected version
/// of a write is checked against the latest committed one (point reads when the
/// expectation holds, a reverse seek when it does not), in new keys, keys with one or
/// many versions, keys that share a prefix with longer keys, and keys written earlier in
/// the same block.
pub fn ledger_versions(store: &dyn KvStore) {
    use crate::ledger::{Ledger, SignatureCheck};
    use crate::model::{Address, Operation, ResultCode, Transaction};

    let admin = fixed_key(1);
    let settings = solo_settings("versions", &[&admin]);
    let mut ledger = Ledger::create(store, settings).expect("create ledger");
    let id = ledger.id();
    let mut signer = Signer::new(id);
    let mut tx = |operation: Operation| signer.sign(&admin, vec![operation]);
    let write = |key: &[u8], expected_version: i64| Operation::WriteKv {
        account: "lots".into(),
        key: key.to_vec(),
        value: format!("{}@{expected_version}", String::from_utf8_lossy(key)).into_bytes(),
        expected_version,
    };
    let append = |ledger: &mut Ledger<&dyn KvStore>, txs: Vec<Transaction>| {
        let block =
            ledger.append_block(txs, SignatureCheck::Verify, 0, Address([0; 32])).expect("append");
        block.transactions.iter().map(|(_, result)| *result).collect::<Vec<ResultCode>>()
    };
    let ok = ResultCode::Committed;
    let conflict = ResultCode::VersionConflict;
    assert_eq!(
        append(&mut ledger, vec![tx(Operation::RegisterDataAccount { name: "lots".into() })]),
        vec![ok]
    );
    // Block 2: new keys, a key and a longer key that starts with it, a second write in
    // the block that sees the first, and wrong expectations.
    let results = append(
        &mut ledger,
        vec![
            tx(write(b"a", -1)),
            tx(write(b"ab", -1)),
            tx(write(b"a", 0)),
            tx(write(b"a", 0)),
            tx(write(b"b", 0)),
            tx(write(b"c", 3)),
        ],
    );
    assert_eq!(results, vec![ok, ok, ok, conflict, conflict, conflict], "block 2");
    // Block 3: against committed versions (a: 0..=1, ab: 0).
    let results = append(
        &mut ledger,
        vec![
            tx(write(b"a", -1)),
            tx(write(b"a", 0)),
            tx(write(b"a", 2)),
            tx(write(b"ab", 1)),
            tx(write(b"ab", 0)),
            tx(write(b"a", 1)),
            tx(write(b"b", -1)),
            tx(write(b"a", 2)),
        ],
    );
    assert_eq!(results, vec![conflict, conflict, conflict, conflict, ok, ok, ok, ok], "block 3");
    // Block 4: a: 0..=3, ab: 0..=1, b: 0. Stale by one, by many, and right.
    let results = append(
        &mut ledger,
        vec![
            tx(write(b"a", 2)),
            tx(write(b"a", -1)),
            tx(write(b"a", i64::MAX)),
            tx(write(b"ab", 1)),
            tx(write(b"b", 0)),
            tx(write(b"a", 3)),
        ],
    );
    assert_eq!(results, vec![conflict, conflict, conflict, ok, ok, ok], "block 4");
    let versions = |key: &[u8]| {
        ledger
            .history("lots", key, 0, 100)
            .expect("history")
            .iter()
            .map(|v| v.version)
            .collect::<Vec<u64>>()
    };
    assert_eq!(versions(b"a"), vec![0, 1, 2, 3, 4], "history of a");
    assert_eq!(versions(b"ab"), vec![0, 1, 2], "history of ab");
    assert_eq!(versions(b"b"), vec![0, 1], "history of b");
    assert_eq!(versions(b"c"), Vec::<u64>::new(), "history of c");
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_conforms() {
        super::run_all(crate::store::MemoryStore::new);
    }
}
