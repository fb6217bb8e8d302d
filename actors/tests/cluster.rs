//! Three nodes in one process, each with its own store and transport on 127.0.0.1, two
//! Raft ledgers. The leader of a ledger is stopped and a new one takes over; a stopped
//! follower restarts and catches up; at the end every node has the same blocks, every
//! ledger verifies, and no acknowledged transaction is lost.
// Ledgers are indexed the same way on the nodes and in `acknowledged`.
#![allow(clippy::needless_range_loop)]

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actors::transport::PeerConfig;
use actors::{LedgerHandle, Node, TxStatus};
use common::*;
use crypto_parallel::PrivateKey;
use engine::ledger::Ledger;
use engine::model::{Hash32, LedgerSettings, ResultCode};
use engine::store::{KvStore, MemoryStore};
use engine::verify::{Verdict, verify_ledger};

const NODES: u64 = 3;

fn node_keys() -> Vec<PrivateKey> {
    (1..=NODES).map(|i| key(100 + i as u8)).collect()
}

fn ledgers() -> Vec<LedgerSettings> {
    let participants = node_keys().iter().map(PrivateKey::public_key).collect::<Vec<_>>();
    vec![
        settings("dairy-0", "raft", participants.clone()),
        settings("liquor-0", "raft", participants),
    ]
}

struct Cluster {
    stores: Vec<Arc<dyn KvStore>>,
    addresses: Vec<SocketAddr>,
    nodes: Vec<Option<Node>>,
    /// Raft log entries kept behind the applied index.
    keep: u64,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster::with_log_kept(1000)
    }

    fn with_log_kept(keep: u64) -> Cluster {
        let stores: Vec<Arc<dyn KvStore>> =
            (0..NODES).map(|_| Arc::new(MemoryStore::new()) as Arc<dyn KvStore>).collect();
        let addresses = (0..NODES).map(|_| free_address()).collect();
        let mut cluster =
            Cluster { stores, addresses, nodes: (0..NODES).map(|_| None).collect(), keep };
        for id in 1..=NODES {
            cluster.start(id);
        }
        cluster
    }

    fn start(&mut self, id: u64) {
        let keys = node_keys();
        let peers = (1..=NODES)
            .filter(|peer| *peer != id)
            .map(|peer| PeerConfig {
                id: peer,
                public_key: keys[peer as usize - 1].public_key(),
                address: self.addresses[peer as usize - 1],
            })
            .collect();
        let mut opts = options(id, keys[id as usize - 1].clone(), ledgers());
        opts.p2p_listen = Some(self.addresses[id as usize - 1]);
        opts.raft.max_log_entries_kept = self.keep;
        opts.peers = peers;
        let node = Node::start(opts, self.stores[id as usize - 1].clone()).unwrap();
        self.nodes[id as usize - 1] = Some(node);
    }

    async fn stop(&mut self, id: u64) {
        if let Some(node) = self.nodes[id as usize - 1].take() {
            node.shutdown(Duration::ZERO).await;
        }
    }

    fn handle(&self, id: u64, ledger: usize) -> Option<LedgerHandle> {
        self.nodes[id as usize - 1].as_ref().map(|node| node.ledgers()[ledger].clone())
    }

    /// The node whose member leads `ledger`, found from the block proposer addresses is
    /// not reliable before the first block; ask the handles instead.
    async fn leader(&self, ledger: usize) -> Option<u64> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            for id in 1..=NODES {
                if let Some(handle) = self.handle(id, ledger)
                    && handle.is_leader()
                {
                    return Some(id);
                }
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Submits `count` writes through node `via` and waits for all of them; retries when
/// the node is busy or the batch is lost to a leader change. Returns the hashes that
/// were acknowledged as committed.
async fn write_through(handle: &LedgerHandle, first_nonce: u64, count: u64) -> Vec<Hash32> {
    let admin = admin();
    let transactions: Vec<_> = (first_nonce..first_nonce + count)
        .map(|nonce| tx(&admin, handle.id(), nonce, vec![write(&format!("k{nonce}"), b"v", -1)]))
        .collect();
    let outcomes =
        actix_rt::time::timeout(Duration::from_secs(10), submit_and_wait(handle, transactions))
            .await
            .expect("final within 10 s");
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

#[actix_rt::test]
async fn three_nodes_survive_leader_and_follower_restarts() {
    init_tracing();
    let mut cluster = Cluster::new();
    let mut acknowledged: Vec<Vec<Hash32>> = vec![Vec::new(), Vec::new()];

    for ledger in 0..2 {
        let leader = cluster.leader(ledger).await.expect("a leader is elected");
        let handle = cluster.handle(leader, ledger).unwrap();
        let outcome = register_trace_account(&handle).await;
        assert!(matches!(
            outcome.status,
            TxStatus::Committed { result: ResultCode::Committed, .. }
        ));
        // Through every node: followers forward to the leader.
        for via in 1..=NODES {
            let handle = cluster.handle(via, ledger).unwrap();
            eprintln!("ledger {ledger} via {via} leader {:?}", handle.is_leader());
            acknowledged[ledger].extend(write_through(&handle, via * 1000, 50).await);
        }
    }

    // Stop the leader of ledger 0: a new one is elected and commits resume within 3 s.
    let old_leader = cluster.leader(0).await.unwrap();
    cluster.stop(old_leader).await;
    let stopped_at = Instant::now();
    let survivor = (1..=NODES).find(|id| *id != old_leader).unwrap();
    let handle = cluster.handle(survivor, 0).unwrap();
    acknowledged[0].extend(write_through(&handle, 10_000, 20).await);
    let recovery = stopped_at.elapsed();
    eprintln!("commits resumed {recovery:?} after the leader stopped");
    assert!(recovery < Duration::from_secs(3), "commits resumed only after {recovery:?}");
    for ledger in 0..2 {
        let handle = cluster.handle(survivor, ledger).unwrap();
        acknowledged[ledger].extend(write_through(&handle, 20_000, 50).await);
    }

    // The stopped node restarts and catches up.
    cluster.start(old_leader);
    for ledger in 0..2 {
        let handle = cluster.handle(survivor, ledger).unwrap();
        acknowledged[ledger].extend(write_through(&handle, 30_000, 50).await);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let heads: Vec<_> = (0..2)
            .flat_map(|ledger| (1..=NODES).map(move |id| (ledger, id)))
            .map(|(ledger, id)| cluster.handle(id, ledger).unwrap().head())
            .collect();
        let caught_up =
            heads.chunks(NODES as usize).all(|heads| heads.iter().all(|h| *h == heads[0]));
        if caught_up {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted node did not catch up: {heads:?}");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }

    let ids: Vec<_> = (0..2).map(|ledger| cluster.handle(1, ledger).unwrap().id()).collect();
    for id in 1..=NODES {
        cluster.stop(id).await;
    }
    // Identical blocks everywhere, every copy verifies, nothing acknowledged is lost.
    for (ledger, ledger_id) in ids.iter().enumerate() {
        let copies: Vec<_> = cluster
            .stores
            .iter()
            .map(|store| Ledger::open(store.clone(), *ledger_id).unwrap())
            .collect();
        let height = copies[0].head().height;
        let mut committed = HashSet::new();
        for h in 0..=height {
            let block = copies[0].block(h).unwrap().unwrap();
            for copy in &copies[1..] {
                assert_eq!(copy.block(h).unwrap().unwrap().hash, block.hash, "height {h} differs");
            }
            committed.extend(block.transactions.iter().map(|(hash, _)| *hash));
        }
        for hash in &acknowledged[ledger] {
            assert!(committed.contains(hash), "acknowledged transaction lost");
        }
        for store in &cluster.stores {
            let verdict = verify_ledger(store.clone(), *ledger_id).unwrap();
            assert!(matches!(verdict, Verdict::Valid { .. }), "{verdict:?}");
        }
    }
}

/// A follower that was down while the others compacted the log past it catches up by
/// block sync (not by replaying the log), then follows normally.
#[actix_rt::test]
async fn follower_behind_a_compacted_log_syncs_blocks() {
    init_tracing();
    let mut cluster = Cluster::with_log_kept(4);
    let leader = cluster.leader(0).await.expect("a leader is elected");
    let handle = cluster.handle(leader, 0).unwrap();
    register_trace_account(&handle).await;
    let follower = (1..=NODES).find(|id| *id != leader).unwrap();
    cluster.stop(follower).await;
    // Many small blocks: far more entries than the log keeps.
    let mut acknowledged = Vec::new();
    for round in 0..30 {
        let handle = cluster.handle(leader, 0).unwrap();
        acknowledged.extend(write_through(&handle, 1000 + round * 10, 3).await);
    }
    cluster.start(follower);
    // It syncs, and then takes part in new blocks.
    let handle = cluster.handle(leader, 0).unwrap();
    acknowledged.extend(write_through(&handle, 9000, 5).await);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let leader_head = cluster.handle(leader, 0).unwrap().head();
        let follower_handle = cluster.handle(follower, 0).unwrap();
        assert!(follower_handle.halted().is_none(), "{:?}", follower_handle.halted());
        if follower_handle.head() == leader_head {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no catch-up: {:?} vs {leader_head:?}",
            follower_handle.head()
        );
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let ledger_id = cluster.handle(leader, 0).unwrap().id();
    for id in 1..=NODES {
        cluster.stop(id).await;
    }
    let store = &cluster.stores[follower as usize - 1];
    let verdict = verify_ledger(store.clone(), ledger_id).unwrap();
    assert!(matches!(verdict, Verdict::Valid { .. }), "{verdict:?}");
    let copy = Ledger::open(store.clone(), ledger_id).unwrap();
    for hash in &acknowledged {
        assert!(
            copy.transaction(hash).unwrap().is_some(),
            "acknowledged transaction missing on the synced node"
        );
    }
    // The log really was compacted past what the follower had: it could only sync.
    assert!(copy.head().height > 30);
}
