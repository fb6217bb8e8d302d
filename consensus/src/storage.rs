//! raft-rs `Storage` on the engine's `KvStore`.
//!
//! Records under the group's prefix (`docs/FORMAT.md` "Consensus records"):
//!
//! | record | key suffix | value |
//! |---|---|---|
//! | `0x01` hard state | — | protobuf `eraftpb.HardState` |
//! | `0x02` conf state | — | protobuf `eraftpb.ConfState` |
//! | `0x03` compaction point | — | `index u64 ‖ term u64` of the last discarded entry |
//! | `0x04` log entry | `index u64` | protobuf `eraftpb.Entry` |
//! | `0x05` applied marker | — | `index u64 ‖ checkpoint bytes` (written by the application) |
//! | `0x06` restored checkpoint | — | `index u64 ‖ checkpoint bytes` of the last snapshot installed |
//!
//! Entries are read back from the store on demand (blocks are large; only their terms
//! are kept in memory). Every change is written durably before raft-rs is told.

use std::collections::VecDeque;

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::{Checkpoint, ConsensusError, GroupStore};
use engine::store::{Direction, WriteBatch};

pub(crate) const RECORD_HARD_STATE: u8 = 0x01;
pub(crate) const RECORD_CONF_STATE: u8 = 0x02;
pub(crate) const RECORD_COMPACTED: u8 = 0x03;
pub(crate) const RECORD_ENTRY: u8 = 0x04;
pub(crate) const RECORD_APPLIED: u8 = 0x05;
pub(crate) const RECORD_RESTORED: u8 = 0x06;

fn other(error: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(error.to_string().into()))
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> ConsensusError {
    ConsensusError::Corrupt(format!("{what}: {error}"))
}

/// The Raft log and state of one group member, persisted in a `KvStore`.
pub(crate) struct KvRaftStorage {
    store: GroupStore,
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the last discarded entry (0, 0 for a fresh log).
    compacted: (u64, u64),
    /// Terms of entries `compacted.0 + 1 ..= last`.
    terms: VecDeque<u64>,
    /// The application's latest durable checkpoint (what a snapshot sends).
    checkpoint: Checkpoint,
    /// A snapshot installed but not yet reached by the application (it crashed while
    /// catching up): reported again on the first `ready`.
    pub(crate) unreached: Option<Checkpoint>,
}

impl KvRaftStorage {
    /// Opens the member's records; a fresh store starts with `voters` as its members.
    pub(crate) fn open(store: GroupStore, voters: &[u64]) -> Result<Self, ConsensusError> {
        let read = |record| store.store.get(&store.key(record, &[]));
        let hard_state = match read(RECORD_HARD_STATE)? {
            Some(bytes) => {
                HardState::parse_from_bytes(&bytes).map_err(|e| corrupt("hard state", e))?
            }
            None => HardState::default(),
        };
        let conf_state = match read(RECORD_CONF_STATE)? {
            Some(bytes) => {
                ConfState::parse_from_bytes(&bytes).map_err(|e| corrupt("conf state", e))?
            }
            None => {
                let conf_state = ConfState::from((voters.to_vec(), vec![]));
                let mut batch = WriteBatch::new();
                batch.put(
                    store.key(RECORD_CONF_STATE, &[]),
                    conf_state.write_to_bytes().map_err(|e| corrupt("conf state", e))?,
                );
                store.store.write(batch)?;
                conf_state
            }
        };
        let compacted = match read(RECORD_COMPACTED)? {
            Some(bytes) if bytes.len() == 16 => (
                u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")),
                u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
            ),
            Some(bytes) => {
                return Err(corrupt("compaction point", format!("{} bytes", bytes.len())));
            }
            None => (0, 0),
        };
        let checkpoint =
            store.applied_marker()?.unwrap_or(Checkpoint { index: 0, data: Vec::new() });
        let unreached = match read(RECORD_RESTORED)? {
            Some(value) if value.len() >= 8 => {
                let index = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
                (index > checkpoint.index).then(|| Checkpoint { index, data: value[8..].to_vec() })
            }
            Some(_) => return Err(corrupt("restored checkpoint", "shorter than 8 bytes")),
            None => None,
        };
        let mut storage = KvRaftStorage {
            store,
            hard_state,
            conf_state,
            compacted,
            terms: VecDeque::new(),
            checkpoint,
            unreached,
        };
        let start = storage.entry_key(compacted.0 + 1);
        let end = storage.store.key(RECORD_ENTRY + 1, &[]);
        let stored = storage.store.store.scan(&start, &end, Direction::Forward, usize::MAX)?;
        for (expected, (_, value)) in (compacted.0 + 1..).zip(stored) {
            let entry = Entry::parse_from_bytes(&value).map_err(|e| corrupt("log entry", e))?;
            if entry.index != expected {
                return Err(corrupt(
                    "log",
                    format!("entry {} where {expected} expected", entry.index),
                ));
            }
            storage.terms.push_back(entry.term);
        }
        Ok(storage)
    }

    fn entry_key(&self, index: u64) -> Vec<u8> {
        self.store.key(RECORD_ENTRY, &index.to_be_bytes())
    }

    fn first(&self) -> u64 {
        self.compacted.0 + 1
    }

    fn last(&self) -> u64 {
        self.compacted.0 + self.terms.len() as u64
    }

    /// Persists the configuration after a membership change (the snapshot carries it).
    pub(crate) fn set_conf_state(&mut self, conf_state: ConfState) -> Result<(), ConsensusError> {
        let mut batch = WriteBatch::new();
        batch.put(
            self.store.key(RECORD_CONF_STATE, &[]),
            conf_state.write_to_bytes().map_err(|e| corrupt("conf state", e))?,
        );
        self.store.store.write(batch)?;
        self.conf_state = conf_state;
        Ok(())
    }

    /// Appends (and overwrites a conflicting suffix) and persists `hard_state` and the
    /// commit index, all in one durable write.
    pub(crate) fn persist(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), ConsensusError> {
        let mut batch = WriteBatch::new();
        if let Some(first) = entries.first() {
            assert!(first.index >= self.first(), "raft appended below the compaction point");
            assert!(first.index <= self.last() + 1, "raft appended with a gap");
            for stale in first.index..=self.last() {
                batch.delete(self.entry_key(stale));
            }
            self.terms.truncate((first.index - self.first()) as usize);
            for entry in entries {
                batch.put(
                    self.entry_key(entry.index),
                    entry.write_to_bytes().map_err(|e| corrupt("log entry", e))?,
                );
                self.terms.push_back(entry.term);
            }
        }
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
        if hard_state.is_some() || !entries.is_empty() {
            batch.put(
                self.store.key(RECORD_HARD_STATE, &[]),
                self.hard_state.write_to_bytes().map_err(|e| corrupt("hard state", e))?,
            );
            self.store.store.write(batch)?;
        }
        Ok(())
    }

    /// Records a new commit index (from raft-rs's light ready).
    pub(crate) fn set_commit(&mut self, commit: u64) -> Result<(), ConsensusError> {
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        self.persist(&[], Some(&hard_state))
    }

    /// Replaces the log by the leader's snapshot (a checkpoint the application must reach
    /// by block sync).
    pub(crate) fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ConsensusError> {
        let meta = snapshot.get_metadata();
        let mut batch = WriteBatch::new();
        for index in self.first()..=self.last() {
            batch.delete(self.entry_key(index));
        }
        self.terms.clear();
        self.compacted = (meta.index, meta.term);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.conf_state = meta.get_conf_state().clone();
        let mut compacted = meta.index.to_be_bytes().to_vec();
        compacted.extend_from_slice(&meta.term.to_be_bytes());
        batch.put(self.store.key(RECORD_COMPACTED, &[]), compacted);
        let mut restored = meta.index.to_be_bytes().to_vec();
        restored.extend_from_slice(&snapshot.data);
        batch.put(self.store.key(RECORD_RESTORED, &[]), restored);
        batch.put(
            self.store.key(RECORD_HARD_STATE, &[]),
            self.hard_state.write_to_bytes().map_err(|e| corrupt("hard state", e))?,
        );
        batch.put(
            self.store.key(RECORD_CONF_STATE, &[]),
            self.conf_state.write_to_bytes().map_err(|e| corrupt("conf state", e))?,
        );
        self.store.store.write(batch)?;
        Ok(())
    }

    /// The application durably reached `checkpoint`; discard entries more than `keep`
    /// behind it.
    pub(crate) fn applied(
        &mut self,
        checkpoint: Checkpoint,
        keep: u64,
    ) -> Result<(), ConsensusError> {
        let index = checkpoint.index;
        if index >= self.checkpoint.index {
            self.checkpoint = checkpoint;
        }
        // Compact in steps of `keep` so deletes come in batches, not one per block.
        let compact_to = index.saturating_sub(keep).min(self.last());
        if compact_to < self.first() + keep.max(1) - 1 || compact_to < self.first() {
            return Ok(());
        }
        let term = self.term_of(compact_to).expect("compaction point is in the log");
        let mut batch = WriteBatch::new();
        for stale in self.first()..=compact_to {
            batch.delete(self.entry_key(stale));
        }
        let mut compacted = compact_to.to_be_bytes().to_vec();
        compacted.extend_from_slice(&term.to_be_bytes());
        batch.put(self.store.key(RECORD_COMPACTED, &[]), compacted);
        self.store.store.write(batch)?;
        let drop = (compact_to - self.compacted.0) as usize;
        self.terms.drain(..drop);
        self.compacted = (compact_to, term);
        Ok(())
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.compacted.0 {
            return Some(self.compacted.1);
        }
        if index < self.first() || index > self.last() {
            return None;
        }
        Some(self.terms[(index - self.first()) as usize])
    }

    /// Where raft-rs resumes delivery: after the application's marker, or after an
    /// installed snapshot the application is still catching up to.
    pub(crate) fn applied_index(&self) -> u64 {
        self.checkpoint.index.max(self.compacted.0)
    }
}

impl raft::Storage for KvRaftStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last() + 1,
            "entries({low}, {high}) past the last index {}",
            self.last()
        );
        if low >= high {
            return Ok(Vec::new());
        }
        let max_size = max_size.into();
        let start = self.entry_key(low);
        let end = self.entry_key(high);
        let mut entries = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        let mut truncated = false;
        let scanned = self
            .store
            .store
            .scan(&start, &end, Direction::Forward, (high - low) as usize)
            .map_err(other)?;
        for (_, value) in scanned {
            let entry = Entry::parse_from_bytes(&value).map_err(other)?;
            if entry.index != low + entries.len() as u64 {
                return Err(other(format!("log entry {} out of place", entry.index)));
            }
            size += value.len() as u64;
            if max_size.is_some_and(|max| size > max) && !entries.is_empty() {
                truncated = true;
                break;
            }
            entries.push(entry);
        }
        if !truncated && entries.len() as u64 != high - low {
            return Err(other(format!("log entries {low}..{high} missing from the store")));
        }
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index < self.compacted.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(index).ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let index = self.checkpoint.index;
        let Some(term) = self.term_of(index) else {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        };
        if index < request_index || index < self.compacted.0 {
            return Err(raft::Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        let mut snapshot = Snapshot::default();
        snapshot.set_data(self.checkpoint.data.clone().into());
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_state.clone());
        Ok(snapshot)
    }
}
