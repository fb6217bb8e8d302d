//! Key layout of a ledger in a `KvStore` (`docs/FORMAT.md` §8).
//!
//! Every key starts with the 32-byte ledger id, then a one-byte table tag, so one ledger
//! is one contiguous key range (on TiKV it splits into regions that spread over the
//! cluster) and tables never interleave. Integers in keys are big-endian so ranges sort
//! numerically; variable-length components carry a u16 length so prefixes are
//! unambiguous.

use crate::model::{Hash32, LedgerId};

/// Table tags. Frozen: stored data depends on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// `META | name` → ledger-wide records (`head`, `settings`).
    Meta = 0x01,
    /// `BLOCK | height u64` → block record (header, tx hashes and results).
    Block = 0x02,
    /// `BLOCK_BY_HASH | hash` → height u64.
    BlockByHash = 0x03,
    /// `TX | tx hash` → height u64, index u32, result u8, transaction bytes.
    Tx = 0x04,
    /// `USER | address` → registration height u64, public key bytes.
    User = 0x05,
    /// `DATA_ACCOUNT | name` → registration height u64, owner address.
    DataAccount = 0x06,
    /// `HISTORY | u16 len name | u16 len key | version u64` → height u64, tx hash, value.
    History = 0x07,
    /// `STATE_NODE | node key (borsh)` → state tree node (borsh).
    StateNode = 0x08,
    /// Retired, no longer written: leaf values were kept here apart from their leaves
    /// (`key hash [32] | height u64` → u8 present, leaf value) before they moved into
    /// the leaf's `STATE_NODE` record. Still read for leaf records written before.
    /// The tag stays taken.
    StateValueRetired = 0x09,
    /// `UNSIGNED_TX | height u64 | index u32` → transaction bytes of a transaction
    /// rejected for an invalid signature. Kept apart from `TX`: an unauthenticated copy
    /// must not claim the hash of the genuine transaction.
    UnsignedTx = 0x0a,
    /// `CONSENSUS | record` → the consensus group's own records (Raft log, hard state,
    /// applied marker); their layout belongs to the `consensus` crate.
    Consensus = 0x0b,
    /// `EVENT | number u64` → the ledger's events in commit order (`EventRecord`):
    /// height u64, tx hash, sequence u64, account bytes16, topic bytes16, payload.
    Event = 0x0c,
    /// `EVENT_TOPIC | u16 len account | u16 len topic | sequence u64` → event number
    /// u64: one topic's events in order.
    EventTopic = 0x0d,
    /// `EVENT_ACCOUNT | name` → registration height u64, owner address.
    EventAccount = 0x0e,
    /// `RECALL | u16 len gtin | gtin | u16 len lot | lot` → height u64, tx hash,
    /// regulator address, reason.
    Recall = 0x0f,
    /// `ROLE | name` → permissions u32.
    Role = 0x10,
    /// `USER_ROLES | address` → policy u8, count u16, role names bytes16*.
    UserRoles = 0x11,
    /// `DATA_ACCESS | u16 len account | account | grantee address` → `0x01`.
    DataAccess = 0x12,
    /// `PARTICIPANT | member u64` → the `PARTICIPANT` record (docs/FORMAT.md §8): rows
    /// for participants admitted after genesis and genesis participants removed since.
    Participant = 0x13,
    /// `TX_CHUNKS | height u64` → the roots of the block's aligned 64-transaction chunks
    /// of the transaction tree (`txroot::chunk_roots`), for blocks of more than 64
    /// transactions: an inclusion proof then hashes one chunk, not the whole block.
    TxChunks = 0x14,
    /// `CERTIFICATE | height u64` → the block's BFT commit certificate
    /// (`certificate::Certificate`), for ledgers whose consensus is `bft`.
    Certificate = 0x15,
}

/// Length of `table_prefix`: the 32-byte ledger id and the table tag.
pub const TABLE_PREFIX_LEN: usize = 33;

/// `ledger id | table`: the prefix of every key of one table.
pub fn table_prefix(ledger: &LedgerId, table: Table) -> Vec<u8> {
    prefixed(ledger, table, 31)
}

/// `table_prefix` with room for `rest` more bytes: the hot paths' keys (a block writes
/// thousands) are allocated once, at their length.
pub(crate) fn prefixed(ledger: &LedgerId, table: Table, rest: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(TABLE_PREFIX_LEN + rest);
    key.extend_from_slice(&ledger.0);
    key.push(table as u8);
    debug_assert_eq!(key.len(), TABLE_PREFIX_LEN);
    key
}

/// The meta record `name`.
pub fn meta_key(ledger: &LedgerId, name: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Meta);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Block record at `height`.
pub fn block_key(ledger: &LedgerId, height: u64) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Block);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// Block height by block hash.
pub fn block_by_hash_key(ledger: &LedgerId, hash: &Hash32) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::BlockByHash);
    key.extend_from_slice(hash);
    key
}

/// Transaction record by hash.
pub fn tx_key(ledger: &LedgerId, tx_hash: &Hash32) -> Vec<u8> {
    let mut key = prefixed(ledger, Table::Tx, tx_hash.len());
    key.extend_from_slice(tx_hash);
    key
}

/// A transaction rejected for its signatures, by position.
pub fn unsigned_tx_key(ledger: &LedgerId, height: u64, index: u32) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::UnsignedTx);
    key.extend_from_slice(&height.to_be_bytes());
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// User record by address.
pub fn user_key(ledger: &LedgerId, address: &Hash32) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::User);
    key.extend_from_slice(address);
    key
}

/// Data account record by name.
pub fn data_account_key(ledger: &LedgerId, name: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::DataAccount);
    key.extend_from_slice(name.as_bytes());
    key
}

/// Prefix of every version of one key: `HISTORY | len name | len key`.
pub fn history_prefix(ledger: &LedgerId, account: &str, data_key: &[u8]) -> Vec<u8> {
    // With room for the version `history_key` appends.
    let mut key = prefixed(ledger, Table::History, 4 + account.len() + data_key.len() + 8);
    key.extend_from_slice(&(account.len() as u16).to_be_bytes());
    key.extend_from_slice(account.as_bytes());
    key.extend_from_slice(&(data_key.len() as u16).to_be_bytes());
    key.extend_from_slice(data_key);
    key
}

/// One version of one key.
pub fn history_key(ledger: &LedgerId, account: &str, data_key: &[u8], version: u64) -> Vec<u8> {
    let mut key = history_prefix(ledger, account, data_key);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// A leaf value in the retired `0x09` table (read only: leaf records of ledgers written
/// before leaf values moved into them have none of their own).
pub fn retired_state_value_key(ledger: &LedgerId, key_hash: &Hash32, height: u64) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::StateValueRetired);
    key.extend_from_slice(key_hash);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// A state tree node.
pub fn state_node_key(ledger: &LedgerId, node_key: &[u8]) -> Vec<u8> {
    let mut key = prefixed(ledger, Table::StateNode, node_key.len());
    key.extend_from_slice(node_key);
    key
}

/// The ledger's `number`th event (numbers count from 0 in commit order).
pub fn event_key(ledger: &LedgerId, number: u64) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Event);
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// Prefix of one topic's index: `EVENT_TOPIC | len account | account | len topic | topic`.
pub fn event_topic_prefix(ledger: &LedgerId, account: &str, topic: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::EventTopic);
    key.reserve(4 + account.len() + topic.len() + 8);
    key.extend_from_slice(&(account.len() as u16).to_be_bytes());
    key.extend_from_slice(account.as_bytes());
    key.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    key.extend_from_slice(topic.as_bytes());
    key
}

/// The topic index entry of sequence number `sequence`.
pub fn event_topic_key(ledger: &LedgerId, account: &str, topic: &str, sequence: u64) -> Vec<u8> {
    let mut key = event_topic_prefix(ledger, account, topic);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// Event account record by name.
pub fn event_account_key(ledger: &LedgerId, name: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::EventAccount);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The recall record of a GTIN's lot.
pub fn recall_key(ledger: &LedgerId, gtin: &str, lot: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Recall);
    key.extend_from_slice(&(gtin.len() as u16).to_be_bytes());
    key.extend_from_slice(gtin.as_bytes());
    key.extend_from_slice(&(lot.len() as u16).to_be_bytes());
    key.extend_from_slice(lot.as_bytes());
    key
}

/// The prefix of every recall of `gtin` (`recall_key` up to the lot).
pub fn recall_gtin_prefix(ledger: &LedgerId, gtin: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Recall);
    key.extend_from_slice(&(gtin.len() as u16).to_be_bytes());
    key.extend_from_slice(gtin.as_bytes());
    key
}

/// The node's catalog of ledgers created at run time: `[0xff; 31] ‖ 0xfe ‖ 0xff ‖
/// name` → the ledger's settings. Outside every ledger's range (a ledger id of 31
/// `0xff` bytes then `0xfe` would take a preimage of the hash; `0xff` is no table), so
/// a ledger's scans and deletion never touch it.
pub fn catalog_key(name: &str) -> Vec<u8> {
    let mut key = catalog_prefix();
    key.extend_from_slice(name.as_bytes());
    key
}

/// The prefix of every catalog entry.
pub fn catalog_prefix() -> Vec<u8> {
    let mut key = vec![0xff; 31];
    key.extend_from_slice(&[0xfe, 0xff]);
    key
}

/// A role's record.
pub fn role_key(ledger: &LedgerId, name: &str) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Role);
    key.extend_from_slice(name.as_bytes());
    key
}

/// A user's roles.
pub fn user_roles_key(ledger: &LedgerId, address: &Hash32) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::UserRoles);
    key.extend_from_slice(address);
    key
}

/// A consensus participant's record, by member number.
pub fn participant_key(ledger: &LedgerId, member: u64) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Participant);
    key.extend_from_slice(&member.to_be_bytes());
    key
}

/// A block's transaction-tree chunk roots.
pub fn tx_chunks_key(ledger: &LedgerId, height: u64) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::TxChunks);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// A block's BFT commit certificate.
pub fn certificate_key(ledger: &LedgerId, height: u64) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::Certificate);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// A write grant on a data account.
pub fn data_access_key(ledger: &LedgerId, account: &str, grantee: &Hash32) -> Vec<u8> {
    let mut key = table_prefix(ledger, Table::DataAccess);
    key.extend_from_slice(&(account.len() as u16).to_be_bytes());
    key.extend_from_slice(account.as_bytes());
    key.extend_from_slice(grantee);
    key
}
