//! Shared fixtures for the engine's integration tests.
#![allow(dead_code, missing_docs)]

use crypto_parallel::{HashAlgorithm, PrivateKey, SignatureAlgorithm};
use engine::ledger::{Ledger, SignatureCheck, StoredBlock};
use engine::model::{
    Address, LedgerId, LedgerSettings, Operation, Transaction, TransactionContent,
};
use engine::store::KvStore;

/// A private key from a fixed seed, so tests are reproducible.
pub fn key(seed: u8, algorithm: SignatureAlgorithm) -> PrivateKey {
    let mut raw = [seed; 32];
    raw[0] = 1; // keeps SM2/P-256 scalars in range
    PrivateKey::from_raw(algorithm, &raw).expect("fixed test key")
}

pub fn settings(admin: &PrivateKey, hash_algorithm: HashAlgorithm) -> LedgerSettings {
    LedgerSettings {
        name: "dairy-0".into(),
        hash_algorithm,
        signature_algorithms: vec![SignatureAlgorithm::Sm2, SignatureAlgorithm::Ed25519],
        consensus: "solo".into(),
        participants: vec![key(200, SignatureAlgorithm::Sm2).public_key()],
        initial_users: vec![admin.public_key()],
        regulators: Vec::new(),
        participant_quorum: 0,
        parents: Vec::new(),
        roles: Vec::new(),
        created_ms: 1_764_000_000_000,
    }
}

pub struct Client<'a> {
    pub key: &'a PrivateKey,
    pub nonce: u64,
}

impl Client<'_> {
    pub fn tx(&mut self, ledger_id: LedgerId, operations: Vec<Operation>) -> Transaction {
        self.nonce += 1;
        let content = TransactionContent {
            ledger_id,
            nonce: self.nonce,
            timestamp_ms: 1_764_000_000_000 + self.nonce,
            operations,
        };
        Transaction::sign(content, &[self.key]).expect("valid transaction")
    }
}

pub fn write(account: &str, key: &[u8], value: &[u8], expected_version: i64) -> Operation {
    Operation::WriteKv {
        account: account.into(),
        key: key.to_vec(),
        value: value.to_vec(),
        expected_version,
    }
}

pub fn append<S: KvStore>(ledger: &mut Ledger<S>, transactions: Vec<Transaction>) -> StoredBlock {
    let timestamp = 1_764_000_000_000 + ledger.head().height + 1;
    ledger
        .append_block(transactions, SignatureCheck::Verify, timestamp, Address([7; 32]))
        .expect("append block")
}

/// A ledger (SM3) on `store` whose block 1 registers data account `account`, and the
/// admin's client for what follows.
pub fn ledger_with_account<'k, S: KvStore>(
    store: S,
    admin_key: &'k PrivateKey,
    account: &str,
) -> (Ledger<S>, Client<'k>) {
    let mut ledger = Ledger::create(store, settings(admin_key, HashAlgorithm::Sm3)).unwrap();
    let mut admin = Client { key: admin_key, nonce: 0 };
    let id = ledger.id();
    append(
        &mut ledger,
        vec![admin.tx(id, vec![Operation::RegisterDataAccount { name: account.into() }])],
    );
    (ledger, admin)
}
