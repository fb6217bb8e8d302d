//! The consensus SPI: order opaque proposals for one group and deliver the committed ones
//! in order, to every member.
//!
//! A provider does no I/O of its own. The caller (one `LedgerActor` per ledger, or a
//! deterministic simulation in tests) passes everything in:
//! - the network: `receive` takes a message from a member, `Ready::messages` are what to
//!   send; the bytes are the provider's own and travel opaque;
//! - the clock: `tick` is called at a fixed interval; providers count ticks, never read
//!   time;
//! - storage: a provider that must persist (the Raft log and hard state) writes through the
//!   engine's `KvStore` it was given, under a key prefix it was given.
//!
//! Nothing here is Raft-specific: a committed entry carries a `certificate` (empty for solo
//! and Raft; the signed votes of a BFT provider), members are numbered `1..=n` in the
//! order of the ledger's participants, and "leader" means "the member that proposes now"
//! (a BFT provider's round proposer).
//!
//! # Applied marker
//! The application persists how far it has applied (`applied_marker`) in the SAME atomic
//! write as its own state (the block commit), then calls `ConsensusGroup::applied`. On
//! restart a provider resumes delivery right after the persisted marker, so an entry is
//! applied exactly once even across crashes.

use std::sync::Arc;

use engine::store::{KvStore, StoreError, WriteBatch};

pub mod bft;
pub mod raft_group;
pub mod solo;
mod storage;

pub use bft::{BftGroup, BftIdentity, BftOptions, OBSERVER};
pub use raft_group::{RaftGroup, RaftOptions};

/// A node configured for a group it is not (yet) a member of: it neither votes nor
/// proposes until the group admits it (its first Raft message names its member number,
/// [`raft_group::addressed_to`]); the application then opens the real member.
#[derive(Debug, Default)]
pub struct AwaitingAdmission;

impl ConsensusGroup for AwaitingAdmission {
    fn member(&self) -> MemberId {
        0
    }
    fn members(&self) -> u64 {
        0
    }
    fn voters(&self) -> Vec<MemberId> {
        Vec::new()
    }
    fn leader(&self) -> Option<MemberId> {
        None
    }
    fn propose(&mut self, _: Vec<u8>) -> Result<(), ConsensusError> {
        Err(ConsensusError::NotLeader { leader: None })
    }
    fn receive(&mut self, _: MemberId, _: &[u8]) -> Result<(), ConsensusError> {
        Err(ConsensusError::Rejected("not admitted to the group yet".into()))
    }
    fn tick(&mut self) {}
    fn ready(&mut self) -> Result<Ready, ConsensusError> {
        Ok(Ready::default())
    }
    fn applied(&mut self, _: Checkpoint) -> Result<(), ConsensusError> {
        Ok(())
    }
    fn settled(&self) -> bool {
        false
    }
}
pub use solo::SoloGroup;

/// A member of a group: `1..=n`, its position in the ledger's participant list plus one.
pub type MemberId = u64;

/// Why a consensus call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsensusError {
    /// Only the current leader proposes; `leader` is who to forward to, if known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this member knows of.
        leader: Option<MemberId>,
    },
    /// The store below failed; the group must not continue on this node.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Persisted consensus records do not decode.
    #[error("corrupt consensus record: {0}")]
    Corrupt(String),
    /// A message or proposal the provider rejects (malformed bytes, too large, unknown
    /// member).
    #[error("rejected: {0}")]
    Rejected(String),
}

/// One committed entry, delivered in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Position in the group's order (strictly increasing, gaps allowed: a provider's own
    /// bookkeeping entries are not delivered).
    pub index: u64,
    /// The proposal, as proposed.
    pub payload: Vec<u8>,
    /// Proof of commitment the application keeps with the block (BFT: the signed
    /// votes). Empty for providers whose commitment is not transferable (solo, Raft).
    pub certificate: Vec<u8>,
}

/// The application state at an applied index, as opaque bytes the application chose
/// (polyledger: ledger height and block hash). A member that fell behind a compacted log
/// receives one and must catch up to it by other means (block sync), not by replaying
/// the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Last index the checkpoint covers.
    pub index: u64,
    /// The application's description of its state there.
    pub data: Vec<u8>,
}

/// A change of a group's voting members, one member at a time (so any two consecutive
/// configurations share a majority).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// The member joins and then votes. A provider may take it in steps (raft: a
    /// learner first, a voter once it has caught up): `propose_membership` then answers
    /// `Rejected` until the next step can be taken, and the caller proposes again.
    Add(MemberId),
    /// The member stops voting; its messages are ignored from then on.
    Remove(MemberId),
}

/// What the caller must do after an input: send `messages`, then (if `restored`) catch up
/// to the checkpoint, then apply `committed` in order.
#[derive(Debug, Default)]
pub struct Ready {
    /// `(to, bytes)` to deliver to other members; loss and reordering are tolerated.
    pub messages: Vec<(MemberId, Vec<u8>)>,
    /// The log was replaced by a checkpoint from the leader: the application's state
    /// must reach it before it applies `committed`.
    pub restored: Option<Checkpoint>,
    /// Newly committed entries, in order.
    pub committed: Vec<Committed>,
    /// The voting members after a membership change committed (or a snapshot installed)
    /// in this round (ascending), when one did.
    pub voters: Option<Vec<MemberId>>,
    /// Proposals to execute before the group can vote on them (providers that certify the
    /// executed block, `bft`): answer each with [`ConsensusGroup::evaluated`], on the
    /// application state of the height before `height`. Empty for solo and Raft.
    pub evaluate: Vec<Evaluate>,
    /// Decided heights a member behind asked for that the group no longer keeps (`bft`
    /// keeps the last `decided_kept`): the application sends them from its block store,
    /// each encoded by [`ConsensusGroup::decided_message`]. Empty for solo and Raft.
    pub serve: Vec<Serve>,
}

/// Decided heights to send to a member that is behind, from the application's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serve {
    /// The member behind.
    pub member: MemberId,
    /// The heights it misses that the group no longer keeps (at most a few at a time).
    pub heights: std::ops::Range<u64>,
}

/// A proposal the application must execute (without committing) to tell the group which
/// block it produces.
#[derive(Debug, Clone)]
pub struct Evaluate {
    /// Identifies the answer.
    pub request: u64,
    /// The height the proposal is for (the application's head + 1).
    pub height: u64,
    /// The consensus round.
    pub round: u32,
    /// The member that signed the proposal (0 for a block decided elsewhere, received
    /// with its certificate while catching up).
    pub proposer: MemberId,
    /// The proposal bytes.
    pub payload: Arc<Vec<u8>>,
}

impl Ready {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.restored.is_none()
            && self.committed.is_empty()
            && self.voters.is_none()
            && self.evaluate.is_empty()
            && self.serve.is_empty()
    }
}

/// One member's view of one consensus group.
pub trait ConsensusGroup: Send {
    /// This member.
    fn member(&self) -> MemberId;
    /// Number of voting members.
    fn members(&self) -> u64;
    /// The voting members, ascending.
    fn voters(&self) -> Vec<MemberId> {
        (1..=self.members()).collect()
    }
    /// Proposes a membership change (leader only; one change at a time: a change while
    /// another is uncommitted is rejected). It takes effect on each member when it
    /// commits, reported in `Ready::voters`. Providers with a fixed membership reject it.
    fn propose_membership(&mut self, change: MembershipChange) -> Result<(), ConsensusError> {
        Err(ConsensusError::Rejected(format!("{change:?}: this provider's membership is fixed")))
    }
    /// The member that proposes now, if known.
    fn leader(&self) -> Option<MemberId>;
    /// The group's current term (election epoch) for monitoring; 0 where the provider
    /// has none (solo).
    fn term(&self) -> u64 {
        0
    }
    /// True when this member may propose now.
    fn is_leader(&self) -> bool {
        self.leader() == Some(self.member())
    }
    /// Proposes `payload`. Accepted proposals are not guaranteed to commit (a leader
    /// change can drop them); the application learns what committed from `ready`.
    fn propose(&mut self, payload: Vec<u8>) -> Result<(), ConsensusError>;
    /// A message from another member.
    fn receive(&mut self, from: MemberId, message: &[u8]) -> Result<(), ConsensusError>;
    /// One clock tick (the caller's fixed interval).
    fn tick(&mut self);
    /// Persists what must be persisted and returns what to send and apply.
    fn ready(&mut self) -> Result<Ready, ConsensusError>;
    /// The application has durably applied everything up to `checkpoint.index` (its
    /// marker is persisted); the provider may compact its log behind it.
    fn applied(&mut self, checkpoint: Checkpoint) -> Result<(), ConsensusError>;
    /// True when every entry this member holds is committed and has been delivered: its
    /// application state is current, so a proposal built on it extends the right head.
    fn settled(&self) -> bool;
    /// The application's answer to an [`Evaluate`] request: the hash of the block the
    /// proposal executes to, or why it does not execute. Providers that never ask ignore
    /// it.
    fn evaluated(&mut self, request: u64, verdict: Result<[u8; 32], String>) {
        let _ = (request, verdict);
    }
    /// The participants (member number, node key) after a block that changed them; the
    /// provider uses them from the next height on. Providers that track membership
    /// themselves (Raft) ignore it.
    fn participants_changed(&mut self, participants: Vec<(MemberId, crypto_parallel::PublicKey)>) {
        let _ = participants;
    }
    /// True when every member proposes in turn (`bft`): the application keeps
    /// transactions in every member's mempool (it gossips them) instead of forwarding
    /// them to one leader. False for solo and Raft.
    fn rotates_proposer(&self) -> bool {
        false
    }
    /// Whether this member has transactions waiting to be ordered. A rotating provider
    /// holds its propose timeout while it and its peers are idle, so an idle group does
    /// not cycle through empty rounds; others ignore it.
    fn set_idle(&mut self, idle: bool) {
        let _ = idle;
    }
    /// The message that hands a decided block to a member behind ([`Ready::serve`]):
    /// `payload` is the block's proposal bytes as committed, `certificate` its commit
    /// certificate, both from the application's store. The receiver checks the
    /// certificate and the executed hash, so it need not trust the sender. `None` where
    /// the provider never asks.
    fn decided_message(
        &self,
        height: u64,
        payload: Vec<u8>,
        certificate: Vec<u8>,
    ) -> Option<Vec<u8>> {
        let _ = (height, payload, certificate);
        None
    }
}

/// Where a group keeps its records: a store and a key prefix owned by the group
/// (polyledger: `ledger id | 0x0b`).
#[derive(Clone)]
pub struct GroupStore {
    /// The store.
    pub store: Arc<dyn KvStore>,
    /// Every key of the group starts with this.
    pub prefix: Vec<u8>,
}

impl GroupStore {
    /// A group store.
    pub fn new(store: Arc<dyn KvStore>, prefix: Vec<u8>) -> Self {
        GroupStore { store, prefix }
    }

    pub(crate) fn key(&self, record: u8, suffix: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 1 + suffix.len());
        key.extend_from_slice(&self.prefix);
        key.push(record);
        key.extend_from_slice(suffix);
        key
    }

    /// Adds the applied marker (`checkpoint`) to `batch`, which the application writes
    /// atomically with its own state.
    pub fn put_applied_marker(&self, batch: &mut WriteBatch, checkpoint: &Checkpoint) {
        let mut value = Vec::with_capacity(8 + checkpoint.data.len());
        value.extend_from_slice(&checkpoint.index.to_be_bytes());
        value.extend_from_slice(&checkpoint.data);
        batch.put(self.key(storage::RECORD_APPLIED, &[]), value);
    }

    /// The persisted applied marker, if any.
    pub fn applied_marker(&self) -> Result<Option<Checkpoint>, ConsensusError> {
        let Some(value) = self.store.get(&self.key(storage::RECORD_APPLIED, &[]))? else {
            return Ok(None);
        };
        if value.len() < 8 {
            return Err(ConsensusError::Corrupt("applied marker shorter than 8 bytes".into()));
        }
        let index = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
        Ok(Some(Checkpoint { index, data: value[8..].to_vec() }))
    }
}
