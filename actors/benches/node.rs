//! Solo node throughput and finality, next to the signature-verification ceiling
//! measured in the same run.
//!
//! `cargo bench --workspace --bench node` (RocksDB in a temporary directory, SM2 with
//! SM3, in-process clients submitting batches through `LedgerHandle::submit`).
//!
//! Prints, per ledger count (1, 2, 4, 8): committed tx/s at saturation; then, for 8
//! ledgers, finality p50/p99/max at a fixed offered rate of 80% of that maximum
//! (open loop: latency counts from when a batch was due, not when it was sent).
//! `POLYLEDGER_BENCH_TXS` sets transactions per ledger (default 4000);
//! `POLYLEDGER_BENCH_CLUSTERS_ONLY=1` runs only the Raft and BFT clusters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::{LedgerOptions, Node, NodeOptions, SubmitError, TxStatus};
use consensus::RaftOptions;
use crypto_parallel::{BatchVerifier, HashAlgorithm, PrivateKey, SignatureAlgorithm, VerifyItem};
use engine::model::{
    LedgerId, LedgerSettings, Operation, ResultCode, Transaction, TransactionContent,
};
use rayon::prelude::*;

const BATCH: usize = 200;

fn key(seed: u8) -> PrivateKey {
    let mut raw = [seed; 32];
    raw[0] = 1;
    PrivateKey::from_raw(SignatureAlgorithm::Sm2, &raw).unwrap()
}

fn settings(index: usize, node: &PrivateKey, admin: &PrivateKey) -> LedgerSettings {
    LedgerSettings {
        name: format!("bench-{index}"),
        hash_algorithm: HashAlgorithm::Sm3,
        signature_algorithms: vec![SignatureAlgorithm::Sm2],
        consensus: "solo".into(),
        participants: vec![node.public_key()],
        initial_users: vec![admin.public_key()],
        regulators: Vec::new(),
        participant_quorum: 0,
        parents: Vec::new(),
        roles: Vec::new(),
        created_ms: 1_764_000_000_000,
    }
}

fn ledger_id(settings: &LedgerSettings) -> LedgerId {
    engine::ledger::Ledger::create(engine::store::MemoryStore::new(), settings.clone())
        .unwrap()
        .id()
}

/// Pre-signed transactions for one ledger: a data-account registration, then writes of
/// traceability-sized records (~200 bytes) to distinct keys.
fn workload(ledger: LedgerId, admin: &PrivateKey, count: usize) -> Vec<Transaction> {
    let mut transactions: Vec<Transaction> = (0..count as u64)
        .into_par_iter()
        .map(|n| {
            let operation = if n == 0 {
                Operation::RegisterDataAccount { name: "trace".into() }
            } else {
                Operation::WriteKv {
                    account: "trace".into(),
                    key: format!("trace-code-{n:012}").into_bytes(),
                    value: format!("{{\"event\":\"ObjectEvent\",\"bizStep\":\"shipping\",\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(120)).into_bytes(),
                    expected_version: -1,
                }
            };
            let content = TransactionContent { ledger_id: ledger, nonce: n, timestamp_ms: 1_764_000_000_000 + n, operations: vec![operation] };
            Transaction::sign(content, &[admin]).unwrap()
        })
        .collect();
    transactions.truncate(count);
    transactions
}

fn verify_ceiling(transactions: &[Transaction]) -> f64 {
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
    assert!(results.iter().all(Result::is_ok));
    items.len() as f64 / elapsed.as_secs_f64()
}

fn node_options(node_key: &PrivateKey, ledgers: Vec<LedgerSettings>) -> NodeOptions {
    NodeOptions {
        id: 1,
        key: node_key.clone(),
        p2p_listen: None,
        p2p_tls: true,
        peers: Vec::new(),
        ledgers,
        ledger_options: LedgerOptions {
            max_block_txs: 2000,
            max_block_delay: Duration::from_millis(20),
            mempool_capacity: 20_000,
            ..LedgerOptions::default()
        },
        raft: RaftOptions::default(),
        bft: consensus::BftOptions::default(),
        transport_threads: 1,
    }
}

struct RunResult {
    committed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// Submits every ledger's workload: as fast as accepted (`rate` None) or one batch per
/// ledger every `BATCH / rate` seconds (open loop).
async fn run(
    node: &Node,
    workloads: &[Vec<Transaction>],
    rate_per_ledger: Option<f64>,
) -> RunResult {
    run_on(&node.ledgers(), workloads, rate_per_ledger).await
}

async fn run_on(
    handles: &[actors::LedgerHandle],
    workloads: &[Vec<Transaction>],
    rate_per_ledger: Option<f64>,
) -> RunResult {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (handle, transactions) in handles.iter().zip(workloads) {
        let handle = handle.clone();
        let transactions = transactions.clone();
        tasks.push(actix_rt::spawn(async move {
            // The registration first, alone.
            let first = handle.submit(transactions[..1].to_vec()).await.unwrap();
            first.wait().await.unwrap();
            let mut waits = Vec::new();
            let interval = rate_per_ledger.map(|rate| Duration::from_secs_f64(BATCH as f64 / rate));
            let begin = Instant::now();
            for (i, chunk) in transactions[1..].chunks(BATCH).enumerate() {
                let due =
                    interval.map_or_else(Instant::now, |interval| begin + interval * i as u32);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    actix_rt::time::sleep(wait).await;
                }
                let submitted = loop {
                    match handle.submit(chunk.to_vec()).await {
                        Ok(submitted) => break submitted,
                        Err(SubmitError::Busy { retry_after }) => {
                            actix_rt::time::sleep(retry_after).await
                        }
                        Err(other) => panic!("{other}"),
                    }
                };
                waits.push(actix_rt::spawn(async move {
                    let outcomes = submitted.wait().await.unwrap();
                    let finality = due.elapsed();
                    let ok = outcomes
                        .iter()
                        .filter(|o| {
                            matches!(
                                o.status,
                                TxStatus::Committed { result: ResultCode::Committed, .. }
                            )
                        })
                        .count();
                    (ok, finality, outcomes.len())
                }));
            }
            let mut results = Vec::new();
            for wait in waits {
                results.push(wait.await.unwrap());
            }
            results
        }));
    }
    let mut committed = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        for (ok, finality, count) in task.await.unwrap() {
            assert_eq!(ok, count, "every benchmark write commits");
            committed += ok;
            latencies.extend(std::iter::repeat_n(finality, count));
        }
    }
    RunResult { committed, elapsed: start.elapsed(), latencies }
}

/// `nodes` nodes in this process (own RocksDB directory and transport each) running
/// `ledgers` ledgers of `consensus` (`raft` or `bft`); clients submit through each
/// ledger's leader (bft: the proposer of the moment; other nodes forward to it).
fn cluster(
    system: &actix_rt::SystemRunner,
    consensus: &str,
    node_count: usize,
    ledgers: usize,
    workloads_for: impl Fn(&[LedgerSettings]) -> Vec<Vec<Transaction>>,
    rate_per_ledger: Option<f64>,
) -> RunResult {
    let keys: Vec<PrivateKey> = (1..=node_count as u8).map(|i| key(100 + i)).collect();
    let admin = key(1);
    let participants: Vec<_> = keys.iter().map(PrivateKey::public_key).collect();
    let all: Vec<LedgerSettings> = (0..ledgers)
        .map(|i| LedgerSettings {
            name: format!("{consensus}-{i}"),
            consensus: consensus.into(),
            participants: participants.clone(),
            ..settings(i, &keys[0], &admin)
        })
        .collect();
    let workloads = workloads_for(&all);
    // Each node on its own loopback address (127.0.0.2, …): a port freed on 127.0.0.1
    // could be taken by an outgoing connection before the node binds it.
    let addresses: Vec<std::net::SocketAddr> = (0..node_count)
        .map(|i| {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % 250) as u8);
            std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
        })
        .collect();
    let dirs: Vec<_> = (0..node_count).map(|_| tempfile::tempdir().unwrap()).collect();
    system.block_on(async {
        let nodes: Vec<Node> = (0..node_count)
            .map(|i| {
                let mut options = node_options(&keys[i], all.clone());
                options.id = i as u64 + 1;
                options.p2p_listen = Some(addresses[i]);
                options.peers = (0..node_count)
                    .filter(|j| *j != i)
                    .map(|j| actors::transport::PeerConfig {
                        id: j as u64 + 1,
                        public_key: keys[j].public_key(),
                        address: addresses[j],
                    })
                    .collect();
                let store = Arc::new(storage_rocksdb::RocksStore::open(dirs[i].path()).unwrap());
                Node::start(options, store).unwrap()
            })
            .collect();
        // Wait for a leader of every ledger, then submit through it.
        let mut leaders = Vec::new();
        for ledger in 0..ledgers {
            let deadline = Instant::now() + Duration::from_secs(10);
            let leader = loop {
                if let Some(node) = nodes.iter().find(|node| node.ledgers()[ledger].is_leader()) {
                    break node.ledgers()[ledger].clone();
                }
                assert!(Instant::now() < deadline, "no leader elected");
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            };
            leaders.push(leader);
        }
        let result = run_on(&leaders, &workloads, rate_per_ledger).await;
        for node in nodes {
            node.shutdown(Duration::from_secs(5)).await;
        }
        result
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let per_ledger: usize =
        std::env::var("POLYLEDGER_BENCH_TXS").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let node_key = key(100);
    let admin = key(1);
    let all: Vec<LedgerSettings> = (0..8).map(|i| settings(i, &node_key, &admin)).collect();
    let start = Instant::now();
    let workloads: Vec<Vec<Transaction>> =
        all.iter().map(|s| workload(ledger_id(s), &admin, per_ledger + 1)).collect();
    let signed = workloads.iter().map(Vec::len).sum::<usize>();
    println!(
        "signed {signed} SM2 transactions in {:.1} s ({:.0}/s, {} threads)",
        start.elapsed().as_secs_f64(),
        signed as f64 / start.elapsed().as_secs_f64(),
        rayon::current_num_threads()
    );
    let ceiling = verify_ceiling(&workloads[0]);
    println!(
        "batch-verify ceiling (crypto-parallel, {} threads): {ceiling:.0} tx/s",
        BatchVerifier::global().threads()
    );

    let system = actix_rt::System::new();
    if std::env::var_os("POLYLEDGER_BENCH_CLUSTERS_ONLY").is_some() {
        clusters(&system, per_ledger, &admin);
        return;
    }
    let mut max_at_8 = 0.0;
    for ledgers in [1usize, 2, 4, 8] {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(storage_rocksdb::RocksStore::open(dir.path()).unwrap());
        let result = system.block_on(async {
            let node =
                Node::start(node_options(&node_key, all[..ledgers].to_vec()), store).unwrap();
            let result = run(&node, &workloads[..ledgers], None).await;
            node.shutdown(Duration::from_secs(5)).await;
            result
        });
        let tps = result.committed as f64 / result.elapsed.as_secs_f64();
        println!(
            "solo, {ledgers} ledger(s), saturated: {} committed in {:.2} s = {tps:.0} tx/s ({:.0}% of the verify ceiling)",
            result.committed,
            result.elapsed.as_secs_f64(),
            100.0 * tps / ceiling
        );
        if ledgers == 8 {
            max_at_8 = tps;
        }
    }
    let rate = max_at_8 * 0.8;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(storage_rocksdb::RocksStore::open(dir.path()).unwrap());
    let mut result = system.block_on(async {
        let node = Node::start(node_options(&node_key, all.clone()), store).unwrap();
        let result = run(&node, &workloads, Some(rate / 8.0)).await;
        node.shutdown(Duration::from_secs(5)).await;
        result
    });
    report(&format!("solo, 8 ledgers, offered {rate:.0} tx/s (80% of max)"), &mut result);

    clusters(&system, per_ledger, &admin);
}

/// Local Raft and BFT clusters sharing these cores, 4 ledgers each.
fn clusters(system: &actix_rt::SystemRunner, per_ledger: usize, admin: &PrivateKey) {
    let sign = |settings: &[LedgerSettings]| -> Vec<Vec<Transaction>> {
        settings.iter().map(|s| workload(ledger_id(s), admin, per_ledger / 2 + 1)).collect()
    };
    let mut summary = Vec::new();
    for (consensus, node_count) in [("raft", 3), ("raft", 4), ("bft", 4)] {
        let mut saturated = cluster(system, consensus, node_count, 4, sign, None);
        let max = saturated.committed as f64 / saturated.elapsed.as_secs_f64();
        report(&format!("{consensus}, {node_count} nodes, 4 ledgers, saturated"), &mut saturated);
        // Offered rates as fractions of the saturated rate: the highest committed rate
        // whose p99 finality stays within 1 s.
        let mut best: Option<(f64, Duration)> = None;
        for fraction in [0.4, 0.6, 0.8, 0.9] {
            let mut paced =
                cluster(system, consensus, node_count, 4, sign, Some(max * fraction / 4.0));
            report(
                &format!(
                    "{consensus}, {node_count} nodes, 4 ledgers, offered {:.0} tx/s ({:.0}% of max)",
                    max * fraction,
                    fraction * 100.0
                ),
                &mut paced,
            );
            let committed = paced.committed as f64 / paced.elapsed.as_secs_f64();
            let p99 = percentile(&paced.latencies, 0.99);
            if p99 <= Duration::from_secs(1) && best.is_none_or(|(rate, _)| committed > rate) {
                best = Some((committed, p99));
            }
        }
        summary.push((format!("{consensus}, {node_count} nodes"), max, best));
    }
    for (what, max, best) in summary {
        match best {
            Some((rate, p99)) => println!(
                "{what}: saturated {max:.0} tx/s; highest with p99 finality <= 1 s: {rate:.0} tx/s \
                 (p99 {:.0} ms)",
                p99.as_secs_f64() * 1e3
            ),
            None => println!(
                "{what}: saturated {max:.0} tx/s; no offered rate kept p99 finality <= 1 s"
            ),
        }
    }
    certificates();
}

/// Size and verification time of a commit certificate: 4 participants (3 signatures)
/// and 7 (5 signatures), SM2.
fn certificates() {
    use engine::certificate::{Certificate, VoteKind, vote_sign_bytes};
    for participants in [4usize, 7] {
        let keys: Vec<PrivateKey> = (0..participants as u8).map(|i| key(150 + i)).collect();
        let set: std::collections::BTreeMap<u64, crypto_parallel::PublicKey> =
            keys.iter().enumerate().map(|(i, k)| (i as u64 + 1, k.public_key())).collect();
        let ledger = engine::model::LedgerId([5; 32]);
        let block = [6; 32];
        let quorum = participants * 2 / 3 + 1;
        let message = vote_sign_bytes(VoteKind::Precommit, &ledger, 10, 0, Some(&block));
        let certificate = Certificate {
            height: 10,
            round: 0,
            block_hash: block,
            signatures: (0..quorum).map(|i| (i as u64 + 1, keys[i].sign(&message))).collect(),
        };
        let bytes = certificate.encode().len();
        let rounds = 500;
        let start = Instant::now();
        for _ in 0..rounds {
            let decoded = Certificate::decode(&certificate.encode()).unwrap();
            decoded.verify(&ledger, 10, &block, &set).unwrap();
        }
        println!(
            "certificate, {participants} participants ({quorum} SM2 signatures): {bytes} bytes, \
             decode + verify {:.0} µs per block",
            start.elapsed().as_secs_f64() * 1e6 / rounds as f64
        );
    }
}

fn report(what: &str, result: &mut RunResult) {
    result.latencies.sort();
    println!(
        "{what}: committed {:.0} tx/s, finality p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        result.committed as f64 / result.elapsed.as_secs_f64(),
        percentile(&result.latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&result.latencies, 0.99).as_secs_f64() * 1e3,
        result.latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}
