//! Operations on a running node: `polyledger backup` (online, through the node's HTTP
//! API), `polyledger restore` (offline: a backup into a fresh data directory, verified
//! before it is put in place), and `polyledger watch` (a subscription printed as JSON
//! lines).
//!
//! A backup is a directory `<backup_dir>/<name>/` holding `db/` (a RocksDB checkpoint of
//! the node's store, taken while it commits) and `manifest.json` (each ledger's height
//! and block hash in it).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use engine::ledger::Ledger;
use engine::model::LedgerId;
use engine::store::KvStore;
use engine::verify::{Verdict, verify_ledger};
use futures::StreamExt;
use sdk::Subscription;
use sdk::wire::{BackupLedger, BackupManifest, EventFilter};
use storage_rocksdb::RocksStore;

use crate::{Failure, invalid, runtime, unverified};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The checkpoint's directory name in a backup directory.
pub const DB_DIR: &str = "db";

/// Writes one backup of `store` (whose ledgers are `ledgers`) into the new directory
/// `dir`: the checkpoint, then the manifest read back from the checkpoint itself.
pub fn make_backup(
    store: &dyn KvStore,
    ledgers: &[(String, LedgerId)],
    dir: &Path,
) -> Result<BackupManifest, String> {
    std::fs::create_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let db = dir.join(DB_DIR);
    store.checkpoint(&db).map_err(|e| format!("checkpoint into {}: {e}", db.display()))?;
    let snapshot = RocksStore::open_read_only(&db).map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    for (name, id) in ledgers {
        let head = Ledger::open(&snapshot, *id).map_err(|e| format!("ledger {name}: {e}"))?.head();
        entries.push(BackupLedger {
            name: name.clone(),
            id: hex::encode(id.0),
            height: head.height,
            block_hash: hex::encode(head.block_hash),
        });
    }
    let manifest = BackupManifest {
        path: dir.display().to_string(),
        created_ms: sdk::builder::now_ms(),
        ledgers: entries,
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    write_synced(&dir.join(MANIFEST), &text).map_err(|e| format!("writing the manifest: {e}"))?;
    Ok(manifest)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `polyledger backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// The node's HTTP API, on this machine (administration answers loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The backup's directory name under the node's `backup_dir` (default
    /// `backup-<ms since epoch>`).
    #[arg(long)]
    pub name: Option<String>,
}

/// Asks the node for an online backup and prints its manifest.
pub fn backup(args: BackupArgs) -> Result<(), Failure> {
    let runtime_ = crate::tools::tokio_runtime()?;
    let client = crate::tools::sdk_client(&args.gateway)?;
    let manifest = runtime_.block_on(client.backup(args.name.clone())).map_err(|e| match e {
        sdk::ClientError::Problem(p) => {
            runtime(format!("backup refused: {} (HTTP {}): {}", p.code, p.status, p.detail))
        }
        other => runtime(format!("cannot reach the node at {}: {other}", args.gateway)),
    })?;
    println!("{}", serde_json::to_string_pretty(&manifest).expect("manifest serializes"));
    Ok(())
}

/// `polyledger restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup directory (holding `manifest.json` and `db/`).
    #[arg(long)]
    pub from: PathBuf,
    /// The node's data directory to create (its `node.data` rocksdb path); must not
    /// exist, or be empty.
    #[arg(long)]
    pub data: PathBuf,
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Copies the backup beside the target, verifies every ledger of the manifest there
/// (height and hash as recorded, full replay from genesis), then renames it into place.
pub fn restore(args: RestoreArgs) -> Result<(), Failure> {
    let manifest_path = args.from.join(MANIFEST);
    let text = std::fs::read(&manifest_path).map_err(|e| {
        invalid(format!("{}: {e} (not a backup directory?)", manifest_path.display()))
    })?;
    let manifest: BackupManifest = serde_json::from_slice(&text)
        .map_err(|e| invalid(format!("{}: {e}", manifest_path.display())))?;
    let db = args.from.join(DB_DIR);
    if !db.join("CURRENT").is_file() {
        return Err(invalid(format!("{}: no RocksDB checkpoint", db.display())));
    }
    let occupied = args.data.exists()
        && std::fs::read_dir(&args.data).map(|mut d| d.next().is_some()).unwrap_or(true);
    if occupied {
        return Err(invalid(format!(
            "{} exists and is not empty; restore into a new directory",
            args.data.display()
        )));
    }
    let mut staging = args.data.clone().into_os_string();
    staging.push(".restoring");
    let staging = PathBuf::from(staging);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .map_err(|e| runtime(format!("removing {}: {e}", staging.display())))?;
    }
    let outcome = copy_dir(&db, &staging)
        .map_err(|e| runtime(format!("copying into {}: {e}", staging.display())))
        .and_then(|()| verify_restored(&staging, &manifest));
    let report = match outcome {
        Ok(report) => report,
        Err(failure) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(failure);
        }
    };
    if args.data.exists() {
        std::fs::remove_dir(&args.data)
            .map_err(|e| runtime(format!("{}: {e}", args.data.display())))?;
    }
    std::fs::rename(&staging, &args.data)
        .map_err(|e| runtime(format!("moving into {}: {e}", args.data.display())))?;
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "restored": args.data.display().to_string(),
            "from": args.from.display().to_string(),
            "ledgers": report,
        }))
        .expect("report serializes")
    );
    Ok(())
}

fn verify_restored(
    dir: &Path,
    manifest: &BackupManifest,
) -> Result<Vec<serde_json::Value>, Failure> {
    let store = RocksStore::open(dir).map_err(|e| runtime(e.to_string()))?;
    let mut report = Vec::new();
    for entry in &manifest.ledgers {
        let id = sdk::wire::parse_hash("id", &entry.id)
            .map(LedgerId)
            .map_err(|e| invalid(format!("manifest ledger {}: {}", entry.name, e.reason)))?;
        let head = Ledger::open(&store, id)
            .map_err(|e| unverified(format!("ledger {}: {e}", entry.name)))?
            .head();
        if head.height != entry.height || hex::encode(head.block_hash) != entry.block_hash {
            return Err(unverified(format!(
                "ledger {}: the backup holds height {} ({}), the manifest says {} ({})",
                entry.name,
                head.height,
                hex::encode(head.block_hash),
                entry.height,
                entry.block_hash
            )));
        }
        match verify_ledger(&store, id)
            .map_err(|e| runtime(format!("ledger {}: {e}", entry.name)))?
        {
            Verdict::Valid { height, transactions } => {
                eprintln!("{}: VALID — height {height}, {transactions} transactions", entry.name);
                report.push(serde_json::json!({"name": entry.name, "id": entry.id,
                    "height": height, "transactions": transactions, "valid": true}));
            }
            Verdict::Invalid { height, reason } => {
                return Err(unverified(format!(
                    "ledger {}: INVALID at height {height}: {reason}",
                    entry.name
                )));
            }
        }
    }
    Ok(report)
}

/// Which stream `watch` follows.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchStream {
    /// Committed blocks (position: height).
    Blocks,
    /// Events, filtered by the options (position: event number).
    Events,
    /// One topic: give --account and --topic (position: sequence).
    Topic,
    /// The system events (recalls) of every ledger on the node (--ledger is ignored).
    System,
}

/// `polyledger watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The ledger: its name or its id (hex); not needed for `system`.
    #[arg(long, default_value = "")]
    pub ledger: String,
    /// What to follow.
    #[arg(value_enum, default_value = "events")]
    pub stream: WatchStream,
    /// First position (default: what commits next). To resume, give the last position
    /// printed + 1.
    #[arg(long)]
    pub from: Option<u64>,
    /// Stop after this many messages (default: never).
    #[arg(long)]
    pub count: Option<u64>,
    /// Event account.
    #[arg(long)]
    pub account: Option<String>,
    /// Topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// EPCIS event type of JSON payloads (events only).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// EPCIS bizStep of JSON payloads (events only).
    #[arg(long = "biz-step")]
    pub biz_step: Option<String>,
    /// An EPC named by JSON payloads (events only).
    #[arg(long)]
    pub epc: Option<String>,
}

/// Prints each message as one JSON line; reconnects by itself.
pub fn watch(args: WatchArgs) -> Result<(), Failure> {
    if args.ledger.is_empty() && args.stream != WatchStream::System {
        return Err(invalid("--ledger is required (except for `watch system`)"));
    }
    let subscription = match args.stream {
        WatchStream::Blocks => Subscription::Blocks,
        WatchStream::Events => Subscription::Events(EventFilter {
            account: args.account.clone(),
            topic: args.topic.clone(),
            event_type: args.event_type.clone(),
            biz_step: args.biz_step.clone(),
            epc: args.epc.clone(),
        }),
        WatchStream::Topic => match (&args.account, &args.topic) {
            (Some(account), Some(topic)) => {
                Subscription::Topic { account: account.clone(), topic: topic.clone() }
            }
            _ => return Err(invalid("watch topic needs --account and --topic")),
        },
        WatchStream::System => Subscription::System,
    };
    let client = crate::tools::sdk_client(&args.gateway)?;
    let runtime_ = crate::tools::tokio_runtime()?;
    runtime_.block_on(async {
        let stream = client.subscribe(&args.ledger, subscription, args.from);
        futures::pin_mut!(stream);
        let mut printed = 0u64;
        while args.count.is_none_or(|count| printed < count) {
            match stream.next().await {
                Some(Ok(message)) => {
                    println!("{}", serde_json::to_string(&message).expect("messages serialize"));
                    printed += 1;
                }
                Some(Err(error)) => return Err(runtime(format!("subscription refused: {error}"))),
                None => break,
            }
        }
        Ok(())
    })
}

/// The node's backup maker for the gateway (`None` without a backup directory).
pub fn backup_target(
    config: &actors::config::NodeConfig,
    store: Arc<dyn KvStore>,
    ledgers: Vec<(String, LedgerId)>,
) -> Option<gateway::BackupTarget> {
    let dir = config.node.backup_dir.clone()?;
    let make = move |target: &Path| make_backup(store.as_ref(), &ledgers, target);
    Some(gateway::BackupTarget { dir, make: Arc::new(make) })
}
