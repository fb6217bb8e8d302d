//! Consensus participants admitted and removed by transactions: a quorum of the current
//! participants' node keys must co-sign (fewer → `no_permission`, nothing changes), keys
//! are never reused, the last participant cannot leave, the history is kept, and the
//! ledger verifies by replay. On the in-memory store and on RocksDB.

mod common;

use common::*;
use crypto_parallel::{HashAlgorithm, PrivateKey, SignatureAlgorithm};
use engine::ledger::Ledger;
use engine::model::{
    LedgerId, LedgerSettings, Operation, ResultCode, Transaction, TransactionContent,
};
use engine::store::{KvStore, MemoryStore};
use engine::verify::{Verdict, verify_ledger};

fn node(seed: u8) -> PrivateKey {
    key(seed, SignatureAlgorithm::Sm2)
}

fn on_both_stores(check: fn(&dyn KvStore)) {
    check(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    check(&storage_rocksdb::RocksStore::open(dir.path()).unwrap());
}

/// A transaction signed by `actor` first, then by each of `cosigners`.
fn signed(
    id: LedgerId,
    nonce: u64,
    operation: Operation,
    actor: &PrivateKey,
    cosigners: &[&PrivateKey],
) -> Transaction {
    let content = TransactionContent {
        ledger_id: id,
        nonce,
        timestamp_ms: 1_764_000_000_000,
        operations: vec![operation],
    };
    let mut signers = vec![actor];
    signers.extend_from_slice(cosigners);
    Transaction::sign(content, &signers).unwrap()
}

fn three_nodes(admin: &PrivateKey) -> LedgerSettings {
    let mut settings = settings(admin, HashAlgorithm::Sm3);
    settings.consensus = "raft".into();
    settings.participants =
        vec![node(201).public_key(), node(202).public_key(), node(203).public_key()];
    settings
}

fn add(seed: u8, node_id: u64) -> Operation {
    Operation::AddParticipant {
        public_key: node(seed).public_key(),
        node_id,
        address: format!("127.0.0.1:{}", 7100 + node_id),
    }
}

fn result(block: &engine::ledger::StoredBlock) -> ResultCode {
    block.transactions[0].1
}

#[test]
fn admission_and_removal_need_a_quorum_of_participants() {
    on_both_stores(admission_and_removal);
}

fn admission_and_removal(store: &dyn KvStore) {
    let admin = key(1, SignatureAlgorithm::Ed25519);
    let (n1, n2, n3, n4) = (node(201), node(202), node(203), node(204));
    let mut ledger = Ledger::create(store, three_nodes(&admin)).unwrap();
    let id = ledger.id();
    assert_eq!(ledger.active_participants().unwrap().len(), 3);

    // One participant of three: short of the majority (2). Nothing changes.
    let root = ledger.head().state_root;
    let block = append(&mut ledger, vec![signed(id, 1, add(204, 4), &admin, &[&n1])]);
    assert_eq!(result(&block), ResultCode::NoPermission);
    assert_eq!(ledger.head().state_root, root);
    assert_eq!(ledger.participants().unwrap().len(), 3);
    // A co-signer that is neither a user nor a participant.
    let block = append(&mut ledger, vec![signed(id, 2, add(204, 4), &admin, &[&n1, &node(99)])]);
    assert_eq!(result(&block), ResultCode::UnknownAccount);
    // A node key cannot be the actor (the actor is a user).
    let block = append(&mut ledger, vec![signed(id, 3, add(204, 4), &n1, &[&n2])]);
    assert_eq!(result(&block), ResultCode::UnknownAccount);

    // Two of three: admitted as member 4.
    let block = append(&mut ledger, vec![signed(id, 4, add(204, 4), &admin, &[&n1, &n2])]);
    assert_eq!(result(&block), ResultCode::Committed);
    let admitted_at = block.header.height;
    let all = ledger.participants().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].member, 4);
    assert_eq!(all[3].public_key, n4.public_key());
    assert_eq!(all[3].node_id, Some(4));
    assert_eq!(all[3].address.as_deref(), Some("127.0.0.1:7104"));
    assert_eq!((all[3].added_height, all[3].removed_height), (admitted_at, None));
    // The same key again, or another key with node 4's id: refused.
    let block = append(&mut ledger, vec![signed(id, 5, add(204, 5), &admin, &[&n1, &n2, &n3])]);
    assert_eq!(result(&block), ResultCode::AccountExists);
    let block = append(&mut ledger, vec![signed(id, 6, add(205, 4), &admin, &[&n1, &n2, &n3])]);
    assert_eq!(result(&block), ResultCode::AccountExists);

    // Four participants now: a removal needs three of them; the new one counts.
    let remove2 = Operation::RemoveParticipant { public_key: n2.public_key() };
    let block = append(&mut ledger, vec![signed(id, 7, remove2.clone(), &admin, &[&n1, &n4])]);
    assert_eq!(result(&block), ResultCode::NoPermission);
    let block = append(&mut ledger, vec![signed(id, 8, remove2.clone(), &admin, &[&n1, &n3, &n4])]);
    assert_eq!(result(&block), ResultCode::Committed);
    let removed_at = block.header.height;
    let all = ledger.participants().unwrap();
    assert_eq!(all[1].removed_height, Some(removed_at), "the history keeps it");
    assert_eq!(ledger.active_participants().unwrap().len(), 3);
    // A removed participant neither co-signs (its key is nobody now) nor comes back.
    let block = append(&mut ledger, vec![signed(id, 9, add(205, 5), &admin, &[&n2, &n1])]);
    assert_eq!(result(&block), ResultCode::UnknownAccount);
    let block = append(&mut ledger, vec![signed(id, 10, add(202, 6), &admin, &[&n1, &n3, &n4])]);
    assert_eq!(result(&block), ResultCode::AccountExists);
    let block = append(&mut ledger, vec![signed(id, 11, remove2, &admin, &[&n1, &n3, &n4])]);
    assert_eq!(result(&block), ResultCode::UnknownAccount);

    // Two changes in one block: the second sees the first.
    let both = vec![
        signed(id, 12, add(205, 5), &admin, &[&n1, &n3]),
        signed(
            id,
            13,
            Operation::RemoveParticipant { public_key: n1.public_key() },
            &admin,
            &[&n1, &n3, &n4],
        ),
    ];
    let block = append(&mut ledger, both);
    assert_eq!(block.transactions[0].1, ResultCode::Committed);
    assert_eq!(block.transactions[1].1, ResultCode::Committed);
    let active: Vec<u64> = ledger.active_participants().unwrap().iter().map(|p| p.member).collect();
    assert_eq!(active, vec![3, 4, 5]);

    assert!(matches!(verify_ledger(ledger.store(), id).unwrap(), Verdict::Valid { .. }));
    // Reopened, the same history.
    let reopened = Ledger::open(ledger.store(), id).unwrap();
    assert_eq!(reopened.participants().unwrap(), ledger.participants().unwrap());
}

#[test]
fn the_quorum_is_configurable_and_the_last_participant_stays() {
    on_both_stores(configured_quorum);
}

fn configured_quorum(store: &dyn KvStore) {
    let admin = key(1, SignatureAlgorithm::Ed25519);
    let mut settings = three_nodes(&admin);
    settings.participant_quorum = 3;
    // The quorum is part of the genesis: another quorum, another ledger.
    assert_ne!(settings.encode(), three_nodes(&admin).encode());
    assert_eq!(LedgerSettings::decode(&settings.encode()).unwrap(), settings);
    // Never below a majority, whatever is configured; capped at the participants.
    let mut low = three_nodes(&admin);
    low.participant_quorum = 1;
    assert_eq!(low.participant_quorum_of(5), 3);
    assert_eq!(settings.participant_quorum_of(2), 2);
    let mut ledger = Ledger::create(store, settings).unwrap();
    let id = ledger.id();
    let (n1, n2, n3, n4) = (node(201), node(202), node(203), node(204));
    // Unanimity of three: two co-signatures are not enough.
    let block = append(&mut ledger, vec![signed(id, 1, add(204, 4), &admin, &[&n1, &n2])]);
    assert_eq!(result(&block), ResultCode::NoPermission);
    let block = append(&mut ledger, vec![signed(id, 2, add(204, 4), &admin, &[&n1, &n2, &n3])]);
    assert_eq!(result(&block), ResultCode::Committed);
    // Down to one participant, each removal co-signed by the quorum of those left.
    let steps: [(u64, &PrivateKey, Vec<&PrivateKey>); 3] =
        [(3, &n1, vec![&n1, &n2, &n3]), (4, &n2, vec![&n2, &n3, &n4]), (5, &n3, vec![&n3, &n4])];
    for (nonce, gone, cosigners) in steps {
        let remove = Operation::RemoveParticipant { public_key: gone.public_key() };
        let block = append(&mut ledger, vec![signed(id, nonce, remove, &admin, &cosigners)]);
        assert_eq!(
            result(&block),
            ResultCode::Committed,
            "removing with {} co-signers",
            cosigners.len()
        );
    }
    let last = Operation::RemoveParticipant { public_key: n4.public_key() };
    let block = append(&mut ledger, vec![signed(id, 6, last, &admin, &[&n4])]);
    assert_eq!(result(&block), ResultCode::NoPermission, "the last participant stays");
    assert!(matches!(verify_ledger(ledger.store(), id).unwrap(), Verdict::Valid { .. }));
}

#[test]
fn register_participant_is_needed_on_a_permissioned_ledger() {
    on_both_stores(participant_permission);
}

fn participant_permission(store: &dyn KvStore) {
    use engine::model::{RolePolicy, permission};
    let admin = key(1, SignatureAlgorithm::Ed25519);
    let clerk = key(2, SignatureAlgorithm::Ed25519);
    let mut settings = three_nodes(&admin);
    settings.roles = vec![
        ("admin".into(), permission::ALL),
        ("clerk".into(), permission::ALL & !permission::REGISTER_PARTICIPANT),
    ];
    let mut ledger = Ledger::create(store, settings).unwrap();
    let id = ledger.id();
    let (n1, n2) = (node(201), node(202));
    let setup =
        signed(id, 1, Operation::RegisterUser { public_key: clerk.public_key() }, &admin, &[]);
    assert_eq!(result(&append(&mut ledger, vec![setup])), ResultCode::Committed);
    let assign = Operation::AssignRoles {
        user: engine::model::Address::of(HashAlgorithm::Sm3, &clerk.public_key()),
        roles: vec!["clerk".into()],
        policy: RolePolicy::Union,
    };
    assert_eq!(
        result(&append(&mut ledger, vec![signed(id, 2, assign, &admin, &[])])),
        ResultCode::Committed
    );
    // Every other permission and a quorum of co-signatures: still refused.
    let root = ledger.head().state_root;
    let block = append(&mut ledger, vec![signed(id, 3, add(204, 4), &clerk, &[&n1, &n2])]);
    assert_eq!(result(&block), ResultCode::NoPermission);
    assert_eq!(ledger.head().state_root, root);
    let block = append(&mut ledger, vec![signed(id, 4, add(204, 4), &admin, &[&n1, &n2])]);
    assert_eq!(result(&block), ResultCode::Committed);
}
