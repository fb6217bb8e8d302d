//! A `polyledger node` process with one solo ledger on RocksDB, for the tests of events,
//! subscriptions, webhooks and backups: start, stop (SIGTERM), kill, restart on the same
//! data, and submit batches with `wait=commit`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crypto_parallel::{PrivateKey, SignatureAlgorithm};
use engine::model::{LedgerId, Operation, Transaction, TransactionContent};
use serde_json::Value;

pub fn polyledger() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polyledger"))
}

/// A free port on 127.0.0.1 below the kernel's ephemeral range. A port the kernel hands
/// out (bind to port 0) can, once released, become the source port of any outgoing
/// connection before the node started on it binds it, and a node restarted on its old
/// port meets the same race; ports below the ephemeral range are never used for that.
/// Each call in this process tries the next port of its own sequence (a start derived
/// from the process id), so parallel tests do not pick the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (low, high) = (10_000u32, ephemeral_low.clamp(12_000, 65_536));
    let span = high - low;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let port = (low + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// One HTTP/1.1 request with `Connection: close`; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, body)| body.to_owned());
    (status, body)
}

pub fn get_json(port: u16, path: &str) -> (u16, Value) {
    let (status, body) = http(port, "GET", path, "application/json", b"");
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

/// The user key every test ledger admits (Ed25519: fast to sign in debug builds).
pub fn admin_key() -> PrivateKey {
    fixed_key(9)
}

/// A fixed Ed25519 key from `seed`.
pub fn fixed_key(seed: u8) -> PrivateKey {
    let mut raw = [seed; 32];
    raw[0] = 1;
    PrivateKey::from_raw(SignatureAlgorithm::Ed25519, &raw).unwrap()
}

pub struct NodeProcess {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub ledger: LedgerId,
    pub id: String,
    pub node_key: PrivateKey,
    starts: u32,
}

impl NodeProcess {
    /// Writes the configuration into `dir` (data in `dir/data`), with `extra` appended,
    /// and starts the node.
    pub fn start(dir: &Path, extra: &str) -> NodeProcess {
        Self::start_with(dir, "", extra)
    }

    /// `start`, with `ledger_extra` lines in the `dairy-0` ledger's table.
    pub fn start_with(dir: &Path, ledger_extra: &str, extra: &str) -> NodeProcess {
        std::fs::create_dir_all(dir).unwrap();
        let node_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
        std::fs::write(dir.join("node.key.pem"), node_key.to_pem().unwrap().as_bytes()).unwrap();
        let port = free_port();
        let config = format!(
            "[node]\nid = 1\nkey_file = \"node.key.pem\"\ndata = \"rocksdb://data\"\n\
             p2p_listen = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{port}\"\n\n\
             [[ledgers]]\nname = \"dairy-0\"\nsignatures = [\"ed25519\"]\nadmins = [\"{}\"]\n\
             created_ms = 1767225600000\n{ledger_extra}\n\n{extra}",
            free_port(),
            admin_key().public_key().to_base58()
        );
        std::fs::write(dir.join("node.toml"), config).unwrap();
        let mut node = NodeProcess {
            dir: dir.to_path_buf(),
            port,
            child: None,
            ledger: LedgerId([0; 32]),
            id: String::new(),
            node_key,
            starts: 0,
        };
        node.restart();
        let (_, ledgers) = get_json(port, "/api/v1/ledgers");
        node.id = ledgers[0]["id"].as_str().unwrap().to_owned();
        node.ledger = LedgerId(hex::decode(&node.id).unwrap().try_into().unwrap());
        node
    }

    /// Starts the node process on its configuration and data; waits until ready.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        self.starts += 1;
        let log =
            std::fs::File::create(self.dir.join(format!("node-{}.log", self.starts))).unwrap();
        let child = polyledger()
            .args(["node", "--config"])
            .arg(self.dir.join("node.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && get_json(self.port, "/readyz").0 == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node not ready in 30 s; see {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "node exited with {status:?}");
                    return;
                }
                assert!(Instant::now() < deadline, "node did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn height(&self) -> u64 {
        let (_, view) = get_json(self.port, &format!("/api/v1/ledgers/{}", self.id));
        view["height"].as_u64().unwrap()
    }

    /// Signs `operations` (one transaction each) with the admin key, nonces from `nonce`.
    pub fn transactions(&self, nonce: u64, operations: Vec<Operation>) -> Vec<Transaction> {
        let admin = admin_key();
        operations
            .into_iter()
            .enumerate()
            .map(|(i, operation)| {
                let content = TransactionContent {
                    ledger_id: self.ledger,
                    nonce: nonce + i as u64,
                    timestamp_ms: 1_767_225_600_000,
                    operations: vec![operation],
                };
                Transaction::sign(content, &[&admin]).unwrap()
            })
            .collect()
    }

    /// Submits a binary batch with `wait=commit`; asserts every transaction committed.
    pub fn commit(&self, transactions: &[Transaction]) {
        let body = engine::model::encode_transactions(transactions.iter());
        let (status, answer) = http(
            self.port,
            "POST",
            &format!("/api/v1/ledgers/{}/transactions?wait=commit&timeout_ms=30000", self.id),
            "application/vnd.polyledger.batch",
            &body,
        );
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        for outcome in answer["outcomes"].as_array().unwrap() {
            assert_eq!(outcome["status"], "committed", "{outcome}");
            assert_eq!(outcome["result"], "committed", "{outcome}");
        }
    }

    /// Resident memory of the node process, bytes (Linux).
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn register_events(account: &str) -> Operation {
    Operation::RegisterEventAccount { name: account.into() }
}

pub fn publish(account: &str, topic: &str, payload: &str) -> Operation {
    Operation::PublishEvent {
        account: account.into(),
        topic: topic.into(),
        payload: payload.as_bytes().to_vec(),
    }
}

/// Headless Chromium, if this machine has it (`scripts/system-deps.sh --for-tests`
/// installs it; CI must have it).
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
        out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
}

/// Where tests keep what a person may want to look at (screenshots).
pub fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Percent-encodes one URL path segment or query value (a trace code, a topic).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(
            |b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            },
        )
        .collect()
}
