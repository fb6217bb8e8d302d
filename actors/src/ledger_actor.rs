//! `LedgerActor`: one per ledger. It owns the ledger's mempool, its consensus group
//! member and its `Ledger`; it builds blocks on the leader, proposes them, executes and
//! commits what the group commits, and releases finality waiters.
//!
//! Nothing here waits per transaction: submissions and outcomes travel in batches
//! (`Submit` carries many transactions, one reply carries all their outcomes), and
//! signatures are checked in batches on the crypto-parallel pool before a transaction
//! reaches the actor (`LedgerHandle::submit`). Each actor runs on its own arbiter
//! thread, so a block write that blocks on fsync stalls only its own ledger.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::Bytes;
use consensus::{Checkpoint, Committed, ConsensusGroup, GroupStore, MemberId};
use engine::layout;
use engine::ledger::{Head, Ledger, SignatureCheck};
use engine::model::{Address, Hash32, LedgerId, ResultCode, Transaction};
use engine::store::{KvStore, StoreError};
use parking_lot::RwLock;
use tokio::sync::{broadcast, oneshot};

use crate::proposal::{BlockProposal, decode_transactions, encode_transactions, kind};
use crate::transport::{Envelope, NodeId, Transport};

/// Block building and mempool limits of one ledger.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// Close a block at this many transactions.
    pub max_block_txs: usize,
    /// ... or when its oldest transaction has waited this long.
    pub max_block_delay: Duration,
    /// Transactions accepted but not yet committed, at most (then `Busy`).
    pub mempool_capacity: usize,
    /// The consensus clock.
    pub tick: Duration,
    /// A proposal not committed within this long is given up and its transactions
    /// proposed again (a leader change can drop it).
    pub proposal_timeout: Duration,
    /// Write each block without an fsync and let the node's WAL syncer make it durable
    /// while the next block executes (`Ledger::commit_unsynced`); the block is reported
    /// (to clients, subscribers, consensus, the published head) only once durable.
    /// Off: every block is written and fsync'd before anything else happens.
    pub pipelined_commit: bool,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            max_block_txs: 2000,
            max_block_delay: Duration::from_millis(20),
            mempool_capacity: 100_000,
            tick: Duration::from_millis(100),
            proposal_timeout: Duration::from_secs(3),
            pipelined_commit: true,
        }
    }
}

/// Why a transaction was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A signature does not verify (or the transaction has none).
    #[error("a signature does not verify")]
    BadSignature,
    /// The transaction names another ledger.
    #[error("the transaction is for another ledger")]
    WrongLedger,
    /// The same transaction is already waiting in the mempool.
    #[error("the same transaction is already pending")]
    AlreadyPending,
    /// The same transaction is already committed.
    #[error("the same transaction is already committed at height {height}")]
    AlreadyCommitted {
        /// Where.
        height: u64,
    },
    /// This node stopped the ledger (divergence or a storage failure); see its log.
    #[error("ledger halted on this node: {0}")]
    Halted(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The ledger's store does not answer (a TiKV cluster lost); commits wait for it and
    /// resume when it returns. Retry later.
    #[error("storage unavailable: {0}")]
    StoreUnavailable(String),
}

impl Rejection {
    /// The stable code clients see (`BAD_SIGNATURE`, …; docs/OPERATIONS.md).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::BadSignature => "BAD_SIGNATURE",
            Rejection::WrongLedger => "WRONG_LEDGER",
            Rejection::AlreadyPending => "ALREADY_PENDING",
            Rejection::AlreadyCommitted { .. } => "ALREADY_COMMITTED",
            Rejection::Halted(_) => "LEDGER_HALTED",
            Rejection::ShuttingDown => "SHUTTING_DOWN",
            Rejection::StoreUnavailable(_) => "STORE_UNAVAILABLE",
        }
    }

    /// The metric label (`polyledger_transactions_rejected_total{reason}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongLedger => "wrong_ledger",
            Rejection::AlreadyPending => "already_pending",
            Rejection::AlreadyCommitted { .. } => "already_committed",
            Rejection::Halted(_) => "halted",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::StoreUnavailable(_) => "store_unavailable",
        }
    }
}

/// What became of one submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxStatus {
    /// Final: in block `height` at `index`, with its result (which may itself be a
    /// rejection by the ledger's rules, e.g. a version conflict).
    Committed {
        /// Block height.
        height: u64,
        /// Position in the block.
        index: u32,
        /// Execution result.
        result: ResultCode,
    },
    /// Not accepted; nothing was changed.
    Rejected(Rejection),
}

/// The outcome of one transaction of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxOutcome {
    /// Transaction hash.
    pub hash: Hash32,
    /// What happened.
    pub status: TxStatus,
}

/// A committed block, as announced to subscribers.
#[derive(Debug, Clone)]
pub struct BlockNotice {
    /// Ledger.
    pub ledger: LedgerId,
    /// Height.
    pub height: u64,
    /// Block hash.
    pub hash: Hash32,
    /// Its transactions with their results.
    pub transactions: Arc<Vec<(Hash32, ResultCode)>>,
    /// When this node committed it.
    pub committed_at: Instant,
}

pub(crate) enum Entry {
    Accepted(Transaction, Hash32),
    Rejected(TxOutcome),
}

/// A batch of transactions (signatures already checked) and who waits for them.
pub(crate) struct Submit {
    pub(crate) entries: Vec<Entry>,
    pub(crate) reply: Option<oneshot::Sender<Vec<TxOutcome>>>,
}

impl Message for Submit {
    type Result = ();
}

/// A frame from the transport for this ledger.
pub(crate) struct Inbound(pub(crate) Envelope);

impl Message for Inbound {
    type Result = ();
}

/// Stop taking transactions, finish the block in flight (up to `grace`), stop.
pub(crate) struct Shutdown {
    pub(crate) grace: Duration,
}

impl Message for Shutdown {
    type Result = ();
}

/// Where a transaction stands, from the actor's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Waiting in this node's mempool or in a proposed block.
    Pending,
    /// Not known to this node's mempool (look in the ledger).
    Unknown,
}

/// Ask whether a transaction is pending.
pub(crate) struct IsPending(pub(crate) Hash32);

impl Message for IsPending {
    type Result = Pending;
}

struct Queued {
    transaction: Transaction,
    hash: Hash32,
    received: Instant,
}

struct BatchWaiter {
    outcomes: Vec<Option<TxOutcome>>,
    remaining: usize,
    /// When the batch arrived (finality latency).
    submitted: Instant,
    reply: oneshot::Sender<Vec<TxOutcome>>,
}

/// Catching up to a checkpoint by block sync.
struct Syncing {
    target: Checkpoint,
    height: u64,
    hash: Hash32,
    /// Entries committed meanwhile, applied after the checkpoint is reached.
    buffered: Vec<Committed>,
    requested_at: Option<Instant>,
    attempt: usize,
}

/// Blocks per sync response, at most.
const SYNC_BLOCKS_MAX: u32 = 64;
/// Bytes per sync response, about (one block may exceed it).
const SYNC_BYTES_MAX: usize = 4 << 20;
/// A sync request unanswered this long goes to another member.
const SYNC_RETRY: Duration = Duration::from_secs(1);

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn decode_checkpoint(data: &[u8]) -> Option<(u64, Hash32)> {
    if data.len() != 40 {
        return None;
    }
    Some((read_u64(data, 0)?, data[8..].try_into().ok()?))
}

struct InFlight {
    height: u64,
    timestamp_ms: u64,
    hashes: HashSet<Hash32>,
    proposed_at: Instant,
    transactions: Vec<Queued>,
}

/// Counters shared between a ledger's actor and its handles.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Transactions accepted and not yet committed or rejected (the mempool bound).
    pub(crate) pending: AtomicUsize,
    pub(crate) head: RwLock<Option<Head>>,
    pub(crate) leader: std::sync::atomic::AtomicBool,
    /// The group has a leader this node knows of (it can commit).
    pub(crate) leader_known: std::sync::atomic::AtomicBool,
    /// The group's term (monitoring).
    pub(crate) term: std::sync::atomic::AtomicU64,
    /// The group's voting members (monitoring, the API).
    pub(crate) voters: RwLock<Vec<MemberId>>,
    pub(crate) blocks_committed: std::sync::atomic::AtomicU64,
    pub(crate) transactions_committed: std::sync::atomic::AtomicU64,
    pub(crate) halted: RwLock<Option<String>>,
    /// Set while the store does not answer (commits wait); cleared when it does again.
    pub(crate) store_unavailable: RwLock<Option<String>>,
    /// The ledger's seal, once sealed: submissions are refused.
    pub(crate) sealed: RwLock<Option<engine::ledger::SealRecord>>,
    /// Set when the node begins to stop: followers (subscriptions, webhooks) end.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

/// Everything an actor is started with.
pub(crate) struct ActorParts {
    pub(crate) ledger: Ledger<Arc<dyn KvStore>>,
    pub(crate) group: Box<dyn ConsensusGroup>,
    pub(crate) group_store: GroupStore,
    /// Node id of each member (`member_nodes[member - 1]`; 0: unknown).
    pub(crate) member_nodes: Vec<NodeId>,
    /// Node ids of the genesis participants (from the configuration); members admitted
    /// later carry theirs in the ledger.
    pub(crate) genesis_nodes: Vec<NodeId>,
    /// Set while this node waits to be admitted to the ledger's group.
    pub(crate) join: Option<JoinPlan>,
    pub(crate) transport: Option<Transport>,
    pub(crate) node_address: Address,
    pub(crate) options: LedgerOptions,
    pub(crate) shared: Arc<Shared>,
    pub(crate) blocks: broadcast::Sender<BlockNotice>,
    pub(crate) metrics: crate::metrics::LedgerMetrics,
    /// The node's WAL syncer, with `LedgerOptions::pipelined_commit`.
    pub(crate) wal: Option<Arc<crate::wal_sync::WalSyncer>>,
}

/// How a node not yet admitted opens its member.
pub(crate) enum JoinPlan {
    /// Raft: once the group addresses it (a message names its member number).
    Raft {
        /// The group's first voters (members `1..=n` of the genesis).
        initial_voters: Vec<MemberId>,
        options: consensus::RaftOptions,
    },
    /// `bft`: it follows as an observer and opens its member once it applies the block
    /// that admits it.
    Bft { key: crypto_parallel::PrivateKey, options: consensus::BftOptions },
}

/// A block executed on the head, not yet written.
struct Prepared {
    executed: engine::ledger::ExecutedBlock,
    count: usize,
    seal: bool,
    participant_change: bool,
    execute_seconds: f64,
}

/// A block written without an fsync (`pipelined_commit`): what reporting it needs once
/// its WAL sync is done.
struct Unsynced {
    ticket: u64,
    block: engine::ledger::StoredBlock,
    count: usize,
    checkpoint: Option<Checkpoint>,
    figures: Figures,
}

/// A block's metrics figures, taken when it is written.
struct Figures {
    execute_seconds: f64,
    state_root_seconds: f64,
    written_bytes: usize,
    writing: Instant,
    proposed: Option<Instant>,
}

/// The actor of one ledger on one node.
pub struct LedgerActor {
    parts: ActorParts,
    mempool: VecDeque<Queued>,
    in_mempool: HashSet<Hash32>,
    in_flight: Option<InFlight>,
    syncing: Option<Syncing>,
    /// Sent to the leader, not yet seen committed: forwarded again after the proposal
    /// timeout (the leader may have died with them).
    forwarded: VecDeque<(Instant, Vec<Queued>)>,
    forwarded_hashes: HashSet<Hash32>,
    batches: HashMap<u64, BatchWaiter>,
    next_batch: u64,
    waiting: HashMap<Hash32, Vec<(u64, u32)>>,
    last_leader: Option<consensus::MemberId>,
    /// Addresses of the participants that may propose blocks (the active ones).
    proposers: HashSet<Address>,
    /// Member numbers of the active participants (what the group's voters converge to).
    active_members: Vec<MemberId>,
    /// The node address of each active participant, by member number.
    member_addresses: HashMap<MemberId, Address>,
    /// Blocks executed for the group's evaluation (`bft`), by block hash, on the current
    /// head: the decided one is committed without executing it again.
    prepared: HashMap<Hash32, Prepared>,
    /// Committed entries not applied yet because the store stopped answering: retried
    /// on every tick, in order, before anything else is applied.
    stalled: VecDeque<Committed>,
    stalled_retry: Instant,
    last_tick: Instant,
    stopping: bool,
    shutdown: Option<(Instant, oneshot::Sender<()>)>,
    /// The last block written, while its WAL sync is not known to be done: settled
    /// before the next block is written and before the actor handles another message.
    unsynced: Option<Unsynced>,
}

/// How far a `bft` proposal's timestamp may be ahead of a voter's clock.
const PROPOSAL_CLOCK_SKEW_MS: u64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn checkpoint_data(height: u64, block_hash: &Hash32) -> Vec<u8> {
    let mut data = height.to_be_bytes().to_vec();
    data.extend_from_slice(block_hash);
    data
}

impl LedgerActor {
    pub(crate) fn new(parts: ActorParts) -> Self {
        *parts.shared.head.write() = Some(parts.ledger.head());
        if let Ok(seal) = parts.ledger.sealed() {
            *parts.shared.sealed.write() = seal;
        }
        let mut actor = LedgerActor {
            parts,
            mempool: VecDeque::new(),
            in_mempool: HashSet::new(),
            in_flight: None,
            syncing: None,
            forwarded: VecDeque::new(),
            forwarded_hashes: HashSet::new(),
            batches: HashMap::new(),
            next_batch: 0,
            waiting: HashMap::new(),
            last_leader: None,
            proposers: HashSet::new(),
            active_members: Vec::new(),
            member_addresses: HashMap::new(),
            prepared: HashMap::new(),
            stalled: VecDeque::new(),
            stalled_retry: Instant::now(),
            last_tick: Instant::now(),
            stopping: false,
            shutdown: None,
            unsynced: None,
        };
        actor.refresh_participants();
        *actor.parts.shared.voters.write() = actor.parts.group.voters();
        actor
    }

    fn id(&self) -> LedgerId {
        self.parts.ledger.id()
    }

    /// Reads the seal after a block with a `Seal` committed (it may have been refused).
    fn refresh_seal(&mut self) {
        match self.parts.ledger.sealed() {
            Ok(seal) => *self.parts.shared.sealed.write() = seal,
            Err(error) => tracing::error!(%error, "reading the ledger's seal"),
        }
    }

    /// Re-reads the ledger's participants: who may propose, each member's node, and
    /// the transport's peers (a participant admitted by a transaction names its node id
    /// and address).
    fn refresh_participants(&mut self) {
        let participants = match self.parts.ledger.participants() {
            Ok(participants) => participants,
            Err(error) => return self.halt(format!("reading participants: {error}")),
        };
        let algorithm = self.parts.ledger.hash_algorithm();
        let active = participants.iter().filter(|p| p.removed_height.is_none());
        self.proposers = active.clone().map(|p| Address::of(algorithm, &p.public_key)).collect();
        self.member_addresses =
            active.clone().map(|p| (p.member, Address::of(algorithm, &p.public_key))).collect();
        let keys: Vec<(MemberId, crypto_parallel::PublicKey)> =
            active.clone().map(|p| (p.member, p.public_key.clone())).collect();
        self.parts.group.participants_changed(keys.clone());
        self.open_admitted_bft_member(keys);
        self.active_members = active.map(|p| p.member).collect();
        let mut nodes = Vec::with_capacity(participants.len());
        for participant in &participants {
            let genesis = self.parts.genesis_nodes.get(participant.member as usize - 1).copied();
            let mut node = genesis.or(participant.node_id).unwrap_or(0);
            if genesis.is_none() && self.parts.genesis_nodes.contains(&node) {
                // The engine cannot see genesis node ids (they are configuration): an
                // admission naming one is unusable rather than confused with that node.
                tracing::error!(
                    member = participant.member,
                    node,
                    "admitted participant names the node id of a genesis participant; ignored"
                );
                node = 0;
            }
            nodes.push(node);
            if node == 0 {
                continue;
            }
            let (Some(node_id), Some(address), Some(transport)) =
                (participant.node_id, &participant.address, &self.parts.transport)
            else {
                continue;
            };
            match address.parse() {
                Ok(address) => {
                    if transport.add_peer(crate::transport::PeerConfig {
                        id: node_id,
                        public_key: participant.public_key.clone(),
                        address,
                    }) {
                        tracing::info!(
                            ledger = %hex::encode(self.id().0),
                            member = participant.member,
                            node = node_id,
                            %address,
                            "participant's node added to the transport"
                        );
                    }
                }
                Err(_) => tracing::warn!(
                    member = participant.member,
                    address = %address,
                    "participant address is not IP:PORT; its node cannot be reached"
                ),
            }
        }
        self.parts.member_nodes = nodes;
    }

    /// On the leader: moves the group's voters one step towards the ledger's active
    /// participants (an admission or removal committed on the ledger becomes a
    /// membership change; one at a time, retried every tick until it commits).
    fn reconcile_membership(&mut self) {
        let group = &mut self.parts.group;
        if !group.is_leader() || !group.settled() || self.syncing.is_some() {
            return;
        }
        let desired = &self.active_members;
        let voters = group.voters();
        let change = match desired.iter().find(|m| !voters.contains(m)) {
            Some(member) => consensus::MembershipChange::Add(*member),
            None => match voters.iter().find(|m| !desired.contains(m)) {
                Some(member) => consensus::MembershipChange::Remove(*member),
                None => return,
            },
        };
        match group.propose_membership(change) {
            Ok(()) => tracing::info!(
                ledger = %hex::encode(self.id().0),
                ?change,
                "membership change proposed"
            ),
            Err(error) => tracing::debug!(?change, %error, "membership change not proposed yet"),
        }
    }

    /// While waiting to be admitted: the first Raft message the group addresses to this
    /// node names its member number; open that member.
    fn maybe_join(&mut self, payload: &[u8]) {
        let Some(JoinPlan::Raft { initial_voters, options }) = &self.parts.join else { return };
        let Some(member) = consensus::raft_group::addressed_to(payload) else { return };
        // Genesis members are configured; an admitted member's number comes after them.
        if member <= initial_voters.len() as u64 {
            tracing::warn!(member, "a message for a genesis member reached a joining node");
            return;
        }
        let opened = consensus::RaftGroup::open_with_voters(
            self.parts.group_store.clone(),
            member,
            initial_voters,
            options.clone(),
        )
        .map(|group| Box::new(group) as Box<dyn ConsensusGroup>);
        self.install_admitted(member, opened, "admitted to the group: catching up");
    }

    /// Replaces the waiting group with the admitted member's, or halts if it cannot open.
    fn install_admitted(
        &mut self,
        member: MemberId,
        opened: Result<Box<dyn ConsensusGroup>, consensus::ConsensusError>,
        message: &'static str,
    ) {
        match opened {
            Ok(group) => {
                tracing::info!(ledger = %hex::encode(self.id().0), member, "{message}");
                self.parts.group = group;
                self.parts.join = None;
                *self.parts.shared.voters.write() = self.parts.group.voters();
            }
            Err(error) => self.halt(format!("opening the admitted member: {error}")),
        }
    }

    /// A `bft` observer whose node the participants now include (a block admitted it):
    /// reopens the group as that member, from the applied head on.
    fn open_admitted_bft_member(
        &mut self,
        participants: Vec<(MemberId, crypto_parallel::PublicKey)>,
    ) {
        let Some(JoinPlan::Bft { key, options }) = &self.parts.join else { return };
        let own = key.public_key();
        let Some(member) = participants.iter().find(|(_, k)| *k == own).map(|(m, _)| *m) else {
            return;
        };
        let identity = consensus::BftIdentity { ledger: self.id(), member, key: key.clone() };
        let opened = consensus::BftGroup::open(
            self.parts.group_store.clone(),
            identity,
            participants,
            options.clone(),
        )
        .map(|group| Box::new(group) as Box<dyn ConsensusGroup>);
        self.install_admitted(
            member,
            opened,
            "admitted to the bft group: voting from the next height",
        );
    }

    fn halted(&self) -> Option<String> {
        self.parts.shared.halted.read().clone()
    }

    /// Stops this ledger on this node, loudly; it never continues on a diverged or
    /// half-written state.
    fn halt(&mut self, mut reason: String) {
        // The block written last is reported first if it is durable (it was committed
        // before whatever halts the ledger now).
        if let Err(sync) = self.settle() {
            reason = format!("{reason}; {sync}");
        }
        tracing::error!(ledger = %hex::encode(self.id().0), %reason, "ledger halted");
        *self.parts.shared.halted.write() = Some(reason.clone());
        let mut rejected = Vec::new();
        for queued in self.mempool.drain(..) {
            rejected.push(queued.hash);
        }
        if let Some(in_flight) = self.in_flight.take() {
            rejected.extend(in_flight.hashes);
        }
        self.in_mempool.clear();
        self.release_pending(rejected.len());
        for hash in rejected {
            self.resolve(hash, TxStatus::Rejected(Rejection::Halted(reason.clone())));
        }
    }

    /// Queued here, in the block in flight, or forwarded to the leader and not yet seen
    /// committed.
    fn is_pending(&self, hash: &Hash32) -> bool {
        self.in_mempool.contains(hash)
            || self.forwarded_hashes.contains(hash)
            || self.in_flight.as_ref().is_some_and(|in_flight| in_flight.hashes.contains(hash))
    }

    fn release_pending(&self, count: usize) {
        if count > 0 {
            self.parts.shared.pending.fetch_sub(count, Ordering::AcqRel);
        }
    }

    fn resolve(&mut self, hash: Hash32, status: TxStatus) {
        if let TxStatus::Rejected(rejection) = &status {
            self.parts.metrics.rejected(rejection.reason(), 1);
        }
        let Some(places) = self.waiting.remove(&hash) else { return };
        for (batch, position) in places {
            let done = match self.batches.get_mut(&batch) {
                Some(waiter) => {
                    let slot = &mut waiter.outcomes[position as usize];
                    if slot.is_none() {
                        if matches!(status, TxStatus::Committed { .. }) {
                            self.parts.metrics.finality(waiter.submitted);
                        }
                        *slot = Some(TxOutcome { hash, status: status.clone() });
                        waiter.remaining -= 1;
                    }
                    waiter.remaining == 0
                }
                None => false,
            };
            if done && let Some(waiter) = self.batches.remove(&batch) {
                let outcomes =
                    waiter.outcomes.into_iter().map(|o| o.expect("all resolved")).collect();
                let _ = waiter.reply.send(outcomes);
            }
        }
    }

    fn submit(&mut self, submit: Submit) {
        let halted = self.halted();
        let batch_id = self.next_batch;
        self.next_batch += 1;
        let count = submit.entries.len();
        let mut waiter = submit.reply.map(|reply| BatchWaiter {
            outcomes: vec![None; count],
            remaining: count,
            submitted: Instant::now(),
            reply,
        });
        // Transactions already committed: one multi-get for the batch.
        let keys: Vec<Vec<u8>> = submit
            .entries
            .iter()
            .map(|entry| match entry {
                Entry::Accepted(_, hash) => layout::tx_key(&self.id(), hash),
                Entry::Rejected(_) => Vec::new(),
            })
            .collect();
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let committed = match self.parts.ledger.store().multi_get(&key_refs) {
            Ok(found) => {
                self.store_read_answered();
                found
            }
            Err(error) => {
                // Not accepted (nothing is lost: the client retries); a store that cannot
                // be read is an outage, anything else stops the ledger.
                let reason = error.to_string();
                if !self.store_outage(&reason) {
                    self.halt(format!("reading the store failed: {error}"));
                }
                for (position, entry) in submit.entries.into_iter().enumerate() {
                    let outcome = match entry {
                        Entry::Rejected(outcome) => outcome,
                        Entry::Accepted(_, hash) => TxOutcome {
                            hash,
                            status: TxStatus::Rejected(Rejection::StoreUnavailable(reason.clone())),
                        },
                    };
                    if let TxStatus::Rejected(rejection) = &outcome.status {
                        self.parts.metrics.rejected(rejection.reason(), 1);
                    }
                    if let Some(waiter) = waiter.as_mut() {
                        waiter.outcomes[position] = Some(outcome);
                    }
                }
                self.release_pending(count);
                if let Some(waiter) = waiter {
                    let outcomes =
                        waiter.outcomes.into_iter().map(|o| o.expect("all set")).collect();
                    let _ = waiter.reply.send(outcomes);
                }
                return;
            }
        };
        let received = Instant::now();
        let mut released = 0;
        let mut accepted = 0;
        for (position, (entry, committed)) in submit.entries.into_iter().zip(committed).enumerate()
        {
            let outcome = match entry {
                Entry::Rejected(outcome) => Some(outcome),
                Entry::Accepted(transaction, hash) => {
                    let rejection = if let Some(reason) = &halted {
                        Some(Rejection::Halted(reason.clone()))
                    } else if self.stopping {
                        Some(Rejection::ShuttingDown)
                    } else if let Some(record) = committed {
                        let height = record
                            .get(..8)
                            .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                        Some(Rejection::AlreadyCommitted { height })
                    } else if self.is_pending(&hash) {
                        Some(Rejection::AlreadyPending)
                    } else {
                        None
                    };
                    match rejection {
                        Some(rejection) => {
                            released += 1;
                            Some(TxOutcome { hash, status: TxStatus::Rejected(rejection) })
                        }
                        None => {
                            self.in_mempool.insert(hash);
                            self.mempool.push_back(Queued { transaction, hash, received });
                            accepted += 1;
                            if waiter.is_some() {
                                self.waiting
                                    .entry(hash)
                                    .or_default()
                                    .push((batch_id, position as u32));
                            }
                            None
                        }
                    }
                }
            };
            if let Some(TxOutcome { status: TxStatus::Rejected(rejection), .. }) = &outcome {
                self.parts.metrics.rejected(rejection.reason(), 1);
            }
            if let (Some(outcome), Some(waiter)) = (outcome, waiter.as_mut()) {
                waiter.outcomes[position] = Some(outcome);
                waiter.remaining -= 1;
            }
        }
        self.release_pending(released);
        self.gossip(accepted);
        if let Some(waiter) = waiter {
            if waiter.remaining == 0 {
                let outcomes =
                    waiter.outcomes.into_iter().map(|o| o.expect("all resolved")).collect();
                let _ = waiter.reply.send(outcomes);
            } else {
                self.batches.insert(batch_id, waiter);
            }
        }
    }

    /// With a rotating proposer (`bft`), sends the last `count` transactions queued here
    /// to every other active participant's node: each keeps them in its own mempool and
    /// proposes them in its turn, so a transaction does not wait for a proposer that has
    /// not seen it. Received gossip is never relayed (each origin sends to all).
    fn gossip(&mut self, count: usize) {
        if count == 0 || !self.parts.group.rotates_proposer() {
            return;
        }
        let own = self.parts.group.member();
        let nodes: Vec<NodeId> = self
            .active_members
            .iter()
            .filter(|member| **member != own)
            .filter_map(|member| self.member_node(*member))
            .filter(|node| *node != 0)
            .collect();
        if nodes.is_empty() {
            return;
        }
        let start = self.mempool.len() - count;
        let chunk = self.parts.options.max_block_txs.max(1);
        let mut from = start;
        while from < self.mempool.len() {
            let to = (from + chunk).min(self.mempool.len());
            let payload = Bytes::from(encode_transactions(
                self.mempool.range(from..to).map(|queued| &queued.transaction),
            ));
            for node in &nodes {
                self.send_bytes(*node, kind::FORWARD, payload.clone());
            }
            from = to;
        }
    }

    fn forwarded(&mut self, from: NodeId, payload: &[u8]) {
        let transactions = match decode_transactions(payload) {
            Ok(transactions) => transactions,
            Err(error) => {
                tracing::warn!(from, %error, "malformed forwarded transactions");
                return;
            }
        };
        if self.halted().is_some() || self.stopping {
            return;
        }
        // Forwarded work counts against the mempool too; past twice its bound the batch
        // is refused (the follower keeps it and forwards it again after the proposal
        // timeout), so a flood from followers cannot grow the leader without limit.
        let pending = self.parts.shared.pending.load(Ordering::Acquire);
        if pending + transactions.len() > 2 * self.parts.options.mempool_capacity {
            tracing::warn!(
                from,
                count = transactions.len(),
                pending,
                "mempool full: forwarded batch refused"
            );
            return;
        }
        let algorithm = self.parts.ledger.hash_algorithm();
        let received = Instant::now();
        let hashes: Vec<Hash32> =
            transactions.iter().map(|transaction| transaction.content.hash(algorithm)).collect();
        let keys: Vec<Vec<u8>> =
            hashes.iter().map(|hash| layout::tx_key(&self.id(), hash)).collect();
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let committed = match self.parts.ledger.store().multi_get(&key_refs) {
            Ok(found) => {
                self.store_read_answered();
                found
            }
            Err(error) => {
                // Dropped here (the sender keeps them and forwards again, or proposes them).
                if !self.store_outage(&error.to_string()) {
                    self.halt(format!("reading the store failed: {error}"));
                }
                return;
            }
        };
        let (fresh, fresh_hashes): (Vec<engine::model::Transaction>, Vec<Hash32>) = transactions
            .into_iter()
            .zip(hashes)
            .zip(committed)
            // A re-forwarded transaction may have committed meanwhile.
            .filter(|((transaction, hash), committed)| {
                transaction.content.ledger_id == self.id()
                    && committed.is_none()
                    && !self.is_pending(hash)
            })
            .map(|(entry, _)| entry)
            .collect();
        // Gossip (`bft`): this member proposes these itself, as verified, and a
        // Byzantine peer must not get it to propose blocks its peers reject; so their
        // signatures are checked here, in one batch. (A Raft leader trusts its
        // followers' checks: Raft trusts its nodes.)
        let verdicts = if self.parts.group.rotates_proposer() {
            crate::metrics::verify_signatures(&fresh)
        } else {
            vec![true; fresh.len()]
        };
        let invalid = verdicts.iter().filter(|valid| !**valid).count();
        if invalid > 0 {
            tracing::warn!(from, invalid, "gossiped transactions with invalid signatures dropped");
            self.parts.metrics.rejected("bad_signature", invalid as u64);
        }
        let mut added = 0;
        for ((transaction, hash), valid) in fresh.into_iter().zip(fresh_hashes).zip(verdicts) {
            if valid && self.in_mempool.insert(hash) {
                self.mempool.push_back(Queued { transaction, hash, received });
                added += 1;
            }
        }
        self.parts.shared.pending.fetch_add(added, Ordering::AcqRel);
    }

    fn member_node(&self, member: MemberId) -> Option<NodeId> {
        self.parts.member_nodes.get(member as usize - 1).copied()
    }

    fn send(&self, to_node: NodeId, kind: u8, payload: Vec<u8>) {
        self.send_bytes(to_node, kind, Bytes::from(payload));
    }

    fn send_bytes(&self, to_node: NodeId, kind: u8, payload: Bytes) {
        if let Some(transport) = &self.parts.transport {
            self.parts.metrics.message(true, kind);
            transport.send(to_node, self.id().0, kind, payload);
        }
    }

    /// Runs the group until it has nothing more to do, then reports the last block
    /// written (`settle`): nothing written is left unreported when the actor handles
    /// its next message.
    fn drive(&mut self) {
        self.drive_group();
        if let Err(reason) = self.settle() {
            self.halt(reason);
        }
    }

    /// Runs the group until it has nothing more to do: send, apply, propose.
    fn drive_group(&mut self) {
        if !self.stalled.is_empty() {
            // At most every 200 ms: each attempt may wait out the store's timeout.
            if self.stalled_retry.elapsed() < Duration::from_millis(200) {
                return;
            }
            self.stalled_retry = Instant::now();
            if !self.retry_stalled() {
                return;
            }
        }
        loop {
            if self.halted().is_some() {
                return;
            }
            let mut ready = match self.parts.group.ready() {
                Ok(ready) => ready,
                Err(error) => return self.halt(format!("consensus failed: {error}")),
            };
            if let Some(voters) = ready.voters.take() {
                *self.parts.shared.voters.write() = voters;
            }
            for (member, bytes) in ready.messages {
                if let Some(node) = self.member_node(member) {
                    self.send(node, kind::CONSENSUS, bytes);
                }
            }
            for serve in std::mem::take(&mut ready.serve) {
                self.serve_decided(serve);
            }
            if let Some(checkpoint) = ready.restored
                && let Err(reason) = self.begin_sync(checkpoint)
            {
                return self.halt(reason);
            }
            if let Some(sync) = self.syncing.as_mut() {
                // Applied once the blocks before them are synced.
                sync.buffered.extend(ready.committed);
                return;
            }
            for committed in ready.committed {
                if !self.stalled.is_empty() {
                    self.stalled.push_back(committed);
                    continue;
                }
                if let Err(reason) = self.apply(&committed) {
                    if self.store_outage(&reason) {
                        self.stalled.push_back(committed);
                        continue;
                    }
                    return self.halt(reason);
                }
            }
            if !self.stalled.is_empty() {
                // Nothing is executed or proposed on a head that is not written yet.
                return;
            }
            let evaluated = !ready.evaluate.is_empty();
            for request in ready.evaluate {
                let verdict = self.evaluate(&request);
                self.parts.group.evaluated(request.request, verdict);
            }
            if !self.maybe_propose() && !evaluated {
                break;
            }
        }
        self.parts.shared.leader.store(self.parts.group.is_leader(), Ordering::Release);
        self.parts.shared.term.store(self.parts.group.term(), Ordering::Relaxed);
        let leader = self.parts.group.leader();
        if leader != self.last_leader {
            if leader.is_some() {
                self.parts.metrics.election();
            }
            self.last_leader = leader;
        }
        self.parts
            .shared
            .leader_known
            .store(self.parts.group.leader().is_some(), Ordering::Release);
        self.forward_to_leader();
    }

    fn forward_to_leader(&mut self) {
        // A rotating proposer's members hold every transaction already (gossip).
        if self.parts.group.is_leader()
            || self.mempool.is_empty()
            || self.parts.group.rotates_proposer()
        {
            return;
        }
        let Some(leader) = self.parts.group.leader().and_then(|m| self.member_node(m)) else {
            return;
        };
        // A leader this node cannot reach (it may be dead, and no new one is known yet):
        // keep the transactions until one is reachable rather than send them into a
        // dropped connection and wait out the re-forward timeout.
        if self.parts.transport.as_ref().is_some_and(|t| !t.is_connected(leader)) {
            return;
        }
        let queued: Vec<Queued> =
            self.mempool.drain(..).filter(|queued| self.in_mempool.remove(&queued.hash)).collect();
        self.in_mempool.clear();
        let count = queued.len();
        for chunk in queued.chunks(self.parts.options.max_block_txs.max(1)) {
            let payload = encode_transactions(chunk.iter().map(|queued| &queued.transaction));
            self.send(leader, kind::FORWARD, payload);
        }
        self.forwarded_hashes.extend(queued.iter().map(|queued| queued.hash));
        self.forwarded.push_back((Instant::now(), queued));
        self.release_pending(count);
    }

    /// Proposes the next block when this member leads, its state is current, nothing is
    /// in flight and the mempool holds a full block or has waited long enough.
    fn maybe_propose(&mut self) -> bool {
        let options = self.parts.options.clone();
        if let Some(in_flight) = &self.in_flight {
            let lost = !self.parts.group.is_leader()
                || in_flight.proposed_at.elapsed() > options.proposal_timeout;
            if !lost {
                return false;
            }
            self.requeue_in_flight();
        }
        if !self.parts.group.is_leader() || !self.parts.group.settled() || self.syncing.is_some() {
            return false;
        }
        if !self.proposers.contains(&self.parts.node_address) {
            // Removed from the ledger's participants: its blocks would be refused.
            return false;
        }
        let Some(oldest) = self.mempool.front() else { return false };
        let full = self.mempool.len() >= options.max_block_txs;
        if !full && oldest.received.elapsed() < options.max_block_delay && !self.stopping {
            return false;
        }
        let mut transactions = Vec::with_capacity(options.max_block_txs.min(self.mempool.len()));
        while transactions.len() < options.max_block_txs {
            let Some(queued) = self.mempool.pop_front() else { break };
            if self.in_mempool.remove(&queued.hash) {
                transactions.push(queued);
            }
        }
        if transactions.is_empty() {
            return false;
        }
        let head = self.parts.ledger.head();
        let proposal = BlockProposal {
            height: head.height + 1,
            previous_hash: head.block_hash,
            timestamp_ms: now_ms(),
            proposer: self.parts.node_address,
            transactions: Vec::new(),
        };
        let height = proposal.height;
        let timestamp_ms = proposal.timestamp_ms;
        let payload = proposal.encode_with(transactions.iter().map(|queued| &queued.transaction));
        match self.parts.group.propose(payload) {
            Ok(()) => {
                self.parts.metrics.proposal();
                let hashes = transactions.iter().map(|queued| queued.hash).collect();
                self.in_flight = Some(InFlight {
                    height,
                    timestamp_ms,
                    hashes,
                    proposed_at: Instant::now(),
                    transactions,
                });
                true
            }
            Err(error) => {
                tracing::debug!(%error, "proposal refused; transactions stay queued");
                for queued in transactions.into_iter().rev() {
                    self.in_mempool.insert(queued.hash);
                    self.mempool.push_front(queued);
                }
                false
            }
        }
    }

    fn requeue_in_flight(&mut self) {
        if let Some(in_flight) = self.in_flight.take() {
            for queued in in_flight.transactions.into_iter().rev() {
                if self.in_mempool.insert(queued.hash) {
                    self.mempool.push_front(queued);
                }
            }
        }
    }

    fn write_marker_only(&mut self, checkpoint: Checkpoint) -> Result<(), String> {
        let mut batch = engine::store::WriteBatch::new();
        self.parts.group_store.put_applied_marker(&mut batch, &checkpoint);
        self.parts
            .ledger
            .store()
            .write(batch)
            .map_err(|e| format!("writing the applied marker failed: {e}"))?;
        self.parts.group.applied(checkpoint).map_err(|e| format!("consensus: {e}"))
    }

    /// Executes a proposal the group must vote on (`bft`) and keeps the result: the
    /// block hash it produces, or why it is not a valid next block.
    fn evaluate(&mut self, request: &consensus::Evaluate) -> Result<Hash32, String> {
        let head = self.parts.ledger.head();
        if request.height != head.height + 1 {
            return Err(format!("proposal for {} on head {}", request.height, head.height));
        }
        let header = BlockProposal::decode_header(&request.payload)
            .map_err(|e| format!("malformed proposal: {e}"))?;
        if header.height != request.height || header.previous_hash != head.block_hash {
            return Err(format!(
                "proposal for height {} on {} does not extend head {} ({})",
                header.height,
                hex::encode(header.previous_hash),
                head.height,
                hex::encode(head.block_hash)
            ));
        }
        // The block names the member that signed the proposal (0: a certified block from
        // catch-up, whose certificate was checked).
        if request.proposer != 0
            && self.member_addresses.get(&request.proposer) != Some(&header.proposer)
        {
            return Err(format!(
                "the block names proposer {} but member {} signed it",
                hex::encode(header.proposer.0),
                request.proposer
            ));
        }
        if !self.proposers.contains(&header.proposer) {
            return Err("the proposer is not an active participant".into());
        }
        // A proposer's clock stamps the block; one far ahead of ours is refused (a
        // Byzantine proposer cannot date blocks into the future). Certified blocks from
        // catch-up were accepted by a quorum already.
        let now = now_ms();
        if request.proposer != 0 && header.timestamp_ms > now.saturating_add(PROPOSAL_CLOCK_SKEW_MS)
        {
            return Err(format!(
                "the block's timestamp {} is more than {PROPOSAL_CLOCK_SKEW_MS} ms ahead of this \
                 node's clock ({now})",
                header.timestamp_ms
            ));
        }
        let ours = self.in_flight.as_ref().is_some_and(|f| {
            f.height == header.height
                && f.timestamp_ms == header.timestamp_ms
                && header.proposer == self.parts.node_address
        });
        let mut proposal = header;
        proposal.transactions = match &self.in_flight {
            Some(in_flight) if ours => {
                in_flight.transactions.iter().map(|queued| queued.transaction.clone()).collect()
            }
            _ => {
                BlockProposal::decode(&request.payload)
                    .map_err(|e| format!("malformed proposal: {e}"))?
                    .transactions
            }
        };
        if self.prepared.values().any(|p| p.executed.block.header.height != request.height) {
            self.prepared.clear();
        }
        let prepared = self.prepare(proposal, ours)?;
        let hash = prepared.executed.block.hash;
        self.prepared.insert(hash, prepared);
        Ok(hash)
    }

    /// Commits a block the `bft` group decided, with its certificate: the block executed
    /// for the vote when there is one, else executed now (catch-up) and checked against
    /// the certified hash.
    fn apply_certified(&mut self, committed: &Committed) -> Result<(), String> {
        let certificate = engine::certificate::Certificate::decode(&committed.certificate)
            .map_err(|e| format!("decided block {}: {e}", committed.index))?;
        let head = self.parts.ledger.head();
        let proposal = BlockProposal::decode(&committed.payload)
            .map_err(|e| format!("decided block {}: {e}", committed.index))?;
        if proposal.height == head.height && head.block_hash == certificate.block_hash {
            // Written by an attempt that failed afterwards (the store stopped answering
            // while the group recorded it): only the group's part is left.
            let checkpoint = Checkpoint {
                index: committed.index,
                data: checkpoint_data(head.height, &head.block_hash),
            };
            return self.parts.group.applied(checkpoint).map_err(|e| format!("consensus: {e}"));
        }
        if proposal.height != head.height + 1 || proposal.previous_hash != head.block_hash {
            return Err(format!(
                "diverged: decided block {} on {} but this node's head is {} at {}",
                proposal.height,
                hex::encode(proposal.previous_hash),
                head.height,
                hex::encode(head.block_hash)
            ));
        }
        let ours = self.in_flight.as_ref().is_some_and(|f| {
            f.height == proposal.height
                && f.timestamp_ms == proposal.timestamp_ms
                && proposal.proposer == self.parts.node_address
        });
        let prepared = match self.prepared.remove(&certificate.block_hash) {
            Some(prepared) => prepared,
            None => self.prepare(proposal, false)?,
        };
        self.prepared.clear();
        self.commit_prepared(
            prepared,
            ours,
            Some(committed.index),
            Some(certificate.block_hash),
            Some(&committed.certificate),
        )
    }

    /// Executes and commits one committed entry; `Err` halts the ledger.
    fn apply(&mut self, committed: &Committed) -> Result<(), String> {
        if !committed.certificate.is_empty() {
            return self.apply_certified(committed);
        }
        let head = self.parts.ledger.head();
        let unchanged = Checkpoint {
            index: committed.index,
            data: checkpoint_data(head.height, &head.block_hash),
        };
        let undecodable = |error: engine::codec::DecodeError| {
            // Every node sees the same bytes and skips them the same way.
            tracing::error!(index = committed.index, %error, "undecodable committed entry skipped");
        };
        let mut proposal = match BlockProposal::decode_header(&committed.payload) {
            Ok(proposal) => proposal,
            Err(error) => {
                undecodable(error);
                return self.write_marker_only(unchanged);
            }
        };
        // This node's proposal in flight, not an earlier one of its own it gave up on
        // (those differ in timestamp: proposals are at least `proposal_timeout` apart).
        let ours = self.in_flight.as_ref().is_some_and(|f| {
            f.height == proposal.height
                && f.timestamp_ms == proposal.timestamp_ms
                && proposal.proposer == self.parts.node_address
        });
        if proposal.height <= head.height {
            // A stale proposal (a former leader's, ordered after its successor's block):
            // skipped identically on every node.
            if ours {
                self.requeue_in_flight();
            }
            return self.write_marker_only(unchanged);
        }
        if !self.proposers.contains(&proposal.proposer) {
            // A removed participant's block (it led until its removal reached the
            // group): refused identically on every node.
            tracing::warn!(
                height = proposal.height,
                proposer = %hex::encode(proposal.proposer.0),
                "block from a node that is not an active participant skipped"
            );
            if ours {
                self.requeue_in_flight();
            }
            return self.write_marker_only(unchanged);
        }
        if proposal.height != head.height + 1 || proposal.previous_hash != head.block_hash {
            return Err(format!(
                "diverged: committed proposal for height {} on previous hash {} but this node's \
                 head is {} at {}",
                proposal.height,
                hex::encode(proposal.previous_hash),
                head.height,
                hex::encode(head.block_hash)
            ));
        }
        proposal.transactions = match &mut self.in_flight {
            // Our own block: the transactions are here already, parsed and verified (the
            // in-flight record keeps their hashes, for a halt). Taken by an earlier attempt
            // that the store failed: decoded again below.
            Some(in_flight) if ours && !in_flight.transactions.is_empty() => {
                std::mem::take(&mut in_flight.transactions)
                    .into_iter()
                    .map(|queued| queued.transaction)
                    .collect()
            }
            _ => match BlockProposal::decode(&committed.payload) {
                Ok(full) => full.transactions,
                Err(error) => {
                    undecodable(error);
                    return self.write_marker_only(unchanged);
                }
            },
        };
        self.commit_proposal(proposal, ours, Some(committed.index), None)?;
        Ok(())
    }

    /// Executes `proposal` on the head and commits it; with `marker_index`, the applied
    /// marker goes into the same batch. With `expected_hash` (block sync), a block that
    /// does not reproduce that hash is an error and nothing is written.
    fn commit_proposal(
        &mut self,
        proposal: BlockProposal,
        ours: bool,
        marker_index: Option<u64>,
        expected_hash: Option<Hash32>,
    ) -> Result<(), String> {
        let prepared = self.prepare(proposal, ours)?;
        self.commit_prepared(prepared, ours, marker_index, expected_hash, None)
    }

    /// Executes `proposal` on the head without writing anything.
    fn prepare(&self, proposal: BlockProposal, ours: bool) -> Result<Prepared, String> {
        let count = proposal.transactions.len();
        let seal = proposal.transactions.iter().any(|tx| {
            tx.content
                .operations
                .iter()
                .any(|op| matches!(op, engine::model::Operation::Seal { .. }))
        });
        let participant_change = proposal.transactions.iter().any(|tx| {
            tx.content.operations.iter().any(|op| {
                matches!(
                    op,
                    engine::model::Operation::AddParticipant { .. }
                        | engine::model::Operation::RemoveParticipant { .. }
                )
            })
        });
        let signatures = if ours {
            // Checked in a batch when they were submitted to this node.
            SignatureCheck::Verified(vec![true; count])
        } else if self.parts.group.rotates_proposer() {
            SignatureCheck::Verified(self.verify_against_mempool(&proposal.transactions))
        } else {
            // Another leader's block: checked here, in one batch on the crypto pool.
            SignatureCheck::Verified(crate::metrics::verify_signatures(&proposal.transactions))
        };
        let started = Instant::now();
        let executed = self
            .parts
            .ledger
            .execute_block(
                proposal.transactions,
                signatures,
                proposal.timestamp_ms,
                proposal.proposer,
            )
            .map_err(|e| format!("executing block {}: {e}", proposal.height))?;
        Ok(Prepared {
            execute_seconds: started.elapsed().as_secs_f64(),
            executed,
            count,
            seal,
            participant_change,
        })
    }

    /// Signature verdicts for another member's block (`bft`): a transaction this node
    /// holds with the same content hash and the same endorsements was verified when it
    /// arrived (gossip) or was submitted; only the others are checked, in one batch.
    fn verify_against_mempool(&self, transactions: &[engine::model::Transaction]) -> Vec<bool> {
        let algorithm = self.parts.ledger.hash_algorithm();
        let positions: HashMap<Hash32, usize> = transactions
            .iter()
            .enumerate()
            .map(|(position, transaction)| (transaction.content.hash(algorithm), position))
            .collect();
        let mut verdicts = vec![false; transactions.len()];
        let mut known = vec![false; transactions.len()];
        for queued in &self.mempool {
            if let Some(&position) = positions.get(&queued.hash)
                && queued.transaction.endorsements == transactions[position].endorsements
            {
                verdicts[position] = true;
                known[position] = true;
            }
        }
        let unknown: Vec<usize> = (0..transactions.len()).filter(|p| !known[*p]).collect();
        if !unknown.is_empty() {
            let subset: Vec<engine::model::Transaction> =
                unknown.iter().map(|p| transactions[*p].clone()).collect();
            for (position, verdict) in
                unknown.into_iter().zip(crate::metrics::verify_signatures(&subset))
            {
                verdicts[position] = verdict;
            }
        }
        verdicts
    }

    /// Commits a prepared block (with `certificate`, its BFT commit certificate, in the
    /// same batch).
    fn commit_prepared(
        &mut self,
        prepared: Prepared,
        ours: bool,
        marker_index: Option<u64>,
        expected_hash: Option<Hash32>,
        certificate: Option<&[u8]>,
    ) -> Result<(), String> {
        let Prepared { mut executed, count, seal, participant_change, execute_seconds } = prepared;
        let block = executed.block.clone();
        let state_root_seconds = executed.state_root_time.as_secs_f64();
        let written_bytes = executed.batch.size_bytes();
        if let Some(expected) = expected_hash
            && expected != block.hash
        {
            return Err(format!(
                "block sync: block {} executes to {} but the peer's block is {}",
                block.header.height,
                hex::encode(block.hash),
                hex::encode(expected)
            ));
        }
        let checkpoint = marker_index.map(|index| Checkpoint {
            index,
            data: checkpoint_data(block.header.height, &block.hash),
        });
        if let Some(checkpoint) = &checkpoint {
            self.parts.group_store.put_applied_marker(&mut executed.batch, checkpoint);
        }
        if let Some(certificate) = certificate {
            executed.batch.put(
                layout::certificate_key(&self.id(), block.header.height),
                certificate.to_vec(),
            );
        }
        // The block before this one is reported first: at most one block is written and
        // not yet known durable.
        self.settle()?;
        let figures = Figures {
            execute_seconds,
            state_root_seconds,
            written_bytes,
            writing: Instant::now(),
            proposed: self.in_flight.as_ref().filter(|_| ours).map(|f| f.proposed_at),
        };
        let committing = |e| format!("committing block {}: {e}", block.header.height);
        match self.parts.wal.clone() {
            Some(wal) => {
                self.parts.ledger.commit_unsynced(executed).map_err(committing)?;
                let ticket = wal.ticket();
                self.after_write(&block, ours, count, seal, participant_change);
                self.unsynced = Some(Unsynced { ticket, block, count, checkpoint, figures });
                Ok(())
            }
            None => {
                self.parts.ledger.commit(executed).map_err(committing)?;
                self.after_write(&block, ours, count, seal, participant_change);
                self.report(block, count, checkpoint, Some(figures))
            }
        }
    }

    /// Reports the block written without an fsync once the WAL syncer has made it
    /// durable. `Err` when the sync failed: the store cannot say whether the block is on
    /// disk, so its transactions are told the ledger halted and the caller halts it.
    fn settle(&mut self) -> Result<(), String> {
        let Some(unsynced) = self.unsynced.take() else { return Ok(()) };
        let wal = self.parts.wal.clone().expect("only the WAL syncer's blocks are unsynced");
        let Unsynced { ticket, block, count, checkpoint, figures } = unsynced;
        match wal.wait(ticket) {
            Ok(()) => self.report(block, count, checkpoint, Some(figures)),
            Err(reason) => {
                let reason = format!("block {}: {reason}", block.header.height);
                // Halted before anyone is told: a client answered `halted` must find
                // the ledger halted (`halt`, which the caller runs next, may add to the
                // reason).
                *self.parts.shared.halted.write() = Some(reason.clone());
                for (hash, _) in &block.transactions {
                    self.resolve(*hash, TxStatus::Rejected(Rejection::Halted(reason.clone())));
                }
                Err(reason)
            }
        }
    }

    /// A written block, reported at once (`recover_written`: it is durable).
    fn finish_commit(
        &mut self,
        block: engine::ledger::StoredBlock,
        ours: bool,
        count: usize,
        seal: bool,
        participant_change: bool,
        checkpoint: Option<Checkpoint>,
    ) -> Result<(), String> {
        self.after_write(&block, ours, count, seal, participant_change);
        self.report(block, count, checkpoint, None)
    }

    /// What follows a block's write at once, durable or not: the state the next block
    /// is proposed and executed on (participants, seal, mempool, the block in flight).
    fn after_write(
        &mut self,
        block: &engine::ledger::StoredBlock,
        ours: bool,
        count: usize,
        seal: bool,
        participant_change: bool,
    ) {
        if participant_change {
            // Before `applied`: a `bft` group starts the next height with the new set.
            self.refresh_participants();
        }
        if seal {
            self.refresh_seal();
        }
        if ours {
            self.in_flight = None;
            self.release_pending(count);
        } else {
            // Our own proposal for this height, if any, lost to another leader's block.
            if self.in_flight.as_ref().is_some_and(|f| f.height <= block.header.height) {
                self.requeue_in_flight();
            }
            let mut removed = 0;
            for (hash, _) in &block.transactions {
                if self.in_mempool.remove(hash) {
                    removed += 1;
                }
                self.forwarded_hashes.remove(hash);
            }
            if removed > 0 {
                // Out of the queue too, so its length and oldest entry stay true (with
                // gossip every member holds most of every block).
                let in_mempool = &self.in_mempool;
                self.mempool.retain(|queued| in_mempool.contains(&queued.hash));
            }
            self.release_pending(removed);
        }
    }

    /// What follows once a block is durable: the group learns it is applied, the head
    /// is published, waiters and subscribers hear of it.
    fn report(
        &mut self,
        block: engine::ledger::StoredBlock,
        count: usize,
        checkpoint: Option<Checkpoint>,
        figures: Option<Figures>,
    ) -> Result<(), String> {
        if let Some(checkpoint) = checkpoint {
            self.parts.group.applied(checkpoint).map_err(|e| format!("consensus: {e}"))?;
        }
        *self.parts.shared.head.write() = Some(block.head());
        self.parts.shared.blocks_committed.fetch_add(1, Ordering::Relaxed);
        self.parts.shared.transactions_committed.fetch_add(count as u64, Ordering::Relaxed);
        if let Some(figures) = figures {
            self.parts.metrics.block(crate::metrics::BlockFigures {
                transactions: &block.transactions,
                execute_seconds: figures.execute_seconds,
                state_root_seconds: figures.state_root_seconds,
                commit_seconds: figures.writing.elapsed().as_secs_f64(),
                written_bytes: figures.written_bytes,
                proposed: figures.proposed,
            });
        }
        for (index, (hash, result)) in block.transactions.iter().enumerate() {
            self.resolve(
                *hash,
                TxStatus::Committed {
                    height: block.header.height,
                    index: index as u32,
                    result: *result,
                },
            );
        }
        let _ = self.parts.blocks.send(BlockNotice {
            ledger: self.id(),
            height: block.header.height,
            hash: block.hash,
            transactions: Arc::new(block.transactions),
            committed_at: Instant::now(),
        });
        Ok(())
    }

    /// The group installed a checkpoint past this node's head (the log it needed was
    /// compacted): fetch the blocks up to it from other members, buffering what the
    /// group commits meanwhile.
    fn begin_sync(&mut self, checkpoint: Checkpoint) -> Result<(), String> {
        let (height, hash) = decode_checkpoint(&checkpoint.data)
            .ok_or_else(|| format!("malformed checkpoint at index {}", checkpoint.index))?;
        let head = self.parts.ledger.head();
        if head.height == height && head.block_hash == hash {
            return self.write_marker_only(checkpoint);
        }
        if head.height >= height {
            return Err(format!(
                "diverged: the group's checkpoint is block {height} ({}) but this node is at {} ({})",
                hex::encode(hash),
                head.height,
                hex::encode(head.block_hash)
            ));
        }
        tracing::info!(
            ledger = %hex::encode(self.id().0),
            from = head.height + 1,
            to = height,
            "behind a compacted log: syncing blocks from peers"
        );
        self.syncing = Some(Syncing {
            target: checkpoint,
            height,
            hash,
            buffered: Vec::new(),
            requested_at: None,
            attempt: 0,
        });
        self.request_sync();
        Ok(())
    }

    fn request_sync(&mut self) {
        let own = self.parts.group.member();
        let leader = self.parts.group.leader().filter(|leader| *leader != own);
        let voters = self.parts.group.voters();
        let Some(sync) = self.syncing.as_mut() else { return };
        // The leader first, then the other voting members in turn.
        let others: Vec<MemberId> = voters.into_iter().filter(|m| *m != own).collect();
        let source = match leader {
            Some(leader) if sync.attempt == 0 => leader,
            _ if others.is_empty() => return,
            _ => others[sync.attempt % others.len()],
        };
        sync.attempt += 1;
        sync.requested_at = Some(Instant::now());
        let from = self.parts.ledger.head().height + 1;
        let mut payload = from.to_be_bytes().to_vec();
        payload.extend_from_slice(&sync.height.to_be_bytes());
        if let Some(node) = self.member_node(source) {
            self.send(node, kind::SYNC_REQUEST, payload);
        }
    }

    /// Sends decided blocks the group no longer keeps (`bft`) to a member behind: each
    /// block from the store, with its commit certificate (the receiver checks both).
    fn serve_decided(&self, serve: consensus::Serve) {
        let Some(node) = self.member_node(serve.member) else { return };
        let head = self.parts.ledger.head().height;
        for height in serve.heights {
            if height > head {
                break;
            }
            let (Ok(Some((block, transactions))), Ok(Some(certificate))) = (
                self.parts.ledger.block_with_bodies(height),
                self.parts.ledger.certificate(height),
            ) else {
                tracing::warn!(height, "a decided block or its certificate could not be read");
                break;
            };
            let proposal = BlockProposal {
                height,
                previous_hash: block.header.previous_hash,
                timestamp_ms: block.header.timestamp_ms,
                proposer: block.header.proposer,
                transactions,
            };
            match self.parts.group.decided_message(height, proposal.encode(), certificate) {
                Some(bytes) => self.send(node, kind::CONSENSUS, bytes),
                None => break,
            }
        }
    }

    /// Serves blocks `from..=to` (up to a size limit) to a member that is syncing.
    fn serve_sync(&mut self, to_node: NodeId, payload: &[u8]) {
        let (Some(from), Some(to)) = (read_u64(payload, 0), read_u64(payload, 8)) else {
            tracing::warn!(from = to_node, "malformed block sync request");
            return;
        };
        let head = self.parts.ledger.head().height;
        let mut response = Vec::new();
        let mut blocks = 0u32;
        let mut height = from.max(1);
        while height <= to.min(head) && blocks < SYNC_BLOCKS_MAX && response.len() < SYNC_BYTES_MAX
        {
            let Ok(Some((block, transactions))) = self.parts.ledger.block_with_bodies(height)
            else {
                break;
            };
            let proposal = BlockProposal {
                height,
                previous_hash: block.header.previous_hash,
                timestamp_ms: block.header.timestamp_ms,
                proposer: block.header.proposer,
                transactions,
            };
            let bytes = proposal.encode();
            response.extend_from_slice(&block.hash);
            response.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            response.extend_from_slice(&bytes);
            blocks += 1;
            height += 1;
        }
        let mut framed = blocks.to_be_bytes().to_vec();
        framed.extend_from_slice(&response);
        self.send(to_node, kind::SYNC_RESPONSE, framed);
    }

    /// Applies synced blocks; on reaching the checkpoint, resumes normal delivery.
    fn receive_sync(&mut self, from: NodeId, payload: &[u8]) -> Result<(), String> {
        if self.syncing.is_none() {
            return Ok(());
        }
        let Some(count) =
            payload.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
        else {
            tracing::warn!(from, "malformed block sync response");
            return Ok(());
        };
        let mut at = 4;
        for _ in 0..count {
            let (Some(hash), Some(len)) = (payload.get(at..at + 32), payload.get(at + 32..at + 36))
            else {
                tracing::warn!(from, "truncated block sync response");
                return Ok(());
            };
            let hash: Hash32 = hash.try_into().expect("32 bytes");
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            let Some(bytes) = payload.get(at + 36..at + 36 + len) else {
                tracing::warn!(from, "truncated block sync response");
                return Ok(());
            };
            at += 36 + len;
            let proposal = match BlockProposal::decode(bytes) {
                Ok(proposal) => proposal,
                Err(error) => {
                    tracing::warn!(from, %error, "malformed block in sync response");
                    return Ok(());
                }
            };
            let head = self.parts.ledger.head();
            let target = self.syncing.as_ref().map_or(0, |sync| sync.height);
            if proposal.height != head.height + 1 || proposal.height > target {
                continue;
            }
            if proposal.previous_hash != head.block_hash {
                return Err(format!(
                    "diverged: synced block {} does not extend this node's head {}",
                    proposal.height,
                    hex::encode(head.block_hash)
                ));
            }
            self.commit_proposal(proposal, false, None, Some(hash))?;
        }
        let head = self.parts.ledger.head();
        let sync = self.syncing.as_ref().expect("checked");
        if head.height < sync.height {
            self.request_sync();
            return Ok(());
        }
        if head.block_hash != sync.hash {
            return Err(format!(
                "diverged: synced to block {} ({}) but the group's checkpoint is {}",
                head.height,
                hex::encode(head.block_hash),
                hex::encode(sync.hash)
            ));
        }
        let sync = self.syncing.take().expect("checked");
        tracing::info!(ledger = %hex::encode(self.id().0), height = head.height, "block sync done");
        self.write_marker_only(sync.target)?;
        for committed in sync.buffered {
            self.apply(&committed)?;
        }
        Ok(())
    }

    /// Once stopping: when nothing of this node's is queued or in flight (or the grace
    /// period is over), tell the remaining waiters and stop.
    fn finish_shutdown(&mut self, ctx: &mut Context<Self>) {
        let Some((deadline, _)) = &self.shutdown else { return };
        let idle = self.in_flight.is_none() && (self.mempool.is_empty() || self.halted().is_some());
        if !idle && Instant::now() < *deadline {
            return;
        }
        let hashes: Vec<Hash32> = self.waiting.keys().copied().collect();
        for hash in hashes {
            self.resolve(hash, TxStatus::Rejected(Rejection::ShuttingDown));
        }
        if let Some((_, done)) = self.shutdown.take() {
            let _ = done.send(());
        }
        ctx.stop();
    }

    /// After a failure: true (and reported: log, readiness, metric) when the store does
    /// not answer at all — an outage to wait out, not a reason to stop the ledger.
    fn store_outage(&mut self, reason: &str) -> bool {
        // A failed WAL sync (`settle`) has halted the ledger already: it is not waited
        // out.
        if self.halted().is_some() || self.store_answers() {
            return false;
        }
        let mut flag = self.parts.shared.store_unavailable.write();
        if flag.is_none() {
            tracing::error!(
                ledger = %hex::encode(self.id().0),
                %reason,
                "the store does not answer: commits wait for it"
            );
        }
        *flag = Some(reason.to_owned());
        true
    }

    /// Whether the store answers a read at all (an error other than a timeout or
    /// unavailability is an answer: the caller's own error handling sees it).
    fn store_answers(&self) -> bool {
        let probe = layout::table_prefix(&self.id(), layout::Table::Meta);
        !matches!(
            self.parts.ledger.store().get(&probe),
            Err(StoreError::Timeout(_) | StoreError::Unavailable(_))
        )
    }

    /// Ends a reported outage (log, readiness, metric); a no-op when none is reported.
    fn outage_over(&mut self) {
        if self.parts.shared.store_unavailable.read().is_none() {
            return;
        }
        if self.parts.shared.store_unavailable.write().take().is_some() {
            tracing::warn!(
                ledger = %hex::encode(self.id().0),
                "the store answers again: commits resume"
            );
        }
    }

    /// A read for new work succeeded: an outage reported by an earlier read is over,
    /// unless blocks still wait to be written (then `retry_stalled` decides).
    fn store_read_answered(&mut self) {
        if self.stalled.is_empty() {
            self.outage_over();
        }
    }

    /// A block whose write applied although the store reported a failure (a TiKV commit
    /// whose answer was lost): the stored head is one past this node's. Finishes it as
    /// committed (without executing it again on a state that already holds it).
    fn recover_written(&mut self, committed: &Committed) -> Result<bool, String> {
        let Some(head) =
            self.parts.ledger.reload_head().map_err(|e| format!("reading the head: {e}"))?
        else {
            return Ok(false);
        };
        let block = self
            .parts
            .ledger
            .block(head.height)
            .map_err(|e| format!("reading block {}: {e}", head.height))?
            .ok_or_else(|| format!("block {} missing under the stored head", head.height))?;
        tracing::warn!(
            ledger = %hex::encode(self.id().0),
            height = head.height,
            "a block the store reported failed was written: finishing it"
        );
        let ours = self.in_flight.as_ref().is_some_and(|f| f.height == head.height);
        let count = block.transactions.len();
        let checkpoint = Checkpoint {
            index: committed.index,
            data: checkpoint_data(head.height, &head.block_hash),
        };
        // Whether it sealed or changed participants is not known here: re-read both.
        self.finish_commit(block, ours, count, true, true, Some(checkpoint))?;
        Ok(true)
    }

    /// Applies the entries the store failed, in order; true when all are written.
    fn retry_stalled(&mut self) -> bool {
        // Probe first, and end the reported outage before the stalled blocks are applied:
        // whoever hears of their commit then no longer sees the store reported down.
        if !self.store_answers() {
            return false;
        }
        self.outage_over();
        while let Some(committed) = self.stalled.pop_front() {
            let result = match self.recover_written(&committed) {
                Ok(true) => Ok(()),
                Ok(false) => self.apply(&committed),
                Err(reason) => Err(reason),
            };
            if let Err(reason) = result {
                self.stalled.push_front(committed);
                if !self.store_outage(&reason) {
                    self.halt(reason);
                }
                return false;
            }
        }
        true
    }

    /// Forwarded transactions not seen committed within the proposal timeout go back
    /// to the mempool, to be forwarded to whoever leads now (or proposed, if this member
    /// leads).
    fn retry_forwarded(&mut self) {
        let timeout = self.parts.options.proposal_timeout;
        let mut requeued = 0;
        while self.forwarded.front().is_some_and(|(sent, _)| sent.elapsed() > timeout) {
            let (_, batch) = self.forwarded.pop_front().expect("checked");
            for queued in batch {
                if self.forwarded_hashes.remove(&queued.hash) && self.in_mempool.insert(queued.hash)
                {
                    self.mempool.push_back(queued);
                    requeued += 1;
                }
            }
        }
        if requeued > 0 {
            tracing::debug!(
                requeued,
                "forwarded transactions not committed in time; forwarding again"
            );
            self.parts.shared.pending.fetch_add(requeued, Ordering::AcqRel);
        }
    }

    fn tick(&mut self) {
        if self
            .syncing
            .as_ref()
            .is_some_and(|sync| sync.requested_at.is_none_or(|at| at.elapsed() > SYNC_RETRY))
        {
            self.request_sync();
        }
        self.retry_forwarded();
        let idle = self.in_mempool.is_empty() && self.in_flight.is_none();
        self.parts.group.set_idle(idle);
        let tick = self.parts.options.tick;
        while self.last_tick.elapsed() >= tick {
            self.last_tick += tick;
            self.parts.group.tick();
        }
        self.reconcile_membership();
        self.drive();
    }
}

impl Actor for LedgerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let options = &self.parts.options;
        let interval = (options.max_block_delay / 2)
            .clamp(Duration::from_millis(1), options.tick.max(Duration::from_millis(1)));
        ctx.run_interval(interval, |actor, ctx| {
            actor.tick();
            actor.finish_shutdown(ctx);
        });
    }
}

impl Handler<Submit> for LedgerActor {
    type Result = ();

    fn handle(&mut self, submit: Submit, _: &mut Context<Self>) {
        self.submit(submit);
        self.drive();
    }
}

impl Handler<Inbound> for LedgerActor {
    type Result = ();

    fn handle(&mut self, Inbound(envelope): Inbound, _: &mut Context<Self>) {
        self.parts.metrics.message(false, envelope.kind);
        let Some(member) = self
            .parts
            .member_nodes
            .iter()
            .position(|node| *node == envelope.from)
            .map(|position| position as MemberId + 1)
        else {
            tracing::warn!(from = envelope.from, "message from a node outside this ledger's group");
            return;
        };
        match envelope.kind {
            kind::CONSENSUS => {
                self.maybe_join(&envelope.payload);
                if let Err(error) = self.parts.group.receive(member, &envelope.payload) {
                    tracing::warn!(from = envelope.from, %error, "consensus message rejected");
                    return;
                }
            }
            kind::FORWARD => self.forwarded(envelope.from, &envelope.payload),
            kind::SYNC_REQUEST => {
                self.serve_sync(envelope.from, &envelope.payload);
                return;
            }
            kind::SYNC_RESPONSE => {
                if let Err(reason) = self.receive_sync(envelope.from, &envelope.payload) {
                    return self.halt(reason);
                }
            }
            other => {
                tracing::warn!(from = envelope.from, kind = other, "unknown message kind");
                return;
            }
        }
        self.drive();
    }
}

impl Handler<IsPending> for LedgerActor {
    type Result = MessageResult<IsPending>;

    fn handle(&mut self, IsPending(hash): IsPending, _: &mut Context<Self>) -> Self::Result {
        MessageResult(if self.is_pending(&hash) || self.waiting.contains_key(&hash) {
            Pending::Pending
        } else {
            Pending::Unknown
        })
    }
}

impl Handler<Shutdown> for LedgerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, shutdown: Shutdown, _: &mut Context<Self>) -> Self::Result {
        self.stopping = true;
        let (done, wait) = oneshot::channel();
        self.shutdown = Some((Instant::now() + shutdown.grace, done));
        // Propose what is queued now (a stopping leader does not wait for the delay).
        self.drive();
        Box::pin(async move {
            let _ = wait.await;
        })
    }
}
