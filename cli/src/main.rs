//! The `polyledger` command: runs a node and the everyday tools around a ledger.
//!
//! Exit codes: 0 success, 1 runtime failure (storage, network), 2 invalid input or
//! configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use actors::config::{NodeConfig, StorageUri};
use actors::{Node, NodeOptions};
use clap::{Parser, Subcommand};
use crypto_parallel::{BatchVerifier, PrivateKey, SignatureAlgorithm};
use engine::model::Address;
use engine::store::{KvStore, MemoryStore};

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
    /// Generate a private key (PKCS#8 PEM, file mode 0600) and print its public key.
    Keygen {
        /// Where to write the key; refuses to overwrite an existing file.
        #[arg(long)]
        out: PathBuf,
        /// sm2 (default), ed25519 or ecdsa-p256.
        #[arg(long, default_value = "sm2")]
        algorithm: String,
    },
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

fn invalid(message: impl Into<String>) -> Failure {
    Failure { code: 2, message: message.into() }
}

fn runtime(message: impl Into<String>) -> Failure {
    Failure { code: 1, message: message.into() }
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
        Command::Node { config, grace } => run_node(&config, grace),
        Command::Keygen { out, algorithm } => keygen(&out, &algorithm),
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

fn keygen(out: &Path, algorithm: &str) -> Result<(), Failure> {
    let algorithm = algorithm_by_name(algorithm).ok_or_else(|| {
        invalid(format!("unknown algorithm `{algorithm}` (sm2, ed25519, ecdsa-p256)"))
    })?;
    let key = PrivateKey::generate(algorithm);
    let pem = key.to_pem().map_err(|e| runtime(format!("encoding the key: {e}")))?;
    write_private(out, pem.as_bytes())?;
    let public = key.public_key();
    println!("public key: {}", public.to_base58());
    println!(
        "address (sm3): {}",
        hex_string(&Address::of(crypto_parallel::HashAlgorithm::Sm3, &public).0)
    );
    Ok(())
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            invalid(format!("{} exists; not overwriting a key", path.display()))
        }
        _ => runtime(format!("{}: {e}", path.display())),
    })?;
    file.write_all(bytes).map_err(|e| runtime(format!("{}: {e}", path.display())))
}

fn open_store(uri: &StorageUri) -> Result<Arc<dyn KvStore>, Failure> {
    match uri {
        StorageUri::Memory => Ok(Arc::new(MemoryStore::new())),
        StorageUri::RocksDb(path) => {
            std::fs::create_dir_all(path)
                .map_err(|e| runtime(format!("{}: {e}", path.display())))?;
            let store = storage_rocksdb::RocksStore::open(path)
                .map_err(|e| runtime(format!("opening RocksDB at {}: {e}", path.display())))?;
            Ok(Arc::new(store))
        }
        StorageUri::TiKv(_) => Err(invalid(
            "node.data: tikv:// storage is not available in this build yet (storage-tikv)",
        )),
    }
}

fn run_node(config_path: &Path, grace: Duration) -> Result<(), Failure> {
    let config = NodeConfig::load(config_path)
        .map_err(|e| invalid(format!("{}: {e}", config_path.display())))?;
    let pem = std::fs::read_to_string(&config.node.key_file)
        .map_err(|e| invalid(format!("node.key_file {}: {e}", config.node.key_file.display())))?;
    let key = PrivateKey::from_pem(&pem)
        .map_err(|e| invalid(format!("node.key_file {}: {e}", config.node.key_file.display())))?;
    BatchVerifier::init_global(config.pools.verify_threads_resolved());
    let options = NodeOptions::from_config(&config, key).map_err(|e| invalid(e.to_string()))?;
    let store = open_store(&config.node.data)?;
    let http_listen = config.node.http_listen;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let node = Node::start(options, store).map_err(|e| runtime(e.to_string()))?;
        for ledger in node.ledgers() {
            tracing::info!(
                ledger = ledger.name(),
                id = %hex_string(&ledger.id().0),
                height = ledger.head().height,
                "ledger open"
            );
        }
        let listener = tokio::net::TcpListener::bind(http_listen)
            .await
            .map_err(|e| runtime(format!("node.http_listen {http_listen}: {e}")))?;
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let router = gateway::router(node.ledgers().to_vec());
        let http = actix_rt::spawn(gateway::serve(listener, router, async move {
            let _ = http_stopped.await;
        }));
        tracing::info!(node = node.id(), http = %http_listen, "node running; SIGTERM or Ctrl-C stops it");
        wait_for_stop().await;
        tracing::info!("stopping: finishing blocks in flight");
        let _ = stop_http.send(());
        node.shutdown(grace).await;
        let _ = http.await;
        tracing::info!("stopped");
        Ok(())
    })
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
