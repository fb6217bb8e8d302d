//! The `polyledger` binary as a process: keygen, a node that starts on a RocksDB data
//! directory and stops cleanly on SIGTERM (exit 0) and reopens its ledgers, and clear
//! errors (exit 2) for bad configuration.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn polyledger() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polyledger"))
}

fn keygen(path: &Path) -> String {
    let output = polyledger().args(["keygen", "--out"]).arg(path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().next().unwrap().strip_prefix("public key: ").unwrap().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_config(dir: &Path, admin: &str, extra: &str) -> std::path::PathBuf {
    let config = format!(
        r#"
[node]
id = 1
key_file = "node.key.pem"
data = "rocksdb://data"
p2p_listen = "127.0.0.1:{}"

[[ledgers]]
name = "dairy-0"
admins = ["{admin}"]

[[ledgers]]
name = "liquor-0"
admins = ["{admin}"]
{extra}
"#,
        free_port()
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[cfg(unix)]
fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the node did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_until_sigterm(config: &Path) -> String {
    let mut child = polyledger()
        .args(["node", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the "node running" line, then stop it.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            all.push_str(&line.unwrap());
            all.push('\n');
        }
        all
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_millis(1500) {
            break;
        }
    }
    #[cfg(unix)]
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let log = reader.join().unwrap();
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    log
}

#[test]
fn keygen_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.pem");
    keygen(&path);
    let output = polyledger().args(["keygen", "--out"]).arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not overwriting"));
}

#[cfg(unix)]
#[test]
fn node_starts_stops_on_sigterm_and_reopens_its_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("node.key.pem"));
    let admin = keygen(&dir.path().join("admin.key.pem"));
    let config = write_config(dir.path(), &admin, "");
    let first = run_until_sigterm(&config);
    assert!(first.contains("node running"), "{first}");
    assert!(first.contains("stopped"), "{first}");
    let id_line = |log: &str| {
        log.lines()
            .filter(|line| line.contains("ledger open"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // Same ledgers (same ids) after a restart on the same data directory.
    let second = run_until_sigterm(&config);
    let strip = |lines: Vec<String>| -> Vec<String> {
        lines.iter().map(|line| line[line.find("ledger=").unwrap()..].to_string()).collect()
    };
    assert_eq!(strip(id_line(&first)), strip(id_line(&second)));
    assert_eq!(id_line(&first).len(), 2);
}

#[test]
fn invalid_config_names_the_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("node.key.pem"));
    let admin = keygen(&dir.path().join("admin.key.pem"));
    let config = write_config(dir.path(), &admin, "[block]\nmax_txs = 0\n");
    let output = polyledger().args(["node", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("block.max_txs"), "{stderr}");
    // A missing key file is named too.
    std::fs::remove_file(dir.path().join("node.key.pem")).unwrap();
    let config = write_config(dir.path(), &admin, "");
    let output = polyledger().args(["node", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("node.key_file"));
}
