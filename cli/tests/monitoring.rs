//! Monitoring assets against a live node: after a short load, the node's `/metrics`
//! passes `promtool check metrics`, every metric name used by the Grafana dashboards and
//! the alert rules exists in it (`scripts/check-dashboards.py`, which also checks the
//! dashboards' structure), and `promtool check rules` accepts the alert rules.
#![cfg(unix)]

mod support;
use support::free_port;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crypto_parallel::{PrivateKey, SignatureAlgorithm};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    Some((status, text.split_once("\r\n\r\n")?.1.to_owned()))
}

fn tool(name: &str) -> Option<PathBuf> {
    let out = Command::new("sh").args(["-c", &format!("command -v {name}")]).output().ok()?;
    out.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboards_and_alerts_use_only_metrics_a_live_node_exposes() {
    let dir = tempfile::tempdir().unwrap();
    let node_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let admin = PrivateKey::generate(SignatureAlgorithm::Sm2);
    std::fs::write(dir.path().join("node.key.pem"), node_key.to_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(dir.path().join("admin.key.pem"), admin.to_pem().unwrap().as_bytes()).unwrap();
    let port = free_port();
    let config = format!(
        "[node]\nid = 1\nkey_file = \"node.key.pem\"\ndata = \"rocksdb://data\"\n\
         p2p_listen = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{port}\"\n\n\
         [[ledgers]]\nname = \"dairy-0\"\nadmins = [\"{}\"]\ncreated_ms = 1767225600000\n\n\
         [[webhooks]]\nname = \"erp\"\nledger = \"dairy-0\"\nurl = \"http://127.0.0.1:{}/hook\"\n\
         account = \"recalls\"\n",
        free_port(),
        admin.public_key().to_base58(),
        free_port()
    );
    std::fs::write(dir.path().join("node.toml"), config).unwrap();
    let _node = Killed(
        Command::new(env!("CARGO_BIN_EXE_polyledger"))
            .args(["node", "--config"])
            .arg(dir.path().join("node.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/readyz").map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "node not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A short load: every family gets samples (including a rejection).
    let load = Command::new(env!("CARGO_BIN_EXE_polyledger"))
        .args(["loadgen", "--gateway", &format!("http://127.0.0.1:{port}"), "--key"])
        .arg(dir.path().join("admin.key.pem"))
        .args(["--rate", "300", "--duration", "1s", "--batch", "20", "--no-progress"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let (status, exposition) = get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    for needle in [
        "polyledger_transactions_committed_total{ledger=\"dairy-0\"}",
        "polyledger_finality_seconds_bucket{ledger=\"dairy-0\",le=",
        "polyledger_http_requests_total{route=\"/api/v1/ledgers/{id}/transactions\",status=\"200\"}",
        "polyledger_verify_batch_seconds_count",
        "polyledger_storage_disk_available_bytes",
        "process_resident_memory_bytes",
        "polyledger_build_info{",
    ] {
        assert!(exposition.contains(needle), "`{needle}` missing from /metrics:\n{exposition}");
    }
    let metrics_file = dir.path().join("metrics.prom");
    std::fs::write(&metrics_file, &exposition).unwrap();

    let checker = Command::new("python3")
        .arg(repo().join("scripts/check-dashboards.py"))
        .arg("--metrics")
        .arg(&metrics_file)
        .current_dir(repo())
        .output()
        .expect("python3 runs");
    assert!(
        checker.status.success(),
        "dashboards/alerts use metrics the node does not expose, or are malformed:\n{}\n{}",
        String::from_utf8_lossy(&checker.stdout),
        String::from_utf8_lossy(&checker.stderr)
    );

    match tool("promtool") {
        Some(promtool) => {
            let mut check = Command::new(&promtool)
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            check.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
            let out = check.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let rules = Command::new(&promtool)
                .args(["check", "rules"])
                .arg(repo().join("dashboards/alerts.yml"))
                .output()
                .unwrap();
            assert!(
                rules.status.success(),
                "promtool check rules:\n{}{}",
                String::from_utf8_lossy(&rules.stdout),
                String::from_utf8_lossy(&rules.stderr)
            );
        }
        None => {
            // CI installs promtool (scripts/test.sh): missing there is a failure, not a skip.
            assert!(std::env::var_os("CI").is_none(), "CI must have promtool (scripts/test.sh)");
            eprintln!(
                "SKIPPED the promtool checks: promtool not installed (scripts/test.sh installs \
                 the Debian `prometheus` package)"
            );
        }
    }
}
