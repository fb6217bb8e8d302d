//! Roles and permissions on a permissioned ledger: for every permission, a user holding
//! it succeeds and a user holding every other permission gets `no_permission` with no
//! state change; UNION and INTERSECT policies differ; role changes and write grants take
//! effect from the next block; a ledger without roles behaves as before (and nobody can
//! configure roles on it). Every ledger verifies by replay afterwards. Each test runs on
//! the in-memory store and on RocksDB.

mod common;

use common::*;
use crypto_parallel::{HashAlgorithm, PrivateKey, SignatureAlgorithm};
use engine::ledger::Ledger;
use engine::model::{Address, Operation, ResultCode, RolePolicy, permission};
use engine::store::{KvStore, MemoryStore};
use engine::verify::{Verdict, verify_ledger};

fn address(key: &PrivateKey) -> Address {
    Address::of(HashAlgorithm::Sm3, &key.public_key())
}

fn results(block: &engine::ledger::StoredBlock) -> Vec<ResultCode> {
    block.transactions.iter().map(|(_, result)| *result).collect()
}

fn permissioned<S: KvStore>(store: S, admin: &PrivateKey) -> Ledger<S> {
    let mut settings = settings(admin, HashAlgorithm::Sm3);
    settings.roles = vec![("admin".into(), permission::ALL)];
    Ledger::create(store, settings).unwrap()
}

/// Runs `check` on the in-memory store and on RocksDB.
fn on_both_stores(check: fn(&dyn KvStore)) {
    check(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    check(&storage_rocksdb::RocksStore::open(dir.path()).unwrap());
}

fn role(name: &str, permissions: u32) -> Operation {
    Operation::DefineRole { name: name.into(), permissions }
}

fn assign(user: &PrivateKey, roles: &[&str], policy: RolePolicy) -> Operation {
    Operation::AssignRoles {
        user: address(user),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        policy,
    }
}

#[test]
fn every_permission_is_needed_and_sufficient() {
    on_both_stores(permission_matrix);
}

fn permission_matrix(store: &dyn KvStore) {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let mut ledger = permissioned(store, &admin_key);
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    // (permission, what the user needs besides it, a prerequisite op, the op tested)
    type Case = (u32, u32, Option<fn(usize) -> Operation>, fn(usize, &PrivateKey) -> Operation);
    let cases: Vec<(&str, Case)> = vec![
        (
            "register_user",
            (permission::REGISTER_USER, 0, None, |i, _| Operation::RegisterUser {
                public_key: key(100 + i as u8, SignatureAlgorithm::Ed25519).public_key(),
            }),
        ),
        (
            "register_data_account",
            (permission::REGISTER_DATA_ACCOUNT, 0, None, |i, k| Operation::RegisterDataAccount {
                name: format!("acct-{i}-{}", hex(k)),
            }),
        ),
        (
            "write_data",
            (permission::WRITE_DATA, permission::REGISTER_DATA_ACCOUNT, None, |i, k| {
                write(&format!("own-{i}-{}", hex(k)), b"k", b"v", -1)
            }),
        ),
        (
            "register_event_account",
            (permission::REGISTER_EVENT_ACCOUNT, 0, None, |i, k| Operation::RegisterEventAccount {
                name: format!("ev-{i}-{}", hex(k)),
            }),
        ),
        (
            "publish_event",
            (permission::PUBLISH_EVENT, permission::REGISTER_EVENT_ACCOUNT, None, |i, k| {
                Operation::PublishEvent {
                    account: format!("pub-{i}-{}", hex(k)),
                    topic: "t".into(),
                    payload: b"{}".to_vec(),
                }
            }),
        ),
        (
            "recall",
            (permission::RECALL, 0, None, |i, _| Operation::Recall {
                gtin: "09506000134352".into(),
                lot: format!("L{i}"),
                reason: "test".into(),
            }),
        ),
        (
            "configure_roles",
            (permission::CONFIGURE_ROLES, 0, None, |i, k| {
                role(&format!("made-{i}-{}", hex(k)), permission::RECALL)
            }),
        ),
    ];
    fn hex(key: &PrivateKey) -> String {
        key.public_key().to_bytes()[2..6].iter().map(|b| format!("{b:02x}")).collect()
    }
    for (i, (name, (needed, extra, _, op))) in cases.iter().enumerate() {
        let with_key = key(10 + 2 * i as u8, SignatureAlgorithm::Ed25519);
        let without_key = key(11 + 2 * i as u8, SignatureAlgorithm::Ed25519);
        // Block 1: users and roles (with: the permission and its prerequisite; without:
        // every permission but this one).
        let setup = vec![
            admin.tx(id, vec![Operation::RegisterUser { public_key: with_key.public_key() }]),
            admin.tx(id, vec![Operation::RegisterUser { public_key: without_key.public_key() }]),
            admin.tx(id, vec![role(&format!("with-{name}"), needed | extra)]),
            admin.tx(id, vec![role(&format!("without-{name}"), permission::ALL & !needed)]),
        ];
        assert!(results(&append(&mut ledger, setup)).iter().all(|r| *r == ResultCode::Committed));
        let block = append(
            &mut ledger,
            vec![
                admin
                    .tx(id, vec![assign(&with_key, &[&format!("with-{name}")], RolePolicy::Union)]),
                admin.tx(
                    id,
                    vec![assign(&without_key, &[&format!("without-{name}")], RolePolicy::Union)],
                ),
            ],
        );
        assert!(results(&block).iter().all(|r| *r == ResultCode::Committed), "{name}: assignments");
        // Prerequisites the tested op relies on (an account of one's own).
        let mut with = Client { key: &with_key, nonce: 1000 };
        let mut without = Client { key: &without_key, nonce: 5000 };
        let prerequisite = |i: usize, k: &PrivateKey| match *name {
            "write_data" => {
                Some(Operation::RegisterDataAccount { name: format!("own-{i}-{}", hex(k)) })
            }
            "publish_event" => {
                Some(Operation::RegisterEventAccount { name: format!("pub-{i}-{}", hex(k)) })
            }
            _ => None,
        };
        if let (Some(a), Some(b)) = (prerequisite(i, &with_key), prerequisite(i, &without_key)) {
            let block = append(&mut ledger, vec![with.tx(id, vec![a]), without.tx(id, vec![b])]);
            assert!(
                results(&block).iter().all(|r| *r == ResultCode::Committed),
                "{name}: prerequisites"
            );
        }
        let root_before = ledger.head().state_root;
        let block = append(&mut ledger, vec![without.tx(id, vec![op(i, &without_key)])]);
        assert_eq!(results(&block), [ResultCode::NoPermission], "{name}: without it");
        assert_eq!(ledger.head().state_root, root_before, "{name}: a refused op changes no state");
        let block = append(&mut ledger, vec![with.tx(id, vec![op(i, &with_key)])]);
        assert_eq!(results(&block), [ResultCode::Committed], "{name}: with it");
        assert_eq!(ledger.permissions(&address(&with_key)).unwrap(), needed | extra);
    }
    assert!(matches!(verify_ledger(ledger.store(), id).unwrap(), Verdict::Valid { .. }));
}

#[test]
fn union_and_intersect_differ_and_changes_apply_from_the_next_block() {
    on_both_stores(policies_and_timing);
}

fn policies_and_timing(store: &dyn KvStore) {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let mut ledger = permissioned(store, &admin_key);
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let (u_key, i_key) =
        (key(40, SignatureAlgorithm::Ed25519), key(41, SignatureAlgorithm::Ed25519));
    let setup = vec![
        admin.tx(id, vec![Operation::RegisterUser { public_key: u_key.public_key() }]),
        admin.tx(id, vec![Operation::RegisterUser { public_key: i_key.public_key() }]),
        admin.tx(id, vec![role("accounts", permission::REGISTER_DATA_ACCOUNT)]),
        admin.tx(
            id,
            vec![role(
                "accounts-events",
                permission::REGISTER_DATA_ACCOUNT | permission::REGISTER_EVENT_ACCOUNT,
            )],
        ),
    ];
    assert!(results(&append(&mut ledger, setup)).iter().all(|r| *r == ResultCode::Committed));
    let mut u = Client { key: &u_key, nonce: 100 };
    let mut i = Client { key: &i_key, nonce: 100 };
    // Assigned in this block, used in this block: not yet.
    let block = append(
        &mut ledger,
        vec![
            admin.tx(id, vec![assign(&u_key, &["accounts", "accounts-events"], RolePolicy::Union)]),
            admin.tx(
                id,
                vec![assign(&i_key, &["accounts", "accounts-events"], RolePolicy::Intersect)],
            ),
            u.tx(id, vec![Operation::RegisterDataAccount { name: "u-early".into() }]),
        ],
    );
    assert_eq!(
        results(&block),
        [ResultCode::Committed, ResultCode::Committed, ResultCode::NoPermission]
    );
    // Next block: both may register data accounts; only the UNION user event accounts.
    let block = append(
        &mut ledger,
        vec![
            u.tx(id, vec![Operation::RegisterDataAccount { name: "u-data".into() }]),
            i.tx(id, vec![Operation::RegisterDataAccount { name: "i-data".into() }]),
            u.tx(id, vec![Operation::RegisterEventAccount { name: "u-events".into() }]),
            i.tx(id, vec![Operation::RegisterEventAccount { name: "i-events".into() }]),
        ],
    );
    assert_eq!(
        results(&block),
        [
            ResultCode::Committed,
            ResultCode::Committed,
            ResultCode::Committed,
            ResultCode::NoPermission
        ]
    );
    // Write grants: the owner's decision, effective from the next block; revocable.
    let owner_key = key(42, SignatureAlgorithm::Ed25519);
    let block = append(
        &mut ledger,
        vec![
            admin.tx(id, vec![Operation::RegisterUser { public_key: owner_key.public_key() }]),
            admin.tx(
                id,
                vec![role("writer", permission::WRITE_DATA | permission::REGISTER_DATA_ACCOUNT)],
            ),
        ],
    );
    assert!(results(&block).iter().all(|r| *r == ResultCode::Committed));
    append(
        &mut ledger,
        vec![
            admin.tx(id, vec![assign(&owner_key, &["writer"], RolePolicy::Union)]),
            admin.tx(id, vec![assign(&u_key, &["writer"], RolePolicy::Union)]),
        ],
    );
    let mut owner = Client { key: &owner_key, nonce: 100 };
    append(
        &mut ledger,
        vec![owner.tx(id, vec![Operation::RegisterDataAccount { name: "shared".into() }])],
    );
    let grant = |allowed| Operation::GrantWrite {
        account: "shared".into(),
        grantee: address(&u_key),
        allowed,
    };
    let block = append(
        &mut ledger,
        vec![
            u.tx(id, vec![grant(true)]), // not the owner
            owner.tx(id, vec![grant(true)]),
            u.tx(id, vec![write("shared", b"k", b"too early", -1)]),
        ],
    );
    assert_eq!(
        results(&block),
        [ResultCode::NoPermission, ResultCode::Committed, ResultCode::NoPermission]
    );
    let block = append(&mut ledger, vec![u.tx(id, vec![write("shared", b"k", b"granted", -1)])]);
    assert_eq!(results(&block), [ResultCode::Committed]);
    let block = append(
        &mut ledger,
        vec![owner.tx(id, vec![grant(false)]), owner.tx(id, vec![grant(false)])],
    );
    assert_eq!(
        results(&block),
        [ResultCode::Committed, ResultCode::Committed],
        "revoking twice is fine"
    );
    let block = append(&mut ledger, vec![u.tx(id, vec![write("shared", b"k", b"revoked", 0)])]);
    assert_eq!(results(&block), [ResultCode::NoPermission]);
    assert!(matches!(verify_ledger(ledger.store(), id).unwrap(), Verdict::Valid { .. }));
}

#[test]
fn a_ledger_without_roles_keeps_its_rules() {
    let admin_key = key(1, SignatureAlgorithm::Ed25519);
    let mut ledger =
        Ledger::create(MemoryStore::new(), settings(&admin_key, HashAlgorithm::Sm3)).unwrap();
    let id = ledger.id();
    let mut admin = Client { key: &admin_key, nonce: 0 };
    let block = append(
        &mut ledger,
        vec![
            admin.tx(id, vec![Operation::RegisterDataAccount { name: "milk".into() }]),
            admin.tx(id, vec![role("r", permission::ALL)]),
            admin.tx(id, vec![assign(&admin_key, &["r"], RolePolicy::Union)]),
        ],
    );
    assert_eq!(
        results(&block),
        [ResultCode::Committed, ResultCode::NoPermission, ResultCode::NoPermission]
    );
    assert_eq!(
        ledger.permissions(&address(&admin_key)).unwrap(),
        permission::ALL & !permission::CONFIGURE_ROLES & !permission::RECALL
    );
}
