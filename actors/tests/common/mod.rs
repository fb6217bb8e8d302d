//! Shared fixtures for the actors' integration tests.
#![allow(dead_code, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use actors::{LedgerOptions, NodeOptions};
use consensus::RaftOptions;
use crypto_parallel::{HashAlgorithm, PrivateKey, PublicKey, SignatureAlgorithm};
use engine::model::{LedgerId, LedgerSettings, Operation, Transaction, TransactionContent};
use engine::store::KvStore;

/// A private key from a fixed seed, so tests are reproducible.
pub fn key(seed: u8) -> PrivateKey {
    let mut raw = [seed; 32];
    raw[0] = 1;
    PrivateKey::from_raw(SignatureAlgorithm::Sm2, &raw).expect("fixed test key")
}

pub fn admin() -> PrivateKey {
    key(1)
}

pub fn settings(name: &str, consensus: &str, participants: Vec<PublicKey>) -> LedgerSettings {
    LedgerSettings {
        name: name.into(),
        hash_algorithm: HashAlgorithm::Sm3,
        signature_algorithms: vec![SignatureAlgorithm::Sm2],
        consensus: consensus.into(),
        participants,
        initial_users: vec![admin().public_key()],
        regulators: Vec::new(),
        participant_quorum: 0,
        parents: Vec::new(),
        roles: Vec::new(),
        created_ms: 1_764_000_000_000,
    }
}

pub fn tx(
    key: &PrivateKey,
    ledger: LedgerId,
    nonce: u64,
    operations: Vec<Operation>,
) -> Transaction {
    let content = TransactionContent {
        ledger_id: ledger,
        nonce,
        timestamp_ms: 1_764_000_000_000 + nonce,
        operations,
    };
    Transaction::sign(content, &[key]).expect("valid transaction")
}

pub fn write(key: &str, value: &[u8], expected_version: i64) -> Operation {
    Operation::WriteKv {
        account: "trace".into(),
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        expected_version,
    }
}

pub fn register_account() -> Operation {
    Operation::RegisterDataAccount { name: "trace".into() }
}

pub fn options(id: u64, key: PrivateKey, ledgers: Vec<LedgerSettings>) -> NodeOptions {
    NodeOptions {
        id,
        key,
        p2p_listen: None,
        p2p_tls: true,
        peers: Vec::new(),
        ledgers,
        ledger_options: LedgerOptions {
            max_block_txs: 200,
            max_block_delay: Duration::from_millis(5),
            mempool_capacity: 10_000,
            tick: Duration::from_millis(20),
            proposal_timeout: Duration::from_secs(2),
            pipelined_commit: true,
        },
        raft: RaftOptions::default(),
        bft: consensus::BftOptions::default(),
        transport_threads: 1,
    }
}

/// The real store (RocksDB in a temporary directory) and the in-memory fake, so every
/// test runs on both.
pub enum TestStore {
    Memory,
    Rocks,
}

pub fn open_store(kind: &TestStore, dir: &std::path::Path) -> Arc<dyn KvStore> {
    match kind {
        TestStore::Memory => Arc::new(engine::store::MemoryStore::new()),
        TestStore::Rocks => Arc::new(storage_rocksdb::RocksStore::open(dir).expect("open RocksDB")),
    }
}

/// Logs to the test output when `RUST_LOG` asks for it.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Submits `transactions` (waiting out `Busy`) and waits until all are final.
pub async fn submit_and_wait(
    handle: &actors::LedgerHandle,
    transactions: Vec<Transaction>,
) -> Vec<actors::TxOutcome> {
    let submitted = loop {
        match handle.submit(transactions.clone()).await {
            Ok(submitted) => break submitted,
            Err(actors::SubmitError::Busy { retry_after }) => {
                actix_rt::time::sleep(retry_after).await
            }
            Err(other) => panic!("submit failed: {other}"),
        }
    };
    submitted.wait().await.expect("the ledger stays up")
}

/// The admin registers the `trace` data account (nonce 0); its outcome.
pub async fn register_trace_account(handle: &actors::LedgerHandle) -> actors::TxOutcome {
    let transaction = tx(&admin(), handle.id(), 0, vec![register_account()]);
    submit_and_wait(handle, vec![transaction]).await.remove(0)
}

/// A listen address no other socket of this process will take: each call gets its own
/// loopback address 127.0.0.2 … 127.0.0.254 and a port the kernel reported free on it.
///
/// A port freed on 127.0.0.1 can be taken, before the node binds it, as the source port
/// of an outgoing connection (the tests' nodes dial each other all the time), and the
/// bind then fails with "address in use". Outgoing connections on loopback leave from
/// 127.0.0.1, so a port on another loopback address stays free.
pub fn free_address() -> SocketAddr {
    static NEXT: AtomicU8 = AtomicU8::new(0);
    let host = 2 + NEXT.fetch_add(1, Ordering::Relaxed) % 253;
    let ip = Ipv4Addr::new(127, 0, 0, host);
    let listener = std::net::TcpListener::bind((ip, 0)).expect("a loopback port");
    listener.local_addr().expect("a bound address")
}

/// Fake: a `MemoryStore` whose syncs (the WAL fsync after `write_unsynced`) are counted
/// and fail, as a disk error would, once `fail` is set.
#[derive(Default)]
pub struct FailingSyncStore {
    pub inner: engine::store::MemoryStore,
    pub syncs: std::sync::atomic::AtomicU64,
    pub fail: std::sync::atomic::AtomicBool,
}

impl KvStore for FailingSyncStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, engine::store::StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: engine::store::Direction,
        limit: usize,
    ) -> Result<engine::store::Entries, engine::store::StoreError> {
        self.inner.scan(start, end, direction, limit)
    }
    fn write(&self, batch: engine::store::WriteBatch) -> Result<(), engine::store::StoreError> {
        self.inner.write(batch)
    }
    fn sync(&self) -> Result<(), engine::store::StoreError> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(engine::store::StoreError::Backend("fsync: input/output error".into()));
        }
        Ok(())
    }
}
