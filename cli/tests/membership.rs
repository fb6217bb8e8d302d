//! Participants at run time, with four `polyledger node` processes on 127.0.0.1: a
//! three-node Raft ledger admits a fourth node by a transaction co-signed by a quorum of
//! the current participants (one co-signature is refused), the fourth node catches up
//! and votes (the ledger commits with one of the original three down, which needs its
//! vote), a node is removed and the ledger keeps committing without it, and the
//! participants endpoint shows the history. Every ledger verifies afterwards.
#![cfg(unix)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crypto_parallel::{PrivateKey, SignatureAlgorithm};
use engine::model::{LedgerId, Operation, Transaction, TransactionContent};
use engine::verify::{Verdict, verify_ledger};
use support::{free_port, polyledger};

const BATCH: &str = "application/vnd.polyledger.batch";

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    support::http(port, method, path, BATCH, body)
}

fn admin_key() -> PrivateKey {
    let mut raw = [7u8; 32];
    raw[0] = 1;
    PrivateKey::from_raw(SignatureAlgorithm::Sm2, &raw).unwrap()
}

struct Nodes {
    dir: tempfile::TempDir,
    keys: Vec<PrivateKey>,
    p2p: Vec<u16>,
    http: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Nodes {
    /// Nodes 1–3 form `dairy-0`'s genesis; node 4 knows them and waits to be admitted.
    fn new() -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<PrivateKey> =
            (0..4).map(|_| PrivateKey::generate(SignatureAlgorithm::Sm2)).collect();
        let p2p: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let http: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let admin = admin_key().public_key().to_base58();
        for i in 0..4 {
            let node_dir = dir.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(&node_dir).unwrap();
            std::fs::write(node_dir.join("node.key.pem"), keys[i].to_pem().unwrap()).unwrap();
            let mut config = format!(
                "[node]\nid = {}\nkey_file = \"node.key.pem\"\ndata = \"rocksdb://data\"\n\
                 p2p_listen = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{}\"\n\n\
                 [raft]\ntick_ms = 50\n\n",
                i + 1,
                p2p[i],
                http[i]
            );
            // Nodes 1–3 know each other; node 4 knows them (they learn of node 4 from
            // the admission).
            let peers: Vec<usize> =
                if i < 3 { (0..3).filter(|j| *j != i).collect() } else { (0..3).collect() };
            for j in peers {
                config += &format!(
                    "[[peers]]\nid = {}\naddress = \"127.0.0.1:{}\"\npublic_key = \"{}\"\n\n",
                    j + 1,
                    p2p[j],
                    keys[j].public_key().to_base58()
                );
            }
            config += &format!(
                "[[ledgers]]\nname = \"dairy-0\"\nconsensus = \"raft\"\nparticipants = [1, 2, 3]\n\
                 admins = [\"{admin}\"]\ncreated_ms = 1767225600000\n"
            );
            std::fs::write(node_dir.join("node.toml"), config).unwrap();
        }
        std::fs::write(dir.path().join("admin.key.pem"), admin_key().to_pem().unwrap()).unwrap();
        Nodes { dir, keys, p2p, http, children: (0..4).map(|_| None).collect() }
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}", i + 1))
    }

    fn start(&mut self, i: usize) {
        let log = std::fs::File::create(self.node_dir(i).join("node.log")).unwrap();
        let child = polyledger()
            .args(["node", "--config"])
            .arg(self.node_dir(i).join("node.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.http[i])).is_err()
            || http(self.http[i], "GET", "/healthz", b"").0 != 200
        {
            assert!(Instant::now() < deadline, "node {} did not start", i + 1);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "node {} did not stop", i + 1);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn ledger(&self, i: usize) -> serde_json::Value {
        let (status, body) = http(self.http[i], "GET", "/api/v1/ledgers/dairy-0", b"");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn height(&self, i: usize) -> u64 {
        self.ledger(i)["height"].as_u64().unwrap()
    }

    fn wait_leader(&self, among: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !among.iter().any(|i| self.ledger(*i)["leader"] == true) {
            assert!(Instant::now() < deadline, "no leader among {among:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Commits `count` writes through node `via` (its gateway forwards to the leader).
    fn commit(&self, via: usize, ledger: LedgerId, first_nonce: u64, count: u64) {
        let admin = admin_key();
        let transactions: Vec<Transaction> = (first_nonce..first_nonce + count)
            .map(|nonce| {
                let operations = if nonce == 1 {
                    vec![Operation::RegisterDataAccount { name: "trace".into() }]
                } else {
                    vec![Operation::WriteKv {
                        account: "trace".into(),
                        key: format!("k{nonce}").into_bytes(),
                        value: b"v".to_vec(),
                        expected_version: -1,
                    }]
                };
                let content = TransactionContent {
                    ledger_id: ledger,
                    nonce,
                    timestamp_ms: 1_767_225_600_000,
                    operations,
                };
                Transaction::sign(content, &[&admin]).unwrap()
            })
            .collect();
        let body = engine::model::encode_transactions(transactions.iter());
        let path = "/api/v1/ledgers/dairy-0/transactions?wait=commit&timeout_ms=15000";
        let (status, answer) = http(self.http[via], "POST", path, &body);
        assert_eq!(status, 200, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        for outcome in answer["outcomes"].as_array().unwrap() {
            assert_eq!(outcome["result"], "committed", "{outcome}");
        }
    }

    /// `polyledger tx add-participant|remove-participant` through node `via`.
    fn participant_tx(
        &self,
        via: usize,
        args: &[&str],
        endorsers: &[usize],
    ) -> std::process::Output {
        let mut command = polyledger();
        command
            .args(["tx"])
            .args(args)
            .args(["--gateway", &format!("http://127.0.0.1:{}", self.http[via])])
            .args(["--ledger", "dairy-0", "--key"])
            .arg(self.dir.path().join("admin.key.pem"));
        for e in endorsers {
            command.arg("--endorse").arg(self.node_dir(*e).join("node.key.pem"));
        }
        command.output().unwrap()
    }
}

fn ledger_id(nodes: &Nodes) -> LedgerId {
    let id = nodes.ledger(0)["id"].as_str().unwrap().to_owned();
    LedgerId(hex::decode(id).unwrap().try_into().unwrap())
}

fn verify(dir: &Path, id: LedgerId) {
    let store = storage_rocksdb::RocksStore::open(&dir.join("data")).unwrap();
    assert!(matches!(verify_ledger(&store, id).unwrap(), Verdict::Valid { .. }));
}

#[test]
fn a_ledger_admits_a_node_that_then_votes_and_removes_another() {
    let mut nodes = Nodes::new();
    for i in 0..3 {
        nodes.start(i);
    }
    nodes.wait_leader(&[0, 1, 2]);
    let id = ledger_id(&nodes);
    nodes.commit(0, id, 1, 20);
    // Node 4 runs, waiting to be admitted.
    nodes.start(3);

    let node4 = nodes.keys[3].public_key().to_base58();
    let address = format!("127.0.0.1:{}", nodes.p2p[3]);
    let add = ["add-participant", "--node-key", &node4, "--node-id", "4", "--address", &address];
    // One co-signature of three participants: refused, nothing changes.
    let output = nodes.participant_tx(0, &add, &[0]);
    assert!(!output.status.success(), "admitted with one co-signature");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("no_permission")
            || String::from_utf8_lossy(&output.stderr).contains("no_permission"),
        "{output:?}"
    );
    // Two of three: admitted.
    let output = nodes.participant_tx(1, &add, &[0, 1]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    // Node 4 catches up.
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.height(3) < nodes.height(0) {
        assert!(
            Instant::now() < deadline,
            "node 4 did not catch up: {} vs {}",
            nodes.height(3),
            nodes.height(0)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // It followed as a learner, then votes once caught up: every node's group has four
    // voters.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (0..4).any(|i| nodes.ledger(i)["voters"] != serde_json::json!([1, 2, 3, 4])) {
        assert!(Instant::now() < deadline, "node 4 never became a voter: {}", nodes.ledger(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The group addressed it, and the leader proposed the membership changes.
    let log = |i: usize| std::fs::read_to_string(nodes.node_dir(i).join("node.log")).unwrap();
    assert!(log(3).contains("admitted to the group"), "{}", log(3));
    assert!((0..3).any(|i| log(i).contains("membership change proposed")));
    // Four voters: with node 3 down, three remain, a majority only with node 4's vote.
    nodes.kill(2);
    nodes.wait_leader(&[0, 1, 3]);
    nodes.commit(0, id, 100, 10);
    nodes.commit(3, id, 200, 10);

    // Remove node 2 (three of the four participants co-sign); then stop it: nodes 1 and
    // 4 are two of the three voters left, and commit.
    let node2 = nodes.keys[1].public_key().to_base58();
    let output = nodes.participant_tx(0, &["remove-participant", "--node-key", &node2], &[0, 1, 3]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    while nodes.ledger(0)["voters"] != serde_json::json!([1, 3, 4]) {
        assert!(Instant::now() < deadline, "node 2 still votes: {}", nodes.ledger(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes.stop(1);
    nodes.wait_leader(&[0, 3]);
    nodes.commit(3, id, 300, 10);
    nodes.commit(0, id, 400, 10);

    // The history, as every node serves it.
    let (status, body) = http(nodes.http[3], "GET", "/api/v1/ledgers/dairy-0/participants", b"");
    assert_eq!(status, 200, "{body}");
    let participants: serde_json::Value = serde_json::from_str(&body).unwrap();
    let participants = participants.as_array().unwrap();
    assert_eq!(participants.len(), 4, "{body}");
    assert_eq!(participants[3]["node_id"], 4);
    assert_eq!(participants[3]["network_address"], address.as_str());
    assert!(participants[1]["removed_height"].as_u64().is_some(), "{body}");
    assert!(participants[0]["removed_height"].is_null());

    // Same head on the two running voters; every ledger verifies.
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes.ledger(0)["block_hash"] != nodes.ledger(3)["block_hash"] {
        assert!(Instant::now() < deadline, "nodes 1 and 4 differ");
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes.stop(0);
    nodes.stop(3);
    for i in 0..4 {
        verify(&nodes.node_dir(i), id);
    }
}
