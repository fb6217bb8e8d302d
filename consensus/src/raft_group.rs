//! `raft`: crash-fault-tolerant ordering on raft-rs (the Raft library under TiKV).
//!
//! raft-rs is itself free of I/O; this wrapper gives it a `KvStore`-backed log
//! (`storage.rs`), turns its `Ready` into ours, and keeps the log bounded: once the
//! application has applied an entry, entries more than `max_log_entries_kept` behind it
//! are discarded, and a member that needs a discarded entry gets a snapshot instead. A
//! snapshot is only the application's checkpoint (ledger height and block hash), never
//! the state itself: the member catches up by fetching blocks.

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Entry, EntryType, Message, MessageType};
use raft::{Config, RawNode, SnapshotStatus, StateRole};

use crate::storage::KvRaftStorage;
use crate::{
    Checkpoint, Committed, ConsensusError, ConsensusGroup, GroupStore, MemberId, MembershipChange,
    Ready,
};

/// Tuning of one Raft member (the clock is the caller's tick interval).
#[derive(Debug, Clone)]
pub struct RaftOptions {
    /// Ticks without a heartbeat before a follower campaigns (randomised up to twice).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Entries kept behind the applied index before the log is compacted.
    pub max_log_entries_kept: u64,
    /// Largest append message, in bytes (at least one entry is always sent).
    pub max_message_bytes: u64,
    /// Append messages in flight per follower.
    pub max_inflight_messages: usize,
}

impl Default for RaftOptions {
    fn default() -> Self {
        RaftOptions {
            election_ticks: 10,
            heartbeat_ticks: 2,
            max_log_entries_kept: 1000,
            max_message_bytes: 8 << 20,
            max_inflight_messages: 64,
        }
    }
}

/// One member of a Raft group.
pub struct RaftGroup {
    node: RawNode<KvRaftStorage>,
    options: RaftOptions,
}

impl RaftGroup {
    /// A member restored from a backup has lost log entries it had acknowledged. Its
    /// leader still counts them as matched: it would announce a commit index beyond the
    /// member's log (raft-rs panics on that) and discard the member's rejections as
    /// stale, so the member would never catch up. Here the member clamps such a commit
    /// to its log, and the leader, seeing a rejection whose hint lies below what it
    /// believed matched, takes the member's word and probes it again from there (log
    /// entries, or a snapshot and block sync if they were compacted). Commit indexes
    /// never move back; the lost acknowledgement is a fault Raft tolerates in a
    /// minority of members, as for a lost disk (docs/OPERATIONS.md, restore).
    fn tolerate_lost_entries(&mut self, message: &mut Message) {
        match message.get_msg_type() {
            MessageType::MsgHeartbeat => {
                let last = self.node.raft.raft_log.last_index();
                if message.commit > last {
                    // Answer as a follower whose log does not reach `commit` would
                    // answer an append there: a rejection hinting at its last entry.
                    let mut reject = Message::default();
                    reject.set_msg_type(MessageType::MsgAppendResponse);
                    reject.to = message.from;
                    reject.from = self.node.raft.id;
                    reject.term = message.term;
                    reject.index = message.commit;
                    reject.reject = true;
                    reject.reject_hint = last;
                    self.node.raft.msgs.push(reject);
                    message.commit = last;
                }
            }
            MessageType::MsgAppendResponse if message.reject => {
                let from = message.from;
                if let Some(progress) = self.node.raft.mut_prs().get_mut(from)
                    && message.reject_hint < progress.matched
                {
                    progress.matched = message.reject_hint;
                    progress.become_probe();
                }
            }
            _ => {}
        }
    }
}

/// The member a Raft message is addressed to (`None`: not a Raft message). A node waiting
/// to be admitted learns its member number from the first message the group sends it.
pub fn addressed_to(message: &[u8]) -> Option<MemberId> {
    Message::parse_from_bytes(message).ok().map(|m| m.to).filter(|to| *to != 0)
}

/// A learner within this many entries of the leader's log is promoted to voter.
const CATCH_UP_SLACK: u64 = 16;

fn raft_error(error: raft::Error) -> ConsensusError {
    match error {
        raft::Error::ProposalDropped => ConsensusError::NotLeader { leader: None },
        other => ConsensusError::Rejected(other.to_string()),
    }
}

impl RaftGroup {
    /// Opens member `member` of a group of `members` (`1..=members`), resuming from its
    /// persisted log and the application's applied marker.
    pub fn open(
        store: GroupStore,
        member: MemberId,
        members: u64,
        options: RaftOptions,
    ) -> Result<Self, ConsensusError> {
        if member == 0 || member > members {
            return Err(ConsensusError::Rejected(format!("member {member} outside 1..={members}")));
        }
        let voters: Vec<u64> = (1..=members).collect();
        Self::open_with_voters(store, member, &voters, options)
    }

    /// Opens member `member`; a fresh store starts with `initial_voters` (the group's
    /// first configuration: every later one follows from the log or a snapshot). A member
    /// that is not among them is joining: it votes once an `Add` of it commits, and
    /// catches up from the leader's log or a checkpoint meanwhile.
    pub fn open_with_voters(
        store: GroupStore,
        member: MemberId,
        initial_voters: &[MemberId],
        options: RaftOptions,
    ) -> Result<Self, ConsensusError> {
        if member == 0 || initial_voters.is_empty() || initial_voters.contains(&0) {
            return Err(ConsensusError::Rejected(format!(
                "member {member} with voters {initial_voters:?}: ids start at 1"
            )));
        }
        let storage = KvRaftStorage::open(store, initial_voters)?;
        let config = Config {
            id: member,
            election_tick: options.election_ticks,
            heartbeat_tick: options.heartbeat_ticks,
            applied: storage.applied_index(),
            max_size_per_msg: options.max_message_bytes,
            max_inflight_msgs: options.max_inflight_messages,
            check_quorum: true,
            pre_vote: true,
            ..Config::default()
        };
        config.validate().map_err(raft_error)?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let node = RawNode::new(&config, storage, &logger).map_err(raft_error)?;
        Ok(RaftGroup { node, options })
    }

    /// Starts an election now (tests; a real group campaigns on its own after the
    /// election timeout).
    pub fn campaign(&mut self) -> Result<(), ConsensusError> {
        self.node.campaign().map_err(raft_error)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    fn encode(message: Message) -> Result<(MemberId, Vec<u8>), ConsensusError> {
        let to = message.to;
        let bytes = message
            .write_to_bytes()
            .map_err(|e| ConsensusError::Rejected(format!("encode raft message: {e}")))?;
        Ok((to, bytes))
    }

    fn send(
        &mut self,
        messages: Vec<Message>,
        out: &mut Vec<(MemberId, Vec<u8>)>,
    ) -> Result<(), ConsensusError> {
        for message in messages {
            if message.get_msg_type() == MessageType::MsgSnapshot {
                // The snapshot is a few bytes of checkpoint: either it arrives or the
                // follower rejects the next append and gets another one. Reporting it
                // finished now keeps the leader from waiting on it forever.
                self.node.report_snapshot(message.to, SnapshotStatus::Finish);
            }
            out.push(Self::encode(message)?);
        }
        Ok(())
    }

    /// Delivers committed entries and applies committed membership changes (each
    /// persisted before the next entry; applying one twice, as after a restart or a
    /// snapshot that already holds it, changes nothing).
    fn deliver(&mut self, entries: Vec<Entry>, out: &mut Ready) -> Result<(), ConsensusError> {
        for entry in entries {
            match entry.get_entry_type() {
                // Empty entries are raft-rs's own (a new leader's no-op).
                EntryType::EntryNormal if !entry.data.is_empty() => {
                    out.committed.push(Committed {
                        index: entry.index,
                        payload: entry.data.to_vec(),
                        certificate: Vec::new(),
                    });
                }
                EntryType::EntryNormal => {}
                EntryType::EntryConfChange => {
                    let change = ConfChange::parse_from_bytes(&entry.data)
                        .map_err(|e| ConsensusError::Corrupt(format!("conf change: {e}")))?;
                    let conf_state = self.node.apply_conf_change(&change).map_err(raft_error)?;
                    let mut voters = conf_state.voters.clone();
                    voters.sort_unstable();
                    let own = self.node.raft.id;
                    if !voters.contains(&own) && self.node.raft.state == StateRole::Leader {
                        // A leader that applied its own removal: raft-rs leaves it leading
                        // a configuration it is not part of (and would panic counting its
                        // own progress). It steps down in the same term; the remaining
                        // voters elect a leader after an election timeout.
                        let term = self.node.raft.term;
                        self.node.raft.become_follower(term, raft::INVALID_ID);
                    }
                    self.node.mut_store().set_conf_state(conf_state)?;
                    out.voters = Some(voters);
                }
                EntryType::EntryConfChangeV2 => {
                    return Err(ConsensusError::Corrupt(
                        "joint-consensus changes are not proposed by this provider".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ConsensusGroup for RaftGroup {
    fn member(&self) -> MemberId {
        self.node.raft.id
    }

    fn members(&self) -> u64 {
        self.node.raft.prs().conf().voters().ids().len() as u64
    }

    fn voters(&self) -> Vec<MemberId> {
        let mut voters: Vec<MemberId> = self.node.raft.prs().conf().voters().ids().iter().collect();
        voters.sort_unstable();
        voters
    }

    fn propose_membership(&mut self, change: MembershipChange) -> Result<(), ConsensusError> {
        if !self.is_leader() {
            return Err(ConsensusError::NotLeader { leader: self.leader() });
        }
        if self.node.raft.has_pending_conf() {
            return Err(ConsensusError::Rejected(
                "a membership change is still in progress".into(),
            ));
        }
        let voters = self.voters();
        let mut conf_change = ConfChange::default();
        match change {
            MembershipChange::Add(member) if member == 0 || voters.contains(&member) => {
                return Err(ConsensusError::Rejected(format!("member {member} already votes")));
            }
            // A new member first follows as a learner (it does not count towards the
            // quorum while it catches up), and votes once its log is near the leader's.
            MembershipChange::Add(member)
                if self.node.raft.prs().conf().learners().contains(&member) =>
            {
                let last = self.node.raft.raft_log.last_index();
                let matched = self.node.raft.prs().get(member).map_or(0, |p| p.matched);
                if matched + CATCH_UP_SLACK < last {
                    return Err(ConsensusError::Rejected(format!(
                        "member {member} is catching up ({matched} of {last})"
                    )));
                }
                conf_change.set_change_type(ConfChangeType::AddNode);
                conf_change.node_id = member;
            }
            MembershipChange::Add(member) => {
                conf_change.set_change_type(ConfChangeType::AddLearnerNode);
                conf_change.node_id = member;
            }
            MembershipChange::Remove(member) if !voters.contains(&member) => {
                return Err(ConsensusError::Rejected(format!("member {member} does not vote")));
            }
            MembershipChange::Remove(_) if voters.len() == 1 => {
                return Err(ConsensusError::Rejected("the last member cannot leave".into()));
            }
            MembershipChange::Remove(member) => {
                conf_change.set_change_type(ConfChangeType::RemoveNode);
                conf_change.node_id = member;
            }
        }
        self.node.propose_conf_change(Vec::new(), conf_change).map_err(raft_error)
    }

    fn leader(&self) -> Option<MemberId> {
        match self.node.raft.leader_id {
            0 => None,
            id => Some(id),
        }
    }

    fn term(&self) -> u64 {
        self.node.raft.term
    }

    fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    fn propose(&mut self, payload: Vec<u8>) -> Result<(), ConsensusError> {
        if !self.is_leader() {
            return Err(ConsensusError::NotLeader { leader: self.leader() });
        }
        if payload.is_empty() {
            return Err(ConsensusError::Rejected("empty proposal".into()));
        }
        self.node.propose(Vec::new(), payload).map_err(raft_error)
    }

    fn receive(&mut self, from: MemberId, message: &[u8]) -> Result<(), ConsensusError> {
        let mut message = Message::parse_from_bytes(message)
            .map_err(|e| ConsensusError::Rejected(format!("malformed raft message: {e}")))?;
        // raft-rs drops only responses from members outside the configuration; votes
        // and appends from a removed member are bounded by pre-vote and check-quorum.
        if message.from != from || from == 0 {
            return Err(ConsensusError::Rejected(format!(
                "raft message claims member {} but came from {from}",
                message.from
            )));
        }
        if message.to != self.node.raft.id {
            return Err(ConsensusError::Rejected(format!(
                "raft message for member {} delivered to member {}",
                message.to, self.node.raft.id
            )));
        }
        let local = matches!(
            message.get_msg_type(),
            MessageType::MsgHup
                | MessageType::MsgBeat
                | MessageType::MsgUnreachable
                | MessageType::MsgSnapStatus
                | MessageType::MsgCheckQuorum
        );
        if local {
            return Err(ConsensusError::Rejected("local raft message from the network".into()));
        }
        self.tolerate_lost_entries(&mut message);
        match self.node.step(message) {
            Ok(()) | Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => Ok(()),
            Err(error) => Err(raft_error(error)),
        }
    }

    fn tick(&mut self) {
        self.node.tick();
    }

    fn ready(&mut self) -> Result<Ready, ConsensusError> {
        let mut out =
            Ready { restored: self.node.mut_store().unreached.take(), ..Ready::default() };
        if !self.node.has_ready() {
            return Ok(out);
        }
        let mut ready = self.node.ready();
        let messages = ready.take_messages();
        self.send(messages, &mut out.messages)?;
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.node.mut_store().apply_snapshot(&snapshot)?;
            // The snapshot carries the configuration: report it like a change.
            out.voters = Some(self.voters());
            out.restored = Some(Checkpoint {
                index: snapshot.get_metadata().index,
                data: snapshot.data.to_vec(),
            });
        }
        self.deliver(ready.take_committed_entries(), &mut out)?;
        let entries = ready.take_entries();
        let hard_state = ready.hs().cloned();
        self.node.mut_store().persist(&entries, hard_state.as_ref())?;
        let persisted = ready.take_persisted_messages();
        self.send(persisted, &mut out.messages)?;
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        let messages = light.take_messages();
        self.send(messages, &mut out.messages)?;
        self.deliver(light.take_committed_entries(), &mut out)?;
        // The caller applies everything returned before its next input; raft-rs only
        // uses the applied index to pace configuration changes (unused) and reads.
        self.node.advance_apply();
        Ok(out)
    }

    fn applied(&mut self, checkpoint: Checkpoint) -> Result<(), ConsensusError> {
        let keep = self.options.max_log_entries_kept;
        self.node.mut_store().applied(checkpoint, keep)
    }

    fn settled(&self) -> bool {
        let log = &self.node.raft.raft_log;
        !self.node.has_ready() && log.applied == log.last_index()
    }
}
