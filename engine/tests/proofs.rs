//! Proofs: valid ones verify; tampered values, wrong versions, wrong heights and wrong
//! roots fail; absence proofs work; transaction proofs prove results.

mod common;

use common::*;
use crypto_parallel::{HashAlgorithm, SignatureAlgorithm};
use engine::ledger::Ledger;
use engine::model::{Address, Operation, ResultCode};
use engine::proof::{
    ProofError, StateProof, TxProof, verify_data_proof, verify_state_proof, verify_tx_proof,
};
use engine::state::StateKey;
use engine::store::MemoryStore;

fn data_key(account: &str, key: &[u8]) -> StateKey {
    StateKey::Data { account: account.into(), key: key.to_vec() }
}

#[test]
fn state_proofs_for_values_versions_heights_and_absence() {
    for algorithm in [HashAlgorithm::Sm3, HashAlgorithm::Sha256] {
        let admin_key = key(1, SignatureAlgorithm::Ed25519);
        let mut ledger =
            Ledger::create(MemoryStore::new(), settings(&admin_key, algorithm)).unwrap();
        let id = ledger.id();
        let mut admin = Client { key: &admin_key, nonce: 0 };
        append(
            &mut ledger,
            vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: "eggs".into() }])],
        );
        append(&mut ledger, vec![admin.tx(id, vec![write("eggs", b"BATCH-9", b"laid", -1)])]); // height 2
        append(&mut ledger, vec![admin.tx(id, vec![write("eggs", b"BATCH-9", b"packed", 0)])]); // height 3
        let key = data_key("eggs", b"BATCH-9");

        // At height 3 the key holds version 1 "packed".
        let proof = ledger.prove_state(&key, 3).unwrap();
        let block_hash =
            verify_data_proof(algorithm, &proof, "eggs", b"BATCH-9", Some((1, b"packed"))).unwrap();
        assert_eq!(block_hash, ledger.block(3).unwrap().unwrap().hash);
        // The encoded proof round-trips and still verifies.
        let decoded = StateProof::decode(&proof.encode()).unwrap();
        assert_eq!(decoded, proof);
        verify_state_proof(algorithm, &decoded).unwrap();

        // Tampered value / wrong version are caught before or by the tree.
        assert_eq!(
            verify_data_proof(algorithm, &proof, "eggs", b"BATCH-9", Some((1, b"fresh"))),
            Err(ProofError::ValueMismatch)
        );
        assert!(
            verify_data_proof(algorithm, &proof, "eggs", b"BATCH-9", Some((0, b"packed"))).is_err()
        );
        let mut forged = proof.clone();
        forged.leaf_value = Some(engine::state::data_leaf_value(algorithm, 1, b"fresh"));
        assert_eq!(verify_state_proof(algorithm, &forged), Err(ProofError::RootMismatch("state")));
        // Wrong root: the header of another height, or a flipped root byte.
        let mut wrong_height = proof.clone();
        wrong_height.header = ledger.block(2).unwrap().unwrap().header;
        assert!(verify_state_proof(algorithm, &wrong_height).is_err());
        let mut wrong_root = proof.clone();
        wrong_root.header.state_root[0] ^= 1;
        assert!(verify_state_proof(algorithm, &wrong_root).is_err());
        // A proof for another key does not pass as this one.
        let mut other_key = proof.clone();
        other_key.key_preimage = data_key("eggs", b"BATCH-8").preimage();
        assert!(verify_state_proof(algorithm, &other_key).is_err());

        // At height 2 the same key proves version 0 "laid" — history is provable.
        let old = ledger.prove_state(&key, 2).unwrap();
        verify_data_proof(algorithm, &old, "eggs", b"BATCH-9", Some((0, b"laid"))).unwrap();
        assert!(
            verify_data_proof(algorithm, &old, "eggs", b"BATCH-9", Some((1, b"packed"))).is_err()
        );

        // Absence: the key did not exist at height 1; another key never existed.
        let absent = ledger.prove_state(&key, 1).unwrap();
        assert_eq!(absent.leaf_value, None);
        verify_data_proof(algorithm, &absent, "eggs", b"BATCH-9", None).unwrap();
        let never = ledger.prove_state(&data_key("eggs", b"NEVER"), 3).unwrap();
        verify_data_proof(algorithm, &never, "eggs", b"NEVER", None).unwrap();
        // Claiming presence with an absence proof fails.
        assert!(verify_data_proof(algorithm, &never, "eggs", b"NEVER", Some((0, b"x"))).is_err());
        // Claiming absence of a present key fails.
        let mut claim_absent = proof.clone();
        claim_absent.leaf_value = None;
        assert!(verify_state_proof(algorithm, &claim_absent).is_err());

        // Accounts are in the state too.
        let admin_address = Address::of(algorithm, &admin_key.public_key());
        let user_proof = ledger.prove_state(&StateKey::User(admin_address), 3).unwrap();
        assert_eq!(user_proof.leaf_value, Some(admin_key.public_key().to_bytes()));
        verify_state_proof(algorithm, &user_proof).unwrap();
        // No block, no proof.
        assert!(ledger.prove_state(&key, 4).is_err());
    }
}

#[test]
fn transaction_proofs_prove_inclusion_and_result() {
    let admin_key = key(1, SignatureAlgorithm::Sm2);
    let algorithm = HashAlgorithm::Sm3;
    let mut ledger = Ledger::create(MemoryStore::new(), settings(&admin_key, algorithm)).unwrap();
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let mut transactions =
        vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: "wine".into() }])];
    for i in 0..6u8 {
        transactions.push(admin.tx(id, vec![write("wine", &[i], b"v", -1)]));
    }
    transactions.push(admin.tx(id, vec![write("wine", &[0], b"v", -1)])); // conflict
    let block = append(&mut ledger, transactions.clone());
    for (index, transaction) in transactions.iter().enumerate() {
        let hash = transaction.hash(algorithm);
        let proof = ledger.prove_transaction(&hash).unwrap().unwrap();
        assert_eq!(proof.index, index as u64);
        assert_eq!(verify_tx_proof(algorithm, &proof).unwrap(), block.hash);
        assert_eq!(TxProof::decode(&proof.encode()).unwrap(), proof);
        // Claiming another result fails: the result is in the leaf.
        let mut wrong_result = proof.clone();
        wrong_result.result = if proof.result == ResultCode::Committed {
            ResultCode::VersionConflict
        } else {
            ResultCode::Committed
        };
        assert!(verify_tx_proof(algorithm, &wrong_result).is_err());
        let mut wrong_index = proof.clone();
        wrong_index.index = (wrong_index.index + 1) % proof.tree_size;
        assert!(verify_tx_proof(algorithm, &wrong_index).is_err());
        let mut wrong_root = proof.clone();
        wrong_root.header.tx_root[5] ^= 0x80;
        assert!(verify_tx_proof(algorithm, &wrong_root).is_err());
    }
    let last = ledger.prove_transaction(&transactions[7].hash(algorithm)).unwrap().unwrap();
    assert_eq!(last.result, ResultCode::VersionConflict);
    assert!(ledger.prove_transaction(&[0u8; 32]).unwrap().is_none());
}

#[test]
fn large_blocks_prove_from_their_kept_chunk_roots_and_without_them() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let algorithm = HashAlgorithm::Sm3;
    let store = MemoryStore::new();
    let mut ledger = Ledger::create(&store, settings(&admin_key, algorithm)).unwrap();
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let mut transactions =
        vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: "wine".into() }])];
    for i in 0..300u32 {
        transactions.push(admin.tx(id, vec![write("wine", &i.to_be_bytes(), b"v", -1)]));
    }
    let block = append(&mut ledger, transactions.clone());
    let chunks_key = engine::layout::tx_chunks_key(&id, block.header.height);
    let kept = engine::store::KvStore::get(&store, &chunks_key).unwrap().expect("chunk roots kept");
    assert_eq!(kept.len(), 32 * 5); // 301 leaves: 4 chunks of 64 and one of 45
    let hashes: Vec<_> = transactions.iter().map(|tx| tx.hash(algorithm)).collect();
    let chunked = ledger.prove_transactions(&hashes).unwrap();
    for (index, proof) in chunked.iter().enumerate() {
        let (_, proof) = proof.as_ref().unwrap();
        assert_eq!(proof.index, index as u64);
        assert_eq!(verify_tx_proof(algorithm, proof).unwrap(), block.hash, "index {index}");
    }
    // A ledger written before chunk roots were kept proves the same way, from all leaves.
    let mut batch = engine::store::WriteBatch::new();
    batch.delete(chunks_key);
    engine::store::KvStore::write(&store, batch).unwrap();
    let whole = ledger.prove_transactions(&hashes).unwrap();
    assert_eq!(whole, chunked);
}

#[test]
fn blocks_without_state_changes_keep_a_provable_root() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let algorithm = HashAlgorithm::Sm3;
    let mut ledger = Ledger::create(MemoryStore::new(), settings(&admin_key, algorithm)).unwrap();
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    append(
        &mut ledger,
        vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: "tea".into() }])],
    );
    append(&mut ledger, vec![admin.tx(id, vec![write("tea", b"LEAF-1", b"picked", -1)])]); // height 2
    // Height 3: only rejected transactions, so no state change.
    let block = append(&mut ledger, vec![admin.tx(id, vec![write("tea", b"LEAF-1", b"x", 7)])]);
    assert_eq!(block.transactions[0].1, ResultCode::VersionConflict);
    assert_eq!(block.header.state_root, ledger.block(2).unwrap().unwrap().header.state_root);
    // Height 4: state changes again on top of the carried-forward root.
    append(&mut ledger, vec![admin.tx(id, vec![write("tea", b"LEAF-1", b"dried", 0)])]);
    let key = data_key("tea", b"LEAF-1");
    let at_3 = ledger.prove_state(&key, 3).unwrap();
    verify_data_proof(algorithm, &at_3, "tea", b"LEAF-1", Some((0, b"picked"))).unwrap();
    let at_4 = ledger.prove_state(&key, 4).unwrap();
    verify_data_proof(algorithm, &at_4, "tea", b"LEAF-1", Some((1, b"dried"))).unwrap();
    // Everything registered before the quiet block is still in the state after it.
    let account = ledger.prove_state(&StateKey::DataAccount("tea".into()), 4).unwrap();
    assert!(account.leaf_value.is_some(), "state lost across a block without changes");
    verify_state_proof(algorithm, &account).unwrap();
    let verdict = engine::verify::verify_ledger(ledger.store(), id).unwrap();
    assert!(matches!(verdict, engine::verify::Verdict::Valid { height: 4, .. }), "{verdict:?}");
}

/// A ledger written before leaf values moved into the leaf records (its leaf records end
/// after the value hash; the values sit in the retired 0x09 table, by key hash and
/// height) still proves every value, verifies from genesis, and takes new blocks.
#[test]
fn a_ledger_in_the_earlier_state_layout_proves_verifies_and_grows() {
    use engine::layout::{Table, retired_state_value_key, table_prefix};
    use engine::store::{Direction, KvStore, WriteBatch};
    use engine::verify::{Verdict, verify_ledger};
    use std::sync::Arc;

    let algorithm = HashAlgorithm::Sm3;
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let store = Arc::new(MemoryStore::new());
    let mut ledger = Ledger::create(store.clone(), settings(&admin_key, algorithm)).unwrap();
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    append(
        &mut ledger,
        vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: "eggs".into() }])],
    );
    for batch in 0..20u8 {
        let writes = (0..5u8)
            .map(|n| admin.tx(id, vec![write("eggs", &[b'B', batch, n], b"laid", -1)]))
            .collect();
        append(&mut ledger, writes);
    }
    drop(ledger);

    // Rewrite every leaf record in the earlier layout.
    let prefix = table_prefix(&id, Table::StateNode);
    let end = engine::store::prefix_end(&prefix).unwrap();
    let mut rewrite = WriteBatch::new();
    let mut leaves = 0;
    for (key, value) in store.scan(&prefix, &end, Direction::Forward, usize::MAX).unwrap() {
        if value[0] == 2 && value.len() > 65 {
            let version = u64::from_le_bytes(key[33..41].try_into().unwrap());
            let key_hash: [u8; 32] = value[1..33].try_into().unwrap();
            let mut retired = vec![1];
            retired.extend_from_slice(&value[65..]);
            rewrite.put(retired_state_value_key(&id, &key_hash, version), retired);
            rewrite.put(key, value[..65].to_vec());
            leaves += 1;
        }
    }
    assert!(leaves > 100, "{leaves} leaf records");
    store.write(rewrite).unwrap();

    let mut ledger = Ledger::open(store.clone(), id).unwrap();
    assert!(matches!(verify_ledger(store.clone(), id).unwrap(), Verdict::Valid { height: 21, .. }));
    for batch in 0..20u8 {
        let proof = ledger.prove_state(&data_key("eggs", &[b'B', batch, 3]), 21).unwrap();
        verify_data_proof(algorithm, &proof, "eggs", &[b'B', batch, 3], Some((0, b"laid")))
            .unwrap();
    }
    // New keys split old leaves, which move down in the new layout; old keys get new
    // versions.
    let mut writes: Vec<_> = (0..20u8)
        .map(|batch| admin.tx(id, vec![write("eggs", &[b'B', batch, 1], b"packed", 0)]))
        .collect();
    writes.extend((0..50u8).map(|n| admin.tx(id, vec![write("eggs", &[b'C', n], b"laid", -1)])));
    let block = append(&mut ledger, writes);
    assert!(block.transactions.iter().all(|(_, result)| *result == ResultCode::Committed));
    for batch in 0..20u8 {
        let proof = ledger.prove_state(&data_key("eggs", &[b'B', batch, 1]), 22).unwrap();
        verify_data_proof(algorithm, &proof, "eggs", &[b'B', batch, 1], Some((1, b"packed")))
            .unwrap();
        let proof = ledger.prove_state(&data_key("eggs", &[b'B', batch, 4]), 22).unwrap();
        verify_data_proof(algorithm, &proof, "eggs", &[b'B', batch, 4], Some((0, b"laid")))
            .unwrap();
    }
    assert!(matches!(verify_ledger(store.clone(), id).unwrap(), Verdict::Valid { height: 22, .. }));

    // A leaf value missing from both places is reported, not read as empty.
    let retired = table_prefix(&id, Table::StateValueRetired);
    let retired_end = engine::store::prefix_end(&retired).unwrap();
    let mut wipe = WriteBatch::new();
    for (key, _) in store.scan(&retired, &retired_end, Direction::Forward, usize::MAX).unwrap() {
        wipe.delete(key);
    }
    store.write(wipe).unwrap();
    match verify_ledger(store.clone(), id).unwrap() {
        Verdict::Invalid { .. } => {}
        valid => panic!("missing leaf values not detected: {valid:?}"),
    }
}
