//! `trace-fill`: fills a node's RocksDB data, offline, with capture-like EPCIS
//! transactions, for the trace benchmark (`perf/trace-10m.sh`).
//!
//! It reads the node's configuration, opens the store exactly as `polyledger node` does
//! (`RocksStore::open` on `node.data`), creates or opens every ledger of the config with
//! the settings the node computes (`LedgerSection::settings`: the ledger id is the
//! genesis hash, so the node opens what this wrote), registers event account `epcis`
//! with the capture key if it is missing, then appends blocks straight through the
//! engine (no consensus, no HTTP) until the ledger holds `--records` events.
//!
//! Every transaction is what `POST /epcis/capture` makes of one EPCIS ObjectEvent
//! naming one SGTIN (`gateway::capture`): signed by the capture key, nonce = the first 8
//! bytes of the event hash, timestamp = `eventTime`, one `PublishEvent` on account
//! `epcis`, topic = the code's canonical Digital Link, payload = the event's JSON.
//! Positions `0..records` are deterministic: most are a new SGTIN each (cold codes);
//! `--hot-codes` codes get exactly `--events-per-hot-code` events each, spread evenly
//! over the whole run (so each history lies in as many different blocks, across the key
//! space). The hot codes are written to `--hot-out`, one per line.
//!
//! Signing runs on `--threads` threads ahead of the engine; the engine executes and
//! commits one block at a time, and every transaction must come out `committed`. The
//! first block's signatures are verified by the engine; later blocks are passed as
//! verified (they were signed here, as the node does for blocks of transactions it
//! verified at submission) unless `--verify-signatures`. The first block's events and
//! every hot event also go through the capture's own validation (`validate_document`),
//! which must give the same code, time and event hash.
//!
//! A ledger that already has blocks is refused unless `--append`, which resumes at the
//! ledger's event count (for a run interrupted with the same `--records` and
//! `--hot-codes`; blocks are atomic, so nothing is written twice).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actors::config::{NodeConfig, StorageUri};
use clap::Parser;
use crypto_parallel::PrivateKey;
use engine::ledger::{EngineError, Ledger, SignatureCheck};
use engine::model::{
    Address, LedgerId, LedgerSettings, Operation, ResultCode, Transaction, TransactionContent,
};
use engine::store::KvStore as _;
use gateway::capture::EPCIS_ACCOUNT;
use serde_json::{Value, json};
use storage_rocksdb::RocksStore;

/// Same allocator as the node: execution allocates per transaction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Event time of position 0: 2025-01-01T00:00:00Z; position `i` is `i` seconds later.
const EPOCH_MS: i64 = 1_735_689_600_000;
/// Company prefix of every generated SGTIN.
const COMPANY: &str = "0614141";
/// Business steps a hot code goes through, in a cycle.
const STEPS: [&str; 8] = [
    "commissioning",
    "packing",
    "shipping",
    "receiving",
    "storing",
    "picking",
    "loading",
    "retail_selling",
];
/// Blocks signed ahead of the engine at most.
const SIGN_AHEAD_BLOCKS: u64 = 8;

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "trace-fill", about = "Fill a node's RocksDB ledger with capture-like events")]
struct Args {
    /// The node's TOML configuration (its `node.data` must be `rocksdb://`).
    #[arg(long)]
    config: PathBuf,
    /// The capture key (PKCS#8 PEM). Default: the config's
    /// `traceability.capture_key_file`.
    #[arg(long)]
    capture_key: Option<PathBuf>,
    /// The ledger to fill. Default: the config's first ledger.
    #[arg(long)]
    ledger: Option<String>,
    /// Events (one transaction each) the ledger holds at the end.
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// Codes with a long history.
    #[arg(long, default_value_t = 20)]
    hot_codes: u64,
    /// Events of each hot code, spread over the whole run.
    #[arg(long, default_value_t = 50)]
    events_per_hot_code: u64,
    /// Transactions per block (the node's default `block.max_txs` is 2000).
    #[arg(long, default_value_t = 2000)]
    block_txs: u64,
    /// Where to write the hot codes (canonical Digital Link), one per line.
    #[arg(long)]
    hot_out: PathBuf,
    /// Resume on a ledger that has blocks already (from its event count).
    #[arg(long)]
    append: bool,
    /// Have the engine verify every block's signatures (default: the first block only).
    #[arg(long)]
    verify_signatures: bool,
    /// Signing threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop (resumable with --append) when the data directory's file system has less
    /// free space than this many MiB.
    #[arg(long, default_value_t = 3072)]
    min_free_mib: u64,
    /// At the end, also count every record of the ledger by table (keys and values,
    /// uncompressed): a full scan, slow on big ledgers.
    #[arg(long)]
    table_sizes: bool,
    /// RocksDB block cache, MiB (the node's default: 256). A fill of many millions of
    /// new topics slows sharply once the index blocks outgrow the cache; the fill is
    /// offline tooling, so it may use more memory than the node does.
    #[arg(long, default_value_t = 256)]
    block_cache_mib: usize,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("trace-fill: {error}");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn read_key(path: &Path, password_file: Option<&Path>) -> Result<PrivateKey, String> {
    let password = sdk::vault::Password::from_file_or_env(password_file)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    sdk::vault::read_key(path, password.as_ref()).map_err(|e| format!("{}: {e}", path.display()))
}

/// What the node does at start: create the ledger, or open it when it exists.
fn open_or_create(
    store: &RocksStore,
    settings: LedgerSettings,
) -> Result<Ledger<&RocksStore>, EngineError> {
    match Ledger::create(store, settings) {
        Ok(ledger) => Ok(ledger),
        Err(EngineError::LedgerExists(id)) => {
            let bytes: [u8; 32] = hex::decode(&id)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| EngineError::InvalidInput("ledger id".into()))?;
            Ledger::open(store, LedgerId(bytes))
        }
        Err(error) => Err(error),
    }
}

/// Total size of the files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// RFC 3339 in UTC with milliseconds.
fn rfc3339(ms: i64) -> String {
    let (year, month, day, hour, minute, second) = sharding::epcis::civil_time(ms);
    let millis = ms.rem_euclid(1000);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

/// Which positions carry hot events, and the hot codes.
struct Plan {
    ledger_id: LedgerId,
    /// Position → (hot code, its event number).
    hot: HashMap<u64, (u64, u64)>,
    /// Hot codes as EPC URNs.
    hot_urns: Vec<String>,
}

impl Plan {
    fn new(ledger_id: LedgerId, records: u64, hot_codes: u64, per_code: u64) -> Plan {
        let total = hot_codes * per_code;
        let mut hot = HashMap::with_capacity(total as usize);
        for k in 0..total {
            // Evenly spaced over the run, codes interleaved: code k % H gets its
            // (k / H)-th event at the middle of slice k.
            let position = ((2 * k + 1) as u128 * records as u128 / (2 * total) as u128) as u64;
            hot.insert(position, (k % hot_codes, k / hot_codes));
        }
        let hot_urns = (0..hot_codes)
            .map(|h| format!("urn:epc:id:sgtin:{COMPANY}.107346.HOT{h:04}"))
            .collect();
        Plan { ledger_id, hot, hot_urns }
    }

    /// The event at `position`, its trace code (canonical) and whether it is hot.
    fn event(&self, position: u64) -> (Value, String, bool) {
        let time = rfc3339(EPOCH_MS + position as i64 * 1000);
        let (event, urn, hot) = match self.hot.get(&position) {
            Some(&(code, number)) => {
                let urn = self.hot_urns[code as usize].clone();
                let step = STEPS[(number as usize) % STEPS.len()];
                let event = json!({
                    "type": "ObjectEvent",
                    "action": if number == 0 { "ADD" } else { "OBSERVE" },
                    "bizStep": format!("urn:epcglobal:cbv:bizstep:{step}"),
                    "eventTime": time,
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": [urn],
                    "readPoint": {"id": format!("urn:epc:id:sgln:{COMPANY}.{:05}.0", number % 97)},
                });
                (event, urn, true)
            }
            None => {
                let urn =
                    format!("urn:epc:id:sgtin:{COMPANY}.{}.{position}", 100_000 + position % 1000);
                let event = json!({
                    "type": "ObjectEvent",
                    "action": "ADD",
                    "bizStep": "urn:epcglobal:cbv:bizstep:commissioning",
                    "eventTime": time,
                    "eventTimeZoneOffset": "+00:00",
                    "epcList": [urn],
                    "readPoint": {"id": format!("urn:epc:id:sgln:{COMPANY}.{:05}.0", position % 97)},
                });
                (event, urn, false)
            }
        };
        let code = sharding::gs1::canonicalize(&urn).expect("generated SGTINs are valid");
        (event, code, hot)
    }

    /// The capture transaction of the event at `position`, checked against the capture's
    /// validation when `check` (or when the event is hot).
    fn transaction(
        &self,
        position: u64,
        key: &PrivateKey,
        check: bool,
    ) -> Result<(Transaction, usize), String> {
        let (event, code, hot) = self.event(position);
        let hash = sharding::epcis::event_hash(&event);
        let time_ms = EPOCH_MS + position as i64 * 1000;
        if check || hot {
            same_as_capture(&event, &code, &hash, time_ms)
                .map_err(|e| format!("position {position}: {e}"))?;
        }
        let payload = serde_json::to_vec(&event).expect("JSON values serialise");
        let payload_len = payload.len();
        let content = TransactionContent {
            ledger_id: self.ledger_id,
            nonce: u64::from_be_bytes(hash[..8].try_into().expect("8 bytes")),
            timestamp_ms: time_ms as u64,
            operations: vec![Operation::PublishEvent {
                account: EPCIS_ACCOUNT.into(),
                topic: code,
                payload,
            }],
        };
        Ok((Transaction::sign(content, &[key])?, payload_len))
    }
}

/// The capture's validation of `event`, in a one-event document, must give this code,
/// time and hash.
fn same_as_capture(event: &Value, code: &str, hash: &[u8; 32], time_ms: i64) -> Result<(), String> {
    let document = json!({
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2025-01-01T00:00:00Z",
        "epcisBody": {"eventList": [event]},
    });
    let captured = sharding::epcis::validate_document(&document)
        .map_err(|errors| format!("capture would refuse the event: {errors:?}"))?;
    let [captured] = captured.as_slice() else {
        return Err("capture sees other than one event".into());
    };
    if captured.codes != [code.to_owned()] || captured.event_time_ms != time_ms {
        return Err(format!(
            "capture reads codes {:?} at {} ms; generated {code} at {time_ms} ms",
            captured.codes, captured.event_time_ms
        ));
    }
    if &captured.hash != hash {
        return Err("capture computes another event hash".into());
    }
    Ok(())
}

/// Registers event account `epcis` with `key` when missing; refuses another owner.
fn ensure_event_account(
    ledger: &mut Ledger<&RocksStore>,
    key: &PrivateKey,
    proposer: Address,
) -> Result<(), String> {
    let algorithm = ledger.hash_algorithm();
    let capture = Address::of(algorithm, &key.public_key());
    match ledger.event_account_owner(EPCIS_ACCOUNT).map_err(|e| e.to_string())? {
        Some(owner) if owner == capture => return Ok(()),
        Some(owner) => {
            return Err(format!(
                "event account `{EPCIS_ACCOUNT}` is owned by {}, not the capture key",
                hex::encode(owner.0)
            ));
        }
        None => {}
    }
    let content = TransactionContent {
        ledger_id: ledger.id(),
        nonce: rand::random(),
        timestamp_ms: now_ms(),
        operations: vec![Operation::RegisterEventAccount { name: EPCIS_ACCOUNT.into() }],
    };
    let tx = Transaction::sign(content, &[key])?;
    let block = ledger
        .append_block(vec![tx], SignatureCheck::Verify, now_ms(), proposer)
        .map_err(|e| format!("registering `{EPCIS_ACCOUNT}`: {e}"))?;
    match block.transactions.first().map(|(_, result)| *result) {
        Some(ResultCode::Committed) => Ok(()),
        other => Err(format!("registering `{EPCIS_ACCOUNT}`: {other:?}")),
    }
}

/// Records and bytes (keys + values, uncompressed) of each table of `id`.
fn table_sizes(store: &RocksStore, id: &LedgerId) -> Result<Value, String> {
    use engine::layout::Table;
    use engine::store::{Direction, prefix_end};
    let tables = [
        ("meta", Table::Meta),
        ("block", Table::Block),
        ("block_by_hash", Table::BlockByHash),
        ("tx", Table::Tx),
        ("state_node", Table::StateNode),
        ("consensus", Table::Consensus),
        ("event", Table::Event),
        ("event_topic", Table::EventTopic),
    ];
    let mut out = serde_json::Map::new();
    for (name, table) in tables {
        let prefix = engine::layout::table_prefix(id, table);
        let end = prefix_end(&prefix).expect("prefix starts with a ledger id");
        let (mut start, mut records, mut bytes) = (prefix.clone(), 0u64, 0u64);
        loop {
            let page =
                store.scan(&start, &end, Direction::Forward, 10_000).map_err(|e| e.to_string())?;
            let Some((last, _)) = page.last() else { break };
            start = last.clone();
            start.push(0);
            records += page.len() as u64;
            bytes += page.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        }
        out.insert(name.into(), json!({"records": records, "bytes": bytes}));
    }
    Ok(Value::Object(out))
}

/// Where the engine thread's time went.
#[derive(Default)]
struct Times {
    /// Waiting for the next signed block.
    wait: Duration,
    /// `Ledger::execute_block` (signature check of the first block included).
    execute: Duration,
    /// `Ledger::commit`: the RocksDB write (WAL fsync included).
    commit: Duration,
}

/// One signed block: its first position, transactions, payload bytes.
type Signed = (u64, Result<(Vec<Transaction>, u64), String>);

fn run(args: &Args) -> Result<(), String> {
    let config =
        NodeConfig::load(&args.config).map_err(|e| format!("{}: {e}", args.config.display()))?;
    let StorageUri::RocksDb(data) = &config.node.data else {
        return Err(format!("{}: node.data must be rocksdb://", args.config.display()));
    };
    let node_key = read_key(&config.node.key_file, config.node.key_password_file.as_deref())?;
    let capture_path = match (&args.capture_key, &config.traceability) {
        (Some(path), _) => path.clone(),
        (None, Some(section)) => section.capture_key_file.clone(),
        (None, None) => return Err("no --capture-key and no [traceability] in the config".into()),
    };
    let capture_key = read_key(&capture_path, config.node.key_password_file.as_deref())?;
    let total_hot = args.hot_codes * args.events_per_hot_code;
    if args.records < 2 * total_hot.max(1) {
        return Err(format!("--records must be at least twice the hot events ({total_hot})"));
    }
    if !(1..=engine::limits::BLOCK_TXS_MAX as u64).contains(&args.block_txs) {
        return Err(format!("--block-txs: 1 to {}", engine::limits::BLOCK_TXS_MAX));
    }
    let own = node_key.public_key();
    let target = args.ledger.clone().unwrap_or_else(|| config.ledgers[0].name.clone());

    // The store as the node opens it (cli/src/node.rs `open_store`), with the cache asked.
    std::fs::create_dir_all(data).map_err(|e| format!("{}: {e}", data.display()))?;
    let options = storage_rocksdb::RocksOptions {
        block_cache_bytes: args.block_cache_mib << 20,
        ..Default::default()
    };
    let store =
        RocksStore::open_with(data, &options).map_err(|e| format!("{}: {e}", data.display()))?;
    let mut found = None;
    for section in &config.ledgers {
        let settings = section.settings(&config, &own).map_err(|e| e.to_string())?;
        let ledger = open_or_create(&store, settings)
            .map_err(|e| format!("ledger {}: {e}", section.name))?;
        if section.name == target {
            found = Some(ledger);
        }
    }
    let mut ledger = found.ok_or_else(|| format!("no ledger `{target}` in the config"))?;
    let settings = ledger.settings().clone();
    let algorithm = settings.hash_algorithm;
    let proposer = Address::of(algorithm, &own);
    let capture_public = capture_key.public_key();
    if !settings.signature_algorithms.contains(&capture_public.algorithm()) {
        return Err(format!(
            "ledger {target} does not accept {} signatures (its `signatures`: {:?})",
            capture_public.algorithm(),
            settings.signature_algorithms
        ));
    }
    if !ledger.user_exists(&Address::of(algorithm, &capture_public)).map_err(|e| e.to_string())? {
        return Err(format!(
            "the capture key {} is not a user of ledger {target}: add it to its `admins`",
            capture_public.to_base58()
        ));
    }
    if ledger.head().height > 0 && !args.append {
        return Err(format!(
            "ledger {target} has {} blocks already; --append to resume, or start from an \
             empty data directory",
            ledger.head().height
        ));
    }
    ensure_event_account(&mut ledger, &capture_key, proposer)?;
    let start = ledger.event_count().map_err(|e| e.to_string())?;
    if start > args.records {
        return Err(format!("ledger {target} holds {start} events already, over --records"));
    }

    let plan = Plan::new(ledger.id(), args.records, args.hot_codes, args.events_per_hot_code);
    let mut hot_file = std::fs::File::create(&args.hot_out)
        .map_err(|e| format!("{}: {e}", args.hot_out.display()))?;
    for urn in &plan.hot_urns {
        let code = sharding::gs1::canonicalize(urn).map_err(|e| e.to_string())?;
        writeln!(hot_file, "{code}").map_err(|e| e.to_string())?;
    }
    drop(hot_file);
    eprintln!(
        "trace-fill: ledger {target} ({}), {start} events already, filling to {} in blocks of \
         {} ({} hot codes x {} events)",
        hex::encode(ledger.id().0),
        args.records,
        args.block_txs,
        args.hot_codes,
        args.events_per_hot_code
    );

    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let blocks = (args.records - start).div_ceil(args.block_txs);
    let next_block = AtomicU64::new(0);
    let committed_blocks = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut payload_bytes = 0u64;
    let mut times = Times::default();
    let mut last_timestamp = ledger
        .block(ledger.head().height)
        .map_err(|e| e.to_string())?
        .map_or(0, |block| block.header.timestamp_ms);

    let outcome: Result<(), String> = std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<Signed>(threads * 2);
        for _ in 0..threads {
            let sender = sender.clone();
            let (plan, key, next, done, stop) =
                (&plan, &capture_key, &next_block, &committed_blocks, &stop);
            scope.spawn(move || {
                loop {
                    let block = next.fetch_add(1, Ordering::Relaxed);
                    if block >= blocks {
                        return;
                    }
                    while block >= done.load(Ordering::Acquire) + SIGN_AHEAD_BLOCKS {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let from = start + block * args.block_txs;
                    let until = (from + args.block_txs).min(args.records);
                    let mut bytes = 0u64;
                    let signed = (from..until)
                        .map(|position| {
                            let (tx, len) = plan.transaction(position, key, block == 0)?;
                            bytes += len as u64;
                            Ok(tx)
                        })
                        .collect::<Result<Vec<_>, String>>()
                        .map(|txs| (txs, bytes));
                    if sender.send((block, signed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(sender);

        let mut waiting: HashMap<u64, Result<(Vec<Transaction>, u64), String>> = HashMap::new();
        let mut last_report = Instant::now();
        let mut reported_records = start;
        let result = (|| {
            for block in 0..blocks {
                let waited = Instant::now();
                let signed = loop {
                    if let Some(signed) = waiting.remove(&block) {
                        break signed;
                    }
                    let (number, signed) =
                        receiver.recv().map_err(|_| "the signing threads stopped".to_owned())?;
                    waiting.insert(number, signed);
                };
                times.wait += waited.elapsed();
                let (transactions, bytes) = signed?;
                payload_bytes += bytes;
                let count = transactions.len();
                let check = if block == 0 || args.verify_signatures {
                    SignatureCheck::Verify
                } else {
                    SignatureCheck::Verified(vec![true; count])
                };
                let timestamp = now_ms().max(last_timestamp);
                let executing = Instant::now();
                let executed = ledger
                    .execute_block(transactions, check, timestamp, proposer)
                    .map_err(|e| format!("block {}: {e}", ledger.head().height + 1))?;
                if let Some((index, (hash, result))) = executed
                    .block
                    .transactions
                    .iter()
                    .enumerate()
                    .find(|(_, (_, result))| *result != ResultCode::Committed)
                {
                    return Err(format!(
                        "block {}: transaction {index} ({}) came out {}, not committed",
                        executed.block.header.height,
                        hex::encode(hash),
                        result.name()
                    ));
                }
                if block % 16 == 0
                    && let Some(free) = store.stats().disk_available_bytes
                    && free < args.min_free_mib << 20
                {
                    return Err(format!(
                        "stopping at {} events: {} MiB free on the data's file system, under \
                         --min-free-mib {} (resume with --append)",
                        start + block * args.block_txs,
                        free >> 20,
                        args.min_free_mib
                    ));
                }
                let committing = Instant::now();
                times.execute += committing - executing;
                ledger.commit(executed).map_err(|e| e.to_string())?;
                times.commit += committing.elapsed();
                last_timestamp = timestamp;
                committed_blocks.store(block + 1, Ordering::Release);
                let records = start + (block + 1) * args.block_txs;
                if last_report.elapsed() >= Duration::from_secs(10) || block + 1 == blocks {
                    let records = records.min(args.records);
                    let elapsed = started.elapsed().as_secs_f64();
                    let recent =
                        (records - reported_records) as f64 / last_report.elapsed().as_secs_f64();
                    let rate = (records - start) as f64 / elapsed;
                    let eta = (args.records - records) as f64 / rate.max(1.0);
                    eprintln!(
                        "trace-fill: {records} / {} events, height {}, {elapsed:.0} s, \
                         {rate:.0} events/s overall, {recent:.0} recent, ~{eta:.0} s left \
                         (so far: waiting for signers {:.0} s, executing {:.0} s, \
                         committing {:.0} s)",
                        args.records,
                        ledger.head().height,
                        times.wait.as_secs_f64(),
                        times.execute.as_secs_f64(),
                        times.commit.as_secs_f64(),
                    );
                    last_report = Instant::now();
                    reported_records = records;
                }
            }
            Ok(())
        })();
        if result.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        drop(receiver);
        result
    });
    outcome?;
    let fill_seconds = started.elapsed().as_secs_f64();

    store.flush().map_err(|e| e.to_string())?;
    let events = ledger.event_count().map_err(|e| e.to_string())?;
    if events != args.records {
        return Err(format!("the ledger holds {events} events, not {}", args.records));
    }
    let head = ledger.head();
    let tables = if args.table_sizes { table_sizes(&store, &ledger.id())? } else { Value::Null };
    let summary = json!({
        "ledger": target,
        "ledger_id": hex::encode(ledger.id().0),
        "records": events,
        "height": head.height,
        "added": events - start,
        "block_txs": args.block_txs,
        "hot_codes": args.hot_codes,
        "events_per_hot_code": args.events_per_hot_code,
        "fill_seconds": fill_seconds,
        "records_per_s": (events - start) as f64 / fill_seconds,
        "wait_for_signers_s": times.wait.as_secs_f64(),
        "execute_s": times.execute.as_secs_f64(),
        "commit_s": times.commit.as_secs_f64(),
        "avg_payload_bytes": payload_bytes as f64 / (events - start).max(1) as f64,
        "data_bytes": dir_bytes(data),
        "sst_bytes": store.sst_files_bytes(),
        "hash": algorithm.to_string(),
        "capture_key": capture_public.algorithm().to_string(),
        "hot_out": args.hot_out.display().to_string(),
        "tables": tables,
    });
    println!("{summary}");
    Ok(())
}
