//! A ledger on a `KvStore`: genesis, deterministic block execution, atomic commit, and
//! queries with proofs.
//!
//! Executing a block is three phases over the whole block (never per-transaction I/O
//! round trips for writes): validate and apply every transaction into an in-memory
//! overlay (`BlockExecution`), compute the state root over the block's changes and the
//! transaction root, then produce ONE write batch with the block, transactions, results,
//! history, state nodes and the new head. `commit` writes that batch; the head record in
//! it is the commit point, so after a crash the ledger is exactly at the old or the new
//! height.

use std::collections::{BTreeMap, HashMap, HashSet};

use crypto_parallel::{HashAlgorithm, VerifyItem};

use crate::codec::{DecodeError, Reader, Writer};
use crate::layout;
use crate::limits::BLOCK_TXS_MAX;
use crate::model::{
    Address, BlockHeader, Hash32, LedgerId, LedgerSettings, Operation, ResultCode, RolePolicy,
    Transaction, permission,
};
use crate::proof::{StateProof, TxProof};
use crate::state::{self, StateKey, StateReader, data_leaf_value};
use crate::store::{Direction, KvStore, StoreError, WriteBatch, scan_prefix};
use crate::txroot;

/// Why a ledger operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The storage backend failed; nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored bytes do not decode: the store is corrupt or from an incompatible version.
    #[error("corrupt ledger data in {what}: {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// No ledger with this id in the store.
    #[error("unknown ledger {0}")]
    UnknownLedger(String),
    /// A ledger with this id already exists in the store.
    #[error("ledger {0} already exists")]
    LedgerExists(String),
    /// Invalid input from the caller (settings, block size, a proof request).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The executed block does not extend the current head (a concurrent commit).
    #[error("block at height {block} does not extend head {head}")]
    NotNextBlock {
        /// Height of the block.
        block: u64,
        /// Current head height.
        head: u64,
    },
    /// The state tree failed (storage below it, or corrupt nodes).
    #[error("state tree: {0}")]
    State(String),
}

fn corrupt(what: &'static str) -> impl FnOnce(DecodeError) -> EngineError {
    move |error| EngineError::Corrupt { what, detail: error.to_string() }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The ledger's latest committed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub block_hash: Hash32,
    /// State root after it.
    pub state_root: Hash32,
}

/// A committed block as stored: header, hash, and each transaction's hash and result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The header.
    pub header: BlockHeader,
    /// The header's hash.
    pub hash: Hash32,
    /// Transactions in order, with their results.
    pub transactions: Vec<(Hash32, ResultCode)>,
}

impl StoredBlock {
    /// The ledger's head once this block is committed.
    pub fn head(&self) -> Head {
        Head {
            height: self.header.height,
            block_hash: self.hash,
            state_root: self.header.state_root,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut writer =
            Writer::with_capacity(BlockHeader::ENCODED_LEN + 4 + 33 * self.transactions.len());
        writer.raw(&self.header.encode()).u32(self.transactions.len() as u32);
        for (hash, result) in &self.transactions {
            writer.raw(hash).u8(*result as u8);
        }
        writer.into_bytes()
    }

    fn decode(algorithm: HashAlgorithm, bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let header = BlockHeader::decode_from(&mut reader)?;
        let count = reader.count(BLOCK_TXS_MAX, "block transactions")?;
        let mut transactions = Vec::with_capacity(count);
        for _ in 0..count {
            let hash = reader.array("tx hash")?;
            transactions.push((hash, ResultCode::from_u8(reader.u8("result")?)?));
        }
        reader.finish("block record")?;
        let hash = header.hash(algorithm);
        Ok(StoredBlock { header, hash, transactions })
    }
}

/// A committed transaction with where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRecord {
    /// Height of its block.
    pub height: u64,
    /// Position in the block.
    pub index: u32,
    /// Its result.
    pub result: ResultCode,
    /// The transaction, as signed.
    pub transaction: Transaction,
}

/// One version of a data key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedValue {
    /// 0 for the first write, then +1 per write.
    pub version: u64,
    /// Height of the block that wrote it.
    pub height: u64,
    /// The transaction that wrote it.
    pub tx_hash: Hash32,
    /// The value.
    pub value: Vec<u8>,
}

/// One event, as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    /// Ledger-wide event number: 0, 1, 2, … in commit order (a stream position).
    pub number: u64,
    /// Height of the block that committed it.
    pub height: u64,
    /// The transaction that published it.
    pub tx_hash: Hash32,
    /// Event account.
    pub account: String,
    /// Topic within the account.
    pub topic: String,
    /// Position within the topic: 0, 1, 2, ….
    pub sequence: u64,
    /// The event body.
    pub payload: Vec<u8>,
}

impl EventRecord {
    /// Stored bytes (`docs/FORMAT.md` §8): `height u64 | tx hash | sequence u64 |
    /// account bytes16 | topic bytes16 | payload` (the number is the key).
    fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(
            52 + 4 + self.account.len() + self.topic.len() + self.payload.len(),
        );
        writer
            .u64(self.height)
            .raw(&self.tx_hash)
            .u64(self.sequence)
            .bytes16(self.account.as_bytes())
            .bytes16(self.topic.as_bytes())
            .raw(&self.payload);
        writer.into_bytes()
    }

    fn decode(number: u64, bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let height = reader.u64("height")?;
        let tx_hash = reader.array("tx hash")?;
        let sequence = reader.u64("sequence")?;
        let text = |bytes: &[u8], what| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| DecodeError::Invalid { what, reason: "not UTF-8".into() })
        };
        let account = text(reader.bytes16(crate::limits::NAME_LEN_MAX, "account")?, "account")?;
        let topic = text(reader.bytes16(crate::limits::NAME_LEN_MAX, "topic")?, "topic")?;
        let payload = reader.raw(reader.remaining(), "payload")?.to_vec();
        Ok(EventRecord { number, height, tx_hash, account, topic, sequence, payload })
    }
}

/// A consensus participant (`Ledger::participants`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Its member number in the consensus group (`1..`, never reused).
    pub member: u64,
    /// Its node key.
    pub public_key: crypto_parallel::PublicKey,
    /// Its node id, when admitted by a transaction (genesis participants' ids are in
    /// each node's configuration).
    pub node_id: Option<u64>,
    /// Its node-to-node address, when admitted by a transaction.
    pub address: Option<String>,
    /// The height of the block that admitted it (0: genesis).
    pub added_height: u64,
    /// The height of the block that removed it.
    pub removed_height: Option<u64>,
}

impl Participant {
    /// The `PARTICIPANT` record: `public key bytes16 | node id u64 (0: none) | address
    /// bytes16 | added height u64 | removed height u64 (0: active)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(128);
        crate::model::encode_public_key(&mut writer, &self.public_key);
        writer
            .u64(self.node_id.unwrap_or(0))
            .bytes16(self.address.as_deref().unwrap_or("").as_bytes())
            .u64(self.added_height)
            .u64(self.removed_height.unwrap_or(0));
        writer.into_bytes()
    }

    fn decode(member: u64, bytes: &[u8]) -> Result<Self, EngineError> {
        let mut reader = Reader::new(bytes);
        let public_key =
            crate::model::decode_public_key(&mut reader).map_err(corrupt("participant"))?;
        let node_id = reader.u64("node id").map_err(corrupt("participant"))?;
        let address = reader.bytes16(255, "address").map_err(corrupt("participant"))?.to_vec();
        let added_height = reader.u64("added").map_err(corrupt("participant"))?;
        let removed_height = reader.u64("removed").map_err(corrupt("participant"))?;
        reader.finish("participant").map_err(corrupt("participant"))?;
        let address = String::from_utf8(address).map_err(|_| EngineError::Corrupt {
            what: "participant",
            detail: "address not UTF-8".into(),
        })?;
        Ok(Participant {
            member,
            public_key,
            node_id: (node_id != 0).then_some(node_id),
            address: (!address.is_empty()).then_some(address),
            added_height,
            removed_height: (removed_height != 0).then_some(removed_height),
        })
    }
}

/// A recall of a GTIN's lot, as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallRecord {
    /// Height of the block that recorded it.
    pub height: u64,
    /// The transaction that recorded it.
    pub tx_hash: Hash32,
    /// The regulator's address.
    pub regulator: Address,
    /// Why.
    pub reason: String,
}

/// The account of the events the engine writes itself.
pub const SYSTEM_ACCOUNT: &str = "$system";
/// The system topic of recalls.
pub const RECALL_TOPIC: &str = "recall";

/// Minimal JSON string quoting (the engine has no JSON library; the output is part of
/// the ledger's data, so it must not depend on one).
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The payload of the system event of a recall (`docs/FORMAT.md` §7).
pub fn recall_event_payload(gtin: &str, lot: &str, reason: &str, regulator: &Address) -> Vec<u8> {
    format!(
        "{{\"type\":\"recall\",\"gtin\":{},\"lot\":{},\"reason\":{},\"regulator\":\"{}\"}}",
        json_string(gtin),
        json_string(lot),
        json_string(reason),
        hex(&regulator.0)
    )
    .into_bytes()
}

/// The `USER_ROLES` record: `policy u8 | count u16 | role names bytes16*`.
fn encode_user_roles(policy: RolePolicy, roles: &[String]) -> Vec<u8> {
    let mut writer = Writer::with_capacity(3 + roles.iter().map(|r| 2 + r.len()).sum::<usize>());
    writer.u8(policy as u8).u16(roles.len() as u16);
    for role in roles {
        writer.bytes16(role.as_bytes());
    }
    writer.into_bytes()
}

fn decode_user_roles(bytes: &[u8]) -> Result<(RolePolicy, Vec<String>), DecodeError> {
    let mut reader = Reader::new(bytes);
    let policy = match reader.u8("role policy")? {
        0 => RolePolicy::Union,
        1 => RolePolicy::Intersect,
        tag => return Err(DecodeError::UnknownTag { what: "role policy", tag: tag.into() }),
    };
    let count = reader.u16("roles")? as usize;
    let mut roles = Vec::with_capacity(count);
    for _ in 0..count {
        let name = reader.bytes16(crate::limits::NAME_LEN_MAX, "role name")?;
        roles.push(
            String::from_utf8(name.to_vec()).map_err(|_| DecodeError::Invalid {
                what: "role name",
                reason: "not UTF-8".into(),
            })?,
        );
    }
    reader.finish("user roles")?;
    Ok((policy, roles))
}

fn key_u64(key: &[u8], prefix_len: usize, what: &'static str) -> Result<u64, EngineError> {
    key.get(prefix_len..)
        .and_then(|rest| rest.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(EngineError::Corrupt { what, detail: "key is not prefix ‖ u64".into() })
}

fn role_bits(value: &[u8]) -> Result<u32, EngineError> {
    value
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| EngineError::Corrupt { what: "role", detail: "not 4 bytes".into() })
}

fn value_u64(value: &[u8], what: &'static str) -> Result<u64, EngineError> {
    value
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| EngineError::Corrupt { what, detail: "not 8 bytes".into() })
}

/// How signatures of a block's transactions are checked.
#[derive(Debug, Clone)]
pub enum SignatureCheck {
    /// Verify every signature now (batched on all cores).
    Verify,
    /// The caller verified them already (the actor batches across blocks); one verdict
    /// per transaction: `true` when all its signatures verify.
    Verified(Vec<bool>),
}

/// A block executed against the current head, ready to commit.
#[derive(Debug)]
pub struct ExecutedBlock {
    /// The new block.
    pub block: StoredBlock,
    /// Everything the commit writes, head included.
    pub batch: WriteBatch,
    /// How long computing the state root took (part of execution; for metrics).
    pub state_root_time: std::time::Duration,
    /// The block's new state-tree nodes near the root, for the committing handle's
    /// node cache (`state::NodeCache`).
    pub state_nodes: state::FreshNodes,
}

/// One ledger on a store.
pub struct Ledger<S: KvStore> {
    store: S,
    id: LedgerId,
    settings: LedgerSettings,
    head: Head,
    /// Upper state-tree nodes of the blocks this handle committed.
    nodes: state::NodeCache,
}

const META_HEAD: &str = "head";
const META_SETTINGS: &str = "settings";
const META_SEALED: &str = "sealed";

/// A ledger's seal (`Operation::Seal`), as committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRecord {
    /// Height of the sealing block: the ledger's last.
    pub height: u64,
    /// The sealing transaction.
    pub tx_hash: Hash32,
    /// Its note.
    pub note: String,
}

fn encode_head(head: &Head) -> Vec<u8> {
    let mut writer = Writer::with_capacity(72);
    writer.u64(head.height).raw(&head.block_hash).raw(&head.state_root);
    writer.into_bytes()
}

fn decode_head(bytes: &[u8]) -> Result<Head, DecodeError> {
    let mut reader = Reader::new(bytes);
    let head = Head {
        height: reader.u64("height")?,
        block_hash: reader.array("block hash")?,
        state_root: reader.array("state root")?,
    };
    reader.finish("head")?;
    Ok(head)
}

impl<S: KvStore> Ledger<S> {
    /// Creates a ledger from `settings`: builds and commits its genesis block (height 0),
    /// registering the initial users. The ledger id is the genesis header's hash.
    pub fn create(store: S, settings: LedgerSettings) -> Result<Self, EngineError> {
        settings.check().map_err(EngineError::InvalidInput)?;
        let algorithm = settings.hash_algorithm;
        let genesis_users = settings.genesis_users();
        for user in &genesis_users {
            if !settings.signature_algorithms.contains(&user.algorithm()) {
                return Err(EngineError::InvalidInput(format!(
                    "initial user key uses {}, not allowed by the settings",
                    user.algorithm()
                )));
            }
        }
        let settings_bytes = settings.encode();
        // The genesis state root does not depend on the ledger id (tree nodes are keyed
        // under it, but hashed without it): compute it on an empty scratch store first.
        let mut updates = BTreeMap::new();
        for user in &genesis_users {
            let address = Address::of(algorithm, user);
            updates.insert(StateKey::User(address).key_hash(algorithm), Some(user.to_bytes()));
        }
        // A permissioned ledger: its roles, and the initial users holding them all.
        let role_names: Vec<String> = settings.roles.iter().map(|(name, _)| name.clone()).collect();
        let admin_roles = encode_user_roles(RolePolicy::Union, &role_names);
        for (name, permissions) in &settings.roles {
            let key = StateKey::Role(name.clone()).key_hash(algorithm);
            updates.insert(key, Some(permissions.to_be_bytes().to_vec()));
        }
        if settings.permissioned() {
            for user in &settings.initial_users {
                let address = Address::of(algorithm, user);
                let key = StateKey::UserRoles(address).key_hash(algorithm);
                updates.insert(key, Some(admin_roles.clone()));
            }
        }
        let scratch = crate::store::MemoryStore::new();
        let scratch_reader = StateReader::new(&scratch, LedgerId([0; 32]));
        let mut scratch_batch = WriteBatch::new();
        let updates: Vec<_> = updates.into_iter().collect();
        let state_root = state::apply_updates(
            algorithm,
            &scratch_reader,
            0,
            updates.clone(),
            &mut scratch_batch,
            &mut state::FreshNodes::default(),
        )
        .map_err(EngineError::State)?;
        let header = BlockHeader {
            ledger_id: LedgerId([0; 32]),
            height: 0,
            previous_hash: [0; 32],
            tx_root: *crypto_parallel::hash(algorithm, &settings_bytes).as_bytes(),
            state_root,
            timestamp_ms: settings.created_ms,
            proposer: Address([0; 32]),
        };
        let hash = header.hash(algorithm);
        let id = LedgerId(hash);
        if store.get(&layout::meta_key(&id, META_HEAD))?.is_some() {
            return Err(EngineError::LedgerExists(hex(&id.0)));
        }

        let mut batch = WriteBatch::new();
        let reader = StateReader::new(&store, id);
        let root = state::apply_updates(
            algorithm,
            &reader,
            0,
            updates,
            &mut batch,
            &mut state::FreshNodes::default(),
        )
        .map_err(EngineError::State)?;
        assert_eq!(root, state_root, "genesis state root must not depend on the ledger id");
        for user in &genesis_users {
            let address = Address::of(algorithm, user);
            batch.put(layout::user_key(&id, &address.0), user_record(0, &user.to_bytes()));
        }
        for (name, permissions) in &settings.roles {
            batch.put(layout::role_key(&id, name), permissions.to_be_bytes().to_vec());
        }
        if settings.permissioned() {
            for user in &settings.initial_users {
                let address = Address::of(algorithm, user);
                batch.put(layout::user_roles_key(&id, &address.0), admin_roles.clone());
            }
        }
        batch.put(layout::meta_key(&id, META_SETTINGS), settings_bytes);
        let block = StoredBlock { header, hash, transactions: Vec::new() };
        batch.put(layout::block_key(&id, 0), block.encode());
        batch.put(layout::block_by_hash_key(&id, &hash), 0u64.to_be_bytes().to_vec());
        let head = Head { height: 0, block_hash: hash, state_root };
        batch.expect(layout::meta_key(&id, META_HEAD), None);
        batch.put(layout::meta_key(&id, META_HEAD), encode_head(&head));
        store.write(batch)?;
        Ok(Ledger { store, id, settings, head, nodes: state::NodeCache::default() })
    }

    /// Opens an existing ledger at its committed head.
    pub fn open(store: S, id: LedgerId) -> Result<Self, EngineError> {
        let head_bytes = store
            .get(&layout::meta_key(&id, META_HEAD))?
            .ok_or_else(|| EngineError::UnknownLedger(hex(&id.0)))?;
        let head = decode_head(&head_bytes).map_err(corrupt("head"))?;
        let settings_bytes = store
            .get(&layout::meta_key(&id, META_SETTINGS))?
            .ok_or(EngineError::Corrupt { what: "settings", detail: "missing".into() })?;
        let settings = LedgerSettings::decode(&settings_bytes).map_err(corrupt("settings"))?;
        Ok(Ledger { store, id, settings, head, nodes: state::NodeCache::default() })
    }

    /// A handle at `head`, which must be a head this ledger committed (a node's
    /// published, durable one), without reading the store: queries by height stop at
    /// it, although the store may already hold blocks above it (written by
    /// `commit_unsynced`, not yet synced). For reading only.
    pub fn at_head(store: S, id: LedgerId, settings: LedgerSettings, head: Head) -> Self {
        Ledger { store, id, settings, head, nodes: state::NodeCache::default() }
    }

    /// The ledger id.
    pub fn id(&self) -> LedgerId {
        self.id
    }

    /// The genesis settings.
    pub fn settings(&self) -> &LedgerSettings {
        &self.settings
    }

    /// The hash algorithm of this ledger.
    pub fn hash_algorithm(&self) -> HashAlgorithm {
        self.settings.hash_algorithm
    }

    /// The latest committed block.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Executes `transactions` as the next block (nothing is written).
    pub fn execute_block(
        &self,
        transactions: Vec<Transaction>,
        signatures: SignatureCheck,
        timestamp_ms: u64,
        proposer: Address,
    ) -> Result<ExecutedBlock, EngineError> {
        if transactions.is_empty() || transactions.len() > BLOCK_TXS_MAX {
            return Err(EngineError::InvalidInput(format!(
                "a block has 1 to {BLOCK_TXS_MAX} transactions, got {}",
                transactions.len()
            )));
        }
        let verdicts = match signatures {
            SignatureCheck::Verify => verify_signatures(&transactions),
            SignatureCheck::Verified(verdicts) => {
                if verdicts.len() != transactions.len() {
                    return Err(EngineError::InvalidInput(
                        "one signature verdict per transaction".into(),
                    ));
                }
                verdicts
            }
        };
        let height = self.head.height + 1;
        let algorithm = self.hash_algorithm();
        // Phase 1, for the whole block: canonical bytes, hashes, and one multi-get for
        // transactions already on the ledger and the writes' expected versions.
        // Independent hashes are computed together (`hash_many`: sixteen SM3 lanes with
        // AVX-512), not one by one during execution.
        let contents: Vec<Vec<u8>> = transactions.iter().map(|tx| tx.content.encode()).collect();
        let hashes: Vec<Hash32> = crypto_parallel::hash_many(algorithm, &contents)
            .iter()
            .map(|digest| *digest.as_bytes())
            .collect();
        let mut writes = WriteHashes::of_block(algorithm, &transactions);
        // One multi-get: the transaction records (duplicates) and the history records
        // that settle each write's expected version.
        let (probes, probe_counts) = WriteHashes::probe_keys(&self.id, &transactions);
        let keys: Vec<Vec<u8>> =
            hashes.iter().map(|hash| layout::tx_key(&self.id, hash)).chain(probes).collect();
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let found: Vec<bool> =
            self.store.multi_get(&key_refs)?.iter().map(Option::is_some).collect();
        let (committed, probed) = found.split_at(hashes.len());
        writes.set_probes(&probe_counts, probed);
        let committed_before: Set<Hash32> = hashes
            .iter()
            .zip(committed)
            .filter_map(|(hash, found)| found.then_some(*hash))
            .collect();
        // Phase 2: execute in order against the overlay.
        let mut execution = BlockExecution::new(self, height);
        execution.tx_hashes_committed = committed_before;
        execution.tx_hashes.reserve(hashes.len());
        execution.versions.reserve(writes.len());
        // A transaction with one write adds ~5 records: its own, the history's, and its
        // share of the state tree's nodes.
        execution.batch.reserve(6 * hashes.len() + 64);
        execution.sealed = self.sealed()?.is_some();
        for (index, ((transaction, signatures_ok), (content, tx_hash))) in
            transactions.into_iter().zip(verdicts).zip(contents.into_iter().zip(hashes)).enumerate()
        {
            let write_hashes = writes.of_transaction(index);
            execution.execute(
                index as u32,
                transaction,
                content,
                tx_hash,
                signatures_ok,
                write_hashes,
            )?;
        }
        // Phase 3: state root, transaction root, the batch.
        execution.finish(timestamp_ms, proposer)
    }

    /// Commits an executed block: one atomic, durable write. On error nothing changed.
    /// Committing a block that an earlier attempt wrote although it reported an error
    /// (a TiKV commit whose answer was lost) succeeds: the head already is this block.
    pub fn commit(&mut self, executed: ExecutedBlock) -> Result<(), EngineError> {
        self.commit_with(executed, true)
    }

    /// Commits an executed block like [`Ledger::commit`], except that the write is not
    /// yet durable ([`KvStore::write_unsynced`]): the head moves and the block is
    /// readable at once, so the next block can execute while the store's fsync runs
    /// (on another thread: [`KvStore::sync`] through [`Ledger::store`]).
    ///
    /// The block is committed only once a `sync` that began after this returns `Ok`:
    /// until then nothing may report it (to clients, consensus, peers). A crash before
    /// that leaves the ledger at this block's parent or at a later block written the same
    /// way, never between two blocks. A failed `sync` means the store cannot say which:
    /// stop using this handle and reopen the ledger.
    pub fn commit_unsynced(&mut self, executed: ExecutedBlock) -> Result<(), EngineError> {
        self.commit_with(executed, false)
    }

    fn commit_with(&mut self, executed: ExecutedBlock, durable: bool) -> Result<(), EngineError> {
        let header = &executed.block.header;
        if header.height != self.head.height + 1 || header.previous_hash != self.head.block_hash {
            return Err(EngineError::NotNextBlock { block: header.height, head: self.head.height });
        }
        let head = executed.block.head();
        let written = if durable {
            self.store.write(executed.batch)
        } else {
            self.store.write_unsynced(executed.batch)
        };
        match written {
            Ok(()) => {}
            Err(StoreError::Conflict(reason)) => {
                let stored = self.store.get(&layout::meta_key(&self.id, META_HEAD))?;
                if stored.as_deref() != Some(encode_head(&head).as_slice()) {
                    return Err(EngineError::Store(StoreError::Conflict(reason)));
                }
            }
            Err(error) => return Err(error.into()),
        }
        self.head = head;
        // Only now: the nodes of a block that did not commit never enter the cache.
        self.nodes.insert(executed.state_nodes);
        Ok(())
    }

    /// Re-reads the head from the store: when it is one block past this handle's (a
    /// commit that applied although the store reported a failure), adopts it and returns
    /// it; `None` when the store's head is this handle's.
    pub fn reload_head(&mut self) -> Result<Option<Head>, EngineError> {
        let bytes = self
            .store
            .get(&layout::meta_key(&self.id, META_HEAD))?
            .ok_or(EngineError::Corrupt { what: "head", detail: "missing".into() })?;
        let stored = decode_head(&bytes).map_err(corrupt("head"))?;
        if stored == self.head {
            return Ok(None);
        }
        if stored.height != self.head.height + 1 {
            return Err(EngineError::Corrupt {
                what: "head",
                detail: format!(
                    "the stored head is at {} but this handle's at {}",
                    stored.height, self.head.height
                ),
            });
        }
        self.head = stored;
        Ok(Some(stored))
    }

    /// Executes and commits the next block; returns it.
    pub fn append_block(
        &mut self,
        transactions: Vec<Transaction>,
        signatures: SignatureCheck,
        timestamp_ms: u64,
        proposer: Address,
    ) -> Result<StoredBlock, EngineError> {
        let executed = self.execute_block(transactions, signatures, timestamp_ms, proposer)?;
        let block = executed.block.clone();
        self.commit(executed)?;
        Ok(block)
    }

    /// The block at `height`, if committed.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, EngineError> {
        if height > self.head.height {
            return Ok(None);
        }
        match self.store.get(&layout::block_key(&self.id, height))? {
            Some(bytes) => Ok(Some(
                StoredBlock::decode(self.hash_algorithm(), &bytes).map_err(corrupt("block"))?,
            )),
            None => {
                Err(EngineError::Corrupt { what: "block", detail: format!("{height} missing") })
            }
        }
    }

    /// The block with this hash.
    pub fn block_by_hash(&self, hash: &Hash32) -> Result<Option<StoredBlock>, EngineError> {
        match self.store.get(&layout::block_by_hash_key(&self.id, hash))? {
            Some(bytes) => {
                let height = u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                    EngineError::Corrupt { what: "block index", detail: "not 8 bytes".into() }
                })?);
                self.block(height)
            }
            None => Ok(None),
        }
    }

    /// A committed transaction by hash.
    pub fn transaction(&self, tx_hash: &Hash32) -> Result<Option<TxRecord>, EngineError> {
        match self.store.get(&layout::tx_key(&self.id, tx_hash))? {
            // A record above this handle's head (a reader at a node's published head
            // while a block above it awaits its fsync) is not committed as it sees it.
            Some(bytes) => Ok(Some(decode_tx_record(&bytes).map_err(corrupt("transaction"))?)
                .filter(|record| record.height <= self.head.height)),
            None => Ok(None),
        }
    }

    /// The body of the transaction at `index` of block `height` that was rejected for an
    /// invalid signature (those are not indexed by hash).
    pub fn unsigned_transaction(
        &self,
        height: u64,
        index: u32,
    ) -> Result<Option<Transaction>, EngineError> {
        match self.store.get(&layout::unsigned_tx_key(&self.id, height, index))? {
            Some(bytes) => Ok(Some(Transaction::decode(&bytes).map_err(corrupt("transaction"))?)),
            None => Ok(None),
        }
    }

    /// Block `height` with the full transactions it ordered (including those rejected
    /// for a bad signature), as needed to execute it again elsewhere (block sync).
    pub fn block_with_bodies(
        &self,
        height: u64,
    ) -> Result<Option<(StoredBlock, Vec<Transaction>)>, EngineError> {
        let Some(block) = self.block(height)? else { return Ok(None) };
        let mut bodies = Vec::with_capacity(block.transactions.len());
        for (index, (tx_hash, result)) in block.transactions.iter().enumerate() {
            let body = if *result == ResultCode::InvalidSignature {
                self.unsigned_transaction(height, index as u32)?
            } else {
                self.transaction(tx_hash)?.map(|record| record.transaction)
            };
            bodies.push(body.ok_or(EngineError::Corrupt {
                what: "transaction",
                detail: format!("transaction {index} of block {height} missing"),
            })?);
        }
        Ok(Some((block, bodies)))
    }

    /// Whether a user with this address is registered.
    pub fn user_exists(&self, address: &Address) -> Result<bool, EngineError> {
        Ok(self.store.get(&layout::user_key(&self.id, &address.0))?.is_some())
    }

    /// The owner of data account `name`, if registered.
    pub fn data_account_owner(&self, name: &str) -> Result<Option<Address>, EngineError> {
        self.owner_record(&layout::data_account_key(&self.id, name), "data account")
    }

    /// The owner in an account record (`height u64 ‖ owner address`) at `key`.
    fn owner_record(&self, key: &[u8], what: &'static str) -> Result<Option<Address>, EngineError> {
        match self.store.get(key)? {
            Some(bytes) => {
                let mut reader = Reader::new(&bytes);
                reader.u64("height").map_err(corrupt(what))?;
                let owner = reader.array("owner").map_err(corrupt(what))?;
                Ok(Some(Address(owner)))
            }
            None => Ok(None),
        }
    }

    /// The owner of event account `name`, if registered.
    pub fn event_account_owner(&self, name: &str) -> Result<Option<Address>, EngineError> {
        self.owner_record(&layout::event_account_key(&self.id, name), "event account")
    }

    /// A role's permissions, if the role exists.
    pub fn role(&self, name: &str) -> Result<Option<u32>, EngineError> {
        match self.store.get(&layout::role_key(&self.id, name))? {
            Some(bytes) => Ok(Some(role_bits(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every consensus participant the ledger has had, by member number: the genesis
    /// participants (members `1..=n`, in the settings' order), then those admitted
    /// since; removed ones carry their removal height.
    pub fn participants(&self) -> Result<Vec<Participant>, EngineError> {
        let mut all: Vec<Participant> = self
            .settings
            .participants
            .iter()
            .enumerate()
            .map(|(i, key)| Participant {
                member: i as u64 + 1,
                public_key: key.clone(),
                node_id: None,
                address: None,
                added_height: 0,
                removed_height: None,
            })
            .collect();
        let prefix = layout::table_prefix(&self.id, layout::Table::Participant);
        for (key, value) in scan_prefix(&self.store, &prefix, Direction::Forward, usize::MAX)? {
            let member = key[prefix.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| EngineError::Corrupt { what: "participant", detail: "key".into() })?;
            let record = Participant::decode(member, &value)?;
            match all.iter_mut().find(|p| p.member == member) {
                Some(existing) => *existing = record,
                None => all.push(record),
            }
        }
        all.sort_by_key(|p| p.member);
        Ok(all)
    }

    /// The participants that vote now.
    pub fn active_participants(&self) -> Result<Vec<Participant>, EngineError> {
        Ok(self.participants()?.into_iter().filter(|p| p.removed_height.is_none()).collect())
    }

    /// A user's roles and their policy, if any were assigned.
    pub fn user_roles(
        &self,
        user: &Address,
    ) -> Result<Option<(RolePolicy, Vec<String>)>, EngineError> {
        match self.store.get(&layout::user_roles_key(&self.id, &user.0))? {
            Some(bytes) => Ok(Some(decode_user_roles(&bytes).map_err(corrupt("user roles"))?)),
            None => Ok(None),
        }
    }

    /// What `user` may do on this ledger as committed (`permission::*` bits): on a
    /// permissioned ledger, its roles combined by its policy; otherwise everything but
    /// configuring roles and recalling (there only the settings' regulators recall).
    pub fn permissions(&self, user: &Address) -> Result<u32, EngineError> {
        if !self.settings.permissioned() {
            return Ok(permission::ALL & !permission::CONFIGURE_ROLES & !permission::RECALL);
        }
        let Some((policy, roles)) = self.user_roles(user)? else { return Ok(0) };
        let mut sets = Vec::with_capacity(roles.len());
        for role in &roles {
            sets.push(self.role(role)?.unwrap_or(0));
        }
        Ok(match policy {
            RolePolicy::Union => sets.iter().fold(0, |all, set| all | set),
            RolePolicy::Intersect if sets.is_empty() => 0,
            RolePolicy::Intersect => sets.iter().fold(permission::ALL, |all, set| all & set),
        })
    }

    /// Whether the owner of `account` allowed `grantee` to write it.
    pub fn may_write(&self, account: &str, grantee: &Address) -> Result<bool, EngineError> {
        Ok(self.store.get(&layout::data_access_key(&self.id, account, &grantee.0))?.is_some())
    }

    /// The BFT commit certificate stored with block `height` (`certificate::Certificate`
    /// bytes), for ledgers whose consensus is `bft`.
    pub fn certificate(&self, height: u64) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.store.get(&layout::certificate_key(&self.id, height))?)
    }

    /// The ledger's seal, once sealed: it takes no more transactions.
    pub fn sealed(&self) -> Result<Option<SealRecord>, EngineError> {
        let Some(bytes) = self.store.get(&layout::meta_key(&self.id, META_SEALED))? else {
            return Ok(None);
        };
        let mut reader = Reader::new(&bytes);
        let height = reader.u64("height").map_err(corrupt("seal"))?;
        let tx_hash = reader.array("tx hash").map_err(corrupt("seal"))?;
        let note = reader.raw(reader.remaining(), "note").map_err(corrupt("seal"))?;
        let note = String::from_utf8(note.to_vec())
            .map_err(|_| EngineError::Corrupt { what: "seal", detail: "note not UTF-8".into() })?;
        Ok(Some(SealRecord { height, tx_hash, note }))
    }

    /// The recall of `gtin`'s `lot`, if one was recorded.
    pub fn recall(&self, gtin: &str, lot: &str) -> Result<Option<RecallRecord>, EngineError> {
        match self.store.get(&layout::recall_key(&self.id, gtin, lot))? {
            Some(bytes) => decode_recall(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every recalled lot of `gtin` with its recall, in lot order: one prefix scan (the
    /// common answer, none, costs one seek).
    pub fn recalls_of(&self, gtin: &str) -> Result<Vec<(String, RecallRecord)>, EngineError> {
        let prefix = layout::recall_gtin_prefix(&self.id, gtin);
        scan_prefix(&self.store, &prefix, Direction::Forward, usize::MAX)?
            .into_iter()
            .map(|(key, value)| {
                let lot = key.get(prefix.len() + 2..).unwrap_or_default();
                let lot = String::from_utf8(lot.to_vec()).map_err(|_| EngineError::Corrupt {
                    what: "recall",
                    detail: "lot not UTF-8".into(),
                })?;
                Ok((lot, decode_recall(&value)?))
            })
            .collect()
    }

    /// How many events the ledger holds: the number the next event gets.
    pub fn event_count(&self) -> Result<u64, EngineError> {
        let prefix = layout::table_prefix(&self.id, layout::Table::Event);
        match scan_prefix(&self.store, &prefix, Direction::Reverse, 1)?.first() {
            Some((key, _)) => Ok(key_u64(key, prefix.len(), "event")? + 1),
            None => Ok(0),
        }
    }

    /// Up to `limit` events numbered `from` and later, in commit order: one range scan.
    pub fn events(&self, from: u64, limit: usize) -> Result<Vec<EventRecord>, EngineError> {
        let prefix = layout::table_prefix(&self.id, layout::Table::Event);
        let end = crate::store::prefix_end(&prefix).expect("prefix starts with a ledger id");
        self.store
            .scan(&layout::event_key(&self.id, from), &end, Direction::Forward, limit)?
            .into_iter()
            .map(|(key, value)| {
                let number = key_u64(&key, prefix.len(), "event")?;
                EventRecord::decode(number, &value).map_err(corrupt("event"))
            })
            .collect()
    }

    /// The event numbered `number`.
    pub fn event(&self, number: u64) -> Result<Option<EventRecord>, EngineError> {
        match self.store.get(&layout::event_key(&self.id, number))? {
            Some(bytes) => Ok(Some(EventRecord::decode(number, &bytes).map_err(corrupt("event"))?)),
            None => Ok(None),
        }
    }

    /// How many events `topic` of `account` holds: the sequence the next one gets.
    pub fn topic_length(&self, account: &str, topic: &str) -> Result<u64, EngineError> {
        let prefix = layout::event_topic_prefix(&self.id, account, topic);
        match scan_prefix(&self.store, &prefix, Direction::Reverse, 1)?.first() {
            Some((key, _)) => Ok(key_u64(key, prefix.len(), "event topic")? + 1),
            None => Ok(0),
        }
    }

    /// Up to `limit` events of one topic with sequence `from_sequence` and later, in
    /// order: a scan of the topic index, then one multi-get.
    pub fn topic_events(
        &self,
        account: &str,
        topic: &str,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, EngineError> {
        let prefix = layout::event_topic_prefix(&self.id, account, topic);
        let start = layout::event_topic_key(&self.id, account, topic, from_sequence);
        let end = crate::store::prefix_end(&prefix).expect("prefix starts with a ledger id");
        let numbers = self
            .store
            .scan(&start, &end, Direction::Forward, limit)?
            .into_iter()
            .map(|(_, value)| value_u64(&value, "event topic"))
            .collect::<Result<Vec<u64>, _>>()?;
        let keys: Vec<Vec<u8>> = numbers.iter().map(|n| layout::event_key(&self.id, *n)).collect();
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        numbers
            .iter()
            .zip(self.store.multi_get(&key_refs)?)
            .map(|(number, found)| {
                let bytes = found.ok_or(EngineError::Corrupt {
                    what: "event topic",
                    detail: format!("points at missing event {number}"),
                })?;
                EventRecord::decode(*number, &bytes).map_err(corrupt("event"))
            })
            .collect()
    }

    /// The latest version of `key` in data account `account`.
    pub fn latest(&self, account: &str, key: &[u8]) -> Result<Option<VersionedValue>, EngineError> {
        let prefix = layout::history_prefix(&self.id, account, key);
        let found = scan_prefix(&self.store, &prefix, Direction::Reverse, 1)?;
        found.into_iter().next().map(|(k, v)| decode_history(&prefix, &k, &v)).transpose()
    }

    /// Version `version` of `key`.
    pub fn version(
        &self,
        account: &str,
        key: &[u8],
        version: u64,
    ) -> Result<Option<VersionedValue>, EngineError> {
        let prefix = layout::history_prefix(&self.id, account, key);
        let history_key = layout::history_key(&self.id, account, key, version);
        match self.store.get(&history_key)? {
            Some(value) => decode_history(&prefix, &history_key, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Up to `limit` versions of `key` starting at `from_version`, oldest first: one
    /// range scan.
    pub fn history(
        &self,
        account: &str,
        key: &[u8],
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<VersionedValue>, EngineError> {
        let prefix = layout::history_prefix(&self.id, account, key);
        let start = layout::history_key(&self.id, account, key, from_version);
        let end =
            crate::store::prefix_end(&prefix).expect("history prefix starts with a ledger id");
        self.store
            .scan(&start, &end, Direction::Forward, limit)?
            .into_iter()
            .map(|(k, v)| decode_history(&prefix, &k, &v))
            .collect()
    }

    /// Proof of a state record (or its absence) at `height`.
    pub fn prove_state(&self, key: &StateKey, height: u64) -> Result<StateProof, EngineError> {
        let block = self
            .block(height)?
            .ok_or_else(|| EngineError::InvalidInput(format!("no block at height {height}")))?;
        let reader = StateReader::new(&self.store, self.id);
        let algorithm = self.hash_algorithm();
        let (leaf_value, proof) = state::prove(algorithm, &reader, height, key.key_hash(algorithm))
            .map_err(EngineError::State)?;
        Ok(StateProof { header: block.header, key_preimage: key.preimage(), leaf_value, proof })
    }

    /// Proof that transaction `tx_hash` (with its result) is in its block.
    pub fn prove_transaction(&self, tx_hash: &Hash32) -> Result<Option<TxProof>, EngineError> {
        Ok(self.prove_transactions(std::slice::from_ref(tx_hash))?.pop().flatten().map(|(_, p)| p))
    }

    /// Each transaction's record and inclusion proof (`None`: not committed), in the
    /// order asked. Transactions of one block share one read of it and one hashing of
    /// its leaves (a history of many events in few blocks costs few block reads).
    pub fn prove_transactions(
        &self,
        tx_hashes: &[Hash32],
    ) -> Result<Vec<Option<(TxRecord, TxProof)>>, EngineError> {
        let algorithm = self.hash_algorithm();
        // Per block: the block, and its tree's chunk roots (blocks of more than
        // `txroot::CHUNK` transactions since the chunks are kept) or all its leaves.
        let mut blocks: HashMap<u64, (StoredBlock, BlockTree)> = HashMap::new();
        let leaf =
            |(hash, result): &(Hash32, ResultCode)| txroot::leaf_hash(algorithm, hash, *result);
        let mut out = Vec::with_capacity(tx_hashes.len());
        for tx_hash in tx_hashes {
            let Some(record) = self.transaction(tx_hash)? else {
                out.push(None);
                continue;
            };
            let (block, tree) = match blocks.entry(record.height) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let block = self.block(record.height)?.ok_or(EngineError::Corrupt {
                        what: "transaction",
                        detail: "points at a missing block".into(),
                    })?;
                    let chunks =
                        match self.store.get(&layout::tx_chunks_key(&self.id, record.height))? {
                            Some(bytes) if bytes.len() % 32 == 0 => Some(
                                bytes.chunks(32).map(|c| c.try_into().expect("32 bytes")).collect(),
                            ),
                            Some(_) => {
                                return Err(EngineError::Corrupt {
                                    what: "tx chunks",
                                    detail: "not a list of hashes".into(),
                                });
                            }
                            None => None,
                        };
                    let tree = match chunks {
                        Some(roots) => BlockTree::Chunks(roots),
                        None => BlockTree::Leaves(block.transactions.iter().map(leaf).collect()),
                    };
                    entry.insert((block, tree))
                }
            };
            let index = record.index as usize;
            let size = block.transactions.len();
            if index >= size || block.transactions[index].0 != *tx_hash {
                return Err(EngineError::Corrupt {
                    what: "transaction",
                    detail: "index mismatch".into(),
                });
            }
            let path = match tree {
                BlockTree::Leaves(leaves) => txroot::audit_path(algorithm, leaves, index),
                BlockTree::Chunks(roots) => {
                    let start = index / txroot::CHUNK * txroot::CHUNK;
                    let end = (start + txroot::CHUNK).min(size);
                    let chunk: Vec<Hash32> =
                        block.transactions[start..end].iter().map(leaf).collect();
                    txroot::audit_path_chunked(algorithm, &chunk, roots, index)
                }
            };
            let proof = TxProof {
                header: block.header.clone(),
                tx_hash: *tx_hash,
                result: block.transactions[index].1,
                index: index as u64,
                tree_size: size as u64,
                path,
            };
            out.push(Some((record, proof)));
        }
        Ok(out)
    }
}

/// What an inclusion proof is computed from: a block tree's chunk roots, or all leaves.
enum BlockTree {
    Chunks(Vec<Hash32>),
    Leaves(Vec<Hash32>),
}

/// Decodes a `RECALL` record: `height u64 | tx hash [32] | regulator [32] | reason`.
fn decode_recall(bytes: &[u8]) -> Result<RecallRecord, EngineError> {
    let mut reader = Reader::new(bytes);
    let height = reader.u64("height").map_err(corrupt("recall"))?;
    let tx_hash = reader.array("tx hash").map_err(corrupt("recall"))?;
    let regulator = Address(reader.array("regulator").map_err(corrupt("recall"))?);
    let reason = reader.raw(reader.remaining(), "reason").map_err(corrupt("recall"))?;
    let reason = String::from_utf8(reason.to_vec())
        .map_err(|_| EngineError::Corrupt { what: "recall", detail: "reason not UTF-8".into() })?;
    Ok(RecallRecord { height, tx_hash, regulator, reason })
}

/// Checks every signature of every transaction in one batch; `true` per transaction
/// when all of its signatures verify.
pub fn verify_signatures(transactions: &[Transaction]) -> Vec<bool> {
    let messages: Vec<Vec<u8>> = transactions.iter().map(|tx| tx.content.encode()).collect();
    let mut items = Vec::new();
    let mut owners = Vec::new();
    for (index, (transaction, message)) in transactions.iter().zip(&messages).enumerate() {
        for endorsement in &transaction.endorsements {
            items.push(VerifyItem {
                public_key: &endorsement.public_key,
                message,
                signature: &endorsement.signature,
            });
            owners.push(index);
        }
    }
    let mut verdicts: Vec<bool> =
        transactions.iter().map(|tx| !tx.endorsements.is_empty()).collect();
    for (owner, result) in owners.into_iter().zip(crypto_parallel::verify_batch(&items)) {
        if result.is_err() {
            verdicts[owner] = false;
        }
    }
    verdicts
}

fn user_record(height: u64, public_key: &[u8]) -> Vec<u8> {
    let mut writer = Writer::with_capacity(8 + public_key.len());
    writer.u64(height).raw(public_key);
    writer.into_bytes()
}

/// The `0x04` record of `transaction`, whose content's canonical bytes are `content`: in
/// one allocation, the transaction's bytes written in place.
fn encode_tx_record(
    height: u64,
    index: u32,
    result: ResultCode,
    transaction: &Transaction,
    content: &[u8],
) -> Vec<u8> {
    let mut writer =
        Writer::with_capacity(13 + content.len() + transaction.endorsements_len_hint());
    writer.u64(height).u32(index).u8(result as u8).raw(content);
    transaction.encode_endorsements(&mut writer);
    writer.into_bytes()
}

fn decode_tx_record(bytes: &[u8]) -> Result<TxRecord, DecodeError> {
    let mut reader = Reader::new(bytes);
    let height = reader.u64("height")?;
    let index = reader.u32("index")?;
    let result = ResultCode::from_u8(reader.u8("result")?)?;
    let rest = reader.raw(reader.remaining(), "transaction")?;
    Ok(TxRecord { height, index, result, transaction: Transaction::decode(rest)? })
}

fn decode_history(prefix: &[u8], key: &[u8], value: &[u8]) -> Result<VersionedValue, EngineError> {
    let bad = |detail: &str| EngineError::Corrupt { what: "history", detail: detail.into() };
    let version_bytes = key.strip_prefix(prefix).ok_or_else(|| bad("key outside prefix"))?;
    let version = u64::from_be_bytes(version_bytes.try_into().map_err(|_| bad("version width"))?);
    let mut reader = Reader::new(value);
    let height = reader.u64("height").map_err(corrupt("history"))?;
    let tx_hash = reader.array("tx hash").map_err(corrupt("history"))?;
    let value = reader.raw(reader.remaining(), "value").map_err(corrupt("history"))?.to_vec();
    Ok(VersionedValue { version, height, tx_hash, value })
}

/// A data key: (account name, key).
type DataKey = (String, Vec<u8>);

/// One staged write.
struct StagedWrite {
    key: DataKey,
    version: u64,
    value: Vec<u8>,
    /// The key's place in the state tree and the value's hash (see [`WriteHashes`]).
    hashes: WriteHash,
}

/// The state-tree key hash and the value hash of one `WriteKv`, and what the store said
/// of its expected version before the block ran.
#[derive(Clone, Copy)]
struct WriteHash {
    key_hash: Hash32,
    value_hash: Hash32,
    stored: Probe,
}

/// What the block's one multi-get (phase 1) found for a write's expected version, as
/// of the block's start: a write of a key no earlier transaction of the block wrote
/// takes it as the key's current version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Probe {
    /// Not read: an expected version below −1, which matches nothing.
    NotRead,
    /// The stored current version is the expected one (−1: version 0 is absent; `v`:
    /// version `v` is there and `v + 1` is not).
    Matches,
    /// It is not: the current version is found by a scan.
    Differs,
}

/// The [`WriteHash`] of every `WriteKv` of a block, in order, computed before execution
/// with `hash_many` (they depend only on the operation, not on what executes before it;
/// a rejected transaction's are computed and not used).
struct WriteHashes {
    hashes: Vec<WriteHash>,
    /// Transaction `i`'s writes are `hashes[starts[i]..starts[i + 1]]`.
    starts: Vec<usize>,
}

impl WriteHashes {
    fn of_block(algorithm: HashAlgorithm, transactions: &[Transaction]) -> Self {
        let mut preimages = Vec::new();
        let mut values: Vec<&[u8]> = Vec::new();
        let mut starts = Vec::with_capacity(transactions.len() + 1);
        for transaction in transactions {
            starts.push(values.len());
            for operation in &transaction.content.operations {
                if let Operation::WriteKv { account, key, value, .. } = operation {
                    preimages.push(state::data_key_preimage(account, key));
                    values.push(value);
                }
            }
        }
        starts.push(values.len());
        let key_hashes = crypto_parallel::hash_many(algorithm, &preimages);
        let value_hashes = crypto_parallel::hash_many(algorithm, &values);
        let hashes = key_hashes
            .iter()
            .zip(&value_hashes)
            .map(|(key, value)| WriteHash {
                key_hash: *key.as_bytes(),
                value_hash: *value.as_bytes(),
                stored: Probe::NotRead,
            })
            .collect();
        WriteHashes { hashes, starts }
    }

    /// The block's number of writes.
    fn len(&self) -> usize {
        self.hashes.len()
    }

    fn of_transaction(&self, index: usize) -> &[WriteHash] {
        &self.hashes[self.starts[index]..self.starts[index + 1]]
    }

    /// The history keys whose presence settles each write's expected version (−1:
    /// version 0; `v`: versions `v` and `v + 1`), in write order, and per write how many.
    fn probe_keys(id: &LedgerId, transactions: &[Transaction]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let (mut keys, mut counts) = (Vec::with_capacity(transactions.len()), Vec::new());
        for transaction in transactions {
            for operation in &transaction.content.operations {
                if let Operation::WriteKv { account, key, expected_version, .. } = operation {
                    let versions = match *expected_version {
                        -1 => [Some(0), None],
                        expected => u64::try_from(expected)
                            .ok()
                            .and_then(|version| {
                                Some([Some(version), Some(version.checked_add(1)?)])
                            })
                            .unwrap_or_default(),
                    };
                    counts.push(versions.iter().flatten().count() as u8);
                    keys.extend(
                        versions
                            .into_iter()
                            .flatten()
                            .map(|v| layout::history_key(id, account, key, v)),
                    );
                }
            }
        }
        (keys, counts)
    }

    /// Records what the multi-get found for the keys of `probe_keys`.
    fn set_probes(&mut self, counts: &[u8], found: &[bool]) {
        let mut at = 0;
        for (write, count) in self.hashes.iter_mut().zip(counts) {
            let found = &found[at..at + *count as usize];
            at += *count as usize;
            write.stored = match found {
                [] => Probe::NotRead,
                [false] | [true, false] => Probe::Matches,
                _ => Probe::Differs,
            };
        }
    }
}

/// The changes one transaction makes, staged until all its operations pass.
#[derive(Default)]
struct Staged {
    users: Vec<(Address, Vec<u8>)>,
    accounts: Vec<(String, Address)>,
    /// (account, key) → (new version, value).
    writes: Vec<StagedWrite>,
    event_accounts: Vec<(String, Address)>,
    /// (account, topic) → (sequence, payload).
    events: Vec<(TopicKey, u64, Vec<u8>)>,
    /// (gtin, lot) → (regulator, reason).
    recalls: Vec<(RecallKey, Address, String)>,
    roles: Vec<(String, u32)>,
    assignments: Vec<(Address, RolePolicy, Vec<String>)>,
    grants: Vec<(String, Address, bool)>,
    /// Participant records admitted or removed.
    participants: Vec<Participant>,
    /// The seal's note, when the transaction seals the ledger.
    seal: Option<String>,
}

/// A recalled lot: (GTIN, lot).
type RecallKey = (String, String);

/// An event topic: (event account name, topic).
type TopicKey = (String, String);

/// A map of one block's execution. Its keys are hashes, addresses and short names, and
/// a block looks each up a few times: foldhash (seeded per process) rather than std's
/// SipHash, which was ~2% of the engine thread in the commit bench's profile.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
/// A set of one block's execution (see [`Map`]).
type Set<K> = HashSet<K, foldhash::fast::RandomState>;

/// The overlay of one block under execution: what earlier transactions of the block
/// changed, consulted before the store.
struct BlockExecution<'a, S: KvStore> {
    ledger: &'a Ledger<S>,
    height: u64,
    algorithm: HashAlgorithm,
    users: Set<Address>,
    /// Signers' addresses, hashed once per block per key (a block's transactions come
    /// from few signers, and an address is a hash of the key).
    addresses: Map<crypto_parallel::PublicKey, Address>,
    accounts: Map<String, Address>,
    versions: Map<DataKey, u64>,
    event_accounts: Map<String, Address>,
    /// (account, topic) → sequence of the next event.
    topic_lengths: Map<TopicKey, u64>,
    /// Number of the next event; read from the store at the block's first event.
    next_event: Option<u64>,
    /// Addresses of the ledger's regulators.
    regulators: Set<Address>,
    /// Lots this block recalled.
    recalled: Set<RecallKey>,
    /// Permissions of actors, as committed before this block (changes to roles and
    /// grants take effect from the next block).
    permissions: Map<Address, u32>,
    /// Write grants, as committed before this block.
    grants: Map<(String, Address), bool>,
    /// Write grants changed by this block's earlier transactions.
    block_grants: Map<(String, Address), bool>,
    /// Every participant, with this block's earlier changes; read at the block's first
    /// need.
    participants: Option<Vec<Participant>>,
    /// Hashes of this block's transactions that earlier blocks committed (phase 1).
    tx_hashes_committed: Set<Hash32>,
    /// Sealed before this transaction (by an earlier block or this one).
    sealed: bool,
    tx_hashes: Set<Hash32>,
    state_updates: BTreeMap<Hash32, Option<Vec<u8>>>,
    entries: Vec<(Hash32, ResultCode)>,
    batch: WriteBatch,
}

impl<'a, S: KvStore> BlockExecution<'a, S> {
    fn new(ledger: &'a Ledger<S>, height: u64) -> Self {
        BlockExecution {
            ledger,
            height,
            algorithm: ledger.hash_algorithm(),
            users: Set::default(),
            addresses: Map::default(),
            accounts: Map::default(),
            versions: Map::default(),
            event_accounts: Map::default(),
            topic_lengths: Map::default(),
            next_event: None,
            regulators: ledger
                .settings
                .regulators
                .iter()
                .map(|key| Address::of(ledger.hash_algorithm(), key))
                .collect(),
            recalled: Set::default(),
            permissions: Map::default(),
            grants: Map::default(),
            block_grants: Map::default(),
            participants: None,
            tx_hashes_committed: Set::default(),
            sealed: false,
            tx_hashes: Set::default(),
            state_updates: BTreeMap::new(),
            entries: Vec::new(),
            batch: WriteBatch::new(),
        }
    }

    /// `Address::of` the key, remembered for the rest of the block.
    fn address_of(&mut self, key: &crypto_parallel::PublicKey) -> Address {
        if let Some(address) = self.addresses.get(key) {
            return *address;
        }
        let address = Address::of(self.algorithm, key);
        self.addresses.insert(key.clone(), address);
        address
    }

    /// Whether a user exists; store hits are remembered for the rest of the block (a
    /// block's transactions come from few signers).
    fn user_exists(&mut self, address: &Address) -> Result<bool, EngineError> {
        if self.users.contains(address) {
            return Ok(true);
        }
        let exists = self.ledger.user_exists(address)?;
        if exists {
            self.users.insert(*address);
        }
        Ok(exists)
    }

    /// Every participant, as of this point of the block.
    fn participants(&mut self) -> Result<&mut Vec<Participant>, EngineError> {
        if self.participants.is_none() {
            self.participants = Some(self.ledger.participants()?);
        }
        Ok(self.participants.as_mut().expect("loaded above"))
    }

    /// Whether `key` is a participant that votes, as of this point of the block.
    fn is_active_participant(
        &mut self,
        key: &crypto_parallel::PublicKey,
    ) -> Result<bool, EngineError> {
        Ok(self.participants()?.iter().any(|p| p.removed_height.is_none() && &p.public_key == key))
    }

    /// The owner of a data account; store hits are remembered for the block.
    fn account_owner(&mut self, name: &str) -> Result<Option<Address>, EngineError> {
        if let Some(owner) = self.accounts.get(name) {
            return Ok(Some(*owner));
        }
        let owner = self.ledger.data_account_owner(name)?;
        if let Some(owner) = owner {
            self.accounts.insert(name.to_owned(), owner);
        }
        Ok(owner)
    }

    /// The owner of an event account; store hits are remembered for the block.
    fn event_account_owner(&mut self, name: &str) -> Result<Option<Address>, EngineError> {
        if let Some(owner) = self.event_accounts.get(name) {
            return Ok(Some(*owner));
        }
        let owner = self.ledger.event_account_owner(name)?;
        if let Some(owner) = owner {
            self.event_accounts.insert(name.to_owned(), owner);
        }
        Ok(owner)
    }

    /// What `actor` may do, as committed before this block.
    fn permissions_of(&mut self, actor: &Address) -> Result<u32, EngineError> {
        if let Some(bits) = self.permissions.get(actor) {
            return Ok(*bits);
        }
        let bits = self.ledger.permissions(actor)?;
        self.permissions.insert(*actor, bits);
        Ok(bits)
    }

    /// Whether any of `signers` was granted writing `account`, as committed before this
    /// block.
    fn granted(&mut self, account: &str, signers: &[Address]) -> Result<bool, EngineError> {
        for signer in signers {
            let key = (account.to_owned(), *signer);
            let allowed = match self.grants.get(&key) {
                Some(allowed) => *allowed,
                None => {
                    let allowed = self.ledger.may_write(account, signer)?;
                    self.grants.insert(key, allowed);
                    allowed
                }
            };
            if allowed {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The sequence the next event of a topic gets (before this transaction).
    fn topic_length(&mut self, id: &TopicKey) -> Result<u64, EngineError> {
        if let Some(length) = self.topic_lengths.get(id) {
            return Ok(*length);
        }
        let length = self.ledger.topic_length(&id.0, &id.1)?;
        self.topic_lengths.insert(id.clone(), length);
        Ok(length)
    }

    /// The current version of a data key (−1: none): this block's own write of it, else
    /// what phase 1's multi-get found for the version the writer expects (`stored`). A
    /// key's history holds every version from 0 to the latest (nothing removes one), so
    /// "no version 0" means −1, and "version v and no v + 1" means v. Point reads are
    /// answered by Bloom filters where the key is absent; the reverse seek below, needed
    /// only when the expectation is wrong, costs several times more (perf/RESULTS.md).
    fn current_version(
        &self,
        account: &str,
        key: &[u8],
        expected: i64,
        stored: Probe,
    ) -> Result<i64, EngineError> {
        if let Some(version) = self.versions.get(&(account.to_owned(), key.to_vec())) {
            return Ok(*version as i64);
        }
        if stored == Probe::Matches {
            return Ok(expected);
        }
        // It differs (or cannot match: an expected version below −1): the latest
        // version, for the conflict's record, is the last of the key's history range.
        let prefix = layout::history_prefix(&self.ledger.id, account, key);
        let found = scan_prefix(&self.ledger.store, &prefix, Direction::Reverse, 1)?;
        match found.first() {
            Some((history_key, _)) => {
                let version =
                    history_key[prefix.len()..].try_into().map(u64::from_be_bytes).map_err(
                        |_| EngineError::Corrupt { what: "history", detail: "version".into() },
                    )?;
                Ok(version as i64)
            }
            None => Ok(-1),
        }
    }

    fn execute(
        &mut self,
        index: u32,
        transaction: Transaction,
        content: Vec<u8>,
        tx_hash: Hash32,
        signatures_ok: bool,
        write_hashes: &[WriteHash],
    ) -> Result<(), EngineError> {
        let duplicate =
            self.tx_hashes.contains(&tx_hash) || self.tx_hashes_committed.contains(&tx_hash);
        if !duplicate && !signatures_ok {
            // Anyone can make a copy of a pending transaction with a broken signature:
            // such a copy must not take the genuine one's hash, so it is recorded by
            // position only and the hash stays free.
            self.entries.push((tx_hash, ResultCode::InvalidSignature));
            let key = layout::unsigned_tx_key(&self.ledger.id, self.height, index);
            self.batch.put(key, transaction.encode_with_content(content));
            return Ok(());
        }
        let result = if duplicate {
            ResultCode::Duplicate
        } else if transaction.content.ledger_id != self.ledger.id {
            ResultCode::WrongLedger
        } else if self.sealed {
            ResultCode::LedgerSealed
        } else {
            match self.stage(&transaction, write_hashes)? {
                Ok(staged) => {
                    self.apply(staged, &tx_hash);
                    ResultCode::Committed
                }
                Err(code) => code,
            }
        };
        self.entries.push((tx_hash, result));
        if !duplicate {
            // A duplicate's body is already stored under its hash (with its first result);
            // the block still records that it was proposed again.
            self.tx_hashes.insert(tx_hash);
            debug_assert_eq!(content, transaction.content.encode());
            let record = encode_tx_record(self.height, index, result, &transaction, &content);
            self.batch.put(layout::tx_key(&self.ledger.id, &tx_hash), record);
        }
        Ok(())
    }

    /// Stages an admission or removal: a quorum of the current participants' node keys
    /// among the endorsements; a new key (never a participant before) and a node id no
    /// other admitted participant uses; or an active participant, not the last.
    fn stage_participant(
        &mut self,
        transaction: &Transaction,
        operation: &Operation,
        staged: &mut Staged,
    ) -> Result<Result<(), ResultCode>, EngineError> {
        let height = self.height;
        if self.ledger.settings.consensus == "solo" {
            // One node by definition: there is no group to change.
            return Ok(Err(ResultCode::NoPermission));
        }
        // This transaction's own earlier operations count.
        let mut all = self.participants()?.clone();
        for record in &staged.participants {
            match all.iter_mut().find(|p| p.member == record.member) {
                Some(existing) => *existing = record.clone(),
                None => all.push(record.clone()),
            }
        }
        let active: Vec<&Participant> = all.iter().filter(|p| p.removed_height.is_none()).collect();
        let endorsing = active
            .iter()
            .filter(|p| transaction.endorsements.iter().any(|e| e.public_key == p.public_key))
            .count();
        if endorsing < self.ledger.settings.participant_quorum_of(active.len()) {
            return Ok(Err(ResultCode::NoPermission));
        }
        let record = match operation {
            Operation::AddParticipant { public_key, node_id, address } => {
                let taken_id = active.iter().any(|p| p.node_id == Some(*node_id));
                if all.iter().any(|p| &p.public_key == public_key) || taken_id {
                    return Ok(Err(ResultCode::AccountExists));
                }
                Participant {
                    member: all.iter().map(|p| p.member).max().unwrap_or(0) + 1,
                    public_key: public_key.clone(),
                    node_id: Some(*node_id),
                    address: Some(address.clone()),
                    added_height: height,
                    removed_height: None,
                }
            }
            Operation::RemoveParticipant { public_key } => {
                let Some(current) = active.iter().find(|p| &p.public_key == public_key) else {
                    return Ok(Err(ResultCode::UnknownAccount));
                };
                if active.len() == 1 {
                    return Ok(Err(ResultCode::NoPermission));
                }
                Participant { removed_height: Some(height), ..(*current).clone() }
            }
            _ => unreachable!("only participant operations are staged here"),
        };
        staged.participants.push(record);
        Ok(Ok(()))
    }

    /// Validates every operation against the overlay and the store; `Err(code)` when
    /// the transaction must be rejected.
    /// `write_hashes` holds the transaction's `WriteKv` hashes in order
    /// (`WriteHashes::of_transaction`).
    fn stage(
        &mut self,
        transaction: &Transaction,
        write_hashes: &[WriteHash],
    ) -> Result<Result<Staged, ResultCode>, EngineError> {
        // Borrow through the ledger reference (not through `self`, which is mutated).
        let ledger = self.ledger;
        let allowed = &ledger.settings.signature_algorithms;
        let mut signers = Vec::with_capacity(transaction.endorsements.len());
        let participant_change = transaction.content.operations.iter().any(|operation| {
            matches!(
                operation,
                Operation::AddParticipant { .. } | Operation::RemoveParticipant { .. }
            )
        });
        for (i, endorsement) in transaction.endorsements.iter().enumerate() {
            let address = self.address_of(&endorsement.public_key);
            if !allowed.contains(&endorsement.public_key.algorithm()) {
                return Ok(Err(ResultCode::NoPermission));
            }
            // The actor is a user; a participant change may also be co-signed by
            // participants' node keys, which need not be users.
            if !self.user_exists(&address)?
                && (i == 0
                    || !participant_change
                    || !self.is_active_participant(&endorsement.public_key)?)
            {
                return Ok(Err(ResultCode::UnknownAccount));
            }
            signers.push(address);
        }
        let actor = signers[0];
        let permissions = self.permissions_of(&actor)?;
        let lacks = |bit: u32| permissions & bit != bit;
        let mut staged = Staged::default();
        // The `WriteKv` operations seen so far: the index into `write_hashes`.
        let mut writes_seen = 0;
        for operation in &transaction.content.operations {
            let needed = match operation {
                Operation::RegisterUser { .. } => permission::REGISTER_USER,
                Operation::RegisterDataAccount { .. } => permission::REGISTER_DATA_ACCOUNT,
                Operation::WriteKv { .. } => permission::WRITE_DATA,
                Operation::RegisterEventAccount { .. } => permission::REGISTER_EVENT_ACCOUNT,
                Operation::PublishEvent { .. } => permission::PUBLISH_EVENT,
                Operation::DefineRole { .. } | Operation::AssignRoles { .. } => {
                    permission::CONFIGURE_ROLES
                }
                // A regulator recalls by the settings; others need the permission.
                Operation::Recall { .. } if self.regulators.contains(&actor) => 0,
                Operation::Recall { .. } => permission::RECALL,
                // An owner's own decision.
                Operation::GrantWrite { .. } => 0,
                Operation::AddParticipant { .. } | Operation::RemoveParticipant { .. } => {
                    permission::REGISTER_PARTICIPANT
                }
                // Administration: roles' keepers, or (open ledgers) the initial users.
                Operation::Seal { .. } if ledger.settings.permissioned() => {
                    permission::CONFIGURE_ROLES
                }
                Operation::Seal { .. } => {
                    let admin = ledger
                        .settings
                        .initial_users
                        .iter()
                        .any(|key| Address::of(self.algorithm, key) == actor);
                    if !admin {
                        return Ok(Err(ResultCode::NoPermission));
                    }
                    0
                }
            };
            if lacks(needed) {
                return Ok(Err(ResultCode::NoPermission));
            }
            match operation {
                Operation::RegisterUser { public_key } => {
                    if !allowed.contains(&public_key.algorithm()) {
                        return Ok(Err(ResultCode::NoPermission));
                    }
                    let address = Address::of(self.algorithm, public_key);
                    if self.user_exists(&address)?
                        || staged.users.iter().any(|(a, _)| *a == address)
                    {
                        return Ok(Err(ResultCode::AccountExists));
                    }
                    staged.users.push((address, public_key.to_bytes()));
                }
                Operation::RegisterDataAccount { name } => {
                    if self.account_owner(name)?.is_some()
                        || staged.accounts.iter().any(|(n, _)| n == name)
                    {
                        return Ok(Err(ResultCode::AccountExists));
                    }
                    staged.accounts.push((name.clone(), actor));
                }
                Operation::WriteKv { account, key, value, expected_version } => {
                    let write_index = writes_seen;
                    writes_seen += 1;
                    let owner = match staged.accounts.iter().find(|(n, _)| n == account) {
                        Some((_, owner)) => Some(*owner),
                        None => self.account_owner(account)?,
                    };
                    let Some(owner) = owner else { return Ok(Err(ResultCode::UnknownAccount)) };
                    if !signers.contains(&owner) && !self.granted(account, &signers)? {
                        return Ok(Err(ResultCode::NoPermission));
                    }
                    let id = (account.clone(), key.clone());
                    let current = match staged.writes.iter().rev().find(|w| w.key == id) {
                        Some(write) => write.version as i64,
                        None => self.current_version(
                            account,
                            key,
                            *expected_version,
                            write_hashes[write_index].stored,
                        )?,
                    };
                    if current != *expected_version {
                        return Ok(Err(ResultCode::VersionConflict));
                    }
                    staged.writes.push(StagedWrite {
                        key: id,
                        version: (current + 1) as u64,
                        value: value.clone(),
                        hashes: write_hashes[write_index],
                    });
                }
                Operation::RegisterEventAccount { name } => {
                    if name.starts_with(crate::model::RESERVED_NAME_PREFIX) {
                        return Ok(Err(ResultCode::NoPermission));
                    }
                    if self.event_account_owner(name)?.is_some()
                        || staged.event_accounts.iter().any(|(n, _)| n == name)
                    {
                        return Ok(Err(ResultCode::AccountExists));
                    }
                    staged.event_accounts.push((name.clone(), actor));
                }
                Operation::PublishEvent { account, topic, payload } => {
                    let owner = match staged.event_accounts.iter().find(|(n, _)| n == account) {
                        Some((_, owner)) => Some(*owner),
                        None => self.event_account_owner(account)?,
                    };
                    let Some(owner) = owner else { return Ok(Err(ResultCode::UnknownAccount)) };
                    if !signers.contains(&owner) {
                        return Ok(Err(ResultCode::NoPermission));
                    }
                    let id = (account.clone(), topic.clone());
                    let sequence = match staged.events.iter().rev().find(|(k, _, _)| *k == id) {
                        Some((_, sequence, _)) => sequence + 1,
                        None => self.topic_length(&id)?,
                    };
                    staged.events.push((id, sequence, payload.clone()));
                }
                Operation::Recall { gtin, lot, reason } => {
                    let id = (gtin.clone(), lot.clone());
                    if self.recalled.contains(&id)
                        || staged.recalls.iter().any(|(k, _, _)| *k == id)
                        || ledger.store.get(&layout::recall_key(&ledger.id, gtin, lot))?.is_some()
                    {
                        return Ok(Err(ResultCode::AccountExists));
                    }
                    // The recall is also a system event, so every subscriber of the
                    // ledger (and of the node's system stream) learns of it.
                    let topic = (SYSTEM_ACCOUNT.to_owned(), RECALL_TOPIC.to_owned());
                    let sequence = match staged.events.iter().rev().find(|(k, _, _)| *k == topic) {
                        Some((_, sequence, _)) => sequence + 1,
                        None => self.topic_length(&topic)?,
                    };
                    let payload = recall_event_payload(gtin, lot, reason, &actor);
                    staged.events.push((topic, sequence, payload));
                    staged.recalls.push((id, actor, reason.clone()));
                }
                Operation::DefineRole { name, permissions } => {
                    staged.roles.push((name.clone(), *permissions));
                }
                Operation::AssignRoles { user, roles, policy } => {
                    if !self.user_exists(user)? && !staged.users.iter().any(|(a, _)| a == user) {
                        return Ok(Err(ResultCode::UnknownAccount));
                    }
                    staged.assignments.push((*user, *policy, roles.clone()));
                }
                Operation::AddParticipant { .. } | Operation::RemoveParticipant { .. } => {
                    match self.stage_participant(transaction, operation, &mut staged)? {
                        Ok(()) => {}
                        Err(code) => return Ok(Err(code)),
                    }
                }
                Operation::Seal { note } => staged.seal = Some(note.clone()),
                Operation::GrantWrite { account, grantee, allowed } => {
                    let owner = match staged.accounts.iter().find(|(n, _)| n == account) {
                        Some((_, owner)) => Some(*owner),
                        None => self.account_owner(account)?,
                    };
                    let Some(owner) = owner else { return Ok(Err(ResultCode::UnknownAccount)) };
                    if !signers.contains(&owner) {
                        return Ok(Err(ResultCode::NoPermission));
                    }
                    // Revoking what was never granted changes nothing (the state tree
                    // has no leaf to delete).
                    let key = (account.clone(), *grantee);
                    let granted = match staged
                        .grants
                        .iter()
                        .rev()
                        .find(|(a, g, _)| *a == key.0 && *g == key.1)
                    {
                        Some((_, _, allowed)) => *allowed,
                        None => match self.block_grants.get(&key) {
                            Some(allowed) => *allowed,
                            None => ledger.may_write(account, grantee)?,
                        },
                    };
                    if *allowed != granted {
                        staged.grants.push((account.clone(), *grantee, *allowed));
                    }
                }
            }
        }
        if !staged.events.is_empty() && self.next_event.is_none() {
            self.next_event = Some(self.ledger.event_count()?);
        }
        Ok(Ok(staged))
    }

    fn apply(&mut self, staged: Staged, tx_hash: &Hash32) {
        let id = self.ledger.id;
        for (address, public_key) in staged.users {
            self.state_updates
                .insert(StateKey::User(address).key_hash(self.algorithm), Some(public_key.clone()));
            self.batch
                .put(layout::user_key(&id, &address.0), user_record(self.height, &public_key));
            self.users.insert(address);
        }
        for (name, owner) in staged.accounts {
            let key_hash = StateKey::DataAccount(name.clone()).key_hash(self.algorithm);
            self.state_updates.insert(key_hash, Some(owner.0.to_vec()));
            let mut record = Writer::with_capacity(40);
            record.u64(self.height).raw(&owner.0);
            self.batch.put(layout::data_account_key(&id, &name), record.into_bytes());
            self.accounts.insert(name, owner);
        }
        for StagedWrite { key: (account, key), version, value, hashes } in staged.writes {
            let leaf = state::data_leaf_from_hash(version, &hashes.value_hash);
            self.state_updates.insert(hashes.key_hash, Some(leaf));
            let mut record = Writer::with_capacity(40 + value.len());
            record.u64(self.height).raw(tx_hash).raw(&value);
            self.batch.put(layout::history_key(&id, &account, &key, version), record.into_bytes());
            self.versions.insert((account, key), version);
        }
        for (name, owner) in staged.event_accounts {
            let key_hash = StateKey::EventAccount(name.clone()).key_hash(self.algorithm);
            self.state_updates.insert(key_hash, Some(owner.0.to_vec()));
            let mut record = Writer::with_capacity(40);
            record.u64(self.height).raw(&owner.0);
            self.batch.put(layout::event_account_key(&id, &name), record.into_bytes());
            self.event_accounts.insert(name, owner);
        }
        for (name, permissions) in staged.roles {
            let key_hash = StateKey::Role(name.clone()).key_hash(self.algorithm);
            self.state_updates.insert(key_hash, Some(permissions.to_be_bytes().to_vec()));
            self.batch.put(layout::role_key(&id, &name), permissions.to_be_bytes().to_vec());
        }
        for (user, policy, roles) in staged.assignments {
            let record = encode_user_roles(policy, &roles);
            let key_hash = StateKey::UserRoles(user).key_hash(self.algorithm);
            self.state_updates.insert(key_hash, Some(record.clone()));
            self.batch.put(layout::user_roles_key(&id, &user.0), record);
        }
        for (account, grantee, allowed) in staged.grants {
            self.block_grants.insert((account.clone(), grantee), allowed);
            let key = layout::data_access_key(&id, &account, &grantee.0);
            let state_key = StateKey::DataAccess { account, grantee };
            if allowed {
                self.state_updates.insert(state_key.key_hash(self.algorithm), Some(vec![1]));
                self.batch.put(key, vec![1]);
            } else {
                self.state_updates.insert(state_key.key_hash(self.algorithm), None);
                self.batch.delete(key);
            }
        }
        for record in staged.participants {
            let key_hash = StateKey::Participant(record.member).key_hash(self.algorithm);
            let bytes = record.encode();
            self.state_updates.insert(key_hash, Some(bytes.clone()));
            self.batch.put(layout::participant_key(&id, record.member), bytes);
            // Staging loaded the participants.
            if let Some(all) = self.participants.as_mut() {
                match all.iter_mut().find(|p| p.member == record.member) {
                    Some(existing) => *existing = record,
                    None => all.push(record),
                }
            }
        }
        for ((gtin, lot), regulator, reason) in staged.recalls {
            let state_key = StateKey::Recall { gtin, lot };
            let leaf = data_leaf_value(self.algorithm, 0, reason.as_bytes());
            self.state_updates.insert(state_key.key_hash(self.algorithm), Some(leaf));
            let StateKey::Recall { gtin, lot } = state_key else { unreachable!() };
            let mut record = Writer::with_capacity(72 + reason.len());
            record.u64(self.height).raw(tx_hash).raw(&regulator.0).raw(reason.as_bytes());
            self.batch.put(layout::recall_key(&id, &gtin, &lot), record.into_bytes());
            self.recalled.insert((gtin, lot));
        }
        if let Some(note) = staged.seal {
            let leaf = data_leaf_value(self.algorithm, self.height, note.as_bytes());
            self.state_updates.insert(StateKey::Sealed.key_hash(self.algorithm), Some(leaf));
            let mut record = Writer::with_capacity(40 + note.len());
            record.u64(self.height).raw(tx_hash).raw(note.as_bytes());
            self.batch.put(layout::meta_key(&id, META_SEALED), record.into_bytes());
            self.sealed = true;
        }
        for ((account, topic), sequence, payload) in staged.events {
            let next = self.next_event.as_mut().expect("loaded by stage for a block with events");
            let number = *next;
            *next += 1;
            let leaf = data_leaf_value(self.algorithm, sequence, &payload);
            let state_key = StateKey::EventTopic { account, topic };
            self.state_updates.insert(state_key.key_hash(self.algorithm), Some(leaf));
            let StateKey::EventTopic { account, topic } = state_key else { unreachable!() };
            self.batch.put(
                layout::event_topic_key(&id, &account, &topic, sequence),
                number.to_be_bytes().to_vec(),
            );
            let record = EventRecord {
                number,
                height: self.height,
                tx_hash: *tx_hash,
                sequence,
                payload,
                account: account.clone(),
                topic: topic.clone(),
            };
            self.batch.put(layout::event_key(&id, number), record.encode());
            self.topic_lengths.insert((account, topic), sequence + 1);
        }
    }

    fn finish(
        mut self,
        timestamp_ms: u64,
        proposer: Address,
    ) -> Result<ExecutedBlock, EngineError> {
        let id = self.ledger.id;
        let reader =
            StateReader { store: &self.ledger.store, ledger: id, cache: Some(&self.ledger.nodes) };
        let updates: Vec<_> = std::mem::take(&mut self.state_updates).into_iter().collect();
        let state_started = std::time::Instant::now();
        let mut state_nodes = state::FreshNodes::default();
        let state_root = if updates.is_empty() {
            // Nothing changed: the root stays, carried forward as this height's version.
            state::carry_root_forward(&reader, self.height, &mut self.batch, &mut state_nodes)
                .map_err(EngineError::State)?;
            self.ledger.head.state_root
        } else {
            state::apply_updates(
                self.algorithm,
                &reader,
                self.height,
                updates,
                &mut self.batch,
                &mut state_nodes,
            )
            .map_err(EngineError::State)?
        };
        let state_root_time = state_started.elapsed();
        // The transaction tree by chunks: the root from the chunk roots, and the chunk
        // roots kept (large blocks) so an inclusion proof hashes one chunk.
        let leaves = txroot::leaf_hashes(self.algorithm, &self.entries);
        let chunk_roots = txroot::chunk_roots(self.algorithm, &leaves);
        let tx_root = txroot::root_of_leaves(self.algorithm, &chunk_roots);
        if chunk_roots.len() > 1 {
            self.batch.put(layout::tx_chunks_key(&id, self.height), chunk_roots.concat());
        }
        let header = BlockHeader {
            ledger_id: id,
            height: self.height,
            previous_hash: self.ledger.head.block_hash,
            tx_root,
            state_root,
            timestamp_ms,
            proposer,
        };
        let hash = header.hash(self.algorithm);
        let block = StoredBlock { header, hash, transactions: self.entries };
        self.batch.put(layout::block_key(&id, self.height), block.encode());
        self.batch.put(layout::block_by_hash_key(&id, &hash), self.height.to_be_bytes().to_vec());
        let head = Head { height: self.height, block_hash: hash, state_root };
        // The head moves by compare-and-swap: a second writer of this ledger (another
        // process on the same TiKV keyspace) fails with a conflict instead of forking it.
        self.batch.expect(layout::meta_key(&id, META_HEAD), Some(encode_head(&self.ledger.head)));
        self.batch.put(layout::meta_key(&id, META_HEAD), encode_head(&head));
        Ok(ExecutedBlock { block, batch: self.batch, state_root_time, state_nodes })
    }
}
