//! The everyday tools: `crypto` (hash, sign, verify files; OpenSSL-compatible), `tx`
//! (build, sign offline, submit and wait), `query` (blocks, transactions, values,
//! histories) and `proof` (fetch from a gateway; verify a proof file offline).
//!
//! Every command that prints data prints it for people by default and as JSON with
//! `--json`. Exit codes are the binary's (`main.rs`): 1 a runtime failure (a gateway that
//! cannot be reached, an error answer, a transaction that did not commit), 2 invalid
//! input, 4 a signature or proof that does not verify.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};
use crypto_parallel::{
    HashAlgorithm, Hasher, PrivateKey, PublicKey, Signature, SignatureAlgorithm,
};
use engine::model::{Hash32, LedgerId};
use sdk::wire::{BlockView, Outcome, ProofDocument, ValueView};
use sdk::{Client, ClientError, TxBuilder};
use serde_json::json;

use crate::{Failure, invalid, parse_duration, runtime, unverified};

// ---------------------------------------------------------------------------------------
// crypto

/// `polyledger crypto …`.
#[derive(Subcommand, Debug)]
pub enum CryptoCommand {
    /// Print a file's digest (like `openssl dgst -sm3 FILE`); `-` reads standard input.
    Hash {
        /// sm3 (default) or sha256.
        #[arg(long, default_value = "sm3")]
        algorithm: String,
        /// The file to hash (`-`: standard input).
        file: PathBuf,
        /// Print `{"algorithm", "digest", "file"}`.
        #[arg(long)]
        json: bool,
    },
    /// Sign a file with a PKCS#8 PEM private key. SM2 (with SM3 and the standard user id)
    /// and ECDSA P-256 (with SHA-256) signatures are DER `SEQUENCE { r, s }`, as
    /// `openssl pkeyutl` writes them; Ed25519 signatures are the raw 64 bytes.
    Sign {
        /// The private key (PKCS#8 PEM; `polyledger keygen` or `openssl genpkey`).
        #[arg(long)]
        key: PathBuf,
        /// The file to sign.
        file: PathBuf,
        /// Write the signature here (binary). Without it, print it in hex.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print `{"algorithm", "signature_hex", "out"}`.
        #[arg(long)]
        json: bool,
    },
    /// Verify a file's signature: prints `valid` (exit 0) or `invalid` (exit 4).
    Verify {
        /// The signer's public key (SPKI PEM, `openssl pkey -pubout`).
        #[arg(long)]
        pubkey: PathBuf,
        /// The signature file: DER (SM2, ECDSA P-256) or raw 64 bytes (Ed25519), binary
        /// or in hex.
        #[arg(long)]
        sig: PathBuf,
        /// The signed file.
        file: PathBuf,
        /// Print `{"valid", "algorithm", "error"}`.
        #[arg(long)]
        json: bool,
    },
}

fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| runtime(format!("reading standard input: {e}")))?;
        return Ok(bytes);
    }
    std::fs::read(path).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// A signing key: plain PEM, or encrypted (password from `POLYLEDGER_KEY_PASSWORD`).
fn read_private(path: &Path) -> Result<PrivateKey, Failure> {
    crate::keys::read_key(path, None).map_err(|e| invalid(format!("--key {}: {e}", path.display())))
}

fn read_public(path: &Path) -> Result<PublicKey, Failure> {
    sdk::keys::read_public_key(path).map_err(|e| invalid(format!("--pubkey {e}")))
}

/// The signature file's form for `algorithm`: DER for SM2 and ECDSA, raw for Ed25519.
fn signature_file_bytes(signature: &Signature) -> Result<Vec<u8>, Failure> {
    match signature.algorithm() {
        SignatureAlgorithm::Ed25519 => Ok(signature.as_bytes().to_vec()),
        _ => signature.to_der().map_err(|e| runtime(format!("encoding the signature: {e}"))),
    }
}

fn signature_from_file(algorithm: SignatureAlgorithm, bytes: &[u8]) -> Result<Signature, String> {
    let parse = |bytes: &[u8]| match algorithm {
        SignatureAlgorithm::Ed25519 => Signature::from_raw(algorithm, bytes),
        _ => Signature::from_der(algorithm, bytes),
    };
    match parse(bytes) {
        Ok(signature) => Ok(signature),
        Err(error) => {
            // Also accept the hex text `crypto sign` prints without --out.
            let text = std::str::from_utf8(bytes).map(str::trim).unwrap_or("");
            match hex::decode(text) {
                Ok(decoded) if !text.is_empty() => parse(&decoded).map_err(|e| e.to_string()),
                _ => Err(error.to_string()),
            }
        }
    }
}

/// Runs `polyledger crypto …`.
pub fn crypto(command: CryptoCommand) -> Result<(), Failure> {
    match command {
        CryptoCommand::Hash { algorithm, file, json } => {
            let algorithm = HashAlgorithm::from_name(&algorithm).ok_or_else(|| {
                invalid(format!("unknown hash algorithm `{algorithm}` (sm3, sha256)"))
            })?;
            let digest = hash_file(algorithm, &file)?;
            if json {
                print_json(&json!({
                    "algorithm": algorithm.name(),
                    "digest": digest,
                    "file": file.display().to_string(),
                }));
            } else {
                println!("{digest}  {}", file.display());
            }
            Ok(())
        }
        CryptoCommand::Sign { key, file, out, json } => {
            let key = read_private(&key)?;
            let message = read_input(&file)?;
            let signature = key.sign(&message);
            let bytes = signature_file_bytes(&signature)?;
            if let Some(out) = &out {
                std::fs::write(out, &bytes)
                    .map_err(|e| runtime(format!("{}: {e}", out.display())))?;
            }
            if json {
                print_json(&json!({
                    "algorithm": key.algorithm().name(),
                    "signature_hex": hex::encode(&bytes),
                    "out": out.as_ref().map(|p| p.display().to_string()),
                }));
            } else if let Some(out) = &out {
                println!(
                    "{} signature ({}, {} bytes) written to {}",
                    key.algorithm().name(),
                    if key.algorithm() == SignatureAlgorithm::Ed25519 { "raw" } else { "DER" },
                    bytes.len(),
                    out.display()
                );
            } else {
                println!("{}", hex::encode(&bytes));
            }
            Ok(())
        }
        CryptoCommand::Verify { pubkey, sig, file, json } => {
            let public = read_public(&pubkey)?;
            let signature_bytes = std::fs::read(&sig)
                .map_err(|e| invalid(format!("--sig {}: {e}", sig.display())))?;
            let message = read_input(&file)?;
            let verdict = signature_from_file(public.algorithm(), &signature_bytes)
                .map_err(|e| format!("malformed signature: {e}"))
                .and_then(|signature| {
                    public.verify(&message, &signature).map_err(|e| e.to_string())
                });
            if json {
                print_json(&json!({
                    "valid": verdict.is_ok(),
                    "algorithm": public.algorithm().name(),
                    "error": verdict.as_ref().err(),
                }));
            } else {
                println!("{}", if verdict.is_ok() { "valid" } else { "invalid" });
            }
            verdict.map_err(|reason| unverified(format!("{}: {reason}", file.display())))
        }
    }
}

fn hash_file(algorithm: HashAlgorithm, path: &Path) -> Result<String, Failure> {
    let mut hasher = Hasher::new(algorithm);
    let mut reader: Box<dyn std::io::Read> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path).map_err(|e| invalid(format!("{}: {e}", path.display())))?,
        )
    };
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = reader
            .read(&mut buffer)
            .map_err(|e| runtime(format!("reading {}: {e}", path.display())))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().to_hex())
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialize"));
}

// ---------------------------------------------------------------------------------------
// Gateway access shared by tx, query and proof

/// Which gateway and ledger.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The gateway's base URL (a node's `node.http_listen`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The ledger: its name or its id (hex).
    #[arg(long)]
    pub ledger: String,
}

/// A current-thread runtime for one command's calls.
pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime(format!("starting the async runtime: {e}")))
}

/// A failure from a gateway call: exit 1 with the problem code.
fn client_failure(client: &Client, error: ClientError) -> Failure {
    match &error {
        ClientError::Transport(detail) => {
            runtime(format!("cannot reach the gateway at {}: {detail}", client.base_url()))
        }
        ClientError::Problem(problem) => {
            runtime(format!("{} (HTTP {}): {}", problem.code, problem.status, problem.detail))
        }
        ClientError::Decode(_) => runtime(format!("{}: {error}", client.base_url())),
    }
}

fn connect(target: &Target) -> Result<Client, Failure> {
    if !(target.gateway.starts_with("http://") || target.gateway.starts_with("https://")) {
        return Err(invalid(format!(
            "--gateway `{}`: give a URL like http://127.0.0.1:8080",
            target.gateway
        )));
    }
    sdk_client(&target.gateway)
}

/// A client of the gateway at `url`, with the bearer token of `POLYLEDGER_TOKEN_FILE`
/// (its first line) or `POLYLEDGER_TOKEN`, and the extra CA certificates of
/// `POLYLEDGER_CA_FILE` (PEM), when set.
pub(crate) fn sdk_client(url: &str) -> Result<Client, Failure> {
    let token = match std::env::var_os("POLYLEDGER_TOKEN_FILE") {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                invalid(format!("POLYLEDGER_TOKEN_FILE {}: {e}", Path::new(&path).display()))
            })?;
            Some(text.lines().next().unwrap_or("").trim().to_owned())
        }
        None => std::env::var("POLYLEDGER_TOKEN").ok(),
    };
    let ca_pem = match std::env::var_os("POLYLEDGER_CA_FILE") {
        Some(path) => Some(std::fs::read(&path).map_err(|e| {
            invalid(format!("POLYLEDGER_CA_FILE {}: {e}", Path::new(&path).display()))
        })?),
        None => None,
    };
    Client::with_options(url, &sdk::ClientOptions { token, ca_pem })
        .map_err(|e| invalid(format!("--gateway {url}: {e}")))
}

/// Resolves `--ledger` (a name or a hex id) through `GET /api/v1/ledgers`.
async fn resolve_ledger(client: &Client, ledger: &str) -> Result<(LedgerId, String), Failure> {
    let listed = client.ledgers().await.map_err(|e| client_failure(client, e))?;
    let wanted = ledger.trim_start_matches("0x").to_ascii_lowercase();
    let found = listed
        .iter()
        .find(|view| view.name == ledger)
        .or_else(|| listed.iter().find(|view| view.id.eq_ignore_ascii_case(&wanted)));
    let Some(view) = found else {
        let names: Vec<&str> = listed.iter().map(|view| view.name.as_str()).collect();
        return Err(invalid(format!(
            "--ledger `{ledger}`: no such ledger on {} (it hosts: {})",
            client.base_url(),
            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
        )));
    };
    let id = sdk::wire::parse_hash("id", &view.id)
        .map_err(|e| runtime(format!("the gateway listed a bad ledger id: {e}")))?;
    Ok((LedgerId(id), view.name.clone()))
}

fn parse_hash_arg(flag: &str, text: &str) -> Result<Hash32, Failure> {
    sdk::wire::parse_hash(flag, text.trim()).map_err(|e| invalid(format!("--{e}")))
}

/// Bytes as a quoted string when they are printable UTF-8, else `0x` hex.
fn show_bytes(utf8: Option<&str>, hex_form: &str) -> String {
    match utf8 {
        Some(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
        _ => format!("0x{hex_form}"),
    }
}

// ---------------------------------------------------------------------------------------
// tx

/// `polyledger tx …`.
#[derive(Subcommand, Debug)]
pub enum TxCommand {
    /// Write a value under a key of a data account (one `WriteKv` transaction).
    Put {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The signer's private key (PKCS#8 PEM); its user must be registered in the
        /// ledger and own the data account.
        #[arg(long)]
        key: PathBuf,
        /// The data account.
        #[arg(long)]
        account: String,
        /// The key within the data account (UTF-8).
        #[arg(long)]
        key_name: String,
        /// The value (UTF-8).
        #[arg(long, required_unless_present = "value_file", conflicts_with = "value_file")]
        value: Option<String>,
        /// Read the value's bytes from this file instead.
        #[arg(long)]
        value_file: Option<PathBuf>,
        /// The version the write expects (−1: a new key). Default: the key's latest
        /// version as the gateway reports it now (−1 when absent).
        #[arg(long, allow_hyphen_values = true)]
        expected_version: Option<i64>,
        /// How long to wait for the transaction to be final.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register a data account (a key namespace) owned by the signer.
    RegisterAccount {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The signer's private key (PKCS#8 PEM); its user must be registered.
        #[arg(long)]
        key: PathBuf,
        /// The new data account's name.
        #[arg(long)]
        name: String,
        /// How long to wait for the transaction to be final.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Register an event account (a namespace of topics) owned by the signer.
    RegisterEventAccount {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The signer's private key (PKCS#8 PEM); its user must be registered.
        #[arg(long)]
        key: PathBuf,
        /// The new event account's name (names starting with `$` are reserved).
        #[arg(long)]
        name: String,
        /// How long to wait for the transaction to be final.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Admit a node to a raft ledger's consensus group: signed by --key (a user with
    /// register_participant) and co-signed by a quorum of current participants'
    /// node keys (--endorse, repeated).
    AddParticipant {
        /// Gateway, ledger, actor, co-signers.
        #[command(flatten)]
        signing: ParticipantSigning,
        /// The new node's public key (base58, `polyledger keygen` prints it).
        #[arg(long)]
        node_key: String,
        /// The new node's id (`[node] id` in its config).
        #[arg(long)]
        node_id: u64,
        /// Where the new node listens for other nodes (`IP:PORT`, its `p2p_listen` as
        /// reachable by the others).
        #[arg(long)]
        address: String,
    },
    /// Remove a node from a raft ledger's consensus group (same signatures as
    /// add-participant).
    RemoveParticipant {
        /// Gateway, ledger, actor, co-signers.
        #[command(flatten)]
        signing: ParticipantSigning,
        /// The node's public key (base58).
        #[arg(long)]
        node_key: String,
    },
    /// Record a recall of a GTIN's lot (the key must be one of the ledger's regulators).
    Recall {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The regulator's private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// GTIN-14 (check digit verified).
        #[arg(long)]
        gtin: String,
        /// Lot/batch number.
        #[arg(long)]
        lot: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// How long to wait for the transaction to be final.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish an event on a topic of an event account the signer owns.
    Publish {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The signer's private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// The event account.
        #[arg(long)]
        account: String,
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The payload (UTF-8; JSON by convention).
        #[arg(long, required_unless_present = "payload_file", conflicts_with = "payload_file")]
        payload: Option<String>,
        /// Read the payload's bytes from this file instead.
        #[arg(long)]
        payload_file: Option<PathBuf>,
        /// How long to wait for the transaction to be final.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        wait: Duration,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `polyledger tx …`.
pub fn tx(command: TxCommand) -> Result<(), Failure> {
    match command {
        TxCommand::Put {
            target,
            key,
            account,
            key_name,
            value,
            value_file,
            expected_version,
            wait,
            json,
        } => {
            let signer = read_private(&key)?;
            let value = match (value, value_file) {
                (Some(value), _) => value.into_bytes(),
                (None, Some(path)) => read_input(&path)?,
                (None, None) => return Err(invalid("--value or --value-file is required")),
            };
            if let Some(version) = expected_version
                && version < -1
            {
                return Err(invalid("--expected-version: -1 (a new key) or a version >= 0"));
            }
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let expected = match expected_version {
                    Some(version) => version,
                    None => client
                        .latest(&ledger, &account, key_name.as_bytes())
                        .await
                        .map_err(|e| client_failure(&client, e))?
                        .map_or(-1, |latest| latest.version as i64),
                };
                let transaction = TxBuilder::new(ledger)
                    .write(&account, key_name.as_bytes(), &value, expected)
                    .sign(&[&signer])
                    .map_err(|e| invalid(e.to_string()))?;
                submit(&client, &ledger, transaction, wait, json).await
            })
        }
        TxCommand::RegisterAccount { target, key, name, wait, json } => {
            let signer = read_private(&key)?;
            engine::model::check_name(&name)
                .map_err(|reason| invalid(format!("--name `{name}`: {reason}")))?;
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let transaction = TxBuilder::new(ledger)
                    .register_data_account(&name)
                    .sign(&[&signer])
                    .map_err(|e| invalid(e.to_string()))?;
                submit(&client, &ledger, transaction, wait, json).await
            })
        }
        TxCommand::RegisterEventAccount { target, key, name, wait, json } => {
            let signer = read_private(&key)?;
            engine::model::check_name(&name)
                .map_err(|reason| invalid(format!("--name `{name}`: {reason}")))?;
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let transaction = TxBuilder::new(ledger)
                    .register_event_account(&name)
                    .sign(&[&signer])
                    .map_err(|e| invalid(e.to_string()))?;
                submit(&client, &ledger, transaction, wait, json).await
            })
        }
        TxCommand::AddParticipant { signing, node_key, node_id, address } => {
            let public_key = PublicKey::from_base58(&node_key)
                .map_err(|e| invalid(format!("--node-key: not a base58 public key: {e}")))?;
            address
                .parse::<std::net::SocketAddr>()
                .map_err(|_| invalid(format!("--address `{address}`: give IP:PORT")))?;
            let operation =
                engine::model::Operation::AddParticipant { public_key, node_id, address };
            participant_change(signing, operation)
        }
        TxCommand::RemoveParticipant { signing, node_key } => {
            let public_key = PublicKey::from_base58(&node_key)
                .map_err(|e| invalid(format!("--node-key: not a base58 public key: {e}")))?;
            let operation = engine::model::Operation::RemoveParticipant { public_key };
            participant_change(signing, operation)
        }
        TxCommand::Recall { target, key, gtin, lot, reason, wait, json } => {
            let signer = read_private(&key)?;
            engine::model::check_gtin(&gtin).map_err(|e| invalid(format!("--gtin: {e}")))?;
            engine::model::check_lot(&lot).map_err(|e| invalid(format!("--lot: {e}")))?;
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let transaction = TxBuilder::new(ledger)
                    .recall(&gtin, &lot, &reason)
                    .sign(&[&signer])
                    .map_err(|e| invalid(e.to_string()))?;
                submit(&client, &ledger, transaction, wait, json).await
            })
        }
        TxCommand::Publish { target, key, account, topic, payload, payload_file, wait, json } => {
            let signer = read_private(&key)?;
            let payload = match (payload, payload_file) {
                (Some(payload), _) => payload.into_bytes(),
                (None, Some(path)) => read_input(&path)?,
                (None, None) => return Err(invalid("--payload or --payload-file is required")),
            };
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let transaction = TxBuilder::new(ledger)
                    .publish(&account, &topic, &payload)
                    .sign(&[&signer])
                    .map_err(|e| invalid(e.to_string()))?;
                submit(&client, &ledger, transaction, wait, json).await
            })
        }
    }
}

async fn submit(
    client: &Client,
    ledger: &LedgerId,
    transaction: engine::model::Transaction,
    wait: Duration,
    json: bool,
) -> Result<(), Failure> {
    let outcomes = client
        .submit_and_wait(ledger, std::slice::from_ref(&transaction), wait)
        .await
        .map_err(|e| client_failure(client, e))?;
    let outcome = outcomes
        .into_iter()
        .next()
        .ok_or_else(|| runtime("the gateway answered no outcome for the transaction"))?;
    if json {
        print_json(&outcome);
    } else {
        print_outcome(&outcome);
    }
    let committed = outcome.status == "committed" && outcome.result.as_deref() == Some("committed");
    if committed {
        return Ok(());
    }
    let code = outcome.result.clone().unwrap_or_else(|| outcome.status.clone());
    Err(runtime(match outcome.status.as_str() {
        "committed" => format!(
            "transaction {} is in block {} but did not apply: {code}",
            outcome.hash,
            outcome.height.unwrap_or_default()
        ),
        _ => format!(
            "transaction {} was {}: {code}{}",
            outcome.hash,
            outcome.status,
            outcome.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ),
    }))
}

fn print_outcome(outcome: &Outcome) {
    println!("hash    {}", outcome.hash);
    println!("status  {}", outcome.status);
    if let Some(height) = outcome.height {
        println!("height  {height} (index {})", outcome.index.unwrap_or_default());
    }
    if let Some(result) = &outcome.result {
        println!("result  {result}");
    }
    if let Some(reason) = &outcome.reason {
        println!("reason  {reason}");
    }
}

// ---------------------------------------------------------------------------------------
// query

/// `polyledger query …`.
#[derive(Subcommand, Debug)]
pub enum QueryCommand {
    /// A block header: by --height, by --hash, or the latest (the default, or --latest).
    Block {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The block at this height (0: genesis).
        #[arg(long, conflicts_with_all = ["hash", "latest"])]
        height: Option<u64>,
        /// The block with this hash (hex).
        #[arg(long, conflicts_with = "latest")]
        hash: Option<String>,
        /// The latest block (the default).
        #[arg(long)]
        latest: bool,
        /// Also list the block's transactions (hash and result).
        #[arg(long)]
        transactions: bool,
        /// Print JSON (the gateway's `BlockView`, plus `transactions` when asked).
        #[arg(long)]
        json: bool,
    },
    /// A transaction's status, result and operations.
    Tx {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The transaction hash (hex).
        #[arg(long)]
        hash: String,
        /// Print the gateway's `TxStatusView` JSON.
        #[arg(long)]
        json: bool,
    },
    /// The latest version of a key.
    Key {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The data account.
        #[arg(long)]
        account: String,
        /// The key (UTF-8).
        #[arg(long)]
        key: String,
        /// Print the gateway's `ValueView` JSON.
        #[arg(long)]
        json: bool,
    },
    /// A key's versions, oldest first.
    History {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// The data account.
        #[arg(long)]
        account: String,
        /// The key (UTF-8).
        #[arg(long)]
        key: String,
        /// First version to list.
        #[arg(long, default_value_t = 0)]
        from_version: u64,
        /// Versions per page (1..=1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow the pages to the last version.
        #[arg(long)]
        all: bool,
        /// Print `{"versions": [ValueView…], "next_from_version"}`.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `polyledger query …`.
pub fn query(command: QueryCommand) -> Result<(), Failure> {
    match command {
        QueryCommand::Block { target, height, hash, latest: _, transactions, json } => {
            let client = connect(&target)?;
            let hash = hash.as_deref().map(|h| parse_hash_arg("hash", h)).transpose()?;
            tokio_runtime()?.block_on(async {
                let (ledger, name) = resolve_ledger(&client, &target.ledger).await?;
                let block = match (height, hash) {
                    (Some(height), _) => client
                        .block(&ledger, height)
                        .await
                        .map_err(|e| client_failure(&client, e))?
                        .ok_or_else(|| runtime(format!("no block at height {height} in {name}")))?,
                    (None, Some(hash)) => client
                        .block_by_hash(&ledger, &hash)
                        .await
                        .map_err(|e| runtime(e.to_string()))?
                        .ok_or_else(|| {
                            runtime(format!("no block with hash {} in {name}", hex::encode(hash)))
                        })?,
                    (None, None) => client
                        .latest_block(&ledger)
                        .await
                        .map_err(|e| client_failure(&client, e))?,
                };
                let listed = if transactions {
                    Some(block_transactions(&client, &ledger, block.height).await?)
                } else {
                    None
                };
                if json {
                    let mut value = serde_json::to_value(&block).expect("serializable");
                    if let Some(listed) = &listed {
                        value["transactions"] = serde_json::to_value(listed).expect("serializable");
                    }
                    print_json(&value);
                } else {
                    print_block(&name, &block);
                    for tx in listed.iter().flatten() {
                        println!("  {:>5}  {}  {}", tx.index, tx.hash, tx.result);
                    }
                }
                Ok(())
            })
        }
        QueryCommand::Tx { target, hash, json } => {
            let client = connect(&target)?;
            let tx_hash = parse_hash_arg("hash", &hash)?;
            tokio_runtime()?.block_on(async {
                let (ledger, name) = resolve_ledger(&client, &target.ledger).await?;
                let status = client
                    .transaction(&ledger, &tx_hash)
                    .await
                    .map_err(|e| client_failure(&client, e))?
                    .ok_or_else(|| {
                        runtime(format!("no transaction {} in {name}", hex::encode(tx_hash)))
                    })?;
                if json {
                    print_json(&status);
                    return Ok(());
                }
                println!("hash    {}", status.hash);
                println!("status  {}", status.status);
                if let Some(height) = status.height {
                    println!("height  {height} (index {})", status.index.unwrap_or_default());
                }
                if let Some(result) = &status.result {
                    println!("result  {result}");
                }
                if let Some(transaction) = &status.transaction {
                    println!("nonce   {}", transaction.content.nonce);
                    println!("time    {} ms", transaction.content.timestamp_ms);
                    for operation in &transaction.content.operations {
                        println!("op      {}", describe_operation(operation));
                    }
                    for endorsement in &transaction.endorsements {
                        println!("signer  {}", endorsement.public_key);
                    }
                }
                Ok(())
            })
        }
        QueryCommand::Key { target, account, key, json } => {
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, name) = resolve_ledger(&client, &target.ledger).await?;
                let value = client
                    .latest(&ledger, &account, key.as_bytes())
                    .await
                    .map_err(|e| client_failure(&client, e))?
                    .ok_or_else(|| {
                        runtime(format!("no key {key:?} in account {account:?} of {name}"))
                    })?;
                if json {
                    print_json(&value);
                } else {
                    println!("account  {}", value.account);
                    println!("key      {}", show_bytes(value.key.as_deref(), &value.key_hex));
                    println!("version  {}", value.version);
                    println!("height   {}", value.height);
                    println!("tx       {}", value.tx_hash);
                    println!("value    {}", show_bytes(value.value.as_deref(), &value.value_hex));
                }
                Ok(())
            })
        }
        QueryCommand::History { target, account, key, from_version, limit, all, json } => {
            if limit == 0 || limit > 1000 {
                return Err(invalid("--limit: 1..=1000"));
            }
            let client = connect(&target)?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let mut versions: Vec<ValueView> = Vec::new();
                let mut from = from_version;
                let next = loop {
                    let page = client
                        .history(&ledger, &account, key.as_bytes(), from, limit)
                        .await
                        .map_err(|e| client_failure(&client, e))?;
                    versions.extend(page.versions);
                    match page.next_from_version {
                        Some(next) if all && next > from => from = next,
                        next => break next,
                    }
                };
                if json {
                    print_json(&json!({ "versions": versions, "next_from_version": next }));
                    return Ok(());
                }
                if versions.is_empty() {
                    println!(
                        "no versions of {key:?} in account {account:?} from version {from_version}"
                    );
                }
                for value in &versions {
                    println!(
                        "version {:<4} height {:<8} tx {}  value {}",
                        value.version,
                        value.height,
                        value.tx_hash,
                        show_bytes(value.value.as_deref(), &value.value_hex)
                    );
                }
                if let Some(next) = next {
                    println!("(more: --from-version {next}, or --all)");
                }
                Ok(())
            })
        }
    }
}

async fn block_transactions(
    client: &Client,
    ledger: &LedgerId,
    height: u64,
) -> Result<Vec<sdk::wire::BlockTxView>, Failure> {
    let mut listed = Vec::new();
    let mut from = 0u32;
    loop {
        let page = client
            .block_transactions(ledger, height, from, 1000)
            .await
            .map_err(|e| client_failure(client, e))?
            .ok_or_else(|| runtime(format!("no block at height {height}")))?;
        listed.extend(page.transactions);
        match page.next_from {
            Some(next) if next > from => from = next,
            _ => return Ok(listed),
        }
    }
}

fn print_block(ledger: &str, block: &BlockView) {
    println!("block          {} of {ledger}", block.height);
    println!("hash           {}", block.hash);
    println!("previous hash  {}", block.previous_hash);
    println!("tx root        {}", block.tx_root);
    println!("state root     {}", block.state_root);
    println!("timestamp      {} ms", block.timestamp_ms);
    println!("proposer       {}", block.proposer);
    println!("transactions   {}", block.tx_count);
}

/// What a participant change needs besides the operation.
#[derive(Args, Debug)]
pub struct ParticipantSigning {
    /// Gateway and ledger.
    #[command(flatten)]
    target: Target,
    /// The acting user's private key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// Node keys of current participants that co-sign (PKCS#8 PEM; repeat).
    #[arg(long = "endorse")]
    endorse: Vec<PathBuf>,
    /// How long to wait for the transaction to be final.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    wait: Duration,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Signs a participant change by the actor and every co-signer, and submits it.
fn participant_change(
    signing: ParticipantSigning,
    operation: engine::model::Operation,
) -> Result<(), Failure> {
    let ParticipantSigning { target, key, endorse, wait, json } = signing;
    let actor = read_private(&key)?;
    let cosigners = endorse.iter().map(|path| read_private(path)).collect::<Result<Vec<_>, _>>()?;
    let client = connect(&target)?;
    tokio_runtime()?.block_on(async {
        let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
        let mut signers = vec![&actor];
        signers.extend(cosigners.iter());
        let transaction = TxBuilder::new(ledger)
            .operation(operation)
            .sign(&signers)
            .map_err(|e| invalid(e.to_string()))?;
        submit(&client, &ledger, transaction, wait, json).await
    })
}

fn describe_operation(operation: &sdk::wire::OperationJson) -> String {
    use sdk::wire::OperationJson;
    match operation {
        OperationJson::RegisterUser { public_key } => format!("register_user {public_key}"),
        OperationJson::RegisterDataAccount { name } => format!("register_data_account {name}"),
        OperationJson::WriteKv { account, key, key_hex, value, value_hex, expected_version } => {
            format!(
                "write_kv {account} {} = {} (expected version {expected_version})",
                show_bytes(key.as_deref(), key_hex.as_deref().unwrap_or("")),
                show_bytes(value.as_deref(), value_hex.as_deref().unwrap_or(""))
            )
        }
        OperationJson::RegisterEventAccount { name } => format!("register_event_account {name}"),
        OperationJson::Recall { gtin, lot, reason } => format!("recall {gtin} lot {lot}: {reason}"),
        OperationJson::DefineRole { name, permissions } => {
            format!("define_role {name} = {}", permissions.join(", "))
        }
        OperationJson::AssignRoles { user, roles, policy } => {
            format!("assign_roles {user}: {} ({policy})", roles.join(", "))
        }
        OperationJson::GrantWrite { account, grantee, allowed } => {
            format!("grant_write {account} to {grantee}: {allowed}")
        }
        OperationJson::AddParticipant { public_key, node_id, address } => {
            format!("add_participant {public_key} as node {node_id} at {address}")
        }
        OperationJson::RemoveParticipant { public_key } => {
            format!("remove_participant {public_key}")
        }
        OperationJson::Seal { note } => format!("seal: {note}"),
        OperationJson::PublishEvent { account, topic, payload, payload_hex } => format!(
            "publish_event {account}/{topic}: {}",
            show_bytes(payload.as_deref(), payload_hex.as_deref().unwrap_or(""))
        ),
    }
}

// ---------------------------------------------------------------------------------------
// proof

/// `polyledger proof …`.
#[derive(Subcommand, Debug)]
pub enum ProofCommand {
    /// Fetch a proof document (`docs/FORMAT.md` §14) from a gateway.
    Get {
        /// Gateway and ledger.
        #[command(flatten)]
        target: Target,
        /// Prove this transaction (hash, hex) and its result.
        #[arg(long, conflicts_with_all = ["account", "key", "height"], required_unless_present = "account")]
        tx: Option<String>,
        /// Prove a key of this data account (its value and version, or its absence).
        #[arg(long, requires = "key")]
        account: Option<String>,
        /// The key (UTF-8).
        #[arg(long, requires = "account")]
        key: Option<String>,
        /// The block height to prove the key at (default: the latest).
        #[arg(long)]
        height: Option<u64>,
        /// Write the document here (JSON). Without it, print it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify a proof file offline (no node needed): prints what it proves and VALID, or
    /// exits 4 with the reason.
    Verify {
        /// The proof document (JSON, as `proof get` saves it).
        file: PathBuf,
        /// Also require the proof to end at this block hash (hex), one you trust.
        #[arg(long)]
        block_hash: Option<String>,
        /// Print `{"valid", "error", "kind", "ledger_id", "height", "block_hash", …}`.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `polyledger proof …`.
pub fn proof(command: ProofCommand) -> Result<(), Failure> {
    match command {
        ProofCommand::Get { target, tx, account, key, height, out } => {
            let client = connect(&target)?;
            let tx = tx.as_deref().map(|h| parse_hash_arg("tx", h)).transpose()?;
            tokio_runtime()?.block_on(async {
                let (ledger, _) = resolve_ledger(&client, &target.ledger).await?;
                let document = match (tx, account, key) {
                    (Some(tx), _, _) => client.prove_transaction(&ledger, &tx).await,
                    (None, Some(account), Some(key)) => {
                        client.prove_key(&ledger, &account, key.as_bytes(), height).await
                    }
                    _ => return Err(invalid("give --tx HASH, or --account A --key K")),
                }
                .map_err(|e| client_failure(&client, e))?;
                let text = serde_json::to_string_pretty(&document).expect("serializable");
                match &out {
                    Some(path) => {
                        std::fs::write(path, format!("{text}\n"))
                            .map_err(|e| runtime(format!("{}: {e}", path.display())))?;
                        println!("{}", claim(&document));
                        println!(
                            "at block {} (hash {}); saved to {}",
                            document.height,
                            document.block_hash,
                            path.display()
                        );
                        println!("check it offline: polyledger proof verify {}", path.display());
                    }
                    None => println!("{text}"),
                }
                Ok(())
            })
        }
        ProofCommand::Verify { file, block_hash, json } => {
            let trusted =
                block_hash.as_deref().map(|h| parse_hash_arg("block-hash", h)).transpose()?;
            let text = std::fs::read_to_string(&file)
                .map_err(|e| invalid(format!("{}: {e}", file.display())))?;
            let document: ProofDocument = serde_json::from_str(&text)
                .map_err(|e| invalid(format!("{}: not a proof document: {e}", file.display())))?;
            let verdict =
                sdk::proof::verify(&document).map_err(|e| e.to_string()).and_then(|verified| {
                    match trusted {
                        Some(trusted) if trusted != verified.block_hash => Err(format!(
                            "the proof ends at block {}, not at the trusted block {}",
                            hex::encode(verified.block_hash),
                            hex::encode(trusted)
                        )),
                        _ => Ok(verified),
                    }
                });
            if json {
                print_json(&json!({
                    "valid": verdict.is_ok(),
                    "error": verdict.as_ref().err(),
                    "kind": document.kind,
                    "ledger_id": document.ledger_id,
                    "height": document.height,
                    "block_hash": document.block_hash,
                    "trusted_block_hash": trusted.map(hex::encode),
                    "claim": claim(&document),
                }));
            } else {
                println!("ledger  {}", document.ledger_id);
                println!("block   height {}, hash {}", document.height, document.block_hash);
                println!("proves  {}", claim(&document));
                match (&verdict, trusted) {
                    (Ok(_), Some(_)) => println!("anchor  the block hash equals --block-hash"),
                    (Ok(_), None) => println!(
                        "anchor  none given: the proof holds in the block above; compare its \
                         hash with one you trust (--block-hash)"
                    ),
                    _ => {}
                }
                println!("{}", if verdict.is_ok() { "VALID" } else { "INVALID" });
            }
            verdict
                .map(|_| ())
                .map_err(|reason| unverified(format!("{}: {reason}", file.display())))
        }
    }
}

/// What a proof document claims, in words.
fn claim(document: &ProofDocument) -> String {
    let utf8 =
        |hex_form: &str| hex::decode(hex_form).ok().and_then(|bytes| String::from_utf8(bytes).ok());
    match document.kind.as_str() {
        "transaction" => format!(
            "transaction {} is in the block with result {}",
            document.tx_hash.as_deref().unwrap_or("?"),
            document.result.as_deref().unwrap_or("?")
        ),
        "state" => {
            let key_hex = document.key_hex.as_deref().unwrap_or("");
            let key = show_bytes(utf8(key_hex).as_deref(), key_hex);
            let account = document.account.as_deref().unwrap_or("?");
            match (document.present, &document.value_hex) {
                (Some(true), Some(value_hex)) => format!(
                    "key {key} of account {account:?} has version {} and value {}",
                    document.version.map_or("?".to_owned(), |v| v.to_string()),
                    show_bytes(utf8(value_hex).as_deref(), value_hex)
                ),
                _ => format!("key {key} of account {account:?} is absent"),
            }
        }
        other => format!("unknown kind `{other}`"),
    }
}
