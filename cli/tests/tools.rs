//! The everyday tools of the `polyledger` binary, run as processes: `crypto` against the
//! `openssl` command (both directions), then one node process (solo, one ledger, RocksDB
//! in a temporary directory) driven with `tx`, `query` and `proof`, stopped, and its data
//! checked with `ledger verify`, exported, imported and verified again — and tampered
//! files refused with exit 4.

mod support;
use support::free_port;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crypto_parallel::{PrivateKey, SignatureAlgorithm};

fn polyledger() -> Command {
    Command::new(env!("CARGO_BIN_EXE_polyledger"))
}

/// Runs the binary with `args`; returns its output (stdout, stderr, status).
fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    polyledger().args(args).stdin(Stdio::null()).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn ok(output: Output) -> Output {
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    output
}

#[track_caller]
fn exits(code: i32, output: Output) -> Output {
    assert_eq!(output.status.code(), Some(code), "{}", text(&output));
    output
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(output)))
}

fn openssl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new("openssl")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .expect("the `openssl` command is needed; run scripts/system-deps.sh")
}

/// OpenSSL 3.0 needs the GB/T 32918 default user id spelled out (see
/// crypto-parallel/tests/openssl_interop.rs).
const DISTID_OPTION: &str = "distid:1234567812345678";

#[test]
fn crypto_hash_sign_verify_interoperate_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let message = path("message.txt");
    std::fs::write(&message, b"batch 2026-11-24: 1200 cartons, cold chain intact\n").unwrap();

    // Hash: equal to `openssl dgst -sm3` (and -sha256).
    for (algorithm, flag) in [("sm3", "-sm3"), ("sha256", "-sha256")] {
        let theirs = openssl(&[&"dgst", &flag, &message]);
        if !theirs.status.success() {
            println!(
                "skipped the {algorithm} comparison: openssl has no {flag}: {}",
                stderr(&theirs)
            );
            continue;
        }
        let theirs = stdout(&theirs);
        let theirs = theirs.trim().rsplit("= ").next().unwrap().to_owned();
        let ours = ok(run(["crypto", "hash", "--algorithm", algorithm]
            .into_iter()
            .map(String::from)
            .chain([message.display().to_string()])));
        let ours = stdout(&ours);
        assert_eq!(ours.split_whitespace().next().unwrap(), theirs, "{algorithm}");
        println!("{algorithm}: {theirs} (ours and openssl's)");
    }
    let hashed = json(&ok(run([
        "crypto".as_ref(),
        "hash".as_ref(),
        "--json".as_ref(),
        message.as_os_str(),
    ])));
    assert_eq!(hashed["algorithm"], "sm3");

    // SM2: we sign, openssl verifies.
    ok(run([
        "keygen".as_ref(),
        "--out".as_ref(),
        path("sm2.pem").as_os_str(),
        "--pub-out".as_ref(),
        path("sm2.pub.pem").as_os_str(),
    ]));
    ok(run([
        "crypto".as_ref(),
        "sign".as_ref(),
        "--key".as_ref(),
        path("sm2.pem").as_os_str(),
        message.as_os_str(),
        "--out".as_ref(),
        path("ours.der").as_os_str(),
    ]));
    let verified = openssl(&[
        &"pkeyutl",
        &"-verify",
        &"-rawin",
        &"-digest",
        &"sm3",
        &"-pubin",
        &"-inkey",
        &path("sm2.pub.pem"),
        &"-in",
        &message,
        &"-sigfile",
        &path("ours.der"),
        &"-pkeyopt",
        &DISTID_OPTION,
    ]);
    assert!(
        verified.status.success() && stdout(&verified).contains("Signature Verified Successfully"),
        "openssl rejected our SM2 signature: {}{}",
        stdout(&verified),
        stderr(&verified)
    );
    let verify = |pubkey: &Path, sig: &Path, file: &Path| {
        run([
            "crypto".as_ref(),
            "verify".as_ref(),
            "--pubkey".as_ref(),
            pubkey.as_os_str(),
            "--sig".as_ref(),
            sig.as_os_str(),
            file.as_os_str(),
        ])
    };
    let valid = ok(verify(&path("sm2.pub.pem"), &path("ours.der"), &message));
    assert_eq!(stdout(&valid).trim(), "valid");

    // SM2: openssl signs, we verify.
    assert!(
        openssl(&[&"genpkey", &"-algorithm", &"SM2", &"-out", &path("theirs.pem")])
            .status
            .success()
    );
    assert!(
        openssl(&[
            &"pkey",
            &"-in",
            &path("theirs.pem"),
            &"-pubout",
            &"-out",
            &path("theirs.pub.pem")
        ])
        .status
        .success()
    );
    let signed = openssl(&[
        &"pkeyutl",
        &"-sign",
        &"-rawin",
        &"-digest",
        &"sm3",
        &"-inkey",
        &path("theirs.pem"),
        &"-in",
        &message,
        &"-out",
        &path("theirs.der"),
        &"-pkeyopt",
        &DISTID_OPTION,
    ]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    ok(verify(&path("theirs.pub.pem"), &path("theirs.der"), &message));

    // A flipped byte in the file: invalid, exit 4.
    let mut tampered = std::fs::read(&message).unwrap();
    tampered[3] ^= 0x01;
    std::fs::write(path("tampered.txt"), &tampered).unwrap();
    let invalid = exits(4, verify(&path("sm2.pub.pem"), &path("ours.der"), &path("tampered.txt")));
    assert_eq!(stdout(&invalid).trim(), "invalid");
    exits(4, verify(&path("theirs.pub.pem"), &path("theirs.der"), &path("tampered.txt")));
    // Another key's signature: invalid.
    exits(4, verify(&path("theirs.pub.pem"), &path("ours.der"), &message));

    // Ed25519 (raw 64-byte signatures) and ECDSA P-256 (DER): we sign, openssl verifies.
    for (algorithm, check) in [("ed25519", "pkeyutl"), ("ecdsa-p256", "dgst")] {
        let key = path(&format!("{algorithm}.pem"));
        let public = path(&format!("{algorithm}.pub.pem"));
        let signature = path(&format!("{algorithm}.sig"));
        ok(run([
            "keygen".as_ref(),
            "--algorithm".as_ref(),
            algorithm.as_ref(),
            "--out".as_ref(),
            key.as_os_str(),
            "--pub-out".as_ref(),
            public.as_os_str(),
        ]));
        ok(run([
            "crypto".as_ref(),
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            message.as_os_str(),
            "--out".as_ref(),
            signature.as_os_str(),
        ]));
        let verified = if check == "pkeyutl" {
            openssl(&[
                &"pkeyutl",
                &"-verify",
                &"-rawin",
                &"-pubin",
                &"-inkey",
                &public,
                &"-in",
                &message,
                &"-sigfile",
                &signature,
            ])
        } else {
            openssl(&[
                &"dgst",
                &"-sha256",
                &"-verify",
                &public,
                &"-signature",
                &signature,
                &message,
            ])
        };
        assert!(
            verified.status.success(),
            "{algorithm}: {}{}",
            stdout(&verified),
            stderr(&verified)
        );
        ok(verify(&public, &signature, &message));
        exits(4, verify(&public, &signature, &path("tampered.txt")));
    }

    // Bad input: a missing key file, exit 2.
    let missing = exits(
        2,
        run([
            "crypto".as_ref(),
            "sign".as_ref(),
            "--key".as_ref(),
            path("absent.pem").as_os_str(),
            message.as_os_str(),
        ]),
    );
    assert!(stderr(&missing).contains("absent.pem"), "{}", text(&missing));
}

// ---------------------------------------------------------------------------------------

/// `GET path` with `Connection: close`; the status code.
fn http_status(port: u16, path: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    Ok(text.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0))
}

/// A `polyledger node` process; SIGKILLed if the test ends without stopping it.
struct NodeProcess {
    child: Option<Child>,
}

impl NodeProcess {
    fn start(config: &Path, log: &Path, port: u16) -> NodeProcess {
        let child = polyledger()
            .args(["node", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut node = NodeProcess { child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_status(port, "/healthz").map_or(true, |status| status != 200) {
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the node exited with {status:?}: {}",
                    std::fs::read_to_string(log).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "the node did not start within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        node
    }

    /// SIGTERM, then wait (bounded) for exit 0.
    #[cfg(unix)]
    fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let status =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "the node exited with {status:?}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the node did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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

const HEADER_LEN: usize = engine::model::BlockHeader::ENCODED_LEN;

/// Byte offset, in an export file, of the first transaction's bytes of block `height`.
fn transaction_offset(export: &[u8], height: u64) -> (usize, usize) {
    let u32_at = |at: usize| u32::from_be_bytes(export[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 15 + 1; // magic, version
    at += 4 + u32_at(at); // settings
    at += 32 + 8; // ledger id, head height
    for _ in 1..height {
        at += HEADER_LEN;
        let count = u32_at(at);
        at += 4;
        for _ in 0..count {
            at += 4 + u32_at(at) + 1;
        }
    }
    at += HEADER_LEN + 4; // header, count
    (at + 4, u32_at(at))
}

#[cfg(unix)]
#[test]
fn node_tx_query_proof_then_ledger_verify_export_import() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let node_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let admin = PrivateKey::generate(SignatureAlgorithm::Sm2);
    std::fs::write(path("node.key.pem"), node_key.to_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(path("admin.key.pem"), admin.to_pem().unwrap().as_bytes()).unwrap();
    let port = free_port();
    let config = path("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = 1\nkey_file = \"node.key.pem\"\ndata = \"rocksdb://data\"\n\
             p2p_listen = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{port}\"\n\n\
             [block]\nmax_delay_ms = 5\n\n\
             [[ledgers]]\nname = \"dairy-0\"\nadmins = [\"{}\"]\ncreated_ms = 1767225600000\n",
            free_port(),
            admin.public_key().to_base58()
        ),
    )
    .unwrap();
    let mut node = NodeProcess::start(&config, &path("node.log"), port);
    let gateway = format!("http://127.0.0.1:{port}");
    let key = path("admin.key.pem").display().to_string();
    let on_ledger = |args: &[&str]| -> Output {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--gateway".into(), gateway.clone(), "--ledger".into(), "dairy-0".into()]);
        run(all)
    };

    // Transactions: a data account, then two writes to one key.
    let registered = ok(on_ledger(&["tx", "register-account", "--key", &key, "--name", "trace"]));
    assert!(stdout(&registered).contains("result  committed"), "{}", text(&registered));
    let first = json(&ok(on_ledger(&[
        "tx",
        "put",
        "--key",
        &key,
        "--account",
        "trace",
        "--key-name",
        "sku-1",
        "--value",
        "packed",
        "--expected-version",
        "-1",
        "--json",
    ])));
    assert_eq!(first["result"], "committed", "{first}");
    let first_hash = first["hash"].as_str().unwrap().to_owned();
    let second = ok(on_ledger(&[
        "tx",
        "put",
        "--key",
        &key,
        "--account",
        "trace",
        "--key-name",
        "sku-1",
        "--value",
        "shipped",
        "--wait",
        "10s",
    ]));
    assert!(stdout(&second).contains("result  committed"), "{}", text(&second));
    // A stale expected version: not applied, exit 1 with the result code.
    let conflict = exits(
        1,
        on_ledger(&[
            "tx",
            "put",
            "--key",
            &key,
            "--account",
            "trace",
            "--key-name",
            "sku-1",
            "--value",
            "late",
            "--expected-version",
            "0",
        ]),
    );
    assert!(stderr(&conflict).contains("version_conflict"), "{}", text(&conflict));

    // Queries.
    let history = json(&ok(on_ledger(&[
        "query",
        "history",
        "--account",
        "trace",
        "--key",
        "sku-1",
        "--json",
    ])));
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[0]["value"], "packed");
    assert_eq!(versions[1]["value"], "shipped");
    let listed = ok(on_ledger(&[
        "query",
        "history",
        "--account",
        "trace",
        "--key",
        "sku-1",
        "--limit",
        "1",
        "--all",
    ]));
    assert_eq!(
        stdout(&listed).lines().filter(|l| l.starts_with("version")).count(),
        2,
        "{}",
        text(&listed)
    );
    let latest =
        json(&ok(on_ledger(&["query", "key", "--account", "trace", "--key", "sku-1", "--json"])));
    assert_eq!(latest["version"], 1);
    let tx = json(&ok(on_ledger(&["query", "tx", "--hash", &first_hash, "--json"])));
    assert_eq!(tx["result"], "committed");
    ok(on_ledger(&["query", "tx", "--hash", &first_hash]));
    let head = json(&ok(on_ledger(&["query", "block", "--json"])));
    let head_height = head["height"].as_u64().unwrap();
    assert!(head_height >= 3, "{head}");
    let one = json(&ok(on_ledger(&["query", "block", "--height", "1", "--json"])));
    let by_hash = json(&ok(on_ledger(&[
        "query",
        "block",
        "--hash",
        one["hash"].as_str().unwrap(),
        "--transactions",
        "--json",
    ])));
    assert_eq!(by_hash["height"], 1);
    assert_eq!(by_hash["transactions"].as_array().unwrap().len(), 1);
    exits(1, on_ledger(&["query", "block", "--height", "999999"]));

    // Proofs: fetch, verify offline, tamper.
    let proof_path = path("proof.json");
    ok(on_ledger(&[
        "proof",
        "get",
        "--account",
        "trace",
        "--key",
        "sku-1",
        "--out",
        &proof_path.display().to_string(),
    ]));
    let verified = ok(run(["proof".as_ref(), "verify".as_ref(), proof_path.as_os_str()]));
    assert!(stdout(&verified).lines().any(|l| l == "VALID"), "{}", text(&verified));
    assert!(stdout(&verified).contains("\"shipped\""), "{}", text(&verified));
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&proof_path).unwrap()).unwrap();
    let block_hash = document["block_hash"].as_str().unwrap().to_owned();
    ok(run(["proof", "verify", &proof_path.display().to_string(), "--block-hash", &block_hash]));
    let wrong_hash =
        format!("{}{}", if block_hash.starts_with('0') { "1" } else { "0" }, &block_hash[1..]);
    let wrong = exits(
        4,
        run(["proof", "verify", &proof_path.display().to_string(), "--block-hash", &wrong_hash]),
    );
    assert!(stdout(&wrong).contains("INVALID"), "{}", text(&wrong));
    let tamper = |name: &str, change: &dyn Fn(&mut serde_json::Value)| -> Output {
        let mut changed = document.clone();
        change(&mut changed);
        let changed_path = path(name);
        std::fs::write(&changed_path, serde_json::to_string_pretty(&changed).unwrap()).unwrap();
        run(["proof".as_ref(), "verify".as_ref(), changed_path.as_os_str()])
    };
    exits(
        4,
        tamper("encoded.json", &|doc| {
            let encoded = doc["encoded"].as_str().unwrap();
            let middle = encoded.len() / 2;
            let digit = encoded.as_bytes()[middle];
            let flipped = if digit == b'0' { '1' } else { '0' };
            doc["encoded"] =
                format!("{}{flipped}{}", &encoded[..middle], &encoded[middle + 1..]).into();
        }),
    );
    exits(4, tamper("value.json", &|doc| doc["value_hex"] = hex::encode("forged").into()));
    exits(4, tamper("version.json", &|doc| doc["version"] = 0.into()));
    let tx_proof = path("tx-proof.json");
    ok(on_ledger(&["proof", "get", "--tx", &first_hash, "--out", &tx_proof.display().to_string()]));
    let verified =
        ok(run(["proof".as_ref(), "verify".as_ref(), tx_proof.as_os_str(), "--json".as_ref()]));
    assert_eq!(json(&verified)["valid"], true);

    // Bad input.
    let unknown =
        exits(2, run(["query", "block", "--gateway", &gateway, "--ledger", "no-such-ledger"]));
    assert!(stderr(&unknown).contains("no such ledger"), "{}", text(&unknown));
    let absent_key = path("absent.pem").display().to_string();
    exits(2, on_ledger(&["tx", "register-account", "--key", &absent_key, "--name", "other"]));
    exits(2, run(["proof".as_ref(), "verify".as_ref(), path("absent.json").as_os_str()]));

    // While the node runs, its data directory is locked: a clear error.
    let busy = exits(
        1,
        run(["ledger".as_ref(), "verify".as_ref(), "--config".as_ref(), config.as_os_str()]),
    );
    assert!(stderr(&busy).contains("still running"), "{}", text(&busy));

    node.stop();

    // The stopped node's data verifies.
    let verified = json(&ok(run([
        "ledger".as_ref(),
        "verify".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--json".as_ref(),
    ])));
    assert_eq!(verified[0]["valid"], true, "{verified}");
    assert_eq!(verified[0]["height"], head_height);
    let original_root = verified[0]["state_root"].as_str().unwrap().to_owned();
    ok(run(["ledger".as_ref(), "verify".as_ref(), "--config".as_ref(), config.as_os_str()]));

    // Export, import into a fresh directory, verify the import.
    let export = path("dairy-0.pledger");
    ok(run([
        "ledger".as_ref(),
        "export".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
        "--ledger".as_ref(),
        "dairy-0".as_ref(),
        "--out".as_ref(),
        export.as_os_str(),
    ]));
    let import = |file: &Path, data: &Path| {
        run([
            "ledger".as_ref(),
            "import".as_ref(),
            "--file".as_ref(),
            file.as_os_str(),
            "--data".as_ref(),
            data.as_os_str(),
        ])
    };
    let imported_dir = path("imported");
    ok(import(&export, &imported_dir));
    let reverified = json(&ok(run([
        "ledger".as_ref(),
        "verify".as_ref(),
        "--data".as_ref(),
        imported_dir.as_os_str(),
        "--json".as_ref(),
    ])));
    let imported_root = reverified[0]["state_root"].as_str().unwrap().to_owned();
    println!("state root: original {original_root}, imported {imported_root}");
    assert_eq!(reverified[0]["valid"], true, "{reverified}");
    assert_eq!(reverified[0]["name"], "dairy-0");
    assert_eq!(reverified[0]["height"], head_height);
    assert_eq!(imported_root, original_root);
    assert_eq!(reverified[0]["id"], verified[0]["id"]);
    // The import refuses a directory that is not empty.
    exits(2, import(&export, &imported_dir));

    // One byte flipped inside block 2's transaction: refused at height 2, with block 1
    // (and nothing after it) in the new directory.
    let mut bytes = std::fs::read(&export).unwrap();
    let (start, len) = transaction_offset(&bytes, 2);
    bytes[start + len / 2] ^= 0x01;
    let tampered = path("tampered.pledger");
    std::fs::write(&tampered, &bytes).unwrap();
    let refused = exits(4, import(&tampered, &path("tampered-data")));
    assert!(stderr(&refused).contains("height 2"), "{}", text(&refused));
    println!("tampered import: {}", stderr(&refused).trim());
    let partial = json(&ok(run([
        "ledger".as_ref(),
        "verify".as_ref(),
        "--data".as_ref(),
        path("tampered-data").as_os_str(),
        "--json".as_ref(),
    ])));
    assert_eq!(partial[0]["height"], 1, "{partial}");
    // The last byte of block 3's transaction (its signature) flipped: the bytes decode,
    // the signature no longer verifies, so the recomputed result differs.
    let mut bytes = std::fs::read(&export).unwrap();
    let (start, len) = transaction_offset(&bytes, 3);
    bytes[start + len - 1] ^= 0x01;
    std::fs::write(&tampered, &bytes).unwrap();
    let refused = exits(4, import(&tampered, &path("tampered-data-3")));
    assert!(stderr(&refused).contains("height 3"), "{}", text(&refused));
    println!("tampered import: {}", stderr(&refused).trim());
    // Not an export file at all: invalid input.
    exits(2, import(&config, &path("other-data")));
    // An unknown ledger name in the config: invalid input.
    exits(
        2,
        run([
            "ledger".as_ref(),
            "export".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--ledger".as_ref(),
            "no-such-ledger".as_ref(),
            "--out".as_ref(),
            path("x.pledger").as_os_str(),
        ]),
    );
}
