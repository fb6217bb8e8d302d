//! `polyledger node` processes on 127.0.0.1 ports, driven over HTTP.
//!
//! - Three nodes, two Raft ledgers: the leader process of a ledger is killed with SIGKILL;
//!   a new leader commits within 3 s; the killed node restarts on its data directory and
//!   catches up.
//! - Four nodes, one `bft` ledger: any one killed, commits go on; two killed, nothing
//!   commits (safety over liveness) until one returns; blocks carry certificates that the
//!   SDK and `ledger verify` check, and a certificate cut short of 2/3 is reported.
//!
//! After a graceful stop every node's ledger verifies, all nodes have the same block hash
//! at every height, and no acknowledged transaction is lost.
#![cfg(unix)]

mod support;
use support::{free_port, polyledger};

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto_parallel::PrivateKey;
use engine::ledger::Ledger;
use engine::model::{LedgerId, Operation, Transaction, TransactionContent};
use engine::verify::{Verdict, verify_ledger};

const NODES: usize = 3;

/// A listen address on 127.0.0.1 (`support::free_port`: below the ephemeral range, so
/// a node restarted on it finds it free).
fn free_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    // An oversized body may be refused (and the connection closed) before it is all
    // sent: the answer is still there to read.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    if response.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no answer"));
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_owned());
    Ok((status, body))
}

struct Cluster {
    dir: tempfile::TempDir,
    http: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    keys: Vec<PrivateKey>,
}

impl Cluster {
    /// Three nodes serving two Raft ledgers.
    fn new() -> Cluster {
        Cluster::with(NODES, "raft", &["dairy-0", "liquor-0"])
    }

    /// `nodes` nodes serving `ledgers` (every node a participant) with `consensus`.
    fn with(nodes: usize, consensus: &str, ledgers: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<PrivateKey> = (0..nodes)
            .map(|_| PrivateKey::generate(crypto_parallel::SignatureAlgorithm::Sm2))
            .collect();
        let admin = admin_key();
        let p2p: Vec<SocketAddr> = (0..nodes).map(|_| free_address()).collect();
        let http: Vec<SocketAddr> = (0..nodes).map(|_| free_address()).collect();
        for i in 0..nodes {
            let node_dir = dir.path().join(format!("node{}", i + 1));
            std::fs::create_dir_all(&node_dir).unwrap();
            std::fs::write(node_dir.join("node.key.pem"), keys[i].to_pem().unwrap().as_bytes())
                .unwrap();
            let mut config = format!(
                "[node]\nid = {}\nkey_file = \"node.key.pem\"\ndata = \"rocksdb://data\"\np2p_listen = \"{}\"\nhttp_listen = \"{}\"\n\n[raft]\ntick_ms = 50\n\n",
                i + 1,
                p2p[i],
                http[i]
            );
            for j in (0..nodes).filter(|j| *j != i) {
                config += &format!(
                    "[[peers]]\nid = {}\naddress = \"{}\"\npublic_key = \"{}\"\n\n",
                    j + 1,
                    p2p[j],
                    keys[j].public_key().to_base58()
                );
            }
            for name in ledgers {
                config += &format!(
                    "[[ledgers]]\nname = \"{name}\"\nconsensus = \"{consensus}\"\nadmins = [\"{}\"]\ncreated_ms = 1767225600000\n\n",
                    admin.public_key().to_base58()
                );
            }
            std::fs::write(node_dir.join("node.toml"), config).unwrap();
        }
        let mut cluster = Cluster { dir, http, children: (0..nodes).map(|_| None).collect(), keys };
        for i in 0..nodes {
            cluster.start(i);
        }
        cluster
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{}", i + 1))
    }

    fn start(&mut self, i: usize) {
        let log =
            std::fs::File::create(self.node_dir(i).join(format!("log-{}", now_ms()))).unwrap();
        let child = polyledger()
            .args(["node", "--config"])
            .arg(self.node_dir(i).join("node.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
        // Until its HTTP port answers.
        let deadline = Instant::now() + Duration::from_secs(20);
        while http(self.http[i], "GET", "/healthz", b"").is_err() {
            assert!(Instant::now() < deadline, "node {} did not start", i + 1);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let status =
                Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
            assert!(status.success());
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "node {} exited with {status:?}", i + 1);
                    return;
                }
                assert!(Instant::now() < deadline, "node {} did not stop", i + 1);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn ledgers(&self, i: usize) -> Vec<serde_json::Value> {
        let (status, body) = http(self.http[i], "GET", "/api/v1/ledgers", b"").unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn leader_of(&self, ledger: usize) -> Option<usize> {
        (0..self.children.len())
            .filter(|i| self.children[*i].is_some())
            .find(|i| self.ledgers(*i)[ledger]["leader"] == true)
    }

    fn wait_leader(&self, ledger: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(leader) = self.leader_of(ledger) {
                return leader;
            }
            assert!(Instant::now() < deadline, "no leader for ledger {ledger}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
        }
        if std::thread::panicking() {
            // The nodes' own account of a failure, in the test's output (CI keeps that).
            for i in 0..self.children.len() {
                eprintln!("---- node {}: the end of its logs ----", i + 1);
                eprintln!("{}", log_tail(&self.node_dir(i), 80));
            }
        }
    }
}

/// The last `lines` lines of a node's logs, oldest run first (a restarted node writes a
/// new file per run).
fn log_tail(node_dir: &std::path::Path, lines: usize) -> String {
    let mut logs: Vec<_> = std::fs::read_dir(node_dir)
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|p: &PathBuf| p.file_name().unwrap().to_string_lossy().starts_with("log-"));
    logs.sort();
    let mut text = String::new();
    for log in logs {
        text += &format!("[{}]\n", log.file_name().unwrap().to_string_lossy());
        text += &std::fs::read_to_string(&log).unwrap_or_default();
    }
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn now_ms() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
}

fn admin_key() -> PrivateKey {
    let mut raw = [7u8; 32];
    raw[0] = 1;
    PrivateKey::from_raw(crypto_parallel::SignatureAlgorithm::Sm2, &raw).unwrap()
}

fn batch(
    ledger: LedgerId,
    first_nonce: u64,
    operations: impl Fn(u64) -> Operation,
    count: u64,
) -> Vec<Transaction> {
    let admin = admin_key();
    (first_nonce..first_nonce + count)
        .map(|nonce| {
            let content = TransactionContent {
                ledger_id: ledger,
                nonce,
                timestamp_ms: 1_767_225_600_000 + nonce,
                operations: vec![operations(nonce)],
            };
            Transaction::sign(content, &[&admin]).unwrap()
        })
        .collect()
}

/// Submits and waits for commit through node `via`; returns the committed hashes.
fn submit(
    cluster: &Cluster,
    via: usize,
    ledger: &str,
    transactions: &[Transaction],
) -> Vec<String> {
    let body = actors::proposal::encode_transactions(transactions.iter());
    let path = format!("/api/v1/ledgers/{ledger}/transactions?wait=commit&timeout_ms=10000");
    let (status, body) = http(cluster.http[via], "POST", &path, &body).unwrap();
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| {
            assert_eq!(outcome["status"], "committed", "{outcome}");
            assert_eq!(outcome["result"], "committed", "{outcome}");
            outcome["hash"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn write_op(nonce: u64) -> Operation {
    Operation::WriteKv {
        account: "trace".into(),
        key: format!("k{nonce}").into_bytes(),
        value: b"v".to_vec(),
        expected_version: -1,
    }
}

#[test]
fn three_node_processes_survive_a_killed_leader() {
    let mut cluster = Cluster::new();
    let ids: Vec<String> =
        cluster.ledgers(0).iter().map(|ledger| ledger["id"].as_str().unwrap().to_owned()).collect();
    let ledger_ids: Vec<LedgerId> =
        ids.iter().map(|id| LedgerId(hex::decode(id).unwrap().try_into().unwrap())).collect();
    let mut acknowledged: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for (ledger, id) in ids.iter().enumerate() {
        let leader = cluster.wait_leader(ledger);
        let register = batch(
            ledger_ids[ledger],
            0,
            |_| Operation::RegisterDataAccount { name: "trace".into() },
            1,
        );
        acknowledged[ledger].extend(submit(&cluster, leader, id, &register));
        for via in 0..NODES {
            let txs = batch(ledger_ids[ledger], 1000 * (via as u64 + 1), write_op, 20);
            acknowledged[ledger].extend(submit(&cluster, via, id, &txs));
        }
    }
    // SIGKILL the leader of ledger 0; a survivor commits within 3 s.
    let leader = cluster.wait_leader(0);
    cluster.kill(leader);
    let killed_at = Instant::now();
    let survivor = (0..NODES).find(|i| *i != leader).unwrap();
    let txs = batch(ledger_ids[0], 50_000, write_op, 10);
    acknowledged[0].extend(submit(&cluster, survivor, &ids[0], &txs));
    let recovery = killed_at.elapsed();
    eprintln!("commits resumed {recovery:?} after the leader was killed");
    assert!(recovery < Duration::from_secs(3), "commits resumed only after {recovery:?}");
    for (ledger, id) in ids.iter().enumerate() {
        let txs = batch(ledger_ids[ledger], 60_000, write_op, 20);
        acknowledged[ledger].extend(submit(&cluster, survivor, id, &txs));
    }
    // The killed node restarts on its data directory and catches up.
    cluster.start(leader);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let heads: Vec<Vec<(u64, String)>> = (0..NODES)
            .map(|i| {
                cluster
                    .ledgers(i)
                    .iter()
                    .map(|l| (l["height"].as_u64().unwrap(), l["block_hash"].to_string()))
                    .collect()
            })
            .collect();
        if heads.iter().all(|h| *h == heads[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "no catch-up: {heads:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..NODES {
        cluster.stop(i);
    }
    // Identical blocks everywhere; every copy verifies; nothing acknowledged is lost.
    let stores: Vec<Arc<dyn engine::store::KvStore>> = (0..NODES)
        .map(|i| {
            Arc::new(storage_rocksdb::RocksStore::open(&cluster.node_dir(i).join("data")).unwrap())
                as Arc<dyn engine::store::KvStore>
        })
        .collect();
    for (ledger, id) in ledger_ids.iter().enumerate() {
        let copies: Vec<_> =
            stores.iter().map(|store| Ledger::open(store.clone(), *id).unwrap()).collect();
        for h in 0..=copies[0].head().height {
            let hash = copies[0].block(h).unwrap().unwrap().hash;
            for copy in &copies[1..] {
                assert_eq!(copy.block(h).unwrap().unwrap().hash, hash, "height {h} differs");
            }
        }
        for hash in &acknowledged[ledger] {
            let hash: [u8; 32] = hex::decode(hash).unwrap().try_into().unwrap();
            assert!(
                copies[0].transaction(&hash).unwrap().is_some(),
                "acknowledged transaction lost"
            );
        }
        for store in &stores {
            assert!(matches!(verify_ledger(store.clone(), *id).unwrap(), Verdict::Valid { .. }));
        }
    }
}

/// Bad input over HTTP gets a clear problem and changes nothing.
#[test]
fn http_rejects_bad_input_without_changing_state() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(crypto_parallel::SignatureAlgorithm::Sm2);
    std::fs::write(dir.path().join("node.key.pem"), key.to_pem().unwrap().as_bytes()).unwrap();
    let http_address = free_address();
    let config = format!(
        "[node]\nid = 1\nkey_file = \"node.key.pem\"\ndata = \"memory://\"\np2p_listen = \"{}\"\nhttp_listen = \"{http_address}\"\n\n[[ledgers]]\nname = \"dairy-0\"\nadmins = [\"{}\"]\n",
        free_address(),
        admin_key().public_key().to_base58()
    );
    std::fs::write(dir.path().join("node.toml"), config).unwrap();
    let child = polyledger()
        .args(["node", "--config"])
        .arg(dir.path().join("node.toml"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed if the test fails midway (no node outlives its test).
    let mut child = KillOnDrop(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(http_address, "GET", "/healthz", b"").is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, body) = http(http_address, "GET", "/api/v1/ledgers", b"").unwrap();
    let ledgers: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = ledgers[0]["id"].as_str().unwrap().to_owned();
    let ledger_id = LedgerId(hex::decode(&id).unwrap().try_into().unwrap());
    let path = format!("/api/v1/ledgers/{id}/transactions?wait=commit");
    let cases: Vec<(String, Vec<u8>, u16, &str)> = vec![
        (path.clone(), b"garbage".to_vec(), 400, "MALFORMED_BODY"),
        (path.clone(), Vec::new(), 400, "MALFORMED_BODY"),
        (
            format!("/api/v1/ledgers/{}/transactions", "00".repeat(32)),
            b"x".to_vec(),
            404,
            "UNKNOWN_LEDGER",
        ),
        (
            format!("/api/v1/ledgers/{id}/transactions?wait=later"),
            b"x".to_vec(),
            400,
            "BAD_PARAMETER",
        ),
        (
            format!("/api/v1/ledgers/{id}/transactions?timeout_ms=0&wait=commit"),
            b"x".to_vec(),
            400,
            "BAD_PARAMETER",
        ),
        (path.clone(), vec![0u8; 17 << 20], 413, "BODY_TOO_LARGE"),
    ];
    for (path, body, status, code) in cases {
        let (got, text) = http(http_address, "POST", &path, &body).unwrap();
        assert_eq!(got, status, "{path}: {text}");
        assert!(text.contains(code), "{path}: {text}");
    }
    // A forged signature and a transaction for another ledger are rejected per item.
    let mut forged =
        batch(ledger_id, 1, |_| Operation::RegisterDataAccount { name: "trace".into() }, 1);
    forged[0].content.nonce += 1;
    let other =
        batch(LedgerId([9; 32]), 2, |_| Operation::RegisterDataAccount { name: "trace".into() }, 1);
    for (transactions, code) in [(forged, "BAD_SIGNATURE"), (other, "WRONG_LEDGER")] {
        let (status, text) = http(
            http_address,
            "POST",
            &path,
            &actors::proposal::encode_transactions(transactions.iter()),
        )
        .unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("\"rejected\"") && text.contains(code), "{text}");
    }
    let (_, body) = http(http_address, "GET", "/api/v1/ledgers", b"").unwrap();
    let after: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(after[0]["height"], 0, "bad input changed the ledger");
    // A replayed transaction: committed once, then rejected.
    let good = batch(ledger_id, 3, |_| Operation::RegisterDataAccount { name: "trace".into() }, 1);
    let encoded = actors::proposal::encode_transactions(good.iter());
    let (status, text) = http(http_address, "POST", &path, &encoded).unwrap();
    assert!(status == 200 && text.contains("\"committed\""), "{text}");
    let (status, text) = http(http_address, "POST", &path, &encoded).unwrap();
    assert!(status == 200 && text.contains("ALREADY_COMMITTED"), "{text}");
    // The metrics show the one block, and no halt.
    let (status, text) = http(http_address, "GET", "/metrics", b"").unwrap();
    assert_eq!(status, 200);
    for line in [
        "polyledger_ledger_height{ledger=\"dairy-0\"} 1",
        "polyledger_ledger_halted{ledger=\"dairy-0\"} 0",
        "polyledger_blocks_committed_total{ledger=\"dairy-0\"} 1",
        "polyledger_transactions_committed_total{ledger=\"dairy-0\"} 1",
        "# TYPE polyledger_mempool_transactions gauge",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let mut child = child.0.take().unwrap();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().unwrap().success());
}

struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A member restored from an online backup rejoins its Raft groups and catches up: the
/// backup is taken from node 3 under load, node 3 is stopped later, its data replaced by
/// the restored backup (older than what the others committed since), and restarted.
#[test]
fn a_member_restored_from_a_backup_catches_up() {
    let mut cluster = Cluster::new();
    let ids: Vec<String> =
        cluster.ledgers(0).iter().map(|ledger| ledger["id"].as_str().unwrap().to_owned()).collect();
    let ledger0 = LedgerId(hex::decode(&ids[0]).unwrap().try_into().unwrap());
    let leader = cluster.wait_leader(0);
    let register =
        batch(ledger0, 0, |_| Operation::RegisterDataAccount { name: "trace".into() }, 1);
    submit(&cluster, leader, &ids[0], &register);
    let restored = 2; // node 3
    let before = batch(ledger0, 1_000, write_op, 40);
    submit(&cluster, leader, &ids[0], &before);
    let gateway = format!("http://{}", cluster.http[restored]);
    let output =
        polyledger().args(["backup", "--gateway", &gateway, "--name", "b1"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let backed_up = manifest["ledgers"][0]["height"].as_u64().unwrap();
    // More commits after the backup; then node 3 goes down and comes back from it.
    let after = batch(ledger0, 2_000, write_op, 40);
    let via = (0..NODES).find(|i| *i != restored).unwrap();
    let acknowledged = submit(&cluster, via, &ids[0], &after);
    cluster.stop(restored);
    let node_dir = cluster.node_dir(restored);
    let restore = polyledger()
        .arg("restore")
        .arg("--from")
        .arg(manifest["path"].as_str().unwrap())
        .arg("--data")
        .arg(node_dir.join("data-restored"))
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    std::fs::rename(node_dir.join("data"), node_dir.join("data-lost")).unwrap();
    std::fs::rename(node_dir.join("data-restored"), node_dir.join("data")).unwrap();
    cluster.start(restored);
    let target = cluster.ledgers(via)[0]["height"].as_u64().unwrap();
    assert!(target > backed_up, "the others moved on after the backup");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mine = &cluster.ledgers(restored)[0];
        let theirs = &cluster.ledgers(via)[0];
        if mine["height"] == theirs["height"] && mine["block_hash"] == theirs["block_hash"] {
            break;
        }
        // The cluster prints every node's log as the test fails.
        assert!(Instant::now() < deadline, "restored node at {mine}, others at {theirs}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // It serves what was committed while it was down, and the group keeps committing.
    for hash in acknowledged.iter().take(3) {
        let path = format!("/api/v1/ledgers/{}/transactions/{hash}", ids[0]);
        let (status, body) = http(cluster.http[restored], "GET", &path, b"").unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let more = batch(ledger0, 3_000, write_op, 10);
    submit(&cluster, restored, &ids[0], &more);
    for i in 0..NODES {
        cluster.stop(i);
    }
    let store = storage_rocksdb::RocksStore::open(&node_dir.join("data")).unwrap();
    assert!(matches!(verify_ledger(&store, ledger0).unwrap(), Verdict::Valid { .. }));
}

impl Cluster {
    /// (height, block hash) of ledger `ledger` on every running node.
    fn heads(&self, ledger: usize) -> Vec<(u64, String)> {
        (0..self.children.len())
            .filter(|i| self.children[*i].is_some())
            .map(|i| {
                let view = &self.ledgers(i)[ledger];
                (view["height"].as_u64().unwrap(), view["block_hash"].to_string())
            })
            .collect()
    }

    fn wait_converged(&self, ledger: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let heads = self.heads(ledger);
            if heads.iter().all(|h| *h == heads[0]) {
                return;
            }
            assert!(Instant::now() < deadline, "no catch-up: {heads:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ledger_verify(&self, i: usize) -> std::process::Output {
        polyledger()
            .args(["ledger", "verify", "--config"])
            .arg(self.node_dir(i).join("node.toml"))
            .output()
            .unwrap()
    }
}

/// Submits without waiting (202); returns the hashes.
fn submit_accepted(
    cluster: &Cluster,
    via: usize,
    ledger: &str,
    txs: &[Transaction],
) -> Vec<String> {
    let body = actors::proposal::encode_transactions(txs.iter());
    let path = format!("/api/v1/ledgers/{ledger}/transactions");
    let (status, body) = http(cluster.http[via], "POST", &path, &body).unwrap();
    assert_eq!(status, 202, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["hashes"].as_array().unwrap().iter().map(|h| h.as_str().unwrap().to_owned()).collect()
}

fn tx_status(cluster: &Cluster, via: usize, ledger: &str, hash: &str) -> String {
    let path = format!("/api/v1/ledgers/{ledger}/transactions/{hash}");
    let (status, body) = http(cluster.http[via], "GET", &path, b"").unwrap();
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    value["status"].as_str().unwrap().to_owned()
}

#[test]
fn four_bft_processes_survive_one_killed_and_stop_without_quorum() {
    const BFT_NODES: usize = 4;
    let mut cluster = Cluster::with(BFT_NODES, "bft", &["dairy-0"]);
    let id = cluster.ledgers(0)[0]["id"].as_str().unwrap().to_owned();
    let ledger_id = LedgerId(hex::decode(&id).unwrap().try_into().unwrap());
    let mut acknowledged = Vec::new();
    let register =
        batch(ledger_id, 0, |_| Operation::RegisterDataAccount { name: "trace".into() }, 1);
    acknowledged.extend(submit(&cluster, 0, &id, &register));
    for via in 0..BFT_NODES {
        let txs = batch(ledger_id, 1000 * (via as u64 + 1), write_op, 10);
        acknowledged.extend(submit(&cluster, via, &id, &txs));
    }

    // Any one of the four killed (SIGKILL): 3 > 2/3 of 4, commits go on through another.
    for victim in 0..BFT_NODES {
        cluster.kill(victim);
        let killed_at = Instant::now();
        let via = (victim + 1) % BFT_NODES;
        let txs = batch(ledger_id, 10_000 * (victim as u64 + 1), write_op, 10);
        acknowledged.extend(submit(&cluster, via, &id, &txs));
        eprintln!("node {} killed: 10 writes committed in {:?}", victim + 1, killed_at.elapsed());
        cluster.start(victim);
    }
    cluster.wait_converged(0);

    // Two killed: 2 of 4 is no quorum, nothing commits (safety over liveness).
    cluster.kill(2);
    cluster.kill(3);
    let before = cluster.heads(0);
    let waiting = submit_accepted(&cluster, 0, &id, &batch(ledger_id, 90_000, write_op, 10));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(cluster.heads(0), before, "committed with 2 of 4 nodes");
    for hash in &waiting {
        assert_eq!(tx_status(&cluster, 0, &id, hash), "pending");
    }

    // One returns: the waiting writes commit.
    cluster.start(2);
    let returned = Instant::now();
    let deadline = returned + Duration::from_secs(30);
    while !waiting.iter().all(|hash| tx_status(&cluster, 0, &id, hash) == "committed") {
        assert!(Instant::now() < deadline, "no commit after a third node returned");
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("3 of 4 up again: the waiting writes committed in {:?}", returned.elapsed());
    acknowledged.extend(waiting);
    cluster.start(3);
    let txs = batch(ledger_id, 95_000, write_op, 10);
    acknowledged.extend(submit(&cluster, 3, &id, &txs));
    cluster.wait_converged(0);

    // A proof served by any node verifies offline against the participants, with its
    // certificate; a participant set that is not the ledger's refuses it.
    let participants: std::collections::BTreeMap<u64, crypto_parallel::PublicKey> =
        cluster.keys.iter().enumerate().map(|(i, k)| (i as u64 + 1, k.public_key())).collect();
    let path = format!("/api/v1/ledgers/{id}/proofs/transactions/{}", acknowledged[1]);
    let (status, body) = http(cluster.http[1], "GET", &path, b"").unwrap();
    assert_eq!(status, 200, "{body}");
    let document: sdk::wire::ProofDocument = serde_json::from_str(&body).unwrap();
    sdk::proof::verify_certified(&document, &participants).unwrap();
    let strangers: std::collections::BTreeMap<u64, crypto_parallel::PublicKey> = (1..=4)
        .map(|i| (i, PrivateKey::generate(crypto_parallel::SignatureAlgorithm::Sm2).public_key()))
        .collect();
    assert!(sdk::proof::verify_certified(&document, &strangers).is_err());

    for i in 0..BFT_NODES {
        cluster.stop(i);
    }
    // `ledger verify` checks every block's certificate on every node's copy.
    for i in 0..BFT_NODES {
        let output = cluster.ledger_verify(i);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    let stores: Vec<Arc<dyn engine::store::KvStore>> = (0..BFT_NODES)
        .map(|i| {
            Arc::new(storage_rocksdb::RocksStore::open(&cluster.node_dir(i).join("data")).unwrap())
                as Arc<dyn engine::store::KvStore>
        })
        .collect();
    let copies: Vec<_> =
        stores.iter().map(|store| Ledger::open(store.clone(), ledger_id).unwrap()).collect();
    let height = copies[0].head().height;
    for h in 1..=height {
        let hash = copies[0].block(h).unwrap().unwrap().hash;
        for copy in &copies {
            assert_eq!(copy.block(h).unwrap().unwrap().hash, hash, "height {h} differs");
            let certificate = engine::certificate::Certificate::decode(
                &copy.certificate(h).unwrap().expect("a certificate at every height"),
            )
            .unwrap();
            certificate.verify(&ledger_id, h, &hash, &participants).unwrap();
        }
    }
    for hash in &acknowledged {
        let hash: [u8; 32] = hex::decode(hash).unwrap().try_into().unwrap();
        assert!(copies[0].transaction(&hash).unwrap().is_some(), "acknowledged transaction lost");
    }
    // Node 1's certificate of height 2 cut to 2 of 4 signatures: `ledger verify` says so.
    let key = engine::layout::certificate_key(&ledger_id, 2);
    let mut certificate =
        engine::certificate::Certificate::decode(&stores[0].get(&key).unwrap().unwrap()).unwrap();
    certificate.signatures.truncate(2);
    let mut write = engine::store::WriteBatch::new();
    write.put(key, certificate.encode());
    stores[0].write(write).unwrap();
    drop(copies);
    drop(stores);
    let output = cluster.ledger_verify(0);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "a short certificate verified: {text}");
    assert!(text.contains("height 2") && text.contains("certificate"), "{text}");
    eprintln!("short certificate: {}", text.trim());
}
