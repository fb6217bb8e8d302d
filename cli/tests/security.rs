//! The gateway's protection, end to end on a `polyledger node` process: HTTPS with a
//! certificate from the config, bearer tokens made by `polyledger token`, a token bound
//! to a user, and no token in logs or metrics.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crypto_parallel::PublicKey;
use engine::model::{LedgerId, Operation, Transaction, TransactionContent};
use sdk::{Client, ClientError, ClientOptions};
use support::{admin_key, fixed_key, free_port, polyledger};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `polyledger token` and returns (token, the printed config entry).
fn make_token(dir: &Path, name: &str, user: Option<&PublicKey>) -> (String, String) {
    let out = dir.join(format!("{name}.token"));
    let mut command = polyledger();
    command.args(["token", "--name", name, "--out"]).arg(&out);
    if let Some(user) = user {
        command.args(["--user", &user.to_base58()]);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let entry = String::from_utf8(output.stdout).unwrap();
    let token = std::fs::read_to_string(&out).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    assert!(!entry.contains(&token), "the printed entry holds the hash, not the token");
    (token, entry)
}

fn transaction(ledger: LedgerId, signer: &crypto_parallel::PrivateKey, nonce: u64) -> Transaction {
    let content = TransactionContent {
        ledger_id: ledger,
        nonce,
        timestamp_ms: 1_767_225_600_000,
        operations: vec![Operation::RegisterDataAccount { name: format!("lot-{nonce}") }],
    };
    Transaction::sign(content, &[signer]).unwrap()
}

fn client(url: &str, token: Option<&str>, ca: &[u8]) -> Client {
    let options = ClientOptions { token: token.map(str::to_owned), ca_pem: Some(ca.to_vec()) };
    Client::with_options(url, &options).unwrap()
}

fn problem_code(error: ClientError) -> (u16, String) {
    match error {
        ClientError::Problem(problem) => (problem.status, problem.code),
        other => panic!("expected a problem, got {other}"),
    }
}

#[test]
fn https_and_bearer_tokens_protect_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let ca = certified.cert.pem();
    std::fs::write(dir.join("gateway.crt.pem"), &ca).unwrap();
    std::fs::write(dir.join("gateway.key.pem"), certified.key_pair.serialize_pem()).unwrap();
    let node_key = crypto_parallel::PrivateKey::generate(crypto_parallel::SignatureAlgorithm::Sm2);
    std::fs::write(dir.join("node.key.pem"), node_key.to_pem().unwrap().as_bytes()).unwrap();

    let admin = admin_key();
    let (erp_token, erp_entry) = make_token(dir, "erp", Some(&admin.public_key()));
    let (reader_token, reader_entry) = make_token(dir, "reader", None);
    let port = free_port();
    let config = format!(
        "[node]\nid = 1\nkey_file = \"node.key.pem\"\ndata = \"rocksdb://data\"\n\
         p2p_listen = \"127.0.0.1:{}\"\nhttp_listen = \"127.0.0.1:{port}\"\n\n\
         [[ledgers]]\nname = \"dairy-0\"\nsignatures = [\"ed25519\"]\nadmins = [\"{}\"]\n\
         created_ms = 1767225600000\n\n\
         [gateway]\ntls_cert_file = \"gateway.crt.pem\"\ntls_key_file = \"gateway.key.pem\"\n\n\
         {erp_entry}\n{reader_entry}",
        free_port(),
        admin.public_key().to_base58(),
    );
    // The entries print as [[gateway.tokens]] tables, valid after [gateway].
    std::fs::write(dir.join("node.toml"), config).unwrap();
    let log_path = dir.join("node.log");
    let _node = Killed(
        polyledger()
            .args(["node", "--config"])
            .arg(dir.join("node.toml"))
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let url = format!("https://localhost:{port}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let reader = client(&url, Some(&reader_token), ca.as_bytes());
        let deadline = Instant::now() + Duration::from_secs(30);
        let ledgers = loop {
            match reader.ledgers().await {
                Ok(ledgers) => break ledgers,
                Err(error) => {
                    assert!(Instant::now() < deadline, "node not ready: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let ledger = LedgerId(hex::decode(&ledgers[0].id).unwrap().try_into().unwrap());

        // Plain HTTP to the HTTPS port gets no answer.
        let (status, _) = support::http(port, "GET", "/healthz", "text/plain", b"");
        assert_eq!(status, 0, "plaintext HTTP is not served on the TLS port");
        // A client that does not trust the certificate cannot connect.
        let untrusting = Client::new(&url).unwrap();
        assert!(matches!(untrusting.ledgers().await, Err(ClientError::Transport(_))));

        // No token, a wrong token: 401 UNAUTHENTICATED; health stays open.
        let anonymous = client(&url, None, ca.as_bytes());
        assert_eq!(
            problem_code(anonymous.ledgers().await.unwrap_err()),
            (401, "UNAUTHENTICATED".into())
        );
        let wrong = client(&url, Some(&"0".repeat(64)), ca.as_bytes());
        assert_eq!(
            problem_code(wrong.ledgers().await.unwrap_err()),
            (401, "UNAUTHENTICATED".into())
        );
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .build()
            .unwrap();
        let health = http.get(format!("{url}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let denied = http.get(format!("{url}/api/v1/ledgers")).send().await.unwrap();
        assert_eq!(denied.status(), 401);
        assert_eq!(denied.headers()["www-authenticate"], "Bearer");
        // The scheme is case-insensitive; an empty token is no token.
        let lower = http
            .get(format!("{url}/api/v1/ledgers"))
            .header("authorization", format!("bearer {reader_token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(lower.status(), 200);
        let blank = http
            .get(format!("{url}/api/v1/ledgers"))
            .header("authorization", "Bearer  ")
            .send()
            .await
            .unwrap();
        assert_eq!(blank.status(), 401);

        // The user's token submits the user's transactions, and nobody else's.
        let erp = client(&url, Some(&erp_token), ca.as_bytes());
        let outcomes = erp
            .submit_and_wait(&ledger, &[transaction(ledger, &admin, 1)], Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(outcomes[0].result.as_deref(), Some("committed"), "{outcomes:?}");
        let stranger = fixed_key(3);
        let refused = erp
            .submit_and_wait(&ledger, &[transaction(ledger, &stranger, 2)], Duration::from_secs(30))
            .await
            .unwrap_err();
        assert_eq!(problem_code(refused), (403, "TOKEN_USER_MISMATCH".into()));
        // A token bound to no user submits any signed transaction (the ledger still
        // checks signatures and permissions).
        let outcomes = reader
            .submit_and_wait(&ledger, &[transaction(ledger, &admin, 3)], Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(outcomes[0].result.as_deref(), Some("committed"), "{outcomes:?}");

        // Tokens appear nowhere: not in metrics, not in the node's debug log.
        let metrics =
            http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("status=\"401\""), "401s are counted");
        let log = std::fs::read_to_string(&log_path).unwrap();
        for secret in [&erp_token, &reader_token] {
            assert!(!metrics.contains(secret.as_str()));
            assert!(!log.contains(secret.as_str()), "a token leaked into the log");
        }
        assert!(log.contains("unknown bearer token"), "rejections are logged (without the token)");
        assert!(!format!("{erp:?}").contains(&erp_token), "Debug of a client hides its token");
    });

    // The CLI reads the token and the CA from the environment.
    let output = polyledger()
        .args(["query", "block", "--gateway", &url, "--ledger", "dairy-0"])
        .env("POLYLEDGER_TOKEN_FILE", dir.join("reader.token"))
        .env("POLYLEDGER_CA_FILE", dir.join("gateway.crt.pem"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = polyledger()
        .args(["query", "block", "--gateway", &url, "--ledger", "dairy-0"])
        .env("POLYLEDGER_CA_FILE", dir.join("gateway.crt.pem"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("UNAUTHENTICATED"));
}
