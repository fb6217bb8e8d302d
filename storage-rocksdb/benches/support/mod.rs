//! What the commit bench and the `profile_commit` example share: the ledger they load
//! and the write each of their transactions makes.

use crypto_parallel::{HashAlgorithm, PrivateKey, SignatureAlgorithm};
use engine::ledger::{Ledger, SignatureCheck};
use engine::model::{
    Address, LedgerId, LedgerSettings, Operation, Transaction, TransactionContent,
};
use engine::store::KvStore;

/// Size of each written value.
pub const VALUE_LEN: usize = 200;

/// A solo ledger on `store` with one SM2 user (the default, so stored sizes are
/// representative) and its data account `trace`; returns the user's key and the
/// transaction that registered the account.
pub fn trace_ledger<S: KvStore>(
    store: S,
    hash_algorithm: HashAlgorithm,
) -> (Ledger<S>, PrivateKey, Transaction) {
    let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let settings = LedgerSettings {
        name: "bench-0".into(),
        hash_algorithm,
        signature_algorithms: vec![SignatureAlgorithm::Sm2],
        consensus: "solo".into(),
        participants: vec![],
        initial_users: vec![key.public_key()],
        regulators: Vec::new(),
        participant_quorum: 0,
        parents: Vec::new(),
        roles: Vec::new(),
        created_ms: 0,
    };
    let mut ledger = Ledger::create(store, settings).unwrap();
    let content = TransactionContent {
        ledger_id: ledger.id(),
        nonce: 0,
        timestamp_ms: 0,
        operations: vec![Operation::RegisterDataAccount { name: "trace".into() }],
    };
    let first = Transaction::sign(content, &[&key]).unwrap();
    ledger.append_block(vec![first.clone()], SignatureCheck::Verify, 0, Address([0; 32])).unwrap();
    (ledger, key, first)
}

/// Transaction `nonce` writing a `VALUE_LEN`-byte value (starting with the nonce) to
/// `key` of `trace`, expecting `expected_version`.
pub fn trace_write(
    ledger_id: LedgerId,
    nonce: u64,
    key: Vec<u8>,
    expected_version: i64,
) -> TransactionContent {
    let mut value = vec![b'e'; VALUE_LEN];
    value[..8].copy_from_slice(&nonce.to_be_bytes());
    TransactionContent {
        ledger_id,
        nonce,
        timestamp_ms: nonce,
        operations: vec![Operation::WriteKv {
            account: "trace".into(),
            key,
            value,
            expected_version,
        }],
    }
}
