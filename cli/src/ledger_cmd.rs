//! `polyledger ledger verify | export | import`: a node's ledgers on disk, with the node
//! stopped (RocksDB admits one process; a running node holds the lock).
//!
//! - `verify` replays each ledger from genesis (`engine::verify::verify_ledger`).
//! - `export` writes one ledger as a portable file: its settings and, for every block,
//!   the header, the transactions as signed and their results (layout below).
//! - `import` rebuilds a ledger from such a file in a fresh RocksDB directory by
//!   executing every block again, so a file that was altered is refused at the first
//!   block that no longer reproduces its header byte for byte.
//!
//! Export file layout (integers big-endian, `bytes32` = u32 length then the bytes, as in
//! `docs/FORMAT.md` §5):
//!
//! ```text
//! magic        [15] = "PLEDGER-EXPORT" 0x00
//! version      u8   = 1
//! settings     bytes32 (LedgerSettings bytes, §7)
//! ledger_id    [32]    (hash of the genesis header those settings produce)
//! head_height  u64     (number of blocks that follow)
//! block × head_height, heights 1, 2, … in order:
//!     header   [177]   (BlockHeader bytes, §7)
//!     count    u32     (1..=20000)
//!     (transaction bytes32 (Transaction bytes, §6) | result u8) × count
//! trailer:
//!     head_height u64 | head block hash [32] | head state root [32]
//! (end of file)
//! ```

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use actors::config::StorageUri;
use clap::{Args, Subcommand};
use engine::ledger::{Head, Ledger, SignatureCheck};
use engine::limits::{BLOCK_TXS_MAX, TX_ENCODED_LEN_MAX};
use engine::model::{BlockHeader, LedgerId, LedgerSettings, ResultCode, Transaction};
use engine::store::{Direction, KvStore, MemoryStore, prefix_end};
use engine::verify::{Verdict, verify_ledger};
use serde_json::json;
use storage_rocksdb::RocksStore;

use crate::{Failure, invalid, runtime, unverified};

/// First bytes of an export file.
const MAGIC: &[u8; 15] = b"PLEDGER-EXPORT\0";
/// Version of the export layout.
const VERSION: u8 = 1;
/// Bound on the settings record (a few KiB in practice).
const SETTINGS_LEN_MAX: usize = 1 << 20;

/// `polyledger ledger …`.
#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Replay ledgers from genesis and check every block, result, state root and stored
    /// record; exit 4 if any ledger does not verify.
    Verify {
        /// Where the ledgers are.
        #[command(flatten)]
        source: Source,
        /// Only this ledger (name or hex id). Default: every ledger of the config (or,
        /// with --data, every ledger in the directory).
        #[arg(long)]
        ledger: Option<String>,
        /// Print a JSON array, one object per ledger.
        #[arg(long)]
        json: bool,
    },
    /// Write one ledger to a portable file (settings, then every block with its
    /// transactions and results).
    Export {
        /// Where the ledger is.
        #[command(flatten)]
        source: Source,
        /// The ledger (name or hex id).
        #[arg(long)]
        ledger: String,
        /// The file to write; refuses to overwrite an existing file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rebuild a ledger from an export file into a fresh RocksDB directory, executing
    /// every block again; exit 4 at the first block that does not reproduce.
    Import {
        /// The export file.
        #[arg(long)]
        file: PathBuf,
        /// The new RocksDB directory (created; must be absent or empty).
        #[arg(long)]
        data: PathBuf,
    },
}

/// Where to find the ledgers: a node's configuration or a RocksDB directory.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// The node's configuration (its `node.data` RocksDB and its `[[ledgers]]`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A RocksDB data directory (a node's, or one written by `ledger import`).
    #[arg(long)]
    pub data: Option<PathBuf>,
}

/// Runs `polyledger ledger …`.
pub fn run(command: LedgerCommand) -> Result<(), Failure> {
    match command {
        LedgerCommand::Verify { source, ledger, json } => verify(&source, ledger.as_deref(), json),
        LedgerCommand::Export { source, ledger, out } => export(&source, &ledger, &out),
        LedgerCommand::Import { file, data } => import(&file, &data),
    }
}

/// A ledger to work on: its name (from the config or the stored settings) and id.
struct Named {
    name: String,
    id: LedgerId,
}

fn hex_id(id: &LedgerId) -> String {
    hex::encode(id.0)
}

/// The ledger id `settings` produce (the hash of their genesis header).
fn ledger_id_of(settings: &LedgerSettings) -> Result<LedgerId, String> {
    Ledger::create(MemoryStore::new(), settings.clone())
        .map(|ledger| ledger.id())
        .map_err(|e| e.to_string())
}

/// Opens an existing RocksDB directory; the error says so when a node holds it.
fn open_existing(dir: &Path) -> Result<RocksStore, Failure> {
    if !dir.join("CURRENT").is_file() {
        return Err(invalid(format!("{}: not a RocksDB data directory", dir.display())));
    }
    RocksStore::open(dir).map_err(|e| {
        let text = e.to_string();
        if text.to_ascii_lowercase().contains("lock") {
            runtime(format!(
                "{}: the data directory is locked by another process; is the node still \
                 running? Stop it first (`ledger` commands need the directory to themselves). \
                 ({text})",
                dir.display()
            ))
        } else {
            runtime(text)
        }
    })
}

/// Every ledger in a store: walks the key space one ledger range at a time (each ledger's
/// keys start with its 32-byte id) and keeps the ranges that have a head record.
fn discover(store: &RocksStore) -> Result<Vec<LedgerId>, Failure> {
    let failed = |e: engine::store::StoreError| runtime(format!("reading the store: {e}"));
    let end = [0xff_u8; 64];
    let mut start: Vec<u8> = Vec::new();
    let mut found = Vec::new();
    loop {
        let page = store.scan(&start, &end, Direction::Forward, 1).map_err(failed)?;
        let Some((key, _)) = page.into_iter().next() else { break };
        let Some(id) = key.get(..32).and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) else {
            start = key;
            start.push(0);
            continue;
        };
        let id = LedgerId(id);
        if store.get(&engine::layout::meta_key(&id, "head")).map_err(failed)?.is_some() {
            found.push(id);
        }
        match prefix_end(&id.0) {
            Some(next) => start = next,
            None => break,
        }
    }
    Ok(found)
}

/// The store and the ledgers `source` names, filtered by `wanted` (name or hex id).
fn open_source(source: &Source, wanted: Option<&str>) -> Result<(RocksStore, Vec<Named>), Failure> {
    let (store, ledgers) = match (&source.config, &source.data) {
        (Some(config_path), _) => {
            let (config, key) = crate::node::load(config_path)?;
            let dir = match &config.node.data {
                StorageUri::RocksDb(dir) => dir.clone(),
                other => {
                    return Err(invalid(format!(
                        "{}: node.data is {other}; `ledger` commands read rocksdb:// data",
                        config_path.display()
                    )));
                }
            };
            let own = key.public_key();
            let mut ledgers = Vec::new();
            for section in &config.ledgers {
                let settings = section
                    .settings(&config, &own)
                    .map_err(|e| invalid(format!("{}: {e}", config_path.display())))?;
                let id = ledger_id_of(&settings).map_err(|e| {
                    invalid(format!("{}: ledger {}: {e}", config_path.display(), section.name))
                })?;
                ledgers.push(Named { name: section.name.clone(), id });
            }
            (open_existing(&dir)?, ledgers)
        }
        (None, Some(dir)) => {
            let store = open_existing(dir)?;
            let mut ledgers = Vec::new();
            for id in discover(&store)? {
                let ledger = Ledger::open(&store, id)
                    .map_err(|e| runtime(format!("ledger {}: {e}", hex_id(&id))))?;
                ledgers.push(Named { name: ledger.settings().name.clone(), id });
            }
            (store, ledgers)
        }
        (None, None) => return Err(invalid("give --config NODE.toml or --data DIR")),
    };
    let ledgers = match wanted {
        None => ledgers,
        Some(wanted) => {
            let lower = wanted.trim_start_matches("0x").to_ascii_lowercase();
            let names: Vec<String> = ledgers.iter().map(|l| l.name.clone()).collect();
            let chosen: Vec<Named> = ledgers
                .into_iter()
                .filter(|l| l.name == wanted || hex_id(&l.id) == lower)
                .collect();
            if chosen.is_empty() {
                return Err(invalid(format!(
                    "--ledger `{wanted}`: no such ledger (there are: {})",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                )));
            }
            chosen
        }
    };
    Ok((store, ledgers))
}

// ---------------------------------------------------------------------------------------
// verify

fn verify(source: &Source, wanted: Option<&str>, json: bool) -> Result<(), Failure> {
    let (store, ledgers) = open_source(source, wanted)?;
    if ledgers.is_empty() {
        return Err(invalid("no ledgers to verify"));
    }
    let mut reports = Vec::new();
    let (mut invalid_count, mut missing) = (0, 0);
    for ledger in &ledgers {
        let id = hex_id(&ledger.id);
        let head = match Ledger::open(&store, ledger.id) {
            Ok(opened) => opened.head(),
            Err(engine::ledger::EngineError::UnknownLedger(_)) => {
                missing += 1;
                if !json {
                    println!("{} ({id}): MISSING — not in this data directory", ledger.name);
                }
                reports.push(json!({"name": ledger.name, "id": id, "valid": false,
                    "missing": true, "reason": "not in this data directory"}));
                continue;
            }
            Err(error) => return Err(runtime(format!("ledger {}: {error}", ledger.name))),
        };
        let verdict = verify_ledger(&store, ledger.id)
            .map_err(|e| runtime(format!("ledger {}: {e}", ledger.name)))?;
        match verdict {
            Verdict::Valid { height, transactions } => {
                if !json {
                    println!(
                        "{} ({id}): VALID — height {height}, {transactions} transactions; \
                         block hash {}, state root {}",
                        ledger.name,
                        hex::encode(head.block_hash),
                        hex::encode(head.state_root)
                    );
                }
                reports.push(json!({"name": ledger.name, "id": id, "valid": true,
                    "height": height, "transactions": transactions,
                    "block_hash": hex::encode(head.block_hash),
                    "state_root": hex::encode(head.state_root)}));
            }
            Verdict::Invalid { height, reason } => {
                invalid_count += 1;
                if !json {
                    println!("{} ({id}): INVALID at height {height}: {reason}", ledger.name);
                }
                reports.push(json!({"name": ledger.name, "id": id, "valid": false,
                    "height": height, "reason": reason}));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports).expect("serializable"));
    }
    if invalid_count > 0 {
        return Err(unverified(format!(
            "{invalid_count} of {} ledgers do not verify",
            ledgers.len()
        )));
    }
    if missing > 0 {
        return Err(runtime(format!(
            "{missing} of {} configured ledgers are not in the data directory (the node \
             never created them)",
            ledgers.len()
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// export

fn export(source: &Source, wanted: &str, out: &Path) -> Result<(), Failure> {
    let (store, ledgers) = open_source(source, Some(wanted))?;
    let [named] = <[Named; 1]>::try_from(ledgers)
        .map_err(|_| invalid(format!("--ledger `{wanted}` names more than one ledger")))?;
    let ledger = Ledger::open(&store, named.id).map_err(|e| match e {
        engine::ledger::EngineError::UnknownLedger(_) => {
            runtime(format!("ledger {} is not in the data directory", named.name))
        }
        other => runtime(format!("ledger {}: {other}", named.name)),
    })?;
    let head = ledger.head();
    let file =
        std::fs::OpenOptions::new().write(true).create_new(true).open(out).map_err(|e| match e
            .kind()
        {
            std::io::ErrorKind::AlreadyExists => {
                invalid(format!("{} exists; not overwriting it", out.display()))
            }
            _ => runtime(format!("{}: {e}", out.display())),
        })?;
    let write_failed = |e: std::io::Error| runtime(format!("writing {}: {e}", out.display()));
    let mut writer = BufWriter::new(file);
    let settings = ledger.settings().encode();
    let mut prefix = Vec::with_capacity(64 + settings.len());
    prefix.extend_from_slice(MAGIC);
    prefix.push(VERSION);
    prefix.extend_from_slice(&(settings.len() as u32).to_be_bytes());
    prefix.extend_from_slice(&settings);
    prefix.extend_from_slice(&named.id.0);
    prefix.extend_from_slice(&head.height.to_be_bytes());
    writer.write_all(&prefix).map_err(write_failed)?;
    let mut transactions = 0u64;
    for height in 1..=head.height {
        let (block, bodies) = ledger
            .block_with_bodies(height)
            .map_err(|e| runtime(format!("reading block {height}: {e}")))?
            .ok_or_else(|| runtime(format!("block {height} missing from the store")))?;
        let mut record = Vec::with_capacity(BlockHeader::ENCODED_LEN + 4 + 400 * bodies.len());
        record.extend_from_slice(&block.header.encode());
        record.extend_from_slice(&(bodies.len() as u32).to_be_bytes());
        for (body, (_, result)) in bodies.iter().zip(&block.transactions) {
            let bytes = body.encode();
            record.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            record.extend_from_slice(&bytes);
            record.push(*result as u8);
        }
        writer.write_all(&record).map_err(write_failed)?;
        transactions += bodies.len() as u64;
    }
    let mut trailer = Vec::with_capacity(72);
    trailer.extend_from_slice(&head.height.to_be_bytes());
    trailer.extend_from_slice(&head.block_hash);
    trailer.extend_from_slice(&head.state_root);
    writer.write_all(&trailer).map_err(write_failed)?;
    let file = writer.into_inner().map_err(|e| write_failed(e.into_error()))?;
    file.sync_all().map_err(write_failed)?;
    println!(
        "exported {} ({}): height {}, {transactions} transactions, block hash {}, state root {} \
         → {}",
        named.name,
        hex_id(&named.id),
        head.height,
        hex::encode(head.block_hash),
        hex::encode(head.state_root),
        out.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// import

/// Reads an export file: fixed-width fields with bounded lengths.
struct Input {
    reader: BufReader<std::fs::File>,
}

impl Input {
    fn exact(&mut self, len: usize, what: &str) -> Result<Vec<u8>, String> {
        let mut bytes = vec![0u8; len];
        self.reader.read_exact(&mut bytes).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => format!("the file ends inside {what}"),
            _ => format!("reading {what}: {e}"),
        })?;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        Ok(self.exact(N, what)?.try_into().expect("exact length"))
    }

    fn u8(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn bytes32(&mut self, max: usize, what: &str) -> Result<Vec<u8>, String> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(format!("{what} length {len} exceeds {max}"));
        }
        self.exact(len, what)
    }

    fn at_end(&mut self) -> Result<bool, String> {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(format!("reading the file: {e}")),
        }
    }
}

/// One block as the file records it.
struct FileBlock {
    header_bytes: Vec<u8>,
    header: BlockHeader,
    transactions: Vec<Transaction>,
    results: Vec<ResultCode>,
}

fn read_block(input: &mut Input) -> Result<FileBlock, String> {
    let header_bytes = input.exact(BlockHeader::ENCODED_LEN, "the block header")?;
    let header = BlockHeader::decode(&header_bytes).map_err(|e| format!("block header: {e}"))?;
    let count = input.u32("the transaction count")? as usize;
    if count == 0 || count > BLOCK_TXS_MAX {
        return Err(format!("{count} transactions; a block has 1 to {BLOCK_TXS_MAX}"));
    }
    let mut transactions = Vec::with_capacity(count.min(1024));
    let mut results = Vec::with_capacity(count.min(1024));
    for index in 0..count {
        let what = format!("transaction {index}");
        let bytes = input.bytes32(TX_ENCODED_LEN_MAX, &what)?;
        let transaction = Transaction::decode(&bytes).map_err(|e| format!("{what}: {e}"))?;
        let code = input.u8(&format!("the result of transaction {index}"))?;
        let result =
            ResultCode::from_u8(code).map_err(|e| format!("result of transaction {index}: {e}"))?;
        transactions.push(transaction);
        results.push(result);
    }
    Ok(FileBlock { header_bytes, header, transactions, results })
}

fn header_difference(recomputed: &BlockHeader, recorded: &BlockHeader) -> String {
    format!(
        "the recomputed header differs from the file's in: {}",
        engine::verify::header_differences(recomputed, recorded).join(", ")
    )
}

fn import(file: &Path, data: &Path) -> Result<(), Failure> {
    let opened =
        std::fs::File::open(file).map_err(|e| invalid(format!("{}: {e}", file.display())))?;
    let mut input = Input { reader: BufReader::with_capacity(1 << 20, opened) };
    let not_export = |reason: String| {
        invalid(format!("{}: not a polyledger export file ({reason})", file.display()))
    };
    let magic = input.exact(MAGIC.len(), "the magic").map_err(not_export)?;
    if magic != MAGIC {
        return Err(not_export("wrong magic".into()));
    }
    let version = input.u8("the version").map_err(not_export)?;
    if version != VERSION {
        return Err(invalid(format!(
            "{}: export format version {version}; this build reads version {VERSION}",
            file.display()
        )));
    }
    let genesis_failed = |reason: String| unverified(format!("genesis (height 0): {reason}"));
    let settings_bytes = input.bytes32(SETTINGS_LEN_MAX, "the settings").map_err(genesis_failed)?;
    let settings = LedgerSettings::decode(&settings_bytes)
        .map_err(|e| genesis_failed(format!("settings: {e}")))?;
    let recorded_id = LedgerId(input.array("the ledger id").map_err(genesis_failed)?);
    let id = ledger_id_of(&settings).map_err(|e| genesis_failed(format!("settings: {e}")))?;
    if id != recorded_id {
        return Err(genesis_failed(format!(
            "the settings produce ledger id {}, the file claims {}",
            hex_id(&id),
            hex_id(&recorded_id)
        )));
    }
    let head_height = input.u64("the head height").map_err(genesis_failed)?;

    // Only now touch the destination.
    if data.exists() {
        let mut entries = std::fs::read_dir(data)
            .map_err(|e| invalid(format!("--data {}: {e}", data.display())))?;
        if entries.next().is_some() {
            return Err(invalid(format!(
                "--data {}: not empty; import writes a fresh directory",
                data.display()
            )));
        }
    }
    std::fs::create_dir_all(data).map_err(|e| runtime(format!("{}: {e}", data.display())))?;
    let store = RocksStore::open(data).map_err(|e| runtime(e.to_string()))?;
    let mut ledger = Ledger::create(&store, settings)
        .map_err(|e| runtime(format!("creating the ledger: {e}")))?;
    let name = ledger.settings().name.clone();
    let mut transactions = 0u64;
    for height in 1..=head_height {
        let block_failed = |reason: String| {
            unverified(format!(
                "block at height {height}: {reason}; nothing of it was imported: {} holds \
                 the ledger up to height {} (verified); delete the directory",
                data.display(),
                height - 1
            ))
        };
        let block = read_block(&mut input).map_err(block_failed)?;
        if block.header.height != height {
            return Err(block_failed(format!("the header says height {}", block.header.height)));
        }
        let count = block.transactions.len() as u64;
        let executed = ledger
            .execute_block(
                block.transactions,
                SignatureCheck::Verify,
                block.header.timestamp_ms,
                block.header.proposer,
            )
            .map_err(|e| block_failed(format!("executing it: {e}")))?;
        for (index, ((_, recomputed), recorded)) in
            executed.block.transactions.iter().zip(&block.results).enumerate()
        {
            if recomputed != recorded {
                return Err(block_failed(format!(
                    "transaction {index}: the file records result {}, executing it gives {}",
                    recorded.name(),
                    recomputed.name()
                )));
            }
        }
        if executed.block.header.encode() != block.header_bytes {
            return Err(block_failed(header_difference(&executed.block.header, &block.header)));
        }
        ledger.commit(executed).map_err(|e| runtime(format!("block at height {height}: {e}")))?;
        transactions += count;
    }
    let head = ledger.head();
    let trailer_failed = |reason: String| {
        unverified(format!(
            "trailer: {reason}; {} holds the ledger up to height {} (verified)",
            data.display(),
            head.height
        ))
    };
    let trailer_height = input.u64("the trailer").map_err(trailer_failed)?;
    let trailer_hash: [u8; 32] = input.array("the trailer").map_err(trailer_failed)?;
    let trailer_root: [u8; 32] = input.array("the trailer").map_err(trailer_failed)?;
    let expected =
        Head { height: trailer_height, block_hash: trailer_hash, state_root: trailer_root };
    if expected != head {
        return Err(trailer_failed(format!(
            "it records head height {trailer_height}, block hash {}, state root {}; the \
             imported ledger ends at height {}, block hash {}, state root {}",
            hex::encode(trailer_hash),
            hex::encode(trailer_root),
            head.height,
            hex::encode(head.block_hash),
            hex::encode(head.state_root)
        )));
    }
    if !input.at_end().map_err(trailer_failed)? {
        return Err(trailer_failed("bytes after the trailer".into()));
    }
    store.flush().map_err(|e| runtime(e.to_string()))?;
    println!(
        "imported {name} ({}): height {}, {transactions} transactions; block hash {}, state \
         root {} → {}",
        hex_id(&id),
        head.height,
        hex::encode(head.block_hash),
        hex::encode(head.state_root),
        data.display()
    );
    Ok(())
}
