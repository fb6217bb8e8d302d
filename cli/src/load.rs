//! `polyledger demo` (the README's main job) and `polyledger loadgen`.
//!
//! `demo` creates (or reuses) a data directory with a node configuration of eight
//! category ledgers (solo consensus, RocksDB), starts that node in this process with its
//! HTTP API, and drives it with the load generator over HTTP (or in-process with
//! `--embedded`). Without `--rate` it calibrates first: a closed-loop run finds the
//! throughput the machine sustains, then the measured open-loop run offers 70% of it.
//! Beside the result it prints the machine's signature-verification ceiling, measured
//! in the same run, because on small machines that is what bounds everything.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto_parallel::{BatchVerifier, PrivateKey, SignatureAlgorithm, VerifyItem};
use engine::model::{LedgerId, Transaction};
use loadgen::ledger::{
    EmbeddedTarget, HttpTarget, LedgerBatch, LedgerTarget, Workload, WorkloadSource, WorkloadSpec,
};
use loadgen::{Cursor, Expect, FindMax, Mode, Progress, Report, Target};

use crate::{Failure, algorithm_by_name, invalid, parse_duration, runtime};

/// Load options shared by `demo` and `loadgen`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// Offered rate in tx/s (open loop). Without it, `demo` calibrates and offers
    /// `--share` of what a closed-loop run sustained.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Length of the measured run.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Length of the calibration run (demo without --rate).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub calibrate: Duration,
    /// Share of the calibrated rate the measured run offers (demo without --rate): a
    /// closed loop runs the node saturated, so its rate is the edge, not a sustainable
    /// load.
    #[arg(long, default_value_t = 0.7)]
    pub share: f64,
    /// Ramp the rate (×1.25 per stage) to find the highest that holds --p99-ms.
    #[arg(long)]
    pub find_max: bool,
    /// Latency objective of --find-max, ms.
    #[arg(long, default_value_t = 1000)]
    pub p99_ms: u64,
    /// First rate of --find-max, tx/s.
    #[arg(long, default_value_t = 2000.0)]
    pub start_rate: f64,
    /// Length of each --find-max stage.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub stage: Duration,
    /// Closed loop: --concurrency batches in flight, each sent when the previous answered.
    #[arg(long)]
    pub closed: bool,
    /// Batches in flight in --closed mode.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Transactions per batch (one HTTP request).
    #[arg(long, default_value_t = 200)]
    pub batch: usize,
    /// Distinct trace codes per ledger.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Share (0..1) of writes to the hot 1% of trace codes (contention: version conflicts).
    #[arg(long, default_value_t = 0.0)]
    pub hot_share: f64,
    /// Size of each event record, bytes.
    #[arg(long, default_value_t = 200)]
    pub value_size: usize,
    /// A shard map (JSON, `sharding::map`): load one category's ledgers, each trace
    /// code on the ledger the map routes it to (the gateway's routing function).
    #[arg(long, requires = "category")]
    pub shard_map: Option<PathBuf>,
    /// The category to load (with --shard-map).
    #[arg(long, requires = "shard_map")]
    pub category: Option<String>,
    /// The routing read from --shard-map and --category (`LoadArgs::load_routing`).
    #[arg(skip)]
    pub routing: Option<std::sync::Arc<loadgen::ledger::Routing>>,
    /// Sign each batch when it is due instead of before the run.
    #[arg(long)]
    pub sign_online: bool,
    /// Most batches outstanding in the open loop (0: no bound).
    #[arg(long, default_value_t = 0)]
    pub max_in_flight: usize,
    /// How long one batch may wait for finality before it counts as TIMEOUT.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the report as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the report as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Fail (exit 3) when committed tx/s is below this.
    #[arg(long)]
    pub expect_tps: Option<f64>,
    /// Fail (exit 3) when p99 finality is above this, ms.
    #[arg(long)]
    pub expect_p99_ms: Option<f64>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
}

impl LoadArgs {
    fn check(&self) -> Result<(), Failure> {
        if let Some(rate) = self.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(invalid("--rate must be a positive number of tx/s"));
        }
        if self.batch == 0 || self.batch > engine::limits::BLOCK_TXS_MAX {
            return Err(invalid(format!(
                "--batch: 1..={} transactions",
                engine::limits::BLOCK_TXS_MAX
            )));
        }
        if !(0.0..=1.0).contains(&self.hot_share) {
            return Err(invalid("--hot-share: 0..=1"));
        }
        if self.keys == 0 {
            return Err(invalid("--keys: at least 1"));
        }
        if !(self.share > 0.0 && self.share <= 1.0) {
            return Err(invalid("--share: a fraction in (0, 1]"));
        }
        if self.duration.is_zero() {
            return Err(invalid("--duration must be positive"));
        }
        Ok(())
    }

    /// Reads --shard-map for --category; answers the category's ledgers, in order.
    fn load_routing(&mut self) -> Result<Option<Vec<String>>, Failure> {
        let (Some(path), Some(category)) = (&self.shard_map, &self.category) else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("--shard-map {}: {e}", path.display())))?;
        let map = sharding::ShardMap::from_json(&text)
            .map_err(|e| invalid(format!("--shard-map {}: {e}", path.display())))?;
        let ledgers = map
            .categories
            .get(category)
            .cloned()
            .ok_or_else(|| invalid(format!("--category {category}: not in the shard map")))?;
        self.routing =
            Some(std::sync::Arc::new(loadgen::ledger::Routing { map, category: category.clone() }));
        Ok(Some(ledgers))
    }

    pub(crate) fn spec(&self) -> WorkloadSpec {
        WorkloadSpec {
            keys: self.keys,
            hot_share: self.hot_share,
            value_size: self.value_size,
            batch_size: self.batch,
            publish: false,
            routing: self.routing.clone(),
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        if self.no_progress || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Progress::Hidden
        } else {
            Progress::Bar
        }
    }
}

/// The most tx/s a budget of pre-signed transactions plans for: verification is not the
/// bound for a repeated signer (its cached check is cheap), execution and HTTP are. The
/// demo's calibration sustained 31,651 tx/s on 2 cores (2026-11-27); at the former 25,000
/// the calibration used up the measured run's share and the run stopped early
/// (`EXHAUSTED` after 11 of 15 s).
pub(crate) const PLAN_RATE_MAX: f64 = 40_000.0;

/// Signature verifications per second on all cores, over `transactions`.
pub fn verify_ceiling(transactions: &[Transaction]) -> f64 {
    let messages: Vec<Vec<u8>> = transactions.iter().map(|tx| tx.content.encode()).collect();
    let items: Vec<VerifyItem<'_>> = transactions
        .iter()
        .zip(&messages)
        .map(|(tx, message)| VerifyItem {
            public_key: &tx.endorsements[0].public_key,
            message,
            signature: &tx.endorsements[0].signature,
        })
        .collect();
    let start = Instant::now();
    let results = BatchVerifier::global().verify_batch(&items);
    let elapsed = start.elapsed();
    debug_assert!(results.iter().all(Result::is_ok));
    items.len() as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// The verify ceiling on ~4,000 transactions of this run's shape and signer, built by a
/// workload of their own (their writes must not advance the run's key versions).
pub(crate) fn probe_ceiling(args: &LoadArgs, ledgers: &[LedgerTarget], signer: &PrivateKey) -> f64 {
    let probe = Workload::new(args.spec(), ledgers.to_vec(), signer.clone());
    let transactions: Vec<Transaction> = (0..(4000 / args.batch).max(2) as u64)
        .flat_map(|seq| probe.build_batch(0, seq).transactions)
        .collect();
    verify_ceiling(&transactions)
}

/// Where the load goes.
enum Destination {
    Http(Vec<sdk::Client>),
    Embedded(Vec<actors::LedgerHandle>),
}

/// What a load run printed and measured.
pub(crate) struct Outcome {
    pub(crate) report: Report,
    pub(crate) text: String,
    pub(crate) markdown: String,
    pub(crate) json: String,
}

impl Outcome {
    /// A measurement of several runs: `summary` first, then each run's report; the last
    /// run is the outcome's report.
    pub(crate) fn of_runs(
        summary: &str,
        mut reports: Vec<Report>,
        json: serde_json::Value,
    ) -> Result<Outcome, Failure> {
        let text = format!(
            "{summary}\n{}",
            reports.iter().map(Report::text).collect::<Vec<_>>().join("\n")
        );
        let markdown = format!(
            "{}\n\n{}",
            summary.replace('\n', "  \n"),
            reports.iter().map(Report::markdown).collect::<Vec<_>>().join("\n\n")
        );
        let json = serde_json::to_string_pretty(&json).unwrap_or_default();
        let report = reports.pop().ok_or_else(|| runtime("no rounds ran"))?;
        Ok(Outcome { report, text, markdown, json })
    }
}

/// The mean of `values` (0 for none).
pub(crate) fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// Runs the configured load against `ledgers` (already prepared), on the current tokio
/// runtime.
async fn drive(
    args: &LoadArgs,
    destination: &Destination,
    ledgers: Vec<LedgerTarget>,
    signer: PrivateKey,
    print_ceiling: bool,
) -> Result<Outcome, Failure> {
    let ledger_count = ledgers.len() as f64;
    let ceiling = probe_ceiling(args, &ledgers, &signer);
    let workload = Workload::new(args.spec(), ledgers, signer);
    let batch_tx = args.batch as f64;
    let mut lines = Vec::new();
    if print_ceiling {
        lines.push(format!(
            "verify ceiling: {ceiling:.0} signatures/s on this machine (batch verification on \
             all cores; one signature per transaction bounds tx/s)"
        ));
    }
    // Transactions the whole run can use, so signing before it is not wasted: the
    // calibration at up to the verify ceiling, then the measured run; or every stage of
    // the ramp (each ×1.25 up to 1.3× the ceiling).
    let max_rate = ceiling.min(PLAN_RATE_MAX).max(args.start_rate) * 1.3;
    let budget = if args.find_max {
        let mut rate = args.start_rate;
        let mut total = 0.0;
        while rate < max_rate * 1.25 {
            total += rate.min(max_rate) * args.stage.as_secs_f64();
            rate *= 1.25;
        }
        total
    } else if args.closed {
        ceiling.min(PLAN_RATE_MAX) * args.duration.as_secs_f64()
    } else if let Some(rate) = args.rate {
        rate * args.duration.as_secs_f64()
    } else {
        ceiling.min(PLAN_RATE_MAX)
            * (args.calibrate.as_secs_f64() + args.share * args.duration.as_secs_f64())
    };
    let batches = (budget * 1.05 / ledger_count / batch_tx).ceil() as u64 + 2;
    let source = if args.sign_online {
        Arc::new(WorkloadSource::online(workload))
    } else {
        eprintln!(
            "signing {} transactions before the run ({} ledgers × {batches} batches of {})…",
            batches * args.batch as u64 * ledger_count as u64,
            ledger_count,
            args.batch
        );
        let (source, signing) = WorkloadSource::pre_signed(workload, batches);
        lines.push(format!(
            "signing: {} transactions in {:.1} s = {:.0} signatures/s (before the run, all cores)",
            signing.transactions,
            signing.elapsed.as_secs_f64(),
            signing.rate()
        ));
        Arc::new(source)
    };
    let progress = args.progress();
    let cursor = Cursor::new();
    let max_in_flight = if args.max_in_flight == 0 { 0 } else { args.max_in_flight };
    let run = |mode: Mode, cursor: Cursor| {
        let source = source.clone();
        async move {
            match destination {
                Destination::Http(clients) => {
                    let target = Arc::new(HttpTarget::new(clients.clone(), args.timeout));
                    loadgen::run_with_cursor(target, source, mode, progress, &cursor).await
                }
                Destination::Embedded(handles) => {
                    let target = Arc::new(EmbeddedTarget::new(handles.clone(), args.timeout));
                    loadgen::run_with_cursor(target, source, mode, progress, &cursor).await
                }
            }
        }
    };
    if args.find_max {
        let params = FindMax {
            start_rate: args.start_rate,
            factor: 1.25,
            max_rate,
            stage: args.stage,
            p99_objective: Duration::from_millis(args.p99_ms),
            max_in_flight,
        };
        let found = match destination {
            Destination::Http(clients) => {
                let target = Arc::new(HttpTarget::new(clients.clone(), args.timeout));
                find_max_on(target, source.clone(), params, progress).await
            }
            Destination::Embedded(handles) => {
                let target = Arc::new(EmbeddedTarget::new(handles.clone(), args.timeout));
                find_max_on(target, source.clone(), params, progress).await
            }
        };
        let report = found
            .best_stage()
            .map(|stage| stage.report.clone())
            .or_else(|| found.stages.first().map(|stage| stage.report.clone()))
            .ok_or_else(|| runtime("the ramp ran no stage"))?;
        let mut text = lines.join("\n");
        text.push('\n');
        text.push_str(&found.text());
        let markdown = found.markdown();
        let json = serde_json::to_string_pretty(&found).unwrap_or_default();
        return Ok(Outcome { report, text, markdown, json });
    }
    let mode = if args.closed {
        Mode::Closed { concurrency: args.concurrency.max(1), duration: args.duration }
    } else if let Some(rate) = args.rate {
        Mode::Open { rate, duration: args.duration, max_in_flight }
    } else {
        let calibration = run(
            Mode::Closed {
                concurrency: (3 * ledger_count as usize).max(4),
                duration: args.calibrate,
            },
            cursor.clone(),
        )
        .await;
        let sustained = calibration.throughput_tps;
        let line = format!(
            "calibration: a closed loop ({} batches in flight) sustained {sustained:.0} tx/s \
             for {:.1} s; the measured run offers {:.0}% of it",
            (3 * ledger_count as usize).max(4),
            calibration.duration_s,
            100.0 * args.share
        );
        lines.push(line);
        if sustained < 1.0 {
            return Err(runtime(format!("calibration committed nothing:\n{}", calibration.text())));
        }
        Mode::Open { rate: sustained * args.share, duration: args.duration, max_in_flight }
    };
    let report = run(mode, cursor).await;
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(&report.text());
    if print_ceiling {
        text.push_str(&format!(
            "\nheadline: {:.0} committed tx/s, p99 finality {:.0} ms = {:.0}% of this machine's \
             verify ceiling ({ceiling:.0}/s)\n",
            report.throughput_tps,
            report.latency.p99_ms,
            100.0 * report.throughput_tps / ceiling.max(1.0)
        ));
    }
    let markdown = format!("{}\n\n{}", lines.join("\n\n"), report.markdown());
    let json = report.to_json();
    Ok(Outcome { report, text, markdown, json })
}

async fn find_max_on<T: Target<Batch = LedgerBatch>>(
    target: Arc<T>,
    source: Arc<WorkloadSource>,
    params: FindMax,
    progress: Progress,
) -> loadgen::FindMaxReport {
    loadgen::find_max(target, source, params, progress).await
}

fn write_outputs(
    args: &LoadArgs,
    outcome: &Outcome,
    also_in: Option<&Path>,
) -> Result<(), Failure> {
    let mut targets: Vec<(PathBuf, &str)> = Vec::new();
    if let Some(path) = &args.out {
        targets.push((path.clone(), &outcome.json));
    }
    if let Some(path) = &args.markdown {
        targets.push((path.clone(), &outcome.markdown));
    }
    if let Some(dir) = also_in {
        targets.push((dir.join("report.json"), &outcome.json));
        targets.push((dir.join("report.md"), &outcome.markdown));
    }
    for (path, content) in targets {
        std::fs::write(&path, content)
            .map_err(|e| runtime(format!("writing {}: {e}", path.display())))?;
    }
    Ok(())
}

fn check_expectations(args: &LoadArgs, report: &Report) -> Result<(), Failure> {
    let expect = Expect { tps: args.expect_tps, p99_ms: args.expect_p99_ms, max_error_ratio: None };
    expect.check(report).map_err(|failures| Failure {
        code: 3,
        message: format!("thresholds missed:\n  {}", failures.join("\n  ")),
    })
}

/// Options of `polyledger loadgen`.
#[derive(clap::Args, Debug)]
pub struct LoadgenArgs {
    /// Gateway base URL (repeat for several; batches go round-robin).
    #[arg(long = "gateway", required = true)]
    pub gateways: Vec<String>,
    /// The signing key (PKCS#8 PEM) of a user registered in the target ledgers.
    #[arg(long)]
    pub key: PathBuf,
    /// Use only the first N ledgers the gateway lists (default: all).
    #[arg(long)]
    pub ledgers: Option<usize>,
    /// Load options.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `polyledger loadgen`: drives running gateways over HTTP.
pub fn loadgen(mut args: LoadgenArgs) -> Result<(), Failure> {
    args.load.check()?;
    let routed = args.load.load_routing()?;
    let signer = sdk::keys::read_private_key(&args.key).map_err(|e| invalid(e.to_string()))?;
    let runtime_ = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime(e.to_string()))?;
    runtime_.block_on(async move {
        let clients = args
            .gateways
            .iter()
            .map(|url| crate::tools::sdk_client(url))
            .collect::<Result<Vec<_>, _>>()?;
        let listed = clients[0]
            .ledgers()
            .await
            .map_err(|e| runtime(format!("{}: {e}", clients[0].base_url())))?;
        let count = args.ledgers.unwrap_or(listed.len()).min(listed.len());
        if count == 0 {
            return Err(invalid("the gateway lists no ledgers"));
        }
        // Routed: the category's ledgers, in the map's (bucket) order.
        let chosen: Vec<&sdk::wire::LedgerView> = match &routed {
            Some(names) => names
                .iter()
                .map(|name| {
                    listed.iter().find(|view| &view.name == name).ok_or_else(|| {
                        invalid(format!("the shard map names ledger {name}, not on the gateway"))
                    })
                })
                .collect::<Result<_, _>>()?,
            None => listed[..count].iter().collect(),
        };
        let ledgers = chosen
            .into_iter()
            .map(|view| {
                let id =
                    sdk::wire::parse_hash("id", &view.id).map_err(|e| runtime(e.to_string()))?;
                Ok(LedgerTarget { id: LedgerId(id), name: view.name.clone() })
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        loadgen::ledger::prepare_http(&clients[0], &ledgers, &signer).await.map_err(runtime)?;
        let outcome = drive(&args.load, &Destination::Http(clients), ledgers, signer, true).await?;
        println!("{}", outcome.text);
        write_outputs(&args.load, &outcome, None)?;
        check_expectations(&args.load, &outcome.report)
    })
}

/// Options of `polyledger demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Data directory (created, or reused when it holds an earlier demo). Default: a new
    /// directory under the system's temporary directory, kept after the run.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where the node stores its ledgers (`node.data`): `rocksdb://data` (default, in the
    /// data directory), `memory://`, or `tikv://PD:2379[,PD:2379…][?keyspace=…&prefix=…]`
    /// to run the same benchmark on a TiKV cluster (keys, config and reports stay in the
    /// data directory). Only for a new data directory.
    #[arg(long)]
    pub storage: Option<String>,
    /// Where the demo node serves HTTP (`127.0.0.1:0`: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: std::net::SocketAddr,
    /// Number of category ledgers (1..=64).
    #[arg(long, default_value_t = 8)]
    pub ledgers: usize,
    /// Signature algorithm of the ledgers' users: sm2, ed25519, ecdsa-p256.
    #[arg(long, default_value = "sm2")]
    pub algorithm: String,
    /// Drive the node in-process (the engine without HTTP) instead of over HTTP.
    #[arg(long)]
    pub embedded: bool,
    /// Measure the gateway's overhead instead: saturated tx/s in-process and over HTTP
    /// (closed loops of --calibrate each, same node, same run), then p99 finality over
    /// HTTP at 50% of the HTTP maximum for --duration.
    #[arg(long, conflicts_with = "embedded")]
    pub overhead: bool,
    /// Measure what recording metrics costs: saturated in-process runs of --calibrate
    /// each, metrics on and off alternately (three rounds each), same node, same run.
    #[arg(long, conflicts_with_all = ["embedded", "overhead"])]
    pub metrics_overhead: bool,
    /// Measure subscriptions instead: every transaction also publishes an event; saturated
    /// rounds alternate without and with 100 idle subscribers plus one stalled one
    /// (committed tx/s side by side), then a run at `--share` of the ceiling measures
    /// delivery latency (commit → subscriber, p99) and events/s of a live subscriber.
    #[arg(long, conflicts_with_all = ["embedded", "overhead", "metrics_overhead"])]
    pub subscriptions: bool,
    /// Load options.
    #[command(flatten)]
    pub load: LoadArgs,
}

const CATEGORIES: [&str; 8] =
    ["dairy", "liquor", "formula", "drugs", "produce", "meat", "seafood", "cosmetics"];

/// `address` if it is free now, else (port 0, or in use) a free port on the same host;
/// the configuration keeps it, so the node serves the same address when started again.
fn with_free_port(address: std::net::SocketAddr) -> Result<std::net::SocketAddr, Failure> {
    let bound = std::net::TcpListener::bind(address).and_then(|listener| listener.local_addr());
    match bound {
        Ok(free) => Ok(free),
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            let mut any = address;
            any.set_port(0);
            let free = std::net::TcpListener::bind(any)
                .and_then(|listener| listener.local_addr())
                .map_err(|e| runtime(format!("finding a free port on {any}: {e}")))?;
            eprintln!("{address} is in use; the demo node listens on {free} instead");
            Ok(free)
        }
        Err(error) => Err(runtime(format!("{address}: {error}"))),
    }
}

/// Writes a fresh demo directory: node key, admin key, node.toml.
fn prepare_demo_dir(dir: &Path, args: &DemoArgs) -> Result<(), Failure> {
    let algorithm = algorithm_by_name(&args.algorithm).ok_or_else(|| {
        invalid(format!("unknown algorithm `{}` (sm2, ed25519, ecdsa-p256)", args.algorithm))
    })?;
    let storage = match &args.storage {
        Some(text) => {
            actors::config::StorageUri::parse(text, dir)
                .map_err(|e| invalid(format!("--storage: {e}")))?;
            text.clone()
        }
        None => "rocksdb://data".to_owned(),
    };
    std::fs::create_dir_all(dir).map_err(|e| runtime(format!("{}: {e}", dir.display())))?;
    let node_key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let admin = PrivateKey::generate(algorithm);
    sdk::keys::write_private_key(dir.join("node.key.pem"), &node_key)
        .map_err(|e| runtime(e.to_string()))?;
    sdk::keys::write_private_key(dir.join("admin.key.pem"), &admin)
        .map_err(|e| runtime(e.to_string()))?;
    let created_ms = sdk::builder::now_ms();
    let http = with_free_port(args.http)?;
    let p2p = with_free_port("127.0.0.1:0".parse().expect("an address"))?;
    let mut config = format!(
        "# Written by `polyledger demo`. Run this node again with\n\
         #   polyledger node --config {}\n\
         # and browse http://{http}/ (the explorer).\n\n\
         [node]\nid = 1\nkey_file = \"node.key.pem\"\ndata = \"{storage}\"\n\
         p2p_listen = \"{p2p}\"\nhttp_listen = \"{http}\"\n\n\
         [block]\nmax_txs = 2000\nmax_delay_ms = 20\n\n[mempool]\ncapacity = 40000\n",
        dir.join("node.toml").display(),
    );
    for i in 0..args.ledgers {
        let category = CATEGORIES[i % CATEGORIES.len()];
        config.push_str(&format!(
            "\n[[ledgers]]\nname = \"{category}-{}\"\nsignatures = [\"{}\"]\n\
             admins = [\"{}\"]\ncreated_ms = {created_ms}\n",
            i / CATEGORIES.len(),
            algorithm.name(),
            admin.public_key().to_base58()
        ));
    }
    std::fs::write(dir.join("node.toml"), config)
        .map_err(|e| runtime(format!("{}: {e}", dir.display())))
}

/// `polyledger demo`: an embedded single-node deployment driven by the load generator.
pub fn demo(args: DemoArgs) -> Result<(), Failure> {
    args.load.check()?;
    if args.ledgers == 0 || args.ledgers > 64 {
        return Err(invalid("--ledgers: 1..=64"));
    }
    let dir = match &args.data {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir()
            .join(format!("polyledger-demo-{}", chrono_stamp(sdk::builder::now_ms()))),
    };
    let dir = if dir.is_absolute() {
        dir
    } else {
        std::env::current_dir().map_err(|e| runtime(e.to_string()))?.join(dir)
    };
    if !dir.join("node.toml").exists() {
        prepare_demo_dir(&dir, &args)?;
    }
    let (config, node_key) = crate::node::load(&dir.join("node.toml"))?;
    if let Some(storage) = &args.storage {
        let wanted = actors::config::StorageUri::parse(storage, &dir)
            .map_err(|e| invalid(format!("--storage: {e}")))?;
        if wanted != config.node.data {
            return Err(invalid(format!(
                "--storage {storage}: the demo in {} stores in {}; use a new --data directory",
                dir.display(),
                config.node.data
            )));
        }
    }
    let admin = sdk::keys::read_private_key(dir.join("admin.key.pem"))
        .map_err(|e| invalid(e.to_string()))?;
    let load = args.load.clone();
    let embedded = args.embedded;
    let overhead = args.overhead;
    let metrics_overhead = args.metrics_overhead;
    let subscriptions = args.subscriptions;
    let report_dir = dir.clone();
    let storage = config.node.data.to_string();
    actix_rt::System::new().block_on(async move {
        let running = crate::node::start(&config, node_key).await?;
        let http = running.http;
        let handles = running.node.ledgers().to_vec();
        eprintln!(
            "demo node: {} ledgers, {} signatures, solo consensus, storage {}; HTTP on http://{http}/",
            handles.len(),
            handles
                .first()
                .map(|h| h.settings().signature_algorithms[0].name())
                .unwrap_or("-"),
            storage
        );
        let ledgers: Vec<LedgerTarget> = handles
            .iter()
            .map(|h| LedgerTarget { id: h.id(), name: h.name().to_owned() })
            .collect();
        // The load generator runs on its own runtime and threads, like a separate client
        // process would; the node keeps its own.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("loadgen".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| runtime(e.to_string()))
                    .and_then(|rt| {
                        rt.block_on(async {
                            if subscriptions {
                                loadgen::ledger::prepare_embedded(&handles, &admin)
                                    .await
                                    .map_err(runtime)?;
                                return crate::subscribe_bench::measure(
                                    &load, handles, ledgers, admin, http,
                                )
                                .await;
                            }
                            if metrics_overhead {
                                loadgen::ledger::prepare_embedded(&handles, &admin)
                                    .await
                                    .map_err(runtime)?;
                                return measure_metrics_overhead(&load, handles, ledgers, admin)
                                    .await;
                            }
                            if overhead {
                                loadgen::ledger::prepare_embedded(&handles, &admin)
                                    .await
                                    .map_err(runtime)?;
                                let client = sdk::Client::new(&format!("http://{http}"))
                                    .map_err(|e| runtime(e.to_string()))?;
                                return measure_overhead(&load, handles, client, ledgers, admin)
                                    .await;
                            }
                            let destination = if embedded {
                                loadgen::ledger::prepare_embedded(&handles, &admin)
                                    .await
                                    .map_err(runtime)?;
                                Destination::Embedded(handles)
                            } else {
                                let client = sdk::Client::new(&format!("http://{http}"))
                                    .map_err(|e| runtime(e.to_string()))?;
                                loadgen::ledger::prepare_http(&client, &ledgers, &admin)
                                    .await
                                    .map_err(runtime)?;
                                Destination::Http(vec![client])
                            };
                            drive(&load, &destination, ledgers, admin, true).await
                        })
                    });
                let _ = done_tx.send(result);
            })
            .map_err(|e| runtime(e.to_string()))?;
        let outcome = done_rx.await.map_err(|_| runtime("the load generator thread died"))?;
        running.stop(Duration::from_secs(5)).await;
        let outcome = outcome?;
        println!("{}", outcome.text);
        write_outputs(&args.load, &outcome, Some(&report_dir))?;
        println!(
            "data: {} (report.json, report.md, node.toml, keys)\n\
             browse it: polyledger node --config {}   then open http://{}/\n\
             check it:  polyledger ledger verify --config {}",
            report_dir.display(),
            report_dir.join("node.toml").display(),
            config.node.http_listen,
            report_dir.join("node.toml").display(),
        );
        check_expectations(&args.load, &outcome.report)
    })
}

/// The gateway's overhead, in one run on one node: the same pre-signed workload is
/// pushed saturated in-process, then saturated over HTTP, then over HTTP at 50% of that.
async fn measure_overhead(
    args: &LoadArgs,
    handles: Vec<actors::LedgerHandle>,
    client: sdk::Client,
    ledgers: Vec<LedgerTarget>,
    signer: PrivateKey,
) -> Result<Outcome, Failure> {
    let ledger_count = ledgers.len();
    let ceiling = probe_ceiling(args, &ledgers, &signer);
    // Two rounds each of in-process and HTTP in A-B-B-A order, then the half-load run.
    let seconds = 4.0 * args.calibrate.as_secs_f64() + 0.6 * args.duration.as_secs_f64();
    let batches =
        (ceiling.min(PLAN_RATE_MAX) * 1.05 * seconds / ledger_count as f64 / args.batch as f64)
            .ceil() as u64
            + 4;
    eprintln!(
        "signing {} transactions before the run…",
        batches * (args.batch * ledger_count) as u64
    );
    let (source, signing) =
        WorkloadSource::pre_signed(Workload::new(args.spec(), ledgers, signer), batches);
    let source = Arc::new(source);
    let cursor = Cursor::new();
    let progress = args.progress();
    // Enough in flight that both paths saturate the node (HTTP adds round-trip latency,
    // which a smaller closed loop would count as lost throughput).
    let concurrency = (6 * ledger_count).max(8);
    let closed = Mode::Closed { concurrency, duration: args.calibrate };
    let embedded = Arc::new(EmbeddedTarget::new(handles, args.timeout));
    let http = Arc::new(HttpTarget::new(vec![client], args.timeout));
    let mut rounds = Vec::new();
    // A-B-B-A order: the store grows during the run, and a linear slow-down then costs
    // both paths the same.
    for round in 0..2 {
        let run_inner = || {
            loadgen::run_with_cursor(
                embedded.clone(),
                source.clone(),
                closed.clone(),
                progress,
                &cursor,
            )
        };
        let run_outer = || {
            loadgen::run_with_cursor(
                http.clone(),
                source.clone(),
                closed.clone(),
                progress,
                &cursor,
            )
        };
        let (inner, outer) = if round == 0 {
            let inner = run_inner().await;
            (inner, run_outer().await)
        } else {
            let outer = run_outer().await;
            (run_inner().await, outer)
        };
        rounds.push((inner.with_name("in-process"), outer.with_name("http")));
    }
    let mean = |pick: fn(&(Report, Report)) -> f64| {
        rounds.iter().map(pick).sum::<f64>() / rounds.len() as f64
    };
    let in_process_tps = mean(|(inner, _)| inner.throughput_tps);
    let http_tps = mean(|(_, outer)| outer.throughput_tps);
    let (in_process, over_http) = rounds.pop().expect("two rounds ran");
    let half = Mode::Open {
        rate: http_tps * 0.5,
        duration: args.duration,
        max_in_flight: args.max_in_flight,
    };
    let at_half =
        loadgen::run_with_cursor(http, source, half, progress, &cursor).await.with_name("http-50%");
    let ratio = http_tps / in_process_tps.max(1e-9);
    let per_round: Vec<String> = rounds
        .iter()
        .chain(std::iter::once(&(in_process.clone(), over_http.clone())))
        .map(|(inner, outer)| format!("{:.0}/{:.0}", inner.throughput_tps, outer.throughput_tps))
        .collect();
    let summary = format!(
        "verify ceiling: {ceiling:.0} signatures/s; signing: {:.0} signatures/s\n\
         saturated, closed loop of {concurrency} batches of {} for {:.0} s each, in-process and \
         http in A-B-B-A order (in-process/http: {}):\n  \
         in-process: {:.0} tx/s (mean; last p99 {:.0} ms)\n  http:       {:.0} tx/s (mean; last p99 {:.0} ms)\n  \
         http / in-process = {:.0}%\n\
         http at 50% of its maximum ({:.0} tx/s offered, open loop, {:.0} s): {:.0} tx/s committed, \
         wait=commit p50 {:.0} ms, p99 {:.0} ms, p99.9 {:.0} ms\n",
        signing.rate(),
        args.batch,
        args.calibrate.as_secs_f64(),
        per_round.join(", "),
        in_process_tps,
        in_process.latency.p99_ms,
        http_tps,
        over_http.latency.p99_ms,
        100.0 * ratio,
        http_tps * 0.5,
        args.duration.as_secs_f64(),
        at_half.throughput_tps,
        at_half.latency.p50_ms,
        at_half.latency.p99_ms,
        at_half.latency.p999_ms,
    );
    let json = serde_json::json!({
        "verify_ceiling": ceiling,
        "in_process": in_process,
        "http": over_http,
        "http_at_half": at_half,
        "http_over_in_process": ratio,
    });
    Outcome::of_runs(&summary, vec![in_process, over_http, at_half], json)
}

/// What recording metrics costs: the same saturated in-process load with metrics on and
/// off alternately (so drift of the machine affects both alike).
async fn measure_metrics_overhead(
    args: &LoadArgs,
    handles: Vec<actors::LedgerHandle>,
    ledgers: Vec<LedgerTarget>,
    signer: PrivateKey,
) -> Result<Outcome, Failure> {
    let ledger_count = ledgers.len();
    let ceiling = probe_ceiling(args, &ledgers, &signer);
    let rounds = 6;
    let budget = ceiling.min(PLAN_RATE_MAX) * args.calibrate.as_secs_f64() * rounds as f64;
    let batches = (budget * 1.05 / ledger_count as f64 / args.batch as f64).ceil() as u64 + 2;
    eprintln!(
        "signing {} transactions before the run…",
        batches * (args.batch * ledger_count) as u64
    );
    let (source, _) =
        WorkloadSource::pre_signed(Workload::new(args.spec(), ledgers, signer), batches);
    let source = Arc::new(source);
    let cursor = Cursor::new();
    let target = Arc::new(EmbeddedTarget::new(handles, args.timeout));
    let closed = Mode::Closed { concurrency: (3 * ledger_count).max(4), duration: args.calibrate };
    let mut on = Vec::new();
    let mut off = Vec::new();
    let mut reports = Vec::new();
    for round in 0..rounds {
        let enabled = round % 2 == 0;
        actors::metrics::set_enabled(enabled);
        let report = loadgen::run_with_cursor(
            target.clone(),
            source.clone(),
            closed.clone(),
            args.progress(),
            &cursor,
        )
        .await
        .with_name(if enabled { "metrics on" } else { "metrics off" });
        if enabled { &mut on } else { &mut off }.push(report.throughput_tps);
        reports.push(report);
    }
    actors::metrics::set_enabled(true);
    let (with, without) = (mean(&on), mean(&off));
    let summary = format!(
        "metrics on:  {} tx/s (mean {with:.0})\nmetrics off: {} tx/s (mean {without:.0})\n\
         on / off = {:.1}% (saturated, in-process, {} s per round, alternating)\n",
        on.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        off.iter().map(|v| format!("{v:.0}")).collect::<Vec<_>>().join(", "),
        100.0 * with / without.max(1e-9),
        args.calibrate.as_secs_f64()
    );
    let json = serde_json::json!({
        "on_tps": on, "off_tps": off, "on_over_off": with / without.max(1e-9),
    });
    Outcome::of_runs(&summary, reports, json)
}

/// `YYYYMMDD-HHMMSS` (UTC) of a Unix time in ms.
fn chrono_stamp(ms: u64) -> String {
    let (year, month, day, hour, minute, second) = sharding::epcis::civil_time(ms as i64);
    format!("{year:04}{month:02}{day:02}-{hour:02}{minute:02}{second:02}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn stamps_are_civil_utc() {
        assert_eq!(super::chrono_stamp(0), "19700101-000000");
        assert_eq!(super::chrono_stamp(1_764_000_000_000), "20251124-160000");
    }
}
