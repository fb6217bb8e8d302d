//! What the commit bench and the `profile_commit` example share: the ledger they load
//! and the write each of their transactions makes.

use crypto_parallel::{HashAlgorithm, PrivateKey, SignatureAlgorithm};
use engine::ledger::{ExecutedBlock, Ledger, SignatureCheck};
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

/// The node's pipelined commit (`block.pipelined_commit`, `actors::wal_sync`) for the
/// benches: a block is written with `commit_unsynced` and a second thread fsyncs the
/// WAL while the next block executes; before the next block is written the one before
/// it must be durable (the node reports it then).
pub struct Syncer {
    requests: std::sync::mpsc::Sender<u64>,
    durable: std::sync::mpsc::Receiver<u64>,
    /// The highest height known durable, and the highest written.
    synced: u64,
    written: u64,
    /// The fsync thread's CPU time when it stops.
    thread: std::thread::JoinHandle<std::time::Duration>,
}

impl Syncer {
    /// Starts the fsync thread; `cpu_time` reads the calling thread's CPU time.
    pub fn start<S: KvStore + 'static>(
        store: std::sync::Arc<S>,
        cpu_time: fn() -> std::time::Duration,
    ) -> Self {
        let (requests, incoming) = std::sync::mpsc::channel::<u64>();
        let (report, durable) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            while let Ok(height) = incoming.recv() {
                let height = incoming.try_iter().fold(height, u64::max);
                store.sync().expect("WAL fsync failed");
                if report.send(height).is_err() {
                    break;
                }
            }
            cpu_time()
        });
        Syncer { requests, durable, synced: 0, written: 0, thread }
    }

    /// Waits until the block written last is durable, then writes `executed` unsynced and
    /// asks for its fsync.
    pub fn commit<S: KvStore>(&mut self, ledger: &mut Ledger<S>, executed: ExecutedBlock) {
        self.settle();
        let height = executed.block.header.height;
        ledger.commit_unsynced(executed).unwrap();
        self.written = height;
        self.requests.send(height).expect("the fsync thread stopped");
    }

    /// Waits until every block written is durable.
    pub fn settle(&mut self) {
        while self.synced < self.written {
            self.synced = self.durable.recv().expect("the fsync thread stopped");
        }
    }

    /// Settles and stops the thread; returns its CPU time (`profile_commit` reports it;
    /// the criterion bench just drops the syncer, which ends the thread).
    #[allow(dead_code)]
    pub fn finish(mut self) -> std::time::Duration {
        self.settle();
        drop(self.requests);
        self.thread.join().expect("the fsync thread panicked")
    }
}
