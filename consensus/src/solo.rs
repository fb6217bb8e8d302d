//! `solo`: one member, every proposal commits at once. The embedded default.
//!
//! There is no log: a proposal is delivered by the next `ready` and the application's
//! applied marker (written with its block) is the only record. A crash between propose
//! and the block commit loses the proposal, which was never acknowledged to anyone.

use crate::{Checkpoint, Committed, ConsensusError, ConsensusGroup, GroupStore, MemberId, Ready};

/// The single-member provider.
pub struct SoloGroup {
    next_index: u64,
    pending: Vec<Committed>,
}

impl SoloGroup {
    /// Opens the group, resuming after the persisted applied marker.
    pub fn open(store: &GroupStore) -> Result<Self, ConsensusError> {
        let applied = store.applied_marker()?.map_or(0, |marker| marker.index);
        Ok(SoloGroup { next_index: applied + 1, pending: Vec::new() })
    }
}

impl ConsensusGroup for SoloGroup {
    fn member(&self) -> MemberId {
        1
    }

    fn members(&self) -> u64 {
        1
    }

    fn leader(&self) -> Option<MemberId> {
        Some(1)
    }

    fn propose(&mut self, payload: Vec<u8>) -> Result<(), ConsensusError> {
        self.pending.push(Committed { index: self.next_index, payload, certificate: Vec::new() });
        self.next_index += 1;
        Ok(())
    }

    fn receive(&mut self, from: MemberId, _message: &[u8]) -> Result<(), ConsensusError> {
        Err(ConsensusError::Rejected(format!("solo group has no member {from}")))
    }

    fn tick(&mut self) {}

    fn ready(&mut self) -> Result<Ready, ConsensusError> {
        Ok(Ready { committed: std::mem::take(&mut self.pending), ..Ready::default() })
    }

    fn applied(&mut self, _checkpoint: Checkpoint) -> Result<(), ConsensusError> {
        Ok(())
    }

    fn settled(&self) -> bool {
        self.pending.is_empty()
    }
}
