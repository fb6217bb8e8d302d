//! Property test: random operation sequences through the engine give the same latest
//! values and histories as a plain `BTreeMap` model, and rejected transactions change
//! nothing.

mod common;

use std::collections::BTreeMap;

use common::*;
use crypto_parallel::{HashAlgorithm, SignatureAlgorithm};
use engine::ledger::Ledger;
use engine::model::{Operation, ResultCode};
use engine::store::MemoryStore;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    /// Writer `writer` writes `value` to `account`/`key`; `stale` makes it use a wrong
    /// expected version.
    Write { writer: usize, account: usize, key: u8, value: u8, stale: bool },
    /// Two writes in one transaction, the second possibly conflicting.
    Pair { account: usize, first: u8, second: u8, stale_second: bool },
    /// Cut the block here.
    EndBlock,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0usize..2, 0usize..3, 0u8..6, any::<u8>(), prop::bool::weighted(0.2))
            .prop_map(|(writer, account, key, value, stale)| Step::Write { writer, account, key, value, stale }),
        2 => (0usize..3, 0u8..6, 0u8..6, prop::bool::weighted(0.5))
            .prop_map(|(account, first, second, stale_second)| Step::Pair { account, first, second, stale_second }),
        2 => Just(Step::EndBlock),
    ]
}

/// A transaction with the writes the model expects it to make (`None`: rejected).
type Pending = Vec<(engine::model::Transaction, Option<Vec<((String, u8), Vec<u8>)>>)>;

/// Model: (account, key) → list of values (index = version).
type Model = BTreeMap<(String, u8), Vec<Vec<u8>>>;

const ACCOUNTS: [&str; 3] = ["dairy", "meat", "unregistered"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_btreemap_model(steps in prop::collection::vec(step(), 1..60)) {
        // Writer 0 owns every account; writer 1 is registered but owns nothing.
        let owner_key = key(1, SignatureAlgorithm::Ed25519);
        let other_key = key(2, SignatureAlgorithm::Ed25519);
        let mut ledger = Ledger::create(MemoryStore::new(), settings(&owner_key, HashAlgorithm::Sm3)).unwrap();
        let id = ledger.id();
        let mut owner = Client { key: &owner_key, nonce: 0 };
        let setup = vec![
            owner.tx(id, vec![Operation::RegisterUser { public_key: other_key.public_key() }]),
            owner.tx(id, vec![Operation::RegisterDataAccount { name: ACCOUNTS[0].into() }]),
            owner.tx(id, vec![Operation::RegisterDataAccount { name: ACCOUNTS[1].into() }]),
        ];
        append(&mut ledger, setup);
        let mut other = Client { key: &other_key, nonce: 0 };

        let mut model = Model::new();
        let mut pending: Pending = Vec::new();
        // `shadow` is the model including the pending block's accepted writes.
        let mut shadow = model.clone();
        let flush = |ledger: &mut Ledger<MemoryStore>, pending: &mut Pending, model: &mut Model, shadow: &Model| -> Result<(), TestCaseError> {
            if pending.is_empty() {
                return Ok(());
            }
            let batch: Pending = std::mem::take(pending);
            let root_before = ledger.head().state_root;
            let expected: Vec<bool> = batch.iter().map(|(_, w)| w.is_some()).collect();
            let block = append(ledger, batch.into_iter().map(|(tx, _)| tx).collect());
            let got: Vec<bool> = block.transactions.iter().map(|(_, r)| *r == ResultCode::Committed).collect();
            prop_assert_eq!(got, expected.clone());
            if expected.iter().all(|accepted| !accepted) {
                prop_assert_eq!(ledger.head().state_root, root_before, "rejections changed the state");
            }
            *model = shadow.clone();
            Ok(())
        };

        for step in steps {
            match step {
                Step::EndBlock => flush(&mut ledger, &mut pending, &mut model, &shadow)?,
                Step::Write { writer, account, key, value, stale } => {
                    let name = ACCOUNTS[account].to_string();
                    let current = shadow.get(&(name.clone(), key)).map_or(-1, |v| v.len() as i64 - 1);
                    // Stale: a version ahead, or one behind (−1 for an existing key).
                    let expected_version = match (stale, value % 2 == 0 && current >= 0) {
                        (false, _) => current,
                        (true, true) => current - 1,
                        (true, false) => current + 1,
                    };
                    let client = if writer == 0 { &mut owner } else { &mut other };
                    let tx = client.tx(id, vec![write(&name, &[key], &[value], expected_version)]);
                    let accepted = writer == 0 && account < 2 && !stale;
                    let effect = accepted.then(|| vec![((name.clone(), key), vec![value])]);
                    if let Some(writes) = &effect {
                        for (k, v) in writes {
                            shadow.entry(k.clone()).or_default().push(v.clone());
                        }
                    }
                    pending.push((tx, effect));
                }
                Step::Pair { account, first, second, stale_second } => {
                    let name = ACCOUNTS[account].to_string();
                    let v1 = shadow.get(&(name.clone(), first)).map_or(-1, |v| v.len() as i64 - 1);
                    let mut v2 = shadow.get(&(name.clone(), second)).map_or(-1, |v| v.len() as i64 - 1);
                    if first == second {
                        v2 = v1 + 1; // the second write sees the first
                    }
                    if stale_second {
                        v2 += 5;
                    }
                    let tx = owner.tx(id, vec![write(&name, &[first], b"A", v1), write(&name, &[second], b"B", v2)]);
                    let accepted = account < 2 && !stale_second;
                    let effect = accepted.then(|| vec![((name.clone(), first), b"A".to_vec()), ((name.clone(), second), b"B".to_vec())]);
                    if let Some(writes) = &effect {
                        for (k, v) in writes {
                            shadow.entry(k.clone()).or_default().push(v.clone());
                        }
                    }
                    pending.push((tx, effect));
                }
            }
        }
        flush(&mut ledger, &mut pending, &mut model, &shadow)?;

        for account in ACCOUNTS {
            for key in 0u8..6 {
                let expected = model.get(&(account.to_string(), key)).cloned().unwrap_or_default();
                let history: Vec<Vec<u8>> =
                    ledger.history(account, &[key], 0, 1000).unwrap().into_iter().map(|v| v.value).collect();
                prop_assert_eq!(&history, &expected, "history of {}/{}", account, key);
                // The authenticated state agrees with the model too (proof at the head).
                let state_key = engine::state::StateKey::Data { account: account.into(), key: vec![key] };
                let proof = ledger.prove_state(&state_key, ledger.head().height).unwrap();
                let claim = expected.last().map(|v| (expected.len() as u64 - 1, v.as_slice()));
                prop_assert!(
                    engine::proof::verify_data_proof(HashAlgorithm::Sm3, &proof, account, &[key], claim).is_ok(),
                    "state proof of {}/{} disagrees with the model", account, key
                );
                let latest = ledger.latest(account, &[key]).unwrap();
                prop_assert_eq!(latest.map(|v| (v.version, v.value)), expected.last().map(|v| (expected.len() as u64 - 1, v.clone())));
            }
        }
        let verdict = engine::verify::verify_ledger(ledger.store(), ledger.id()).unwrap();
        prop_assert!(matches!(verdict, engine::verify::Verdict::Valid { .. }), "{:?}", verdict);
    }
}
