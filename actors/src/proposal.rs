//! What a ledger's consensus group orders: block proposals (`docs/FORMAT.md` "Block
//! proposal"), and the messages ledgers exchange over the transport.
//!
//! A proposal carries everything a node needs to execute the block itself: height,
//! previous block hash, timestamp, proposer and the transactions. Every node computes
//! the results, the state root and the block hash on apply; the previous hash of the
//! next proposal must equal each node's own head, or that node halts the ledger.

use engine::codec::{DecodeError, Reader, Writer};
use engine::model::{Address, Hash32, Transaction, decode_transactions_from, write_transactions};

/// Format version of proposals and transport messages.
pub const PROPOSAL_VERSION: u8 = 1;

/// Transport message kinds (the `kind` byte of a frame).
pub mod kind {
    /// A consensus message (bytes of the group's provider).
    pub const CONSENSUS: u8 = 1;
    /// Transactions forwarded from a follower to the leader (`encode_transactions`).
    pub const FORWARD: u8 = 2;
    /// A member behind a compacted log asks for blocks: `from u64 | to u64`.
    pub const SYNC_REQUEST: u8 = 3;
    /// Blocks for a syncing member: `count u32 | (block hash [32] | len u32 | proposal)*`
    /// (each block as the proposal that produced it).
    pub const SYNC_RESPONSE: u8 = 4;
}

/// One proposed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockProposal {
    /// Height of the proposed block (head + 1 on the proposer).
    pub height: u64,
    /// The proposer's head block hash.
    pub previous_hash: Hash32,
    /// Proposer's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The proposer's node address.
    pub proposer: Address,
    /// Transactions in order.
    pub transactions: Vec<Transaction>,
}

impl BlockProposal {
    /// `version u8 | height u64 | previous_hash [32] | timestamp_ms u64 | proposer [32] |
    /// transactions` (see `encode_transactions`).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(self.transactions.iter())
    }

    /// This proposal's header with `transactions` in place of its own: the leader
    /// encodes its queued transactions without copying them into a proposal first.
    pub fn encode_with<'a>(
        &self,
        transactions: impl ExactSizeIterator<Item = &'a Transaction>,
    ) -> Vec<u8> {
        let mut writer = Writer::with_capacity(128 + 400 * transactions.len());
        writer
            .u8(PROPOSAL_VERSION)
            .u64(self.height)
            .raw(&self.previous_hash)
            .u64(self.timestamp_ms)
            .raw(&self.proposer.0);
        write_transactions(&mut writer, transactions);
        writer.into_bytes()
    }

    /// Decodes everything but the transactions (the leader applying its own proposal
    /// already holds them, parsed and verified).
    pub fn decode_header(bytes: &[u8]) -> Result<BlockProposal, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("proposal version")?;
        if version != PROPOSAL_VERSION {
            return Err(DecodeError::UnknownTag { what: "proposal version", tag: version.into() });
        }
        Ok(BlockProposal {
            height: reader.u64("height")?,
            previous_hash: reader.array("previous hash")?,
            timestamp_ms: reader.u64("timestamp")?,
            proposer: Address(reader.array("proposer")?),
            transactions: Vec::new(),
        })
    }

    /// Decodes a proposal.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("proposal version")?;
        if version != PROPOSAL_VERSION {
            return Err(DecodeError::UnknownTag { what: "proposal version", tag: version.into() });
        }
        let height = reader.u64("height")?;
        let previous_hash = reader.array("previous hash")?;
        let timestamp_ms = reader.u64("timestamp")?;
        let proposer = Address(reader.array("proposer")?);
        let transactions = decode_transactions_from(&mut reader)?;
        reader.finish("block proposal")?;
        Ok(BlockProposal { height, previous_hash, timestamp_ms, proposer, transactions })
    }
}

pub use engine::model::{decode_transactions, encode_transactions};
