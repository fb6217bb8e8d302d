//! The `polyledger` binary as a process: keygen, a node that starts on a RocksDB data
//! directory and stops cleanly on SIGTERM (exit 0) and reopens its ledgers, and clear
//! errors (exit 2) for bad configuration.

mod support;
use support::free_port;

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

fn write_config(dir: &Path, admin: &str, extra: &str) -> std::path::PathBuf {
    let config = format!(
        r#"
[node]
id = 1
key_file = "node.key.pem"
data = "rocksdb://data"
p2p_listen = "127.0.0.1:{}"
http_listen = "127.0.0.1:{}"

[[ledgers]]
name = "dairy-0"
admins = ["{admin}"]

[[ledgers]]
name = "liquor-0"
admins = ["{admin}"]
{extra}
"#,
        free_port(),
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

/// A node configured for a TiKV cluster that does not answer fails at start within a
/// few seconds, naming the PD endpoints; nothing is served. (No TiKV here: the refused
/// port and the silent listener are what an unreachable cluster looks like.)
#[test]
fn a_node_on_an_unreachable_tikv_fails_at_start_naming_the_pd() {
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("node.key.pem"));
    let admin = keygen(&dir.path().join("admin.key.pem"));
    let port = free_port();
    let config = write_config(dir.path(), &admin, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("data = \"rocksdb://data\"", &format!("data = \"tikv://127.0.0.1:{port}\""));
    std::fs::write(&config, text).unwrap();
    let started = std::time::Instant::now();
    let output = polyledger().args(["node", "--config"]).arg(&config).output().unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started without TiKV: {stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert!(!dir.path().join("data").exists(), "a local directory was created");
}

/// Keys at rest: a node whose key file is encrypted starts with the right password
/// (password file), refuses a wrong one with a clear error before opening anything, and
/// no password or key material appears in its output.
#[cfg(unix)]
#[test]
fn an_encrypted_node_key_needs_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let password = "tr0ub4dor&3-not-in-logs";
    std::fs::write(dir.path().join("node.pw"), format!("{password}\n")).unwrap();
    std::fs::write(dir.path().join("wrong.pw"), "wrong\n").unwrap();
    let output = polyledger()
        .args(["keygen", "--encrypt", "--password-file"])
        .arg(dir.path().join("node.pw"))
        .arg("--out")
        .arg(dir.path().join("node.key.pem"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let sealed = std::fs::read_to_string(dir.path().join("node.key.pem")).unwrap();
    assert!(sealed.starts_with("-----BEGIN POLYLEDGER ENCRYPTED PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("node.key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key files are private");
    }
    let admin = keygen(&dir.path().join("admin.key.pem"));

    // Wrong password: exit 2 naming the key file, and nothing started (no data dir).
    let config = write_config(dir.path(), &admin, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "key_file = \"node.key.pem\"",
            "key_file = \"node.key.pem\"\nkey_password_file = \"wrong.pw\"",
        ),
    )
    .unwrap();
    let output = polyledger().args(["node", "--config"]).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.key_file") && stderr.contains("wrong password"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "no partial start");
    // No password at all: says how to give one.
    std::fs::write(&config, &text).unwrap();
    let output = polyledger()
        .args(["node", "--config"])
        .arg(&config)
        .env_remove("POLYLEDGER_KEY_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("POLYLEDGER_KEY_PASSWORD"));

    // The right password (password file): the node runs; nothing secret in its log.
    std::fs::write(
        &config,
        text.replace(
            "key_file = \"node.key.pem\"",
            "key_file = \"node.key.pem\"\nkey_password_file = \"node.pw\"",
        ),
    )
    .unwrap();
    let log = run_until_sigterm(&config);
    assert!(log.contains("node running"), "{log}");
    assert!(!log.contains(password), "the password is not logged");
    let body: String = sealed.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!log.contains(&body[..40]), "no key material in the log");
}

/// A key split 3-of-5 is recovered from any 3 share files, and not from 2.
#[test]
fn key_split_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let public = keygen(&dir.path().join("k.pem"));
    let shares = dir.path().join("shares");
    let output = polyledger()
        .args(["key", "split", "--threshold", "3", "--shares", "5", "--key"])
        .arg(dir.path().join("k.pem"))
        .arg("--out-dir")
        .arg(&shares)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let recover = |picked: &[usize], out: &str| {
        let mut command = polyledger();
        command.args(["key", "recover", "--out"]).arg(dir.path().join(out));
        for i in picked {
            command.arg("--share").arg(shares.join(format!("share-{i}.pem")));
        }
        command.output().unwrap()
    };
    let output = recover(&[5, 2, 4], "r1.pem");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains(&public), "the same key");
    let output = recover(&[1, 3], "r2.pem");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs 3"));
    assert!(!dir.path().join("r2.pem").exists());
}
