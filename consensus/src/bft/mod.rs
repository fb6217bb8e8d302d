//! `bft`: a Byzantine-fault-tolerant provider — Tendermint, as specified and implemented by
//! Malachite's core driver (`informalsystems-malachitebft-core-driver`), with polyledger's
//! transport, keys, store and clock plugged in around it.
//!
//! With `n = 3f + 1` participants, up to `f` may be arbitrarily faulty (equivocate, vote
//! twice, send garbage) and honest nodes never decide two different blocks at one height.
//! A block is decided when participants holding more than 2/3 of the votes precommit its
//! hash; those precommits are its **commit certificate** (`engine::certificate`), delivered
//! in [`Committed::certificate`] and kept with the block.
//!
//! What this layer adds to the driver (which does no I/O and no signature checks):
//! - **Execution before the vote.** A proposal's value is the hash of the block it executes
//!   to, so a certificate certifies the block itself — its state root included. The
//!   application executes each proposal when asked (`Ready::evaluate`) and answers with
//!   [`ConsensusGroup::evaluated`]: the block hash, or why the proposal is invalid.
//! - **Signatures**: every proposal and vote is signed with the participant's node key over
//!   `engine::certificate::{vote_sign_bytes, proposal_sign_bytes}`; received signatures are
//!   checked in one batch per `ready` on the crypto pool, before the driver sees them.
//!   A proposal from anyone but the round's proposer, a second different proposal for a
//!   round (equivocation), and messages from non-participants are dropped and counted.
//! - **Write-ahead votes**: every vote and proposal this member signs is persisted before it
//!   is sent; after a restart it re-sends the same vote rather than sign a different one,
//!   so a crash cannot make an honest member equivocate.
//! - **Timers** counted in ticks; **rebroadcast** of this member's proposal and votes when
//!   nothing progresses (messages may be lost); **catch-up**: a member that sees a higher
//!   height asks that peer for decided blocks, verifies each certificate against its
//!   participants, executes the block and checks the hash before it delivers it.
//! - **Rotating proposers, shared mempool**: the proposer of height `h`, round `r` is member
//!   `(h + r) mod n` (in participant order), so the application gossips transactions to
//!   every member ([`ConsensusGroup::rotates_proposer`]). While this member and its peers
//!   have nothing to order ([`ConsensusGroup::set_idle`]) the propose timeout is held, so
//!   an idle group signs no empty rounds.
//!
//! The application must apply (and call [`ConsensusGroup::applied`] for) a decided height
//! before the group starts the next one: proposals of height `h + 1` are executed on
//! the state after `h`.

pub mod context;
pub mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crypto_parallel::{PrivateKey, PublicKey, VerifyItem};
use engine::certificate::{Certificate, VoteKind};
use engine::model::{Hash32, LedgerId};
use engine::store::WriteBatch;
use malachite_driver::{Driver, Input, Output, ThresholdParams};
use malachite_types::{NilOrVal, Round, SignedMessage, Timeout, TimeoutKind, Validity, VoteType};

use self::context::{BlockId, Ctx, Height, Member, Validator, Validators};
use self::wire::{Message, SignedProposal, SignedVote};
use crate::{
    Checkpoint, Committed, ConsensusError, ConsensusGroup, Evaluate, GroupStore, MemberId, Ready,
    Serve,
};

// Records under the group's prefix (the Raft records use 0x01..0x06; the applied marker
// 0x05 is shared).
const RECORD_DECIDED: u8 = 0x20;
const RECORD_OWN_VOTE: u8 = 0x21;
const RECORD_OWN_PROPOSAL: u8 = 0x22;

/// The member number of an observer ([`BftGroup::open`]).
pub const OBSERVER: MemberId = 0;

/// Timing and bounds of the `bft` provider.
#[derive(Debug, Clone)]
pub struct BftOptions {
    /// Ticks a member waits for the round's proposal before it prevotes nil.
    pub propose_ticks: u64,
    /// Ticks a member waits after a prevote or precommit quorum for "any" value.
    pub step_ticks: u64,
    /// Extra ticks per round (rounds 0..=8), so timeouts grow until the network's delay
    /// fits in them.
    pub round_delta_ticks: u64,
    /// Ticks without progress after which this member re-sends its proposal and votes.
    pub rebroadcast_ticks: u64,
    /// While idle, ticks between status requests to the peers (a sync request for this
    /// member's height: a peer further on answers with the decided blocks), so a member
    /// behind an idle group still catches up.
    pub idle_status_ticks: u64,
    /// Decided blocks kept for members catching up.
    pub decided_kept: u64,
    /// Largest proposal, in bytes.
    pub max_payload_bytes: usize,
    /// Messages for later heights buffered until this member gets there.
    pub future_messages_max: usize,
    /// Bytes of those messages buffered at most (the oldest go first).
    pub future_bytes_max: usize,
    /// Votes for rounds further ahead than this are dropped.
    pub rounds_ahead_max: u32,
}

impl Default for BftOptions {
    fn default() -> Self {
        BftOptions {
            propose_ticks: 10,
            step_ticks: 5,
            round_delta_ticks: 2,
            rebroadcast_ticks: 5,
            idle_status_ticks: 20,
            decided_kept: 256,
            max_payload_bytes: 64 << 20,
            future_messages_max: 4096,
            future_bytes_max: 256 << 20,
            rounds_ahead_max: 64,
        }
    }
}

/// Who this member is: the ledger (bound into every signature), its member number and its
/// node key.
#[derive(Clone)]
pub struct BftIdentity {
    /// The ledger the group orders.
    pub ledger: LedgerId,
    /// This member.
    pub member: MemberId,
    /// This member's node key (its public key is the participant's).
    pub key: PrivateKey,
}

/// Counters of what the group dropped, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BftStats {
    /// Signatures that did not verify.
    pub bad_signatures: u64,
    /// Second, different proposals of one proposer for one round.
    pub equivocations: u64,
    /// Proposals from a member that is not the round's proposer.
    pub wrong_proposer: u64,
    /// Proposals the application found invalid.
    pub invalid_proposals: u64,
    /// Heights reached by catching up with certified blocks.
    pub synced_heights: u64,
    /// Decided certificates from peers that did not verify.
    pub bad_certificates: u64,
}

enum Pending {
    /// A peer's proposal (its body moved out into `payload`).
    Proposal { signed: SignedProposal, payload: Arc<Vec<u8>> },
    /// Our own payload, to become our proposal's value.
    Own { round: u32, payload: Arc<Vec<u8>> },
    /// A decided block from a peer whose certificate verified.
    Synced { certificate: Certificate, payload: Arc<Vec<u8>> },
}

/// A decided block's proposal bytes and certificate bytes.
type Decided = (Vec<u8>, Vec<u8>);

/// One member of a `bft` group.
pub struct BftGroup {
    store: GroupStore,
    options: BftOptions,
    identity: BftIdentity,
    validators: Validators,
    driver: Driver<Ctx>,
    /// The round was started (`NewRound`) and nothing was decided at this height yet.
    started: bool,
    now: u64,
    timers: Vec<(u64, Timeout)>,
    last_progress: u64,
    last_step: (Round, u8),
    payloads: HashMap<Hash32, Arc<Vec<u8>>>,
    proposal_rounds: HashMap<u32, Hash32>,
    pending: HashMap<u64, Pending>,
    next_request: u64,
    want_value: Option<u32>,
    own_requested: bool,
    inbox: Vec<Message>,
    future: VecDeque<(MemberId, Vec<u8>)>,
    future_bytes: usize,
    outbox: Vec<(MemberId, Vec<u8>)>,
    committed: Vec<Committed>,
    evaluate: Vec<Evaluate>,
    own_proposal: Option<Vec<u8>>,
    own_votes: BTreeMap<(u32, u8), Vec<u8>>,
    sync_asked: HashMap<MemberId, u64>,
    /// When each member behind this one was last sent decided blocks (tick).
    helped: HashMap<MemberId, u64>,
    /// Decided heights for the application to send ([`Ready::serve`]).
    serve: Vec<Serve>,
    /// A member seen at a later height, and that height: asked for the next decided block
    /// as soon as this member starts a height below it.
    ahead: Option<(MemberId, u64)>,
    syncing: bool,
    stats: BftStats,
    /// The application has no transactions to order (`set_idle`).
    idle: bool,
    /// A peer's signed proposal or vote of this height arrived since the round began: a
    /// peer is working, so this member's propose timeout runs even when it is idle.
    peers_active: bool,
    /// When this member last asked its peers for blocks past its height while idle.
    last_status: Option<u64>,
}

impl BftGroup {
    /// Opens (or reopens) member `identity.member` of a group whose participants are
    /// `participants` (member number and node key). It resumes at the height after the
    /// application's applied marker; a height decided before a crash but not applied is
    /// delivered again at once. Member [`OBSERVER`] (0) is a node that is not a
    /// participant: it never signs, and catches up with certified blocks (a node waiting
    /// for its admission, or removed); the application reopens it as its member once a
    /// block admits it.
    pub fn open(
        store: GroupStore,
        identity: BftIdentity,
        participants: Vec<(MemberId, PublicKey)>,
        options: BftOptions,
    ) -> Result<Self, ConsensusError> {
        let validators = Validators::new(
            participants
                .into_iter()
                .map(|(member, key)| Validator { member: Member(member), key })
                .collect(),
        );
        if validators.0.is_empty() {
            return Err(ConsensusError::Rejected("a bft group needs participants".into()));
        }
        match validators.key(identity.member) {
            Some(key) if *key == identity.key.public_key() => {}
            Some(_) => {
                return Err(ConsensusError::Rejected(format!(
                    "member {}'s key is not this node's key",
                    identity.member
                )));
            }
            // An observer: not (or no longer) a participant. It signs nothing, and follows
            // the group with certified blocks once the participants accept its requests
            // (after its admission).
            None if identity.member == OBSERVER => {}
            None => {
                return Err(ConsensusError::Rejected(format!(
                    "member {} is not a participant",
                    identity.member
                )));
            }
        }
        let height = store.applied_marker()?.map_or(1, |marker| marker.index + 1);
        let driver = Driver::new(
            Ctx,
            Height(height),
            validators.clone(),
            Member(identity.member),
            ThresholdParams::default(),
        );
        let mut group = BftGroup {
            store,
            options,
            identity,
            validators,
            driver,
            started: false,
            now: 0,
            timers: Vec::new(),
            last_progress: 0,
            last_step: (Round::Nil, 0),
            payloads: HashMap::new(),
            proposal_rounds: HashMap::new(),
            pending: HashMap::new(),
            next_request: 0,
            want_value: None,
            own_requested: false,
            inbox: Vec::new(),
            future: VecDeque::new(),
            future_bytes: 0,
            outbox: Vec::new(),
            committed: Vec::new(),
            evaluate: Vec::new(),
            own_proposal: None,
            own_votes: BTreeMap::new(),
            sync_asked: HashMap::new(),
            helped: HashMap::new(),
            serve: Vec::new(),
            ahead: None,
            syncing: false,
            stats: BftStats::default(),
            idle: false,
            peers_active: false,
            last_status: None,
        };
        if let Some((payload, certificate)) = group.decided_record(height)? {
            // Decided before a crash, not applied: deliver it again.
            group.committed.push(Committed { index: height, payload, certificate });
        } else {
            group.start_height()?;
        }
        Ok(group)
    }

    /// What the group dropped so far.
    pub fn stats(&self) -> BftStats {
        self.stats
    }

    /// One line on where this member stands (for logs and failing tests).
    pub fn describe(&self) -> String {
        let state = self.driver.round_state();
        format!(
            "member {} height {} round {} step {:?} started {} locked {:?} valid {:?} timers {:?} \
             want_value {:?} pending {} proposals {:?} now {} last_progress {} future {} {:?}",
            self.identity.member,
            self.height(),
            self.driver.round(),
            self.driver.step(),
            self.started,
            state.locked.as_ref().map(|l| (l.round, l.value)),
            state.valid.as_ref().map(|v| (v.round, v.value)),
            self.timers,
            self.want_value,
            self.pending.len(),
            self.proposal_rounds,
            self.now,
            self.last_progress,
            self.future.len(),
            self.stats,
        )
    }

    /// The height being decided.
    pub fn height(&self) -> u64 {
        self.driver.height().0
    }

    /// The current round.
    pub fn round(&self) -> u32 {
        self.driver.round().as_u32().unwrap_or(0)
    }

    fn key(&self, record: u8, height: u64, suffix: &[u8]) -> Vec<u8> {
        let mut rest = height.to_be_bytes().to_vec();
        rest.extend_from_slice(suffix);
        self.store.key(record, &rest)
    }

    fn decided_record(&self, height: u64) -> Result<Option<Decided>, ConsensusError> {
        let Some(value) = self.store.store.get(&self.key(RECORD_DECIDED, height, &[]))? else {
            return Ok(None);
        };
        let mut reader = engine::codec::Reader::new(&value);
        let corrupt = |e: engine::codec::DecodeError| ConsensusError::Corrupt(e.to_string());
        let payload = reader.bytes32(usize::MAX, "decided payload").map_err(corrupt)?.to_vec();
        let certificate =
            reader.bytes32(usize::MAX, "decided certificate").map_err(corrupt)?.to_vec();
        Ok(Some((payload, certificate)))
    }

    /// Starts round 0 of the driver's height and replays this member's own persisted
    /// votes (a restart) and the messages buffered for this height.
    fn start_height(&mut self) -> Result<(), ConsensusError> {
        let height = self.height();
        self.started = true;
        self.timers.clear();
        self.payloads.clear();
        self.proposal_rounds.clear();
        self.pending.clear();
        self.want_value = None;
        self.own_requested = false;
        self.own_proposal = None;
        self.own_votes.clear();
        self.syncing = false;
        self.peers_active = false;
        self.last_progress = self.now;
        let proposer = self.validators.proposer(height, 0);
        self.process(Input::NewRound(Height(height), Round::ZERO, Member(proposer)))?;
        // Our own votes of this height from before a restart count again.
        let prefix = self.key(RECORD_OWN_VOTE, height, &[]);
        for (_, bytes) in engine::store::scan_prefix(
            &*self.store.store,
            &prefix,
            engine::store::Direction::Forward,
            usize::MAX,
        )? {
            if let Ok(Message::Vote(vote)) = Message::decode(&bytes, 0) {
                self.own_votes.insert((vote.round, vote.kind as u8), bytes.clone());
                if let Some(signed) = self.to_driver_vote(&vote) {
                    self.process(Input::Vote(signed))?;
                }
            }
        }
        let buffered: Vec<(MemberId, Vec<u8>)> = self.future.drain(..).collect();
        self.future_bytes = 0;
        for (from, bytes) in buffered {
            // Already decoded once; errors were reported then.
            let _ = self.receive(from, &bytes);
        }
        match self.ahead {
            Some((member, ahead)) if ahead > height => {
                if self.started && self.height() == height && !self.syncing {
                    self.sync_asked.insert(member, self.now);
                    self.outbox.push((member, Message::SyncRequest { height }.encode()));
                }
            }
            _ => self.ahead = None,
        }
        Ok(())
    }

    fn to_driver_vote(&self, vote: &SignedVote) -> Option<malachite_types::SignedVote<Ctx>> {
        let kind = match vote.kind {
            VoteKind::Prevote => VoteType::Prevote,
            VoteKind::Precommit => VoteType::Precommit,
            VoteKind::Proposal => return None,
        };
        let value = match vote.block {
            None => NilOrVal::Nil,
            Some(hash) => NilOrVal::Val(BlockId(hash)),
        };
        let message = context::Vote {
            height: Height(vote.height),
            round: Round::new(vote.round),
            value,
            kind,
            voter: Member(vote.voter),
        };
        Some(SignedMessage::new(message, context::Sig(vote.signature.clone())))
    }

    fn broadcast(&mut self, bytes: &[u8]) {
        for validator in &self.validators.0 {
            if validator.member.0 != self.identity.member {
                self.outbox.push((validator.member.0, bytes.to_vec()));
            }
        }
    }

    fn timeout_ticks(&self, timeout: &Timeout) -> u64 {
        let round = timeout.round.as_u32().unwrap_or(0).min(8) as u64;
        let base = match timeout.kind {
            TimeoutKind::Propose => self.options.propose_ticks,
            _ => self.options.step_ticks,
        };
        base + round * self.options.round_delta_ticks
    }

    /// Runs `input` through the driver and acts on every output; our own proposals and
    /// votes are fed back in.
    fn process(&mut self, input: Input<Ctx>) -> Result<(), ConsensusError> {
        let mut queue = VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let outputs = match self.driver.process(input) {
                Ok(outputs) => outputs,
                Err(error) => {
                    tracing::debug!(%error, "bft driver refused an input");
                    continue;
                }
            };
            for output in outputs {
                match output {
                    Output::NewRound(height, round) => {
                        self.timers.clear();
                        self.want_value = None;
                        self.peers_active = false;
                        let proposer =
                            self.validators.proposer(height.0, round.as_u32().unwrap_or(0));
                        queue.push_back(Input::NewRound(height, round, Member(proposer)));
                    }
                    Output::GetValue(_, round, _) => {
                        self.want_value = round.as_u32();
                        self.own_requested = false;
                    }
                    Output::Propose(proposal) => {
                        if let Some(input) = self.sign_proposal(proposal)? {
                            queue.push_back(input);
                        }
                    }
                    Output::Vote(vote) => {
                        if let Some(input) = self.sign_vote(vote)? {
                            queue.push_back(input);
                        }
                    }
                    Output::ScheduleTimeout(timeout) => {
                        let deadline = self.now + self.timeout_ticks(&timeout);
                        self.timers.push((deadline, timeout));
                    }
                    Output::Decide(_, proposal) => {
                        return self.decide(proposal);
                    }
                }
            }
        }
        let step = (self.driver.round(), self.driver.step() as u8);
        if step != self.last_step {
            self.last_step = step;
            self.last_progress = self.now;
        }
        Ok(())
    }

    fn sign_proposal(
        &mut self,
        proposal: context::Proposal,
    ) -> Result<Option<Input<Ctx>>, ConsensusError> {
        if self.validators.key(self.identity.member).is_none() {
            return Ok(None);
        }
        let height = proposal.height.0;
        let round = proposal.round.as_u32().unwrap_or(0);
        let key = self.key(RECORD_OWN_PROPOSAL, height, &round.to_be_bytes());
        let bytes = if let Some(stored) = self.store.store.get(&key)? {
            // Proposed before a restart: the same proposal again, never another.
            stored
        } else {
            let Some(payload) = self.payloads.get(&proposal.value.0).cloned() else {
                tracing::warn!(height, round, "bft: no body for the value to propose");
                return Ok(None);
            };
            let mut signed = SignedProposal::sign(
                &self.identity.key,
                &self.identity.ledger,
                height,
                round,
                proposal.pol_round.as_i64(),
                proposal.value.0,
                self.identity.member,
                payload.to_vec(),
            );
            if proposal.pol_round.is_defined() {
                // A re-proposal: carry the prevote quorum it stands on, for members that
                // missed those prevotes.
                signed.polka = self.polka(proposal.pol_round, proposal.value);
            }
            let bytes = Message::Proposal(signed).encode();
            let mut batch = WriteBatch::new();
            batch.put(key, bytes.clone());
            self.store.store.write(batch)?;
            bytes
        };
        let Ok(Message::Proposal(signed)) = Message::decode(&bytes, usize::MAX) else {
            return Err(ConsensusError::Corrupt("own proposal record".into()));
        };
        // A proposal signed before a restart may carry another body than the one just
        // evaluated; it executed on the same state then.
        self.payloads.entry(signed.block).or_insert_with(|| Arc::new(signed.payload.clone()));
        self.broadcast(&bytes);
        self.own_proposal = Some(bytes);
        self.proposal_rounds.insert(round, signed.block);
        Ok(Some(Input::Proposal(driver_proposal(&signed), Validity::Valid)))
    }

    fn polka(&self, round: Round, value: BlockId) -> Vec<SignedVote> {
        let Some(per_round) = self.driver.votes().per_round(round) else { return Vec::new() };
        per_round
            .received_votes()
            .iter()
            .filter(|vote| {
                vote.message.kind == VoteType::Prevote && vote.message.value == NilOrVal::Val(value)
            })
            .map(|vote| SignedVote {
                kind: VoteKind::Prevote,
                height: vote.message.height.0,
                round: round.as_u32().unwrap_or(0),
                block: Some(value.0),
                voter: vote.message.voter.0,
                signature: vote.signature.0.clone(),
            })
            .collect()
    }

    fn sign_vote(&mut self, vote: context::Vote) -> Result<Option<Input<Ctx>>, ConsensusError> {
        if self.validators.key(self.identity.member).is_none() {
            // Removed from the participants: it no longer votes.
            return Ok(None);
        }
        let kind = match vote.kind {
            VoteType::Prevote => VoteKind::Prevote,
            VoteType::Precommit => VoteKind::Precommit,
        };
        let round = vote.round.as_u32().unwrap_or(0);
        let mut suffix = round.to_be_bytes().to_vec();
        suffix.push(kind as u8);
        let key = self.key(RECORD_OWN_VOTE, vote.height.0, &suffix);
        let bytes = if let Some(stored) = self.store.store.get(&key)? {
            // Voted before a restart: re-send that vote, never a different one.
            stored
        } else {
            let block = match vote.value {
                NilOrVal::Nil => None,
                NilOrVal::Val(id) => Some(id.0),
            };
            let signed = SignedVote::sign(
                &self.identity.key,
                &self.identity.ledger,
                kind,
                vote.height.0,
                round,
                block,
                self.identity.member,
            );
            let bytes = Message::Vote(signed).encode();
            let mut batch = WriteBatch::new();
            batch.put(key, bytes.clone());
            self.store.store.write(batch)?;
            bytes
        };
        let Ok(Message::Vote(signed)) = Message::decode(&bytes, 0) else {
            return Err(ConsensusError::Corrupt("own vote record".into()));
        };
        self.broadcast(&bytes);
        self.own_votes.insert((round, kind as u8), bytes);
        Ok(self.to_driver_vote(&signed).map(Input::Vote))
    }

    fn decide(&mut self, proposal: context::Proposal) -> Result<(), ConsensusError> {
        let height = proposal.height.0;
        let round = proposal.round;
        let block = proposal.value.0;
        let Some(payload) = self.payloads.get(&block).cloned() else {
            // Decided on a proposal this member could not execute (it was not at the
            // right state then): the certified block comes from a peer instead.
            tracing::warn!(height, block = %hex::encode(block), "bft: decided without the body");
            let request = Message::SyncRequest { height }.encode();
            self.broadcast(&request);
            return Ok(());
        };
        let mut signatures: Vec<(u64, crypto_parallel::Signature)> = self
            .driver
            .votes()
            .per_round(round)
            .map(|per_round| {
                per_round
                    .received_votes()
                    .iter()
                    .filter(|vote| {
                        vote.message.kind == VoteType::Precommit
                            && vote.message.value == NilOrVal::Val(BlockId(block))
                    })
                    .map(|vote| (vote.message.voter.0, vote.signature.0.clone()))
                    .collect()
            })
            .unwrap_or_default();
        signatures.sort_by_key(|(member, _)| *member);
        signatures.dedup_by_key(|(member, _)| *member);
        let certificate = Certificate {
            height,
            round: round.as_u32().unwrap_or(0),
            block_hash: block,
            signatures,
        };
        self.deliver(height, payload, certificate)
    }

    /// Persists a decided block with its certificate and hands it to the application.
    fn deliver(
        &mut self,
        height: u64,
        payload: Arc<Vec<u8>>,
        certificate: Certificate,
    ) -> Result<(), ConsensusError> {
        let certificate = certificate.encode();
        let mut record =
            engine::codec::Writer::with_capacity(8 + payload.len() + certificate.len());
        record.bytes32(&payload).bytes32(&certificate);
        let mut batch = WriteBatch::new();
        batch.put(self.key(RECORD_DECIDED, height, &[]), record.into_bytes());
        if height > self.options.decided_kept {
            batch.delete(self.key(RECORD_DECIDED, height - self.options.decided_kept, &[]));
        }
        // This height's own votes and proposals are no longer needed.
        for key in [RECORD_OWN_VOTE, RECORD_OWN_PROPOSAL] {
            let prefix = self.key(key, height, &[]);
            for (stored, _) in engine::store::scan_prefix(
                &*self.store.store,
                &prefix,
                engine::store::Direction::Forward,
                usize::MAX,
            )? {
                batch.delete(stored);
            }
        }
        self.store.store.write(batch)?;
        self.started = false;
        self.timers.clear();
        self.inbox.clear();
        self.committed.push(Committed { index: height, payload: payload.to_vec(), certificate });
        Ok(())
    }

    fn request(
        &mut self,
        height: u64,
        round: u32,
        proposer: MemberId,
        payload: Arc<Vec<u8>>,
        pending: Pending,
    ) {
        self.next_request += 1;
        let request = self.next_request;
        self.pending.insert(request, pending);
        self.evaluate.push(Evaluate { request, height, round, proposer, payload });
    }

    /// Buffers a message for a later height and asks its sender for the blocks between.
    /// Decided blocks (answers to a sync request, up to 8) are kept for the next 8
    /// heights, so catching up costs one request per 8 heights; other messages only for
    /// the next height. The buffer is bounded in messages and bytes.
    fn behind(&mut self, from: MemberId, bytes: &[u8], height: u64, decided: bool) {
        if self.ahead.is_none_or(|(_, ahead)| height > ahead) {
            self.ahead = Some((from, height));
        }
        let wanted = height == self.height() + 1
            || !self.started
            || (decided && height <= self.height() + 8);
        if wanted && bytes.len() <= self.options.future_bytes_max {
            while self.future.len() >= self.options.future_messages_max
                || self.future_bytes + bytes.len() > self.options.future_bytes_max
            {
                let Some((_, dropped)) = self.future.pop_front() else { break };
                self.future_bytes -= dropped.len();
            }
            self.future_bytes += bytes.len();
            self.future.push_back((from, bytes.to_vec()));
        }
        if height > self.height() || (height == self.height() && !self.started) {
            let asked = self.sync_asked.get(&from).copied();
            if asked.is_none_or(|at| self.now >= at + 2) {
                self.sync_asked.insert(from, self.now);
                let first = if self.started { self.height() } else { self.height() + 1 };
                self.outbox.push((from, Message::SyncRequest { height: first }.encode()));
            }
        }
    }

    /// Sends decided heights `height..` (up to 8) to a member behind: from the kept
    /// records, and those no longer kept through the application ([`Ready::serve`]).
    fn serve_sync(&mut self, from: MemberId, height: u64) -> Result<(), ConsensusError> {
        let decided_to = if self.started { self.height() } else { self.height() + 1 };
        let end = decided_to.min(height.saturating_add(8));
        for at in height.max(1)..end {
            match self.decided_record(at)? {
                Some((payload, certificate)) => {
                    let message = Message::Decided { height: at, payload, certificate };
                    self.outbox.push((from, message.encode()));
                }
                None => {
                    // Pruned (or decided before this member's records began).
                    self.serve.push(Serve { member: from, heights: at..end });
                    break;
                }
            }
        }
        Ok(())
    }

    fn receive_decided(
        &mut self,
        height: u64,
        payload: Vec<u8>,
        certificate: Vec<u8>,
    ) -> Result<(), ConsensusError> {
        if !self.started || height != self.height() || self.syncing {
            return Ok(());
        }
        let certificate = match Certificate::decode(&certificate) {
            Ok(certificate) => certificate,
            Err(error) => {
                self.stats.bad_certificates += 1;
                return Err(ConsensusError::Rejected(format!("decided block: {error}")));
            }
        };
        let participants: BTreeMap<u64, PublicKey> =
            self.validators.0.iter().map(|v| (v.member.0, v.key.clone())).collect();
        if let Err(error) = certificate.verify(
            &self.identity.ledger,
            height,
            &certificate.block_hash,
            &participants,
        ) {
            self.stats.bad_certificates += 1;
            return Err(ConsensusError::Rejected(format!("decided block {height}: {error}")));
        }
        self.syncing = true;
        let payload = Arc::new(payload);
        let round = certificate.round;
        self.request(height, round, 0, payload.clone(), Pending::Synced { certificate, payload });
        Ok(())
    }

    /// Checks the signatures of everything received since the last call — votes,
    /// proposals and the prevotes a re-proposal carries — in one batch on the crypto pool,
    /// and feeds what verifies to the driver.
    fn flush_inbox(&mut self) -> Result<(), ConsensusError> {
        if self.inbox.is_empty() {
            return Ok(());
        }
        let ledger = self.identity.ledger;
        let inbox = std::mem::take(&mut self.inbox);
        // Every signature to check: (message index, polka vote index or None, signer,
        // signed bytes).
        let mut checks: Vec<(usize, Option<usize>, MemberId, Vec<u8>)> = Vec::new();
        for (index, message) in inbox.iter().enumerate() {
            match message {
                Message::Vote(vote) => {
                    checks.push((index, None, vote.voter, vote.sign_bytes(&ledger)));
                }
                Message::Proposal(proposal) => {
                    checks.push((index, None, proposal.proposer, proposal.sign_bytes(&ledger)));
                    for (i, vote) in proposal.polka.iter().enumerate() {
                        let fits = vote.kind == VoteKind::Prevote
                            && vote.height == proposal.height
                            && i64::from(vote.round) == proposal.pol_round
                            && vote.block == Some(proposal.block);
                        if fits {
                            checks.push((index, Some(i), vote.voter, vote.sign_bytes(&ledger)));
                        }
                    }
                }
                _ => {}
            }
        }
        let mut items = Vec::with_capacity(checks.len());
        let mut checked = Vec::with_capacity(checks.len());
        for (index, polka, signer, bytes) in &checks {
            let Some(key) = self.validators.key(*signer) else { continue };
            let signature = match (&inbox[*index], polka) {
                (Message::Vote(vote), None) => &vote.signature,
                (Message::Proposal(proposal), None) => &proposal.signature,
                (Message::Proposal(proposal), Some(i)) => &proposal.polka[*i].signature,
                _ => continue,
            };
            items.push(VerifyItem { public_key: key, message: bytes, signature });
            checked.push((*index, *polka, *signer));
        }
        let verdicts = crypto_parallel::verify_batch(&items);
        drop(items);
        let mut valid = vec![false; inbox.len()];
        let mut polka_signers: HashMap<usize, BTreeMap<MemberId, usize>> = HashMap::new();
        for ((index, polka, signer), verdict) in checked.into_iter().zip(verdicts) {
            match (polka, verdict) {
                (None, Ok(())) => valid[index] = true,
                (Some(i), Ok(())) => {
                    polka_signers.entry(index).or_default().insert(signer, i);
                }
                (_, Err(_)) => self.stats.bad_signatures += 1,
            }
        }
        for (index, message) in inbox.into_iter().enumerate() {
            // A decision while feeding ends this height: the rest is stale.
            if !self.started {
                break;
            }
            if !valid[index] {
                continue;
            }
            match message {
                Message::Vote(vote) => {
                    if vote.height != self.height() {
                        continue;
                    }
                    self.peers_active = true;
                    if let Some(signed) = self.to_driver_vote(&vote) {
                        self.process(Input::Vote(signed))?;
                    }
                }
                Message::Proposal(proposal) => {
                    if proposal.height != self.height() {
                        continue;
                    }
                    self.peers_active = true;
                    let signers = polka_signers.remove(&index).unwrap_or_default();
                    if proposal.pol_round >= 0
                        && engine::certificate::is_quorum(signers.len(), self.validators.0.len())
                    {
                        // A verified prevote quorum for the re-proposed block: members
                        // that missed (or saw a Byzantine twin of) those prevotes accept
                        // the re-proposal on it.
                        let certificate = malachite_types::PolkaCertificate {
                            height: Height(proposal.height),
                            round: Round::from(proposal.pol_round),
                            value_id: BlockId(proposal.block),
                            polka_signatures: signers
                                .iter()
                                .map(|(member, i)| malachite_types::PolkaSignature {
                                    address: Member(*member),
                                    signature: context::Sig(proposal.polka[*i].signature.clone()),
                                })
                                .collect(),
                        };
                        self.process(Input::PolkaCertificate(certificate))?;
                    }
                    self.proposal_verified(proposal);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn proposal_verified(&mut self, mut proposal: SignedProposal) {
        if proposal.height != self.height() {
            return;
        }
        if self.validators.proposer(proposal.height, proposal.round) != proposal.proposer {
            self.stats.wrong_proposer += 1;
            return;
        }
        match self.proposal_rounds.get(&proposal.round) {
            Some(block) if *block == proposal.block => return,
            Some(_) => {
                // The proposer signed two different proposals for one round: the first
                // one stands; the second is evidence of a Byzantine proposer.
                self.stats.equivocations += 1;
                tracing::warn!(
                    proposer = proposal.proposer,
                    height = proposal.height,
                    round = proposal.round,
                    "bft: equivocating proposer"
                );
                return;
            }
            None => {}
        }
        self.proposal_rounds.insert(proposal.round, proposal.block);
        // The body is shared by the request and, once valid, the payloads kept for the
        // decision: never copied.
        let payload = Arc::new(std::mem::take(&mut proposal.payload));
        let (height, round, proposer) = (proposal.height, proposal.round, proposal.proposer);
        let pending = Pending::Proposal { signed: proposal, payload: payload.clone() };
        self.request(height, round, proposer, payload, pending);
    }
}

fn driver_proposal(signed: &SignedProposal) -> malachite_types::SignedProposal<Ctx> {
    let proposal = context::Proposal {
        height: Height(signed.height),
        round: Round::new(signed.round),
        value: BlockId(signed.block),
        pol_round: Round::from(signed.pol_round),
        proposer: Member(signed.proposer),
    };
    SignedMessage::new(proposal, context::Sig(signed.signature.clone()))
}

impl ConsensusGroup for BftGroup {
    fn member(&self) -> MemberId {
        self.identity.member
    }

    fn members(&self) -> u64 {
        self.validators.0.len() as u64
    }

    fn voters(&self) -> Vec<MemberId> {
        self.validators.0.iter().map(|v| v.member.0).collect()
    }

    fn leader(&self) -> Option<MemberId> {
        if !self.started {
            return None;
        }
        Some(self.validators.proposer(self.height(), self.round()))
    }

    fn term(&self) -> u64 {
        self.round() as u64
    }

    fn propose(&mut self, payload: Vec<u8>) -> Result<(), ConsensusError> {
        if !self.is_leader() {
            return Err(ConsensusError::NotLeader { leader: self.leader() });
        }
        let round = self.round();
        if self.want_value != Some(round) || self.own_requested {
            return Err(ConsensusError::Rejected(format!(
                "round {round} of height {} has its proposal already",
                self.height()
            )));
        }
        if payload.len() > self.options.max_payload_bytes {
            return Err(ConsensusError::Rejected(format!(
                "proposal of {} bytes exceeds {}",
                payload.len(),
                self.options.max_payload_bytes
            )));
        }
        self.own_requested = true;
        let payload = Arc::new(payload);
        let (height, member) = (self.height(), self.identity.member);
        self.request(height, round, member, payload.clone(), Pending::Own { round, payload });
        Ok(())
    }

    fn receive(&mut self, from: MemberId, bytes: &[u8]) -> Result<(), ConsensusError> {
        if self.validators.key(from).is_none() {
            return Err(ConsensusError::Rejected(format!("member {from} is not a participant")));
        }
        let message = Message::decode(bytes, self.options.max_payload_bytes)
            .map_err(|e| ConsensusError::Rejected(format!("bft message: {e}")))?;
        let (height, round, signer) = match &message {
            Message::SyncRequest { height } => return self.serve_sync(from, *height),
            Message::Decided { height, .. } if *height > self.height() => {
                // Buffered, and a reason to ask for the ones between.
                self.behind(from, bytes, *height, true);
                return Ok(());
            }
            Message::Decided { .. } => {
                let Message::Decided { height, payload, certificate } = message else {
                    unreachable!()
                };
                return self.receive_decided(height, payload, certificate);
            }
            Message::Proposal(p) => (p.height, p.round, p.proposer),
            Message::Vote(v) => (v.height, v.round, v.voter),
        };
        if signer != from {
            return Err(ConsensusError::Rejected(format!(
                "member {from} relayed a message signed by member {signer}"
            )));
        }
        if height < self.height() {
            // The sender is behind. It asks for the blocks it misses when it sees a later
            // height, but an idle group sends nothing: send it the next decided blocks
            // (at most every other tick per member).
            if self.helped.get(&from).is_none_or(|at| self.now >= at + 2) {
                self.helped.insert(from, self.now);
                return self.serve_sync(from, height);
            }
            return Ok(());
        }
        if height > self.height() || !self.started {
            self.behind(from, bytes, height, false);
            return Ok(());
        }
        if round > self.round().saturating_add(self.options.rounds_ahead_max) {
            return Ok(());
        }
        self.inbox.push(message);
        Ok(())
    }

    fn tick(&mut self) {
        self.now += 1;
        if !self.started {
            return;
        }
        let now = self.now;
        if self.idle && !self.peers_active {
            // Nothing to order here or at any peer this round: the propose timeout waits
            // (an idle group stays in its round instead of cycling through empty ones).
            // The first transaction, or a peer's vote, starts it running again.
            for (deadline, timeout) in &mut self.timers {
                if timeout.kind == TimeoutKind::Propose {
                    *deadline += 1;
                }
            }
            // Nobody sends anything either, so a member behind (restarted, reconnected)
            // would not notice: ask the peers now and then.
            if self.last_status.is_none_or(|at| now >= at + self.options.idle_status_ticks) {
                self.last_status = Some(now);
                let request = Message::SyncRequest { height: self.height() }.encode();
                self.broadcast(&request);
            }
        }
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.timers).into_iter().partition(|(at, _)| *at <= now);
        self.timers = later;
        for (_, timeout) in due {
            if timeout.round != self.driver.round() || !self.started {
                continue;
            }
            if let Err(error) = self.process(Input::TimeoutElapsed(timeout)) {
                tracing::warn!(%error, "bft: timeout handling failed");
            }
        }
        if self.started && now >= self.last_progress + self.options.rebroadcast_ticks {
            self.last_progress = now;
            let round = self.round();
            let mut again: Vec<Vec<u8>> = Vec::new();
            if self.leader() == Some(self.identity.member)
                && let Some(proposal) = &self.own_proposal
            {
                again.push(proposal.clone());
            }
            again.extend(
                self.own_votes.iter().filter(|((r, _), _)| *r == round).map(|(_, b)| b.clone()),
            );
            for bytes in again {
                self.broadcast(&bytes);
            }
        }
    }

    fn ready(&mut self) -> Result<Ready, ConsensusError> {
        self.flush_inbox()?;
        Ok(Ready {
            messages: std::mem::take(&mut self.outbox),
            restored: None,
            committed: std::mem::take(&mut self.committed),
            voters: None,
            evaluate: std::mem::take(&mut self.evaluate),
            serve: std::mem::take(&mut self.serve),
        })
    }

    fn evaluated(&mut self, request: u64, verdict: Result<Hash32, String>) {
        let Some(pending) = self.pending.remove(&request) else { return };
        let result = match pending {
            Pending::Proposal { signed, payload } => {
                if !self.started || signed.height != self.height() {
                    return;
                }
                let valid = verdict.as_ref().is_ok_and(|hash| *hash == signed.block);
                if valid {
                    self.payloads.insert(signed.block, payload);
                } else {
                    self.stats.invalid_proposals += 1;
                    tracing::warn!(
                        height = signed.height,
                        round = signed.round,
                        proposer = signed.proposer,
                        verdict = ?verdict.as_ref().map(hex::encode),
                        "bft: invalid proposal"
                    );
                }
                self.process(Input::Proposal(driver_proposal(&signed), Validity::from_bool(valid)))
            }
            Pending::Own { round, payload } => match verdict {
                Ok(hash) if self.started && self.want_value == Some(round) => {
                    self.want_value = None;
                    self.payloads.insert(hash, payload);
                    self.process(Input::ProposeValue(Round::new(round), BlockId(hash)))
                }
                Ok(_) => Ok(()),
                Err(reason) => {
                    tracing::warn!(%reason, "bft: own proposal does not execute");
                    self.own_requested = false;
                    Ok(())
                }
            },
            Pending::Synced { certificate, payload } => {
                self.syncing = false;
                match verdict {
                    Ok(hash) if hash == certificate.block_hash && self.started => {
                        self.stats.synced_heights += 1;
                        self.deliver(certificate.height, payload, certificate)
                    }
                    _ => {
                        self.stats.bad_certificates += 1;
                        tracing::warn!(
                            height = certificate.height,
                            "bft: a certified block does not execute to its certified hash"
                        );
                        Ok(())
                    }
                }
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, "bft: evaluation result not applied");
        }
    }

    fn rotates_proposer(&self) -> bool {
        true
    }

    fn decided_message(
        &self,
        height: u64,
        payload: Vec<u8>,
        certificate: Vec<u8>,
    ) -> Option<Vec<u8>> {
        Some(Message::Decided { height, payload, certificate }.encode())
    }

    fn set_idle(&mut self, idle: bool) {
        self.idle = idle;
    }

    fn participants_changed(&mut self, participants: Vec<(MemberId, PublicKey)>) {
        let validators = Validators::new(
            participants
                .into_iter()
                .map(|(member, key)| Validator { member: Member(member), key })
                .collect(),
        );
        if !validators.0.is_empty() {
            self.validators = validators;
        }
    }

    fn applied(&mut self, checkpoint: Checkpoint) -> Result<(), ConsensusError> {
        if self.started || checkpoint.index < self.height() {
            return Ok(());
        }
        let next = checkpoint.index + 1;
        self.driver.move_to_height(Height(next), self.validators.clone());
        self.start_height()
    }

    fn settled(&self) -> bool {
        self.started && self.committed.is_empty()
    }
}
