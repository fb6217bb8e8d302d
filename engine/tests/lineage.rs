//! Sealing a ledger (a split's or merge's parent) and continuing it in children whose
//! genesis commits to the parent's sealing block.

mod common;

use common::{Client, append, key, settings, write};
use crypto_parallel::{HashAlgorithm, SignatureAlgorithm};
use engine::ledger::Ledger;
use engine::model::{LedgerSettings, Lineage, Operation, ResultCode};
use engine::proof::verify_state_proof;
use engine::state::StateKey;
use engine::store::MemoryStore;

fn seal(note: &str) -> Operation {
    Operation::Seal { note: note.into() }
}

#[test]
fn a_sealed_ledger_takes_nothing_more_and_its_seal_is_provable() {
    for algorithm in [HashAlgorithm::Sm3, HashAlgorithm::Sha256] {
        let admin = key(1, SignatureAlgorithm::Ed25519);
        let user = key(2, SignatureAlgorithm::Ed25519);
        let mut ledger = Ledger::create(MemoryStore::new(), settings(&admin, algorithm)).unwrap();
        let id = ledger.id();
        let mut by_admin = Client { key: &admin, nonce: 0 };
        let mut by_user = Client { key: &user, nonce: 0 };
        let setup = vec![
            by_admin.tx(id, vec![Operation::RegisterUser { public_key: user.public_key() }]),
            by_admin.tx(id, vec![Operation::RegisterDataAccount { name: "eggs".into() }]),
        ];
        append(&mut ledger, setup);
        assert_eq!(ledger.sealed().unwrap(), None);

        // Only an administrator (an initial user) may seal an open ledger.
        let refused = by_user.tx(id, vec![seal("split")]);
        let block = append(&mut ledger, vec![refused]);
        assert_eq!(block.transactions[0].1, ResultCode::NoPermission);
        assert_eq!(ledger.sealed().unwrap(), None);

        // In the sealing block, what comes after the seal is refused too.
        let before = by_admin.tx(id, vec![write("eggs", b"k", b"v1", -1)]);
        let sealing = by_admin.tx(id, vec![seal("split into dairy-1, dairy-2")]);
        let after = by_admin.tx(id, vec![write("eggs", b"k", b"v2", 0)]);
        let block = append(&mut ledger, vec![before, sealing.clone(), after]);
        let results: Vec<ResultCode> = block.transactions.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            results,
            vec![ResultCode::Committed, ResultCode::Committed, ResultCode::LedgerSealed]
        );
        let sealed = ledger.sealed().unwrap().expect("sealed");
        assert_eq!(sealed.height, block.header.height);
        assert_eq!(sealed.tx_hash, sealing.hash(algorithm));
        assert_eq!(sealed.note, "split into dairy-1, dairy-2");
        assert_eq!(ledger.latest("eggs", b"k").unwrap().unwrap().value, b"v1");

        // Later blocks: every transaction is refused, a second seal included.
        let late = vec![
            by_admin.tx(id, vec![write("eggs", b"k", b"v3", 0)]),
            by_admin.tx(id, vec![seal("again")]),
        ];
        let block = append(&mut ledger, late);
        assert!(block.transactions.iter().all(|(_, r)| *r == ResultCode::LedgerSealed));
        assert_eq!(ledger.sealed().unwrap().unwrap().height, sealed.height);

        // The seal is a state leaf: provable at the sealing height, absent before.
        let proof = ledger.prove_state(&StateKey::Sealed, sealed.height).unwrap();
        assert!(proof.leaf_value.is_some());
        verify_state_proof(algorithm, &proof).unwrap();
        let earlier = ledger.prove_state(&StateKey::Sealed, sealed.height - 1).unwrap();
        assert!(earlier.leaf_value.is_none());
        verify_state_proof(algorithm, &earlier).unwrap();
    }
}

#[test]
fn a_child_genesis_commits_to_its_parents_sealing_blocks() {
    let admin = key(1, SignatureAlgorithm::Ed25519);
    let parent_settings = settings(&admin, HashAlgorithm::Sm3);
    let mut parent = Ledger::create(MemoryStore::new(), parent_settings.clone()).unwrap();
    let mut client = Client { key: &admin, nonce: 0 };
    let sealing = client.tx(parent.id(), vec![seal("split")]);
    let block = append(&mut parent, vec![sealing]);
    let lineage =
        Lineage { ledger_id: parent.id(), height: block.header.height, block_hash: block.hash };
    let child = |name: &str, parents: Vec<Lineage>| LedgerSettings {
        name: name.into(),
        parents,
        ..parent_settings.clone()
    };
    let first = child("dairy-1", vec![lineage.clone()]);
    let bytes = first.encode();
    assert_eq!(LedgerSettings::decode(&bytes).unwrap(), first);

    // The lineage is part of the ledger's identity.
    let with = Ledger::create(MemoryStore::new(), first.clone()).unwrap().id();
    let without = Ledger::create(MemoryStore::new(), child("dairy-1", vec![])).unwrap().id();
    let other_block = child("dairy-1", vec![Lineage { block_hash: [9; 32], ..lineage.clone() }]);
    let other = Ledger::create(MemoryStore::new(), other_block).unwrap().id();
    assert_ne!(with, without);
    assert_ne!(with, other);

    // A merge: several parents; an empty list is encoded by its absence only.
    let merged = child("dairy-m", vec![lineage.clone(), Lineage { height: 7, ..lineage }]);
    assert_eq!(LedgerSettings::decode(&merged.encode()).unwrap(), merged);
    let mut empty = child("dairy-1", vec![]).encode();
    empty.extend_from_slice(&[LedgerSettings::EXTENSION_PARENTS, 0, 0, 0, 0]);
    assert!(LedgerSettings::decode(&empty).is_err());
}
