//! Four nodes in one process, each with its own store and transport on 127.0.0.1, one
//! `bft` ledger. Writes commit through every node; with one node stopped commits go on;
//! with two stopped nothing commits (safety over liveness: 2 of 4 is not more than 2/3);
//! when one returns, the waiting writes commit. At the end every node holds the same
//! blocks, every block carries a commit certificate that verifies against the
//! participants, every copy verifies, and nothing acknowledged is lost. Groups keep only
//! 4 decided heights, so a node that was down longer catches up with blocks its peers
//! serve from their block stores (certificates checked, as for kept ones).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::transport::PeerConfig;
use actors::{LedgerHandle, Node, TxStatus};
use common::*;
use crypto_parallel::PrivateKey;
use engine::certificate::Certificate;
use engine::ledger::Ledger;
use engine::model::{Hash32, LedgerSettings, ResultCode};
use engine::store::{KvStore, MemoryStore};
use engine::verify::{Verdict, verify_ledger};

const NODES: u64 = 4;

fn node_keys() -> Vec<PrivateKey> {
    (1..=NODES).map(|i| key(120 + i as u8)).collect()
}

fn ledger() -> LedgerSettings {
    let participants = node_keys().iter().map(PrivateKey::public_key).collect::<Vec<_>>();
    settings("dairy-bft", "bft", participants)
}

struct Cluster {
    stores: Vec<Arc<dyn KvStore>>,
    addresses: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    fn new() -> Cluster {
        let stores: Vec<Arc<dyn KvStore>> =
            (0..NODES).map(|_| Arc::new(MemoryStore::new()) as Arc<dyn KvStore>).collect();
        let addresses = (0..NODES).map(|_| free_address()).collect();
        let mut cluster = Cluster { stores, addresses, nodes: (0..NODES).map(|_| None).collect() };
        for id in 1..=NODES {
            cluster.start(id);
        }
        cluster
    }

    /// A started cluster with the trace account registered (committed).
    async fn with_trace_account() -> Cluster {
        let cluster = Cluster::new();
        let outcome = register_trace_account(&cluster.handle(1)).await;
        assert!(matches!(
            outcome.status,
            TxStatus::Committed { result: ResultCode::Committed, .. }
        ));
        cluster
    }

    /// The cluster's nodes other than `id`, as peers (`id` outside 1..=NODES: all).
    fn peers(&self, id: u64) -> Vec<PeerConfig> {
        let keys = node_keys();
        (1..=NODES)
            .filter(|peer| *peer != id)
            .map(|peer| PeerConfig {
                id: peer,
                public_key: keys[peer as usize - 1].public_key(),
                address: self.addresses[peer as usize - 1],
            })
            .collect()
    }

    fn start(&mut self, id: u64) {
        let keys = node_keys();
        let mut opts = options(id, keys[id as usize - 1].clone(), vec![ledger()]);
        opts.p2p_listen = Some(self.addresses[id as usize - 1]);
        opts.peers = self.peers(id);
        opts.bft.decided_kept = 4;
        let node = Node::start(opts, self.stores[id as usize - 1].clone()).unwrap();
        self.nodes[id as usize - 1] = Some(node);
    }

    async fn stop(&mut self, id: u64) {
        if let Some(node) = self.nodes[id as usize - 1].take() {
            node.shutdown(Duration::ZERO).await;
        }
    }

    /// Waits (at most 20 s) until `nodes` have the same head.
    async fn converge(&self, nodes: std::ops::RangeInclusive<u64>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let heads: Vec<_> = nodes.clone().map(|id| self.handle(id).head()).collect();
            if heads.iter().all(|h| *h == heads[0]) {
                return;
            }
            assert!(Instant::now() < deadline, "nodes did not converge: {heads:?}");
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn handle(&self, id: u64) -> LedgerHandle {
        self.nodes[id as usize - 1].as_ref().unwrap().ledgers()[0].clone()
    }
}

fn writes(handle: &LedgerHandle, first_nonce: u64, count: u64) -> Vec<engine::model::Transaction> {
    let admin = admin();
    (first_nonce..first_nonce + count)
        .map(|nonce| tx(&admin, handle.id(), nonce, vec![write(&format!("k{nonce}"), b"v", -1)]))
        .collect()
}

/// A participant admission or removal, signed by the admin and co-signed by the node
/// keys of members 1–3 (3 of 4: the quorum).
fn participant_change(
    ledger: engine::model::LedgerId,
    operation: engine::model::Operation,
) -> engine::model::Transaction {
    let keys = node_keys();
    let content = engine::model::TransactionContent {
        ledger_id: ledger,
        nonce: 500,
        timestamp_ms: 1_764_000_000_500,
        operations: vec![operation],
    };
    engine::model::Transaction::sign(content, &[&admin(), &keys[0], &keys[1], &keys[2]]).unwrap()
}

fn committed(outcomes: Vec<actors::TxOutcome>) -> Vec<Hash32> {
    outcomes
        .into_iter()
        .map(|outcome| {
            assert!(
                matches!(outcome.status, TxStatus::Committed { result: ResultCode::Committed, .. }),
                "unexpected {outcome:?}"
            );
            outcome.hash
        })
        .collect()
}

async fn write_through(handle: &LedgerHandle, first_nonce: u64, count: u64) -> Vec<Hash32> {
    let outcomes = actix_rt::time::timeout(
        Duration::from_secs(20),
        submit_and_wait(handle, writes(handle, first_nonce, count)),
    )
    .await
    .expect("final within 20 s");
    committed(outcomes)
}

#[actix_rt::test]
async fn four_bft_nodes_commit_with_certificates_and_stop_without_quorum() {
    init_tracing();
    let mut cluster = Cluster::with_trace_account().await;
    let mut acknowledged = Vec::new();
    for via in 1..=NODES {
        acknowledged.extend(write_through(&cluster.handle(via), via * 1000, 50).await);
    }

    // One of four down: 3 > 2/3 of 4, commits go on.
    cluster.stop(4).await;
    let stopped = Instant::now();
    acknowledged.extend(write_through(&cluster.handle(1), 10_000, 50).await);
    eprintln!("with node 4 down, 50 writes committed in {:?}", stopped.elapsed());
    // More heights than the groups keep, while node 4 is down.
    let height = cluster.handle(2).head().height;
    for round in 0..8 {
        acknowledged.extend(write_through(&cluster.handle(2), 11_000 + round * 10, 5).await);
    }
    let now = cluster.handle(2).head().height;
    assert!(now >= height + 8, "{height} → {now}");

    // Two of four down: no quorum, nothing commits.
    cluster.stop(3).await;
    let head_before = cluster.handle(1).head();
    let pending = {
        let handle = cluster.handle(2);
        let transactions = writes(&handle, 20_000, 20);
        actix_rt::spawn(async move { submit_and_wait(&handle, transactions).await })
    };
    actix_rt::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(cluster.handle(1).head(), head_before, "committed with 2 of 4 nodes");
    assert_eq!(cluster.handle(2).head(), head_before, "committed with 2 of 4 nodes");

    // One returns: the waiting writes commit.
    cluster.start(3);
    let outcomes = actix_rt::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("commits resume once 3 of 4 are up")
        .unwrap();
    acknowledged.extend(committed(outcomes));
    cluster.start(4);
    acknowledged.extend(write_through(&cluster.handle(4), 30_000, 20).await);
    cluster.converge(1..=NODES).await;

    let id = cluster.handle(1).id();
    let participants: BTreeMap<u64, crypto_parallel::PublicKey> =
        node_keys().iter().enumerate().map(|(i, k)| (i as u64 + 1, k.public_key())).collect();
    for node in 1..=NODES {
        cluster.stop(node).await;
    }
    let copies: Vec<_> =
        cluster.stores.iter().map(|store| Ledger::open(store.clone(), id).unwrap()).collect();
    let height = copies[0].head().height;
    let mut in_blocks = HashSet::new();
    for h in 1..=height {
        let block = copies[0].block(h).unwrap().unwrap();
        for copy in &copies {
            assert_eq!(copy.block(h).unwrap().unwrap().hash, block.hash, "height {h} differs");
            let certificate = Certificate::decode(&copy.certificate(h).unwrap().unwrap()).unwrap();
            certificate.verify(&id, h, &block.hash, &participants).unwrap();
        }
        in_blocks.extend(block.transactions.iter().map(|(hash, _)| *hash));
    }
    for hash in &acknowledged {
        assert!(in_blocks.contains(hash), "acknowledged transaction lost");
    }
    for store in &cluster.stores {
        let verdict = verify_ledger(store.clone(), id).unwrap();
        assert!(matches!(verdict, Verdict::Valid { .. }), "{verdict:?}");
    }
    // A stored certificate cut short of 2/3 is found by verification.
    let store = &cluster.stores[0];
    let key = engine::layout::certificate_key(&id, 2);
    let mut certificate = Certificate::decode(&store.get(&key).unwrap().unwrap()).unwrap();
    certificate.signatures.truncate(2);
    let mut batch = engine::store::WriteBatch::new();
    batch.put(key, certificate.encode());
    store.write(batch).unwrap();
    let verdict = verify_ledger(store.clone(), id).unwrap();
    assert!(
        matches!(&verdict, Verdict::Invalid { height: 2, reason } if reason.contains("2/3")),
        "{verdict:?}"
    );
    // On node 2's copy, one precommit of height 3 signed by a key that is no participant
    // (in member 1's name); on node 3's, height 4's certificate names another block hash.
    let outsider = common::key(250);
    let tamper = |store: &Arc<dyn KvStore>, height: u64, edit: &dyn Fn(&mut Certificate)| {
        let key = engine::layout::certificate_key(&id, height);
        let mut certificate = Certificate::decode(&store.get(&key).unwrap().unwrap()).unwrap();
        edit(&mut certificate);
        let mut batch = engine::store::WriteBatch::new();
        batch.put(key, certificate.encode());
        store.write(batch).unwrap();
    };
    tamper(&cluster.stores[1], 3, &|certificate| {
        let message = engine::certificate::vote_sign_bytes(
            engine::certificate::VoteKind::Precommit,
            &id,
            certificate.height,
            certificate.round,
            Some(&certificate.block_hash),
        );
        certificate.signatures[0].1 = outsider.sign(&message);
    });
    let verdict = verify_ledger(cluster.stores[1].clone(), id).unwrap();
    assert!(matches!(&verdict, Verdict::Invalid { height: 3, .. }), "{verdict:?}");
    tamper(&cluster.stores[2], 4, &|certificate| certificate.block_hash = [9; 32]);
    let verdict = verify_ledger(cluster.stores[2].clone(), id).unwrap();
    assert!(matches!(&verdict, Verdict::Invalid { height: 4, .. }), "{verdict:?}");
    eprintln!("tampered certificates: {verdict:?}");
}

/// A participant removed by a transaction (co-signed by 3 of the 4 node keys) stops
/// counting at once: with it still running and another node down, nothing commits (2 of
/// the 3 remaining is not more than 2/3, and the removed node's votes are refused); when
/// the node returns, commits resume. Every copy verifies each certificate against the
/// participants of its height, and no certificate after the removal carries member 4.
#[actix_rt::test]
async fn a_removed_participant_no_longer_counts_toward_a_commit() {
    init_tracing();
    let mut cluster = Cluster::with_trace_account().await;
    let mut acknowledged = write_through(&cluster.handle(1), 1000, 10).await;

    let keys = node_keys();
    let id = cluster.handle(1).id();
    let removal = participant_change(
        id,
        engine::model::Operation::RemoveParticipant { public_key: keys[3].public_key() },
    );
    let outcome = submit_and_wait(&cluster.handle(1), vec![removal]).await.remove(0);
    let TxStatus::Committed { result: ResultCode::Committed, height: removed_at, .. } =
        outcome.status
    else {
        panic!("removal not committed: {outcome:?}");
    };
    acknowledged.push(outcome.hash);
    acknowledged.extend(write_through(&cluster.handle(2), 2000, 10).await);

    // Node 4 still runs, but is no participant: with node 3 down, no quorum.
    cluster.stop(3).await;
    let head_before = cluster.handle(1).head();
    let pending = {
        let handle = cluster.handle(1);
        let transactions = writes(&handle, 3000, 5);
        actix_rt::spawn(async move { submit_and_wait(&handle, transactions).await })
    };
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.handle(1).head(), head_before, "committed with a removed node's votes");
    cluster.start(3);
    let outcomes = actix_rt::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("commits resume once the 3 participants are up")
        .unwrap();
    acknowledged.extend(committed(outcomes));
    cluster.converge(1..=3).await;
    for node in 1..=NODES {
        cluster.stop(node).await;
    }

    let copies: Vec<_> =
        cluster.stores.iter().map(|store| Ledger::open(store.clone(), id).unwrap()).collect();
    let height = copies[0].head().height;
    let mut in_blocks = HashSet::new();
    for h in 1..=height {
        let block = copies[0].block(h).unwrap().unwrap();
        for copy in &copies[..3] {
            assert_eq!(copy.block(h).unwrap().unwrap().hash, block.hash, "height {h} differs");
        }
        let certificate = Certificate::decode(&copies[0].certificate(h).unwrap().unwrap()).unwrap();
        if h > removed_at {
            assert!(
                certificate.signatures.iter().all(|(member, _)| *member != 4),
                "height {h}: a removed participant's precommit in the certificate"
            );
        }
        in_blocks.extend(block.transactions.iter().map(|(hash, _)| *hash));
    }
    for hash in &acknowledged {
        assert!(in_blocks.contains(hash), "acknowledged transaction lost");
    }
    // Every copy, the removed node's too (it stopped following at its removal).
    for store in &cluster.stores {
        let verdict = verify_ledger(store.clone(), id).unwrap();
        assert!(matches!(verdict, Verdict::Valid { .. }), "{verdict:?}");
    }
}

/// A fifth node, configured with the ledger but not among its genesis participants,
/// follows as an observer; a transaction co-signed by 3 of the 4 participants admits it.
/// It then catches up with certified blocks and votes: with 5 participants a commit
/// needs 4, so with node 4 stopped commits go on only with node 5's precommits.
#[actix_rt::test]
async fn a_node_admitted_at_run_time_joins_a_bft_ledger() {
    init_tracing();
    let mut cluster = Cluster::with_trace_account().await;
    let mut acknowledged = write_through(&cluster.handle(1), 1000, 10).await;

    let key5 = key(125);
    let address5 = free_address();
    let store5: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut opts = options(5, key5.clone(), vec![ledger()]);
    opts.p2p_listen = Some(address5);
    opts.peers = cluster.peers(0);
    opts.bft.decided_kept = 4;
    let node5 = Node::start(opts, store5.clone()).unwrap();
    let handle5 = node5.ledgers()[0].clone();
    assert_eq!(handle5.head().height, 0, "an observer that is not admitted gets nothing");

    let id = cluster.handle(1).id();
    let admission = participant_change(
        id,
        engine::model::Operation::AddParticipant {
            public_key: key5.public_key(),
            node_id: 5,
            address: address5.to_string(),
        },
    );
    let outcome = submit_and_wait(&cluster.handle(1), vec![admission]).await.remove(0);
    let TxStatus::Committed { result: ResultCode::Committed, height: admitted_at, .. } =
        outcome.status
    else {
        panic!("admission not committed: {outcome:?}");
    };
    acknowledged.push(outcome.hash);
    for round in 0..6 {
        acknowledged.extend(write_through(&cluster.handle(2), 2000 + round * 10, 5).await);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle5.head() != cluster.handle(2).head() {
        assert!(Instant::now() < deadline, "node 5 did not catch up: {:?}", handle5.head());
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }

    // 5 participants, node 4 down: 4 of 5 only with node 5. Submitted through node 5.
    cluster.stop(4).await;
    acknowledged.extend(write_through(&handle5, 3000, 10).await);
    acknowledged.extend(write_through(&cluster.handle(1), 3100, 10).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    while handle5.head() != cluster.handle(1).head() {
        assert!(Instant::now() < deadline, "node 5 fell behind");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    node5.shutdown(Duration::ZERO).await;
    for node in 1..=NODES {
        cluster.stop(node).await;
    }

    let copy = Ledger::open(store5.clone(), id).unwrap();
    let height = copy.head().height;
    let reference = Ledger::open(cluster.stores[0].clone(), id).unwrap();
    assert_eq!(reference.head().height, height);
    let last = Certificate::decode(&copy.certificate(height).unwrap().unwrap()).unwrap();
    assert!(
        last.signatures.iter().any(|(member, _)| *member == 5),
        "node 5's precommit is not in the last certificate (admitted at {admitted_at})"
    );
    let mut in_blocks = HashSet::new();
    for h in 1..=height {
        let block = copy.block(h).unwrap().unwrap();
        assert_eq!(reference.block(h).unwrap().unwrap().hash, block.hash, "height {h} differs");
        in_blocks.extend(block.transactions.iter().map(|(hash, _)| *hash));
    }
    for hash in &acknowledged {
        assert!(in_blocks.contains(hash), "acknowledged transaction lost");
    }
    // Each certificate against the participants of its height: 4 before, 5 after.
    for store in cluster.stores.iter().chain([&store5]) {
        let verdict = verify_ledger(store.clone(), id).unwrap();
        assert!(matches!(verdict, Verdict::Valid { .. }), "{verdict:?}");
    }
}
