//! The `polyledger` command: runs a node and the everyday tools around a ledger.
//!
//! Exit codes: 0 success, 1 runtime failure (storage, network, a transaction that did
//! not commit), 2 invalid input or configuration, 3 a load-generator threshold
//! (`--expect-tps`, `--expect-p99-ms`) was missed, 4 verification failed (a proof, a
//! signature or a ledger that does not verify). `docs/OPERATIONS.md` ("The polyledger
//! command") documents every command.

mod category;
mod keys;
mod ledger_cmd;
mod load;
mod node;
mod ops;
mod subscribe_bench;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use crypto_parallel::SignatureAlgorithm;

/// mimalloc: the node allocates per transaction on every core (decode, mempool, blocks);
/// glibc's malloc/free took ~7% of a saturated node's CPU in a profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "polyledger", version, about = "polyledger: many ledgers, one node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from its configuration file (see deploy/ for examples).
    Node {
        /// The node's TOML configuration.
        #[arg(long)]
        config: PathBuf,
        /// How long a graceful stop (SIGTERM, Ctrl-C) waits for blocks in flight.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        grace: Duration,
    },
    /// The one-command demo: an embedded node (RocksDB, solo, 8 category ledgers) driven
    /// by the load generator over HTTP for ~20 s; prints the report and where the data is.
    Demo(load::DemoArgs),
    /// Drive running gateways at a fixed rate (open loop), a ramp, or a closed loop, and
    /// report throughput and finality percentiles.
    Loadgen(load::LoadgenArgs),
    /// Generate a private key (PKCS#8 PEM, file mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; refuses to overwrite an existing file.
        #[arg(long)]
        out: PathBuf,
        /// sm2 (default), ed25519 or ecdsa-p256.
        #[arg(long, default_value = "sm2")]
        algorithm: String,
        /// Also write the public key here (SPKI PEM, what `openssl pkey -pubout` writes).
        #[arg(long)]
        pub_out: Option<PathBuf>,
        /// Encrypt the key file (scrypt + AES-256-GCM); the password comes from
        /// --password-file or POLYLEDGER_KEY_PASSWORD.
        #[arg(long)]
        encrypt: bool,
        /// The password file for --encrypt (its first line).
        #[arg(long, requires = "encrypt")]
        password_file: Option<PathBuf>,
    },
    /// Split a key into shares (any M of N recover it), and recover it.
    #[command(subcommand)]
    Key(keys::KeyCommand),
    /// Make a gateway bearer token: writes it to --out (mode 0600) and prints the
    /// `[[gateway.tokens]]` entry (its SHA-256, never the token) for the node config.
    Token {
        /// Where to write the token; refuses to overwrite an existing file.
        #[arg(long)]
        out: PathBuf,
        /// The entry's `name` (what logs call the token).
        #[arg(long)]
        name: String,
        /// Bind the token to this user (base58 public key): it submits only that
        /// user's transactions.
        #[arg(long)]
        user: Option<String>,
    },
    /// Hash, sign and verify files (SM3/SHA-256; SM2, Ed25519, ECDSA P-256), compatible
    /// with OpenSSL.
    #[command(subcommand)]
    Crypto(tools::CryptoCommand),
    /// Build, sign (offline) and submit transactions through a gateway.
    #[command(subcommand)]
    Tx(tools::TxCommand),
    /// Read blocks, transactions, values and histories through a gateway.
    #[command(subcommand)]
    Query(tools::QueryCommand),
    /// Fetch proofs from a gateway, and verify proof files offline.
    #[command(subcommand)]
    Proof(tools::ProofCommand),
    /// Operations on the shard map of running nodes: add a category, split a
    /// category's ledger into children, merge a category's ledgers (no restart).
    #[command(subcommand)]
    Category(category::CategoryCommand),
    /// Verify, export and import a node's ledgers on disk (the node must be stopped).
    #[command(subcommand)]
    Ledger(ledger_cmd::LedgerCommand),
    /// Follow a ledger's blocks, events or one topic; one JSON line per message, resuming
    /// by itself after disconnects.
    Watch(ops::WatchArgs),
    /// Take an online backup of a running node on this machine (into its backup_dir).
    Backup(ops::BackupArgs),
    /// Rebuild a data directory from a backup and verify every ledger before it is put
    /// in place; exit 4 if any does not verify.
    Restore(ops::RestoreArgs),
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) =
        text.find(|c: char| !c.is_ascii_digit()).map_or((text, "s"), |at| text.split_at(at));
    let value: u64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration like 5s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        _ => Err(format!("`{text}`: units are ms or s")),
    }
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

// Exit codes: 0 success, 1 runtime failure, 2 invalid input or configuration, 3 a
// load-generator threshold (--expect-*) was missed, 4 verification failed.

fn invalid(message: impl Into<String>) -> Failure {
    Failure { code: 2, message: message.into() }
}

fn runtime(message: impl Into<String>) -> Failure {
    Failure { code: 1, message: message.into() }
}

/// A proof, signature or ledger that does not verify (exit 4).
fn unverified(message: impl Into<String>) -> Failure {
    Failure { code: 4, message: message.into() }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node { config, grace } => node::run_node(&config, grace),
        Command::Demo(args) => load::demo(args),
        Command::Loadgen(args) => load::loadgen(args),
        Command::Keygen { out, algorithm, pub_out, encrypt, password_file } => {
            keys::keygen(&out, &algorithm, pub_out.as_deref(), encrypt, password_file.as_deref())
        }
        Command::Key(command) => keys::run(command),
        Command::Token { out, name, user } => keys::token(&out, &name, user.as_deref()),
        Command::Crypto(command) => tools::crypto(command),
        Command::Tx(command) => tools::tx(command),
        Command::Query(command) => tools::query(command),
        Command::Proof(command) => tools::proof(command),
        Command::Ledger(command) => ledger_cmd::run(command),
        Command::Category(command) => category::run(command),
        Command::Watch(args) => ops::watch(args),
        Command::Backup(args) => ops::backup(args),
        Command::Restore(args) => ops::restore(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("polyledger: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn algorithm_by_name(name: &str) -> Option<SignatureAlgorithm> {
    match name {
        "sm2" => Some(SignatureAlgorithm::Sm2),
        "ed25519" => Some(SignatureAlgorithm::Ed25519),
        "ecdsa-p256" => Some(SignatureAlgorithm::EcdsaP256),
        _ => None,
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
