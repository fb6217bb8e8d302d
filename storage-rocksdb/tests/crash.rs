//! Crash consistency on RocksDB: a child process appends blocks as fast as it can and is
//! killed with SIGKILL at an arbitrary moment (mid-commit, most likely); the reopened
//! ledger must be at a committed height no lower than the last one the child reported,
//! and must verify from genesis. Repeated over several kills on the same database; the
//! middle round's child commits the way `Ledger::commit_unsynced` allows (each block
//! written without an fsync, a second thread fsyncing the WAL while the next block
//! executes, a block reported only once its fsync is done).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto_parallel::{HashAlgorithm, PrivateKey, SignatureAlgorithm};
use engine::ledger::{Ledger, SignatureCheck};
use engine::model::{
    Address, LedgerId, LedgerSettings, Operation, Transaction, TransactionContent,
};
use engine::store::KvStore;
use engine::verify::{Verdict, verify_ledger};
use storage_rocksdb::RocksStore;

const CHILD_ENV: &str = "POLYLEDGER_CRASH_CHILD_DIR";
/// Set for a child that commits with `commit_unsynced` and a syncing thread.
const UNSYNCED_ENV: &str = "POLYLEDGER_CRASH_CHILD_UNSYNCED";
/// The child stops on its own after this long, so a broken parent cannot leave it running.
const CHILD_RUN_MAX: Duration = Duration::from_secs(60);

fn admin_key() -> PrivateKey {
    PrivateKey::from_raw(SignatureAlgorithm::Ed25519, &[7; 32]).unwrap()
}

fn open_or_create(dir: &Path) -> Ledger<Arc<RocksStore>> {
    let store = Arc::new(RocksStore::open(dir).expect("open RocksDB"));
    let id_file = dir.join("ledger-id");
    match std::fs::read(&id_file) {
        Ok(bytes) => Ledger::open(store, LedgerId(bytes.try_into().unwrap())).expect("open ledger"),
        Err(_) => {
            let settings = LedgerSettings {
                name: "crash-test".into(),
                hash_algorithm: HashAlgorithm::Sm3,
                signature_algorithms: vec![SignatureAlgorithm::Ed25519],
                consensus: "solo".into(),
                participants: vec![],
                initial_users: vec![admin_key().public_key()],
                regulators: Vec::new(),
                participant_quorum: 0,
                parents: Vec::new(),
                roles: Vec::new(),
                created_ms: 0,
            };
            let ledger = Ledger::create(store, settings).expect("create ledger");
            std::fs::write(&id_file, ledger.id().0).unwrap();
            ledger
        }
    }
}

/// Child process body: append blocks of 200 writes until killed (or `CHILD_RUN_MAX`),
/// printing `COMMITTED h` once block `h` is durable (and, with `UNSYNCED_ENV`,
/// `WROTE h` once it is written without an fsync).
#[test]
#[ignore = "child process of kill_mid_commit_and_reopen (started by it with POLYLEDGER_CRASH_CHILD_DIR)"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        panic!("crash_child runs only as the child of kill_mid_commit_and_reopen");
    };
    let mut ledger = open_or_create(Path::new(&dir));
    let syncer = std::env::var_os(UNSYNCED_ENV).is_some().then(|| {
        let store = Arc::clone(ledger.store());
        let (requests, incoming) = std::sync::mpsc::channel::<u64>();
        std::thread::spawn(move || {
            while let Ok(height) = incoming.recv() {
                let height = incoming.try_iter().fold(height, u64::max);
                store.sync().expect("WAL fsync");
                println!("COMMITTED {height}");
            }
        });
        requests
    });
    let key = admin_key();
    let id = ledger.id();
    let start = Instant::now();
    let mut nonce = ledger.head().height * 1_000;
    if ledger.head().height == 0 {
        let content = TransactionContent {
            ledger_id: id,
            nonce,
            timestamp_ms: 0,
            operations: vec![Operation::RegisterDataAccount { name: "items".into() }],
        };
        let tx = Transaction::sign(content, &[&key]).unwrap();
        ledger.append_block(vec![tx], SignatureCheck::Verify, 1, Address([0; 32])).unwrap();
    }
    while start.elapsed() < CHILD_RUN_MAX {
        let height = ledger.head().height + 1;
        let transactions: Vec<Transaction> = (0..200)
            .map(|i| {
                nonce += 1;
                let content = TransactionContent {
                    ledger_id: id,
                    nonce,
                    timestamp_ms: height,
                    operations: vec![Operation::WriteKv {
                        account: "items".into(),
                        key: format!("item-{height}-{i}").into_bytes(),
                        value: vec![b'x'; 200],
                        expected_version: -1,
                    }],
                };
                Transaction::sign(content, &[&key]).unwrap()
            })
            .collect();
        let executed = ledger
            .execute_block(transactions, SignatureCheck::Verify, height, Address([0; 32]))
            .unwrap();
        match &syncer {
            Some(syncer) => {
                ledger.commit_unsynced(executed).unwrap();
                println!("WROTE {height}");
                syncer.send(height).unwrap();
            }
            None => {
                ledger.commit(executed).unwrap();
                // Reported only after commit returned: this height is durable.
                println!("COMMITTED {height}");
            }
        }
    }
}

#[test]
fn kill_mid_commit_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut last_reported = 0u64;
    for round in 0..3 {
        let unsynced = round == 1;
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--ignored", "--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if unsynced {
            command.env(UNSYNCED_ENV, "1");
        }
        let mut child = command.spawn().expect("spawn child");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = last_reported + 3 + round;
        let deadline = Instant::now() + Duration::from_secs(50);
        let mut last_written = last_reported;
        let mut note = |line: String, last_reported: &mut u64| {
            let height = |text: &str| text.trim().parse::<u64>().unwrap();
            if let Some(text) = line.strip_prefix("COMMITTED ") {
                *last_reported = (*last_reported).max(height(text));
            } else if let Some(text) = line.strip_prefix("WROTE ") {
                last_written = last_written.max(height(text));
            }
        };
        for line in lines.by_ref() {
            note(line.unwrap(), &mut last_reported);
            if last_reported >= target || Instant::now() > deadline {
                break;
            }
        }
        // SIGKILL while the child is in the middle of building or committing a block.
        child.kill().unwrap();
        child.wait().unwrap();
        // What it printed before it died (a durable report is never taken back).
        for line in lines.map_while(Result::ok) {
            note(line, &mut last_reported);
        }
        assert!(last_reported >= target, "child did not reach height {target}");
        let last_written = last_written.max(last_reported);

        let ledger = open_or_create(dir.path());
        let head = ledger.head().height;
        assert!(
            head >= last_reported,
            "round {round}: lost committed block {last_reported} (head {head})"
        );
        assert!(
            head <= last_written + 1,
            "round {round}: head {head} beyond what could be written (last written {last_written})"
        );
        let id = ledger.id();
        drop(ledger);
        let store = RocksStore::open(dir.path()).unwrap();
        match verify_ledger(store, id).unwrap() {
            Verdict::Valid { height, .. } => assert_eq!(height, head),
            invalid => panic!("round {round}: ledger does not verify after crash: {invalid:?}"),
        }
        last_reported = head;
    }
}
