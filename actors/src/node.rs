//! Node assembly: opens (or creates) every hosted ledger on the node's store, starts one
//! `LedgerActor` per ledger on its own arbiter, and the transport shared by all of them.
//!
//! `Node::start` must run inside an actix `System` (the `polyledger node` command and
//! `#[actix_rt::test]` tests provide one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use consensus::{ConsensusGroup, GroupStore, RaftGroup, RaftOptions, SoloGroup};
use crypto_parallel::PrivateKey;
use engine::layout::{self, Table};
use engine::ledger::{EngineError, Head, Ledger};
use engine::model::{Address, Hash32, LedgerId, LedgerSettings, Transaction};
use engine::store::KvStore;
use parking_lot::RwLock;
use tokio::sync::{broadcast, oneshot};

use crate::ledger_actor::{
    ActorParts, BlockNotice, Entry, Inbound, IsPending, LedgerActor, LedgerOptions, Pending,
    Rejection, Shared, Shutdown, Submit, TxOutcome, TxStatus,
};
use crate::transport::{Envelope, NodeId, PeerConfig, Transport, TransportConfig};

/// Why a node could not start or a call failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The engine refused (storage, corrupt data, invalid settings).
    #[error("ledger {name}: {source}")]
    Ledger {
        /// Ledger name.
        name: String,
        /// Cause.
        source: EngineError,
    },
    /// Consensus could not open.
    #[error("ledger {name}: consensus: {source}")]
    Consensus {
        /// Ledger name.
        name: String,
        /// Cause.
        source: consensus::ConsensusError,
    },
    /// Invalid node setup.
    #[error("{0}")]
    Invalid(String),
    /// This ledger set cannot start ledgers (a fixed set, or the node is stopping).
    #[error("this node cannot create ledgers at run time")]
    CreateUnavailable,
    /// A ledger of that name is hosted already.
    #[error("ledger {0} exists on this node")]
    Exists(String),
    /// The transport could not start (e.g. the address is in use).
    #[error("transport on {address}: {source}")]
    Transport {
        /// Listen address.
        address: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// What a node runs.
pub struct NodeOptions {
    /// This node's id among its peers.
    pub id: NodeId,
    /// This node's key (transport identity, consensus membership, block proposer).
    pub key: PrivateKey,
    /// Node-to-node listen address (needed when any ledger has other participants).
    pub p2p_listen: Option<SocketAddr>,
    /// TLS on node-to-node connections.
    pub p2p_tls: bool,
    /// The other nodes.
    pub peers: Vec<PeerConfig>,
    /// Hosted ledgers, by their genesis settings.
    pub ledgers: Vec<LedgerSettings>,
    /// Block and mempool limits.
    pub ledger_options: LedgerOptions,
    /// Raft tuning.
    pub raft: RaftOptions,
    /// `bft` tuning (its ticks are `ledger_options.tick`).
    pub bft: consensus::BftOptions,
    /// Transport worker threads.
    pub transport_threads: usize,
}

/// Submission refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The mempool is full; retry after the hint.
    #[error("ledger busy: mempool full, retry after {retry_after:?}")]
    Busy {
        /// When to retry.
        retry_after: Duration,
    },
    /// Nothing to submit, or more than one block's worth in one call.
    #[error("invalid batch: {0}")]
    InvalidBatch(String),
    /// The ledger's actor is gone (node shutting down).
    #[error("the ledger is not running on this node")]
    Stopped,
    /// The ledger is sealed (split or merged into others): it takes no transactions.
    #[error("the ledger is sealed at height {height}: {note}")]
    Sealed {
        /// Its last height.
        height: u64,
        /// The seal's note.
        note: String,
    },
}

/// A submitted batch: the transaction hashes at once, their outcomes when final.
pub struct Submitted {
    /// Hash of each transaction, in submission order.
    pub hashes: Vec<Hash32>,
    finality: oneshot::Receiver<Vec<TxOutcome>>,
}

impl Submitted {
    /// Waits until every transaction is final (committed or rejected).
    pub async fn wait(self) -> Result<Vec<TxOutcome>, SubmitError> {
        self.finality.await.map_err(|_| SubmitError::Stopped)
    }
}

/// A handle to one ledger on this node: submit, status, and read access.
#[derive(Clone)]
pub struct LedgerHandle {
    id: LedgerId,
    name: String,
    settings: LedgerSettings,
    addr: Addr<LedgerActor>,
    shared: Arc<Shared>,
    store: Arc<dyn KvStore>,
    options: LedgerOptions,
    blocks: broadcast::Sender<BlockNotice>,
    metrics: crate::metrics::LedgerMetrics,
}

impl LedgerHandle {
    /// Ledger id.
    pub fn id(&self) -> LedgerId {
        self.id
    }

    /// Ledger name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Genesis settings.
    pub fn settings(&self) -> &LedgerSettings {
        &self.settings
    }

    /// The latest committed block on this node.
    pub fn head(&self) -> Head {
        self.shared.head.read().expect("set when the actor is created")
    }

    /// Why the ledger is halted on this node, if it is.
    pub fn halted(&self) -> Option<String> {
        self.shared.halted.read().clone()
    }

    /// Why the ledger's store does not answer, while it does not (commits wait and
    /// resume by themselves when it answers again).
    pub fn store_unavailable(&self) -> Option<String> {
        self.shared.store_unavailable.read().clone()
    }

    /// The ledger's seal, once sealed.
    pub fn sealed(&self) -> Option<engine::ledger::SealRecord> {
        self.shared.sealed.read().clone()
    }

    /// True when this node's member of the ledger's group proposes now.
    pub fn is_leader(&self) -> bool {
        self.shared.leader.load(Ordering::Acquire)
    }

    /// The group's voting members as this node's member sees them.
    pub fn voters(&self) -> Vec<u64> {
        self.shared.voters.read().clone()
    }

    /// True when this node knows the group's current leader (the ledger can commit:
    /// `/readyz`).
    pub fn leader_known(&self) -> bool {
        self.shared.leader_known.load(Ordering::Acquire)
    }

    /// Updates this ledger's sampled gauges (height, halted, mempool, capacity, leader,
    /// term) and the store's; `/metrics` calls it before encoding.
    pub fn sample_metrics(&self) {
        crate::metrics::sample_ledger(crate::metrics::LedgerSample {
            name: &self.name,
            height: self.head().height,
            halted: self.halted().is_some(),
            store_unavailable: self.store_unavailable().is_some(),
            mempool: self.pending(),
            capacity: self.options.mempool_capacity,
            leader: self.is_leader(),
            term: self.shared.term.load(Ordering::Relaxed),
        });
        let stats = self.store.stats();
        let m = &*crate::metrics::METRICS;
        if let Some(stalled) = stats.write_stalled {
            m.write_stall.set(i64::from(stalled));
        }
        if let Some(pending) = stats.compaction_pending_bytes {
            m.compaction_pending.set(pending as i64);
        }
        if let Some(available) = stats.disk_available_bytes {
            m.disk_available.set(available as i64);
        }
    }

    /// Blocks this node committed to the ledger since it started.
    pub fn blocks_committed(&self) -> u64 {
        self.shared.blocks_committed.load(Ordering::Relaxed)
    }

    /// Transactions in those blocks.
    pub fn transactions_committed(&self) -> u64 {
        self.shared.transactions_committed.load(Ordering::Relaxed)
    }

    /// Transactions accepted and not yet final.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// A read-only view of the ledger at its published head (queries, proofs): the
    /// last block reported committed, which is durable. A block written above it and
    /// not yet synced (`LedgerOptions::pipelined_commit`) is not in queries by height
    /// nor in transactions by hash; a key's latest value, its history and events can
    /// show it until then.
    pub fn reader(&self) -> Result<Ledger<Arc<dyn KvStore>>, EngineError> {
        Ok(Ledger::at_head(self.store.clone(), self.id, self.settings.clone(), self.head()))
    }

    /// Becomes `true` when the node begins to stop.
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.shared.stopping.subscribe()
    }

    /// Committed blocks as they happen (lagging receivers skip, never block the ledger).
    pub fn subscribe(&self) -> broadcast::Receiver<BlockNotice> {
        self.blocks.subscribe()
    }

    /// Whether `hash` waits in this node's mempool or in a proposed block.
    pub async fn is_pending(&self, hash: Hash32) -> bool {
        matches!(self.addr.send(IsPending(hash)).await, Ok(Pending::Pending))
    }

    /// Submits a batch. Signatures are checked here, in one batch on the crypto pool;
    /// a transaction that fails is rejected at once and never reaches the mempool.
    /// Returns when the batch is queued; `Submitted::wait` waits for finality.
    pub async fn submit(&self, transactions: Vec<Transaction>) -> Result<Submitted, SubmitError> {
        let count = transactions.len();
        self.metrics.received(count);
        if count == 0 || count > engine::limits::BLOCK_TXS_MAX {
            return Err(SubmitError::InvalidBatch(format!(
                "a batch has 1 to {} transactions, got {count}",
                engine::limits::BLOCK_TXS_MAX
            )));
        }
        if let Some(seal) = self.shared.sealed.read().as_ref() {
            self.metrics.rejected("sealed", count as u64);
            return Err(SubmitError::Sealed { height: seal.height, note: seal.note.clone() });
        }
        let before = self.shared.pending.fetch_add(count, Ordering::AcqRel);
        if before + count > self.options.mempool_capacity {
            self.shared.pending.fetch_sub(count, Ordering::AcqRel);
            self.metrics.rejected("busy", count as u64);
            return Err(SubmitError::Busy { retry_after: self.retry_after() });
        }
        let algorithm = self.settings.hash_algorithm;
        let ledger = self.id;
        let checked = tokio::task::spawn_blocking(move || {
            let verdicts = crate::metrics::verify_signatures(&transactions);
            transactions
                .into_iter()
                .zip(verdicts)
                .map(|(transaction, valid)| {
                    let hash = transaction.content.hash(algorithm);
                    let rejection = if transaction.content.ledger_id != ledger {
                        Some(Rejection::WrongLedger)
                    } else if !valid {
                        Some(Rejection::BadSignature)
                    } else {
                        None
                    };
                    match rejection {
                        None => (hash, Entry::Accepted(transaction, hash)),
                        Some(rejection) => (
                            hash,
                            Entry::Rejected(TxOutcome {
                                hash,
                                status: TxStatus::Rejected(rejection),
                            }),
                        ),
                    }
                })
                .collect::<Vec<_>>()
        })
        .await;
        let checked = match checked {
            Ok(checked) => checked,
            Err(_) => {
                self.shared.pending.fetch_sub(count, Ordering::AcqRel);
                return Err(SubmitError::Stopped);
            }
        };
        let rejected =
            checked.iter().filter(|(_, entry)| matches!(entry, Entry::Rejected(_))).count();
        self.shared.pending.fetch_sub(rejected, Ordering::AcqRel);
        let (hashes, entries): (Vec<Hash32>, Vec<Entry>) = checked.into_iter().unzip();
        let (reply, finality) = oneshot::channel();
        // `do_send` ignores the mailbox capacity: the mempool bound above (`Busy`) is
        // what limits queued work.
        if !self.addr.connected() {
            self.shared.pending.fetch_sub(count - rejected, Ordering::AcqRel);
            return Err(SubmitError::Stopped);
        }
        self.addr.do_send(Submit { entries, reply: Some(reply) });
        Ok(Submitted { hashes, finality })
    }

    fn retry_after(&self) -> Duration {
        (self.options.max_block_delay * 4).max(Duration::from_millis(50))
    }
}

type Registry = Arc<RwLock<HashMap<[u8; 32], Addr<LedgerActor>>>>;

/// What starting a ledger's actor needs, kept so ledgers can start after the node has
/// (`LedgerSet::create`).
struct Starter {
    node_id: NodeId,
    key: PrivateKey,
    node_of_key: HashMap<Vec<u8>, NodeId>,
    store: Arc<dyn KvStore>,
    transport: Option<Transport>,
    registry: Registry,
    ledger_options: LedgerOptions,
    raft: RaftOptions,
    bft: consensus::BftOptions,
    arbiters: Vec<Arbiter>,
    /// With `LedgerOptions::pipelined_commit`: the one WAL syncer of the node's store.
    wal: Option<Arc<crate::wal_sync::WalSyncer>>,
}

/// The ledgers a node hosts: the configured ones, and those created at run time
/// (`create`, e.g. a new category or a split's children), which are recorded in the
/// store's catalog and reopened at every start. Cheap to clone; shared by the gateway.
#[derive(Clone)]
pub struct LedgerSet {
    handles: Arc<RwLock<Arc<Vec<LedgerHandle>>>>,
    starter: Arc<parking_lot::Mutex<Option<Starter>>>,
}

impl LedgerSet {
    /// A fixed set (tests, tools): `create` is refused.
    pub fn fixed(handles: Vec<LedgerHandle>) -> Self {
        LedgerSet {
            handles: Arc::new(RwLock::new(Arc::new(handles))),
            starter: Arc::new(parking_lot::Mutex::new(None)),
        }
    }

    /// Every hosted ledger, as of now.
    pub fn all(&self) -> Arc<Vec<LedgerHandle>> {
        self.handles.read().clone()
    }

    /// Creates a ledger from `settings` (its genesis block), records it in the node's
    /// catalog so it reopens at every start, and starts its actor. Every participant
    /// must create it with the same settings (same bytes: same ledger id); the group
    /// forms as they do. Must be called on a thread of the node's actix `System`.
    pub fn create(&self, settings: LedgerSettings) -> Result<LedgerHandle, NodeError> {
        let mut guard = self.starter.lock();
        let Some(starter) = guard.as_mut() else {
            return Err(NodeError::CreateUnavailable);
        };
        let name = settings.name.clone();
        if self.all().iter().any(|handle| handle.name == name) {
            return Err(NodeError::Exists(name));
        }
        let handle = starter.start(settings.clone())?;
        let key = layout::catalog_key(&name);
        let mut batch = engine::store::WriteBatch::new();
        batch.put(key, settings.encode());
        starter
            .store
            .write(batch)
            .map_err(|e| NodeError::Ledger { name: name.clone(), source: e.into() })?;
        let mut handles = self.handles.write();
        let mut next = handles.as_ref().clone();
        next.push(handle.clone());
        *handles = Arc::new(next);
        Ok(handle)
    }
}

impl Starter {
    /// Opens or creates the ledger of `settings` and starts its actor.
    fn start(&mut self, settings: LedgerSettings) -> Result<LedgerHandle, NodeError> {
        let own_key = self.key.public_key();
        let node_of_key = &self.node_of_key;
        let store = &self.store;
        let transport = &self.transport;
        let registry = &self.registry;
        if settings.participants.len() > 1 && transport.is_none() {
            return Err(NodeError::Invalid(format!(
                "ledger {}: other participants need the node-to-node transport, which this \
                 node started without (no configured ledger had other participants)",
                settings.name
            )));
        }
        let name = settings.name.clone();
        let ledger = open_or_create(store.clone(), settings.clone())
            .map_err(|source| NodeError::Ledger { name: name.clone(), source })?;
        let id = ledger.id();
        let member_nodes: Vec<NodeId> = settings
            .participants
            .iter()
            .map(|key| {
                node_of_key.get(&key.to_bytes()).copied().ok_or_else(|| {
                    NodeError::Invalid(format!(
                        "ledger {name}: participant {} is not a configured peer",
                        key.to_base58()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        // A genesis participant, or one admitted since (by a transaction this node
        // has applied), or a node waiting to be admitted.
        let admitted = ledger
            .participants()
            .map_err(|source| NodeError::Ledger { name: name.clone(), source })?
            .into_iter()
            .find(|p| p.public_key == own_key)
            .map(|p| p.member);
        let member = member_nodes
            .iter()
            .position(|node| *node == self.node_id)
            .map(|position| position as u64 + 1)
            .or(admitted);
        let genesis_voters: Vec<u64> = (1..=member_nodes.len() as u64).collect();
        let group_store =
            GroupStore::new(store.clone(), layout::table_prefix(&id, Table::Consensus));
        let mut join = None;
        let group: Box<dyn ConsensusGroup> = match (settings.consensus.as_str(), member) {
            ("solo", Some(_)) if member_nodes.len() == 1 => Box::new(
                SoloGroup::open(&group_store)
                    .map_err(|source| NodeError::Consensus { name: name.clone(), source })?,
            ),
            ("raft", Some(member)) => Box::new(
                RaftGroup::open_with_voters(
                    group_store.clone(),
                    member,
                    &genesis_voters,
                    self.raft.clone(),
                )
                .map_err(|source| NodeError::Consensus { name: name.clone(), source })?,
            ),
            ("bft", member) => {
                let participants: Vec<(u64, crypto_parallel::PublicKey)> = ledger
                    .active_participants()
                    .map_err(|source| NodeError::Ledger { name: name.clone(), source })?
                    .into_iter()
                    .map(|p| (p.member, p.public_key))
                    .collect();
                // Not (or no longer) an active participant: an observer, reopened as its
                // member by the actor when a block admits this node.
                let member = member
                    .filter(|member| participants.iter().any(|(m, _)| m == member))
                    .unwrap_or(consensus::OBSERVER);
                if member == consensus::OBSERVER {
                    tracing::info!(
                        ledger = %name,
                        "this node is not a participant: following as an observer until admitted"
                    );
                    join = Some(crate::ledger_actor::JoinPlan::Bft {
                        key: self.key.clone(),
                        options: self.bft.clone(),
                    });
                }
                let identity = consensus::BftIdentity { ledger: id, member, key: self.key.clone() };
                Box::new(
                    consensus::BftGroup::open(
                        group_store.clone(),
                        identity,
                        participants,
                        self.bft.clone(),
                    )
                    .map_err(|source| NodeError::Consensus { name: name.clone(), source })?,
                )
            }
            ("raft", None) => {
                tracing::info!(
                    ledger = %name,
                    "this node is not a participant yet: waiting to be admitted"
                );
                join = Some(crate::ledger_actor::JoinPlan::Raft {
                    initial_voters: genesis_voters.clone(),
                    options: self.raft.clone(),
                });
                Box::new(consensus::AwaitingAdmission)
            }
            (_, None) => {
                return Err(NodeError::Invalid(format!(
                    "ledger {name}: this node is not a participant"
                )));
            }
            other => {
                return Err(NodeError::Invalid(format!(
                    "ledger {name}: consensus {other:?} with {} participants is not supported \
                     (solo: exactly one; raft, bft: any)",
                    member_nodes.len()
                )));
            }
        };
        let shared = Arc::new(Shared::default());
        let (blocks, _) = broadcast::channel(1024);
        let parts = ActorParts {
            ledger,
            group,
            group_store,
            genesis_nodes: member_nodes.clone(),
            member_nodes,
            join,
            transport: transport.clone(),
            node_address: Address::of(settings.hash_algorithm, &own_key),
            options: self.ledger_options.clone(),
            shared: shared.clone(),
            blocks: blocks.clone(),
            metrics: crate::metrics::LedgerMetrics::new(&name),
            wal: self.wal.clone(),
        };
        let actor = LedgerActor::new(parts);
        let arbiter = Arbiter::new();
        let addr = LedgerActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        registry.write().insert(id.0, addr.clone());
        let metrics = crate::metrics::LedgerMetrics::new(&name);
        let handle = LedgerHandle {
            id,
            name,
            settings,
            addr,
            shared,
            store: store.clone(),
            options: self.ledger_options.clone(),
            blocks,
            metrics,
        };
        self.arbiters.push(arbiter);
        Ok(handle)
    }
}

/// A running node.
pub struct Node {
    id: NodeId,
    ledgers: LedgerSet,
    transport: Option<Transport>,
}

impl Node {
    /// Opens or creates every ledger and starts its actor; starts the transport when a
    /// ledger has other participants. Must be called inside an actix `System`.
    pub fn start(options: NodeOptions, store: Arc<dyn KvStore>) -> Result<Node, NodeError> {
        let own_key = options.key.public_key();
        let mut node_of_key: HashMap<Vec<u8>, NodeId> =
            options.peers.iter().map(|peer| (peer.public_key.to_bytes(), peer.id)).collect();
        node_of_key.insert(own_key.to_bytes(), options.id);

        let needs_transport =
            options.ledgers.iter().any(|settings| settings.participants.len() > 1);
        let registry: Registry = Arc::new(RwLock::new(HashMap::new()));
        let transport = if needs_transport {
            let listen = options.p2p_listen.ok_or_else(|| {
                NodeError::Invalid("a ledger has other participants: p2p_listen is required".into())
            })?;
            let mut config = TransportConfig::new(
                options.id,
                options.key.clone(),
                listen,
                options.peers.clone(),
            );
            config.worker_threads = options.transport_threads.max(1);
            config.tls = options.p2p_tls;
            let registry = registry.clone();
            let inbound = Arc::new(move |envelope: Envelope| {
                if let Some(addr) = registry.read().get(&envelope.ledger) {
                    addr.do_send(Inbound(envelope));
                }
            });
            Some(
                Transport::start(config, inbound)
                    .map_err(|source| NodeError::Transport { address: listen, source })?,
            )
        } else {
            None
        };

        let mut starter = Starter {
            node_id: options.id,
            key: options.key.clone(),
            node_of_key,
            store: store.clone(),
            transport: transport.clone(),
            registry,
            ledger_options: options.ledger_options.clone(),
            raft: options.raft.clone(),
            bft: options.bft.clone(),
            arbiters: Vec::new(),
            wal: if options.ledger_options.pipelined_commit {
                let syncer = crate::wal_sync::WalSyncer::start(store.clone())
                    .map_err(|e| NodeError::Invalid(format!("cannot start the WAL syncer: {e}")))?;
                Some(Arc::new(syncer))
            } else {
                None
            },
        };
        // The configured ledgers, then those created at run time (the catalog).
        let mut all = options.ledgers;
        for (name, settings) in catalog(&store)? {
            if all.iter().any(|configured| configured.name == name) {
                continue;
            }
            all.push(settings);
        }
        let mut handles: Vec<LedgerHandle> = Vec::new();
        for settings in all {
            if handles.iter().any(|handle| handle.name == settings.name) {
                return Err(NodeError::Invalid(format!(
                    "ledger {} configured twice",
                    settings.name
                )));
            }
            handles.push(starter.start(settings)?);
        }
        let ledgers = LedgerSet {
            handles: Arc::new(RwLock::new(Arc::new(handles))),
            starter: Arc::new(parking_lot::Mutex::new(Some(starter))),
        };
        Ok(Node { id: options.id, ledgers, transport })
    }
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Every hosted ledger, as of now (ledgers created at run time included).
    pub fn ledgers(&self) -> Arc<Vec<LedgerHandle>> {
        self.ledgers.all()
    }

    /// The hosted ledgers, shared (the gateway lists them and creates new ones).
    pub fn ledger_set(&self) -> LedgerSet {
        self.ledgers.clone()
    }

    /// A ledger by id.
    pub fn ledger(&self, id: &LedgerId) -> Option<LedgerHandle> {
        self.ledgers().iter().find(|handle| handle.id == *id).cloned()
    }

    /// A ledger by name.
    pub fn ledger_by_name(&self, name: &str) -> Option<LedgerHandle> {
        self.ledgers().iter().find(|handle| handle.name == name).cloned()
    }

    /// The transport, when this node has peers.
    pub fn transport(&self) -> Option<&Transport> {
        self.transport.as_ref()
    }

    /// Graceful stop: every ledger stops taking transactions, finishes its block in
    /// flight (up to `grace`), and stops; then the transport closes. Every commit is
    /// durable when it is acknowledged, so nothing needs flushing beyond that.
    pub async fn shutdown(self, grace: Duration) {
        // Subscriptions and webhooks end first, so the HTTP server can close its
        // connections.
        let handles = self.ledgers.all();
        for handle in handles.iter() {
            handle.shared.stopping.send_replace(true);
        }
        let stops: Vec<_> =
            handles.iter().map(|handle| handle.addr.send(Shutdown { grace })).collect();
        for stop in stops {
            let _ = stop.await;
        }
        // No ledger starts after this.
        if let Some(starter) = self.ledgers.starter.lock().take() {
            for arbiter in &starter.arbiters {
                arbiter.stop();
            }
        }
        if let Some(transport) = self.transport {
            transport.shutdown();
        }
    }
}

/// The ledgers created at run time: the store's catalog (`layout::catalog_key`).
fn catalog(store: &Arc<dyn KvStore>) -> Result<Vec<(String, LedgerSettings)>, NodeError> {
    let prefix = layout::catalog_prefix();
    let end = engine::store::prefix_end(&prefix).expect("a non-0xff prefix");
    let rows = store
        .scan(&prefix, &end, engine::store::Direction::Forward, usize::MAX)
        .map_err(|e| NodeError::Invalid(format!("reading the ledger catalog: {e}")))?;
    rows.into_iter()
        .map(|(key, value)| {
            let name = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let settings = LedgerSettings::decode(&value)
                .map_err(|e| NodeError::Invalid(format!("ledger catalog entry {name}: {e}")))?;
            Ok((name, settings))
        })
        .collect()
}

fn open_or_create(
    store: Arc<dyn KvStore>,
    settings: LedgerSettings,
) -> Result<Ledger<Arc<dyn KvStore>>, EngineError> {
    match Ledger::create(store.clone(), settings) {
        Ok(ledger) => Ok(ledger),
        Err(EngineError::LedgerExists(id)) => {
            let bytes = hex_decode(&id).ok_or(EngineError::InvalidInput("ledger id".into()))?;
            Ledger::open(store, LedgerId(bytes))
        }
        Err(error) => Err(error),
    }
}

fn hex_decode(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

impl NodeOptions {
    /// The options a node configuration file describes; `key` is the node's key (read
    /// from `node.key_file` by the caller).
    pub fn from_config(
        config: &crate::config::NodeConfig,
        key: PrivateKey,
    ) -> Result<NodeOptions, crate::config::ConfigError> {
        let own = key.public_key();
        let ledgers = config
            .ledgers
            .iter()
            .map(|ledger| ledger.settings(config, &own))
            .collect::<Result<Vec<_>, _>>()?;
        let peers = config
            .peers
            .iter()
            .map(|peer| PeerConfig {
                id: peer.id,
                public_key: peer.public_key.clone(),
                address: peer.address,
            })
            .collect();
        let tick = config.raft.tick();
        Ok(NodeOptions {
            id: config.node.id,
            key,
            p2p_listen: Some(config.node.p2p_listen),
            p2p_tls: config.node.p2p_tls,
            peers,
            ledgers,
            ledger_options: LedgerOptions {
                max_block_txs: config.block.max_txs,
                max_block_delay: config.block.max_delay(),
                pipelined_commit: config.block.pipelined_commit,
                mempool_capacity: config.mempool.capacity,
                tick,
                // Long enough for an election (up to twice the election timeout).
                proposal_timeout: (tick * config.raft.election_ticks as u32 * 3)
                    .max(Duration::from_secs(1)),
            },
            raft: RaftOptions {
                election_ticks: config.raft.election_ticks,
                heartbeat_ticks: config.raft.heartbeat_ticks,
                max_log_entries_kept: config.raft.max_log_entries_kept,
                ..RaftOptions::default()
            },
            bft: consensus::BftOptions::default(),
            transport_threads: config.pools.transport_threads,
        })
    }
}
