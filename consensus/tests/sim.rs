//! Deterministic simulation of several Raft groups on three nodes: a seeded network that
//! drops, delays (and so reorders) messages, partitions nodes, and crashes and restarts
//! them (state survives only in each node's store). Checks safety (no two different
//! entries applied at one height, nothing applied is ever lost) and liveness after the
//! faults heal.
//!
//! A second simulation adds and removes voting members (one at a time, from five nodes)
//! while the same faults go on.
//!
//! `POLYLEDGER_SIM_SEED=n` replays one seed; `POLYLEDGER_SIM_SEEDS=n` runs n seeds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use consensus::{
    Checkpoint, ConsensusError, ConsensusGroup, GroupStore, MembershipChange, RaftGroup,
    RaftOptions,
};
use engine::store::{KvStore, MemoryStore, WriteBatch};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: u64 = 3;
const GROUPS: u8 = 3;

fn options() -> RaftOptions {
    RaftOptions { max_log_entries_kept: 4, ..RaftOptions::default() }
}

fn group_store(store: &Arc<MemoryStore>, group: u8) -> GroupStore {
    GroupStore::new(store.clone(), vec![b'g', group, 0x0b])
}

fn app_key(group: u8, height: u64) -> Vec<u8> {
    let mut key = vec![b'a', group];
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// The application: a sequence of applied payloads by height, in the node's store,
/// written atomically with the applied marker.
struct App {
    height: u64,
}

impl App {
    fn open(store: &MemoryStore, group: &GroupStore) -> App {
        let height =
            group.applied_marker().unwrap().map_or(0, |marker| decode_height(&marker.data));
        let _ = store;
        App { height }
    }
}

fn decode_height(data: &[u8]) -> u64 {
    if data.is_empty() { 0 } else { u64::from_be_bytes(data.try_into().unwrap()) }
}

struct Member {
    raft: RaftGroup,
    app: App,
}

struct Node {
    store: Arc<MemoryStore>,
    members: Option<Vec<Member>>,
}

struct InFlight {
    deliver_at: u64,
    group: u8,
    from: u64,
    to: u64,
    bytes: Vec<u8>,
}

struct Sim {
    rng: StdRng,
    seed: u64,
    /// Nodes `1..=node_count` run every group.
    node_count: u64,
    /// Each group's first voters.
    initial_voters: Vec<u64>,
    nodes: Vec<Node>,
    network: Vec<InFlight>,
    now: u64,
    drop_rate: f64,
    max_delay: u64,
    /// Nodes cut off from everyone (both directions).
    isolated: Vec<u64>,
    proposed: u64,
    /// Every payload applied anywhere, with the height it was applied at.
    applied: HashMap<Vec<u8>, u64>,
    crashes: u64,
    restores: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        Self::with_nodes(seed, NODES, (1..=NODES).collect())
    }

    /// `node_count` nodes; the groups start with `initial_voters`, the other nodes join
    /// only when added.
    fn with_nodes(seed: u64, node_count: u64, initial_voters: Vec<u64>) -> Sim {
        let nodes = (1..=node_count)
            .map(|_| Node { store: Arc::new(MemoryStore::new()), members: None })
            .collect();
        let mut sim = Sim {
            rng: StdRng::seed_from_u64(seed),
            seed,
            node_count,
            initial_voters,
            nodes,
            network: Vec::new(),
            now: 0,
            drop_rate: 0.0,
            max_delay: 0,
            isolated: Vec::new(),
            proposed: 0,
            applied: HashMap::new(),
            crashes: 0,
            restores: 0,
        };
        for node in 1..=node_count {
            sim.start(node);
        }
        sim
    }

    fn start(&mut self, node: u64) {
        let store = self.nodes[node as usize - 1].store.clone();
        let members = (0..GROUPS)
            .map(|group| {
                let group_store = group_store(&store, group);
                let raft = RaftGroup::open_with_voters(
                    group_store.clone(),
                    node,
                    &self.initial_voters,
                    options(),
                )
                .unwrap();
                Member { raft, app: App::open(&store, &group_store) }
            })
            .collect();
        self.nodes[node as usize - 1].members = Some(members);
    }

    fn crash(&mut self, node: u64) {
        self.crashes += 1;
        self.nodes[node as usize - 1].members = None;
        self.network.retain(|message| message.to != node && message.from != node);
    }

    fn up(&self, node: u64) -> bool {
        self.nodes[node as usize - 1].members.is_some()
    }

    fn step(&mut self) {
        self.now += 1;
        // Deliver due messages.
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.network).into_iter().partition(|m| m.deliver_at <= now);
        self.network = later;
        for message in due {
            if !self.up(message.to) {
                continue;
            }
            let members = self.nodes[message.to as usize - 1].members.as_mut().unwrap();
            // Malformed input never comes from the simulated network; a rejection here
            // would be a bug.
            members[message.group as usize].raft.receive(message.from, &message.bytes).unwrap();
        }
        for node in 1..=self.node_count {
            if !self.up(node) {
                continue;
            }
            for group in 0..GROUPS {
                self.member_mut(node, group).raft.tick();
            }
        }
        for node in 1..=self.node_count {
            for group in 0..GROUPS {
                self.drive(node, group);
            }
        }
    }

    /// One round's fault, drawn from the seed: 2% crash a node (while more than
    /// `min_up` are up), 4% restart every crashed node, 2% isolate a node, 4% reconnect.
    fn random_fault(&mut self, min_up: usize) {
        let n = self.node_count;
        let fault = self.rng.random_range(0..100);
        if fault < 2 {
            let node = self.rng.random_range(1..=n);
            if self.up(node) && (1..=n).filter(|m| self.up(*m)).count() > min_up {
                self.crash(node);
            }
        } else if fault < 6 {
            for node in 1..=n {
                if !self.up(node) {
                    self.start(node);
                }
            }
        } else if fault < 8 {
            self.isolated = vec![self.rng.random_range(1..=n)];
        } else if fault < 12 {
            self.isolated.clear();
        }
    }

    /// Heal: everyone up, a reliable network.
    fn heal(&mut self) {
        for node in 1..=self.node_count {
            if !self.up(node) {
                self.start(node);
            }
        }
        self.isolated.clear();
        self.drop_rate = 0.0;
        self.max_delay = 1;
    }

    fn member_mut(&mut self, node: u64, group: u8) -> &mut Member {
        &mut self.nodes[node as usize - 1].members.as_mut().unwrap()[group as usize]
    }

    /// The node leading `group` among its voters, if any.
    fn leader(&mut self, group: u8) -> Option<u64> {
        (1..=self.node_count).find(|&node| {
            self.up(node) && {
                let raft = &self.member_mut(node, group).raft;
                raft.is_leader() && raft.voters().contains(&node)
            }
        })
    }

    fn propose(&mut self, group: u8) -> bool {
        for node in 1..=self.node_count {
            let up_leader = self.up(node) && {
                let raft = &self.member_mut(node, group).raft;
                raft.is_leader() && raft.voters().contains(&node)
            };
            if up_leader {
                self.proposed += 1;
                let payload = format!("g{group}-n{node}-p{}", self.proposed).into_bytes();
                self.member_mut(node, group).raft.propose(payload).unwrap();
                self.drive(node, group);
                return true;
            }
        }
        false
    }

    fn drive(&mut self, node: u64, group: u8) {
        if !self.up(node) {
            return;
        }
        let store = self.nodes[node as usize - 1].store.clone();
        let gstore = group_store(&store, group);
        let ready = self.member_mut(node, group).raft.ready().unwrap();
        for (to, bytes) in ready.messages {
            let cut = self.isolated.contains(&node) || self.isolated.contains(&to);
            if cut || self.rng.random_bool(self.drop_rate) {
                continue;
            }
            let delay =
                if self.max_delay == 0 { 1 } else { self.rng.random_range(1..=self.max_delay) };
            self.network.push(InFlight {
                deliver_at: self.now + delay,
                group,
                from: node,
                to,
                bytes,
            });
        }
        if let Some(checkpoint) = ready.restored {
            // Catch up from a peer's applied state (block sync in the real node).
            self.restores += 1;
            let target = decode_height(&checkpoint.data);
            let mut height = self.member_mut(node, group).app.height;
            let mut batch = WriteBatch::new();
            while height < target {
                height += 1;
                let payload = (1..=self.node_count)
                    .filter(|peer| *peer != node)
                    .find_map(|peer| {
                        self.nodes[peer as usize - 1].store.get(&app_key(group, height)).unwrap()
                    })
                    .unwrap_or_else(|| panic!("seed {}: nobody has height {height}", self.seed));
                batch.put(app_key(group, height), payload);
            }
            gstore.put_applied_marker(&mut batch, &checkpoint);
            store.write(batch).unwrap();
            let member = self.member_mut(node, group);
            member.app.height = height.max(member.app.height);
            member.raft.applied(checkpoint).unwrap();
        }
        for committed in ready.committed {
            let member = self.member_mut(node, group);
            let height = member.app.height + 1;
            let checkpoint =
                Checkpoint { index: committed.index, data: height.to_be_bytes().to_vec() };
            let mut batch = WriteBatch::new();
            batch.put(app_key(group, height), committed.payload.clone());
            gstore.put_applied_marker(&mut batch, &checkpoint);
            store.write(batch).unwrap();
            member.app.height = height;
            member.raft.applied(checkpoint).unwrap();
            match self.applied.get(&committed.payload) {
                Some(at) => assert_eq!(
                    *at, height,
                    "seed {}: payload applied at two heights on different nodes",
                    self.seed
                ),
                None => {
                    self.applied.insert(committed.payload, height);
                }
            }
        }
    }

    /// Every node's applied sequence for `group`.
    fn sequences(&self, group: u8) -> Vec<BTreeMap<u64, Vec<u8>>> {
        self.nodes
            .iter()
            .map(|node| {
                let mut sequence = BTreeMap::new();
                let mut height = 1;
                while let Some(payload) = node.store.get(&app_key(group, height)).unwrap() {
                    sequence.insert(height, payload);
                    height += 1;
                }
                sequence
            })
            .collect()
    }

    fn check_safety(&self) {
        for group in 0..GROUPS {
            let sequences = self.sequences(group);
            let mut by_height: BTreeMap<u64, &Vec<u8>> = BTreeMap::new();
            for sequence in &sequences {
                for (height, payload) in sequence {
                    if let Some(other) = by_height.insert(*height, payload) {
                        assert_eq!(
                            other, payload,
                            "seed {}: group {group} has two entries at height {height}",
                            self.seed
                        );
                    }
                }
            }
        }
    }
}

/// Counts of what a run exercised.
struct Stats {
    applied: usize,
    crashes: u64,
    restores: u64,
}

fn run(seed: u64) -> Stats {
    let mut sim = Sim::new(seed);
    // Faulty phase.
    sim.drop_rate = 0.1;
    sim.max_delay = 4;
    for round in 0..600u64 {
        if round % 3 == 0 {
            let group = sim.rng.random_range(0..GROUPS);
            sim.propose(group);
        }
        sim.random_fault(1);
        sim.step();
        sim.check_safety();
    }
    sim.heal();
    let applied_before_heal: Vec<Vec<u8>> = sim.applied.keys().cloned().collect();
    for _ in 0..200 {
        sim.step();
    }
    // Liveness: every group commits new proposals everywhere.
    for group in 0..GROUPS {
        assert!(sim.propose(group), "seed {seed}: group {group} has no leader after healing");
    }
    for _ in 0..100 {
        sim.step();
    }
    sim.check_safety();
    for group in 0..GROUPS {
        let sequences = sim.sequences(group);
        for sequence in &sequences[1..] {
            assert_eq!(
                sequence, &sequences[0],
                "seed {seed}: group {group} differs between nodes after healing"
            );
        }
    }
    // Nothing applied anywhere is lost: it is on every node now.
    let everywhere: Vec<Vec<u8>> =
        (0..GROUPS).flat_map(|group| sim.sequences(group).remove(0).into_values()).collect();
    for payload in &applied_before_heal {
        assert!(
            everywhere.contains(payload),
            "seed {seed}: {} was applied before healing and is lost",
            String::from_utf8_lossy(payload)
        );
    }
    assert!(
        sim.applied.len() > applied_before_heal.len(),
        "seed {seed}: nothing committed after healing"
    );
    Stats { applied: sim.applied.len(), crashes: sim.crashes, restores: sim.restores }
}

#[test]
fn raft_groups_stay_safe_and_live_under_faults() {
    let seeds: Vec<u64> = match std::env::var("POLYLEDGER_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("POLYLEDGER_SIM_SEED is a number")],
        Err(_) => {
            let count = std::env::var("POLYLEDGER_SIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(16u64);
            (1..=count).collect()
        }
    };
    let mut restores = 0;
    for seed in seeds.iter().copied() {
        match std::panic::catch_unwind(|| run(seed)) {
            Ok(stats) => {
                eprintln!(
                    "seed {seed}: {} entries applied, {} crashes, {} snapshot restores",
                    stats.applied, stats.crashes, stats.restores
                );
                restores += stats.restores;
            }
            Err(_) => panic!("simulation failed; replay with POLYLEDGER_SIM_SEED={seed}"),
        }
    }
    // The faults must reach the compacted-log path, or the test proves less than it says.
    if seeds.len() > 1 {
        assert!(restores > 0, "no run caught up from a snapshot");
    }
}

/// A point-in-time copy of a store (what an online backup holds).
fn copy_store(store: &MemoryStore) -> MemoryStore {
    let copy = MemoryStore::new();
    let mut batch = WriteBatch::new();
    for (key, value) in
        store.scan(&[], &[0xff; 64], engine::store::Direction::Forward, usize::MAX).unwrap()
    {
        batch.put(key, value);
    }
    copy.write(batch).unwrap();
    copy
}

/// A member restored from an old copy of its store has lost entries it acknowledged.
/// Its leader still counts them; without `tolerate_lost_entries` raft-rs panics on the
/// member ("to_commit is out of range") or the member never catches up. With it, the
/// member rejoins, catches up, and every node applies the same sequence.
#[test]
fn a_member_restored_from_an_old_copy_catches_up() {
    for seed in [11u64, 12, 13] {
        let mut sim = Sim::new(seed);
        sim.max_delay = 1;
        let drive = |sim: &mut Sim, rounds: u64| {
            for round in 0..rounds {
                if round % 3 == 0 {
                    let group = sim.rng.random_range(0..GROUPS);
                    sim.propose(group);
                }
                sim.step();
            }
        };
        drive(&mut sim, 150);
        let backup = copy_store(&sim.nodes[2].store);
        drive(&mut sim, 150);
        let applied_before: usize = sim.sequences(0)[0].len();
        sim.crash(3);
        sim.nodes[2].store = Arc::new(backup);
        sim.start(3);
        drive(&mut sim, 300);
        for _ in 0..100 {
            sim.step();
        }
        sim.check_safety();
        for group in 0..GROUPS {
            let sequences = sim.sequences(group);
            assert_eq!(
                sequences[2], sequences[0],
                "seed {seed}: group {group}: the restored member did not catch up"
            );
        }
        assert!(sim.sequences(0)[0].len() > applied_before, "seed {seed}: commits went on");
    }
}

/// What a membership run did.
struct MembershipStats {
    applied: usize,
    added: u64,
    removed: u64,
}

/// Asks `group`'s leader for one membership step: promote a learner (a node added
/// before that does not vote yet), else (when `new_changes`) add a node that never
/// joined the group or remove a voter (keeping at least three). Rejections (a change in
/// progress, a learner still catching up) are expected; the step is asked again later.
fn change_membership(
    sim: &mut Sim,
    group: u8,
    ever: &mut [Vec<u64>],
    removed: &mut [Vec<u64>],
    seed: u64,
    new_changes: bool,
) {
    const ALL: u64 = 5;
    let Some(leader) = sim.leader(group) else { return };
    let voters = sim.member_mut(leader, group).raft.voters();
    let g = group as usize;
    let learner = ever[g].iter().copied().find(|n| !voters.contains(n) && !removed[g].contains(n));
    let newcomer = (1..=ALL).find(|n| !ever[g].contains(n));
    let change = match (learner, newcomer) {
        (Some(node), _) => MembershipChange::Add(node),
        _ if !new_changes => return,
        (None, Some(node)) if voters.len() <= 3 || sim.rng.random_bool(0.5) => {
            MembershipChange::Add(node)
        }
        _ if voters.len() > 3 => {
            MembershipChange::Remove(voters[sim.rng.random_range(0..voters.len())])
        }
        _ => return,
    };
    match sim.member_mut(leader, group).raft.propose_membership(change) {
        Ok(()) => match change {
            MembershipChange::Add(node) if !ever[g].contains(&node) => ever[g].push(node),
            MembershipChange::Add(_) => {}
            MembershipChange::Remove(node) => removed[g].push(node),
        },
        Err(ConsensusError::Rejected(_)) => {}
        Err(error) => panic!("seed {seed}: {error}"),
    }
    sim.drive(leader, group);
}

/// Five nodes; each group starts with voters 1, 2, 3. During the faulty phase the
/// current leader is asked, now and then, to add a node that never voted in the group
/// or to remove a voter (keeping at least three); removed nodes never return. Crashes,
/// restarts, partitions, drops and delays go on as in `run`.
fn run_membership(seed: u64) -> MembershipStats {
    const ALL: u64 = 5;
    let mut sim = Sim::with_nodes(seed, ALL, vec![1, 2, 3]);
    // Per group: nodes that have voted at some point, and nodes removed.
    let mut ever: Vec<Vec<u64>> = vec![vec![1, 2, 3]; GROUPS as usize];
    let mut removed: Vec<Vec<u64>> = vec![Vec::new(); GROUPS as usize];
    let (mut added, mut removals) = (0, 0);
    sim.drop_rate = 0.1;
    sim.max_delay = 4;
    for round in 0..900u64 {
        if round % 3 == 0 {
            let group = sim.rng.random_range(0..GROUPS);
            sim.propose(group);
        }
        if sim.rng.random_range(0..100) < 6 {
            let group = sim.rng.random_range(0..GROUPS);
            change_membership(&mut sim, group, &mut ever, &mut removed, seed, true);
        }
        sim.random_fault(3);
        sim.step();
        sim.check_safety();
    }
    sim.heal();
    let applied_before_heal: Vec<Vec<u8>> = sim.applied.keys().cloned().collect();
    for round in 0..300 {
        // Learners that caught up are promoted (no new additions or removals now).
        if round % 10 == 0 {
            for group in 0..GROUPS {
                change_membership(&mut sim, group, &mut ever, &mut removed, seed, false);
            }
        }
        sim.step();
    }
    for group in 0..GROUPS {
        assert!(sim.propose(group), "seed {seed}: group {group} has no leader after healing");
    }
    for _ in 0..150 {
        sim.step();
    }
    sim.check_safety();
    let mut everywhere = Vec::new();
    for group in 0..GROUPS {
        let leader = sim.leader(group).expect("a leader after healing");
        let voters = sim.member_mut(leader, group).raft.voters();
        // Proposals and removals that raced a leader change may not have committed:
        // the voters are what the group agreed on.
        for node in &voters {
            assert!(
                ever[group as usize].contains(node),
                "seed {seed}: group {group} votes with {node}, which was never added"
            );
            let member = sim.member_mut(*node, group);
            assert_eq!(
                member.raft.voters(),
                voters,
                "seed {seed}: group {group}: configurations differ"
            );
        }
        if voters.iter().any(|n| *n > 3) {
            added += 1;
        }
        if (1..=3).any(|n| !voters.contains(&n)) {
            removals += 1;
        }
        let sequences = sim.sequences(group);
        let reference = &sequences[leader as usize - 1];
        for node in &voters {
            assert_eq!(
                &sequences[*node as usize - 1],
                reference,
                "seed {seed}: group {group}: voter {node} differs from the leader after healing"
            );
        }
        // Everyone else (removed, never added) holds a prefix of it.
        for sequence in &sequences {
            for (height, payload) in sequence {
                assert_eq!(reference.get(height), Some(payload), "seed {seed}: group {group}");
            }
        }
        everywhere.extend(reference.values().cloned());
    }
    for payload in &applied_before_heal {
        assert!(
            everywhere.contains(payload),
            "seed {seed}: {} was applied before healing and is lost",
            String::from_utf8_lossy(payload)
        );
    }
    assert!(sim.applied.len() > applied_before_heal.len(), "seed {seed}: nothing after healing");
    MembershipStats { applied: sim.applied.len(), added, removed: removals }
}

#[test]
fn membership_changes_interleaved_with_faults_stay_safe_and_live() {
    let seeds: Vec<u64> = match std::env::var("POLYLEDGER_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("POLYLEDGER_SIM_SEED is a number")],
        Err(_) => {
            let count = std::env::var("POLYLEDGER_SIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(12u64);
            (100..100 + count).collect()
        }
    };
    let (mut added, mut removed) = (0, 0);
    for seed in seeds.iter().copied() {
        match std::panic::catch_unwind(|| run_membership(seed)) {
            Ok(stats) => {
                eprintln!(
                    "seed {seed}: {} entries applied; groups that gained a voter: {}, lost one: {}",
                    stats.applied, stats.added, stats.removed
                );
                added += stats.added;
                removed += stats.removed;
            }
            Err(_) => {
                panic!("membership simulation failed; replay with POLYLEDGER_SIM_SEED={seed}")
            }
        }
    }
    // The schedule must actually change memberships, or the test proves nothing.
    if seeds.len() > 1 {
        assert!(added > 0 && removed > 0, "no membership change committed ({added}, {removed})");
    }
}
