//! Authenticated state: a Jellyfish Merkle Tree (`jmt` crate) over the ledger's current
//! state, one tree version per block height, hashed with the ledger's hash algorithm.
//!
//! Leaves (`docs/FORMAT.md` §9): the tree key is `H(preimage)`, where the preimage names
//! the record (`StateKey`); the leaf value is the record's state value (for data: the
//! version and the hash of the value, so the tree stays small however large values are).
//! Nodes live in the ledger's `STATE_NODE` table, each leaf's record followed by its leaf
//! value, and are written in the block's commit batch. Old versions are kept: proofs can
//! be asked for any height.

mod batch;

use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, SimpleHasher, Version};

use crate::codec::pair_message;
use crate::layout;
use crate::model::{Address, Hash32, LedgerId};
use crate::store::{KvStore, WriteBatch};
use crypto_parallel::HashAlgorithm;

/// `jmt` hasher over SM3.
pub struct Sm3Tree(crypto_parallel::Hasher);
/// `jmt` hasher over SHA-256.
pub struct Sha256Tree(crypto_parallel::Hasher);

macro_rules! tree_hasher {
    ($name:ident, $algorithm:expr) => {
        impl SimpleHasher for $name {
            fn new() -> Self {
                $name(crypto_parallel::Hasher::new($algorithm))
            }
            fn update(&mut self, data: &[u8]) {
                self.0.update(data);
            }
            fn finalize(self) -> [u8; 32] {
                *self.0.finalize().as_bytes()
            }
        }
    };
}
tree_hasher!(Sm3Tree, HashAlgorithm::Sm3);
tree_hasher!(Sha256Tree, HashAlgorithm::Sha256);

/// Runs `$body` with `$H` bound to the tree hasher of `$algorithm`.
macro_rules! with_tree_hasher {
    ($algorithm:expr, $H:ident => $body:expr) => {
        match $algorithm {
            crypto_parallel::HashAlgorithm::Sm3 => {
                type $H = $crate::state::Sm3Tree;
                $body
            }
            crypto_parallel::HashAlgorithm::Sha256 => {
                type $H = $crate::state::Sha256Tree;
                $body
            }
        }
    };
}
pub(crate) use with_tree_hasher;

/// What a state leaf is about. Its canonical bytes are the tree key's preimage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKey {
    /// A user account (value: the public key's binary form).
    User(Address),
    /// A data account (value: the owner's address).
    DataAccount(String),
    /// A key in a data account (value: version u64 ‖ hash of the value).
    Data {
        /// Data account name.
        account: String,
        /// Key within it.
        key: Vec<u8>,
    },
    /// An event account (value: the owner's address).
    EventAccount(String),
    /// An event topic (value: sequence u64 of its latest event ‖ hash of that event's
    /// payload).
    EventTopic {
        /// Event account name.
        account: String,
        /// Topic.
        topic: String,
    },
    /// A role (value: permissions u32).
    Role(String),
    /// A user's roles (value: the `USER_ROLES` record).
    UserRoles(Address),
    /// A write grant (value: `0x01`).
    DataAccess {
        /// Data account.
        account: String,
        /// The user allowed to write it.
        grantee: Address,
    },
    /// A consensus participant, by member number (value: its `PARTICIPANT` record).
    Participant(u64),
    /// A recall of a GTIN's lot (value: `0u64 ‖ H(reason)`).
    Recall {
        /// GTIN-14.
        gtin: String,
        /// Lot/batch.
        lot: String,
    },
    /// The ledger's seal (value: `sealing height u64 ‖ H(note)`).
    Sealed,
}

impl StateKey {
    /// Preimage: `0x01 ‖ address`, `0x02 ‖ name`, `0x03 ‖ u16 len ‖ name ‖ u16 len ‖
    /// key`, `0x04 ‖ name`, `0x05 ‖ u16 len ‖ account ‖ u16 len ‖ topic` or `0x06 ‖ u16 len ‖ gtin ‖ u16
    /// len ‖ lot`, `0x07 ‖ role name`, `0x08 ‖ address` or `0x09 ‖ u16 len ‖ account ‖ u16
    /// len (32) ‖ grantee`, `0x0a ‖ member u64`, `0x0b` (the seal).
    pub fn preimage(&self) -> Vec<u8> {
        match self {
            StateKey::User(address) => [&[0x01][..], &address.0].concat(),
            StateKey::DataAccount(name) => [&[0x02][..], name.as_bytes()].concat(),
            StateKey::Data { account, key } => data_key_preimage(account, key),
            StateKey::EventAccount(name) => [&[0x04][..], name.as_bytes()].concat(),
            StateKey::EventTopic { account, topic } => {
                tagged_pair(0x05, account.as_bytes(), topic.as_bytes())
            }
            StateKey::Recall { gtin, lot } => tagged_pair(0x06, gtin.as_bytes(), lot.as_bytes()),
            StateKey::Role(name) => [&[0x07][..], name.as_bytes()].concat(),
            StateKey::UserRoles(address) => [&[0x08][..], &address.0].concat(),
            StateKey::DataAccess { account, grantee } => {
                tagged_pair(0x09, account.as_bytes(), &grantee.0)
            }
            StateKey::Participant(member) => [&[0x0a][..], &member.to_be_bytes()].concat(),
            StateKey::Sealed => vec![0x0b],
        }
    }

    /// The tree key: `H(preimage)`.
    pub fn key_hash(&self, algorithm: HashAlgorithm) -> Hash32 {
        *crypto_parallel::hash(algorithm, &self.preimage()).as_bytes()
    }
}

/// The preimage of a data key (`StateKey::Data`), without building the `StateKey`.
pub fn data_key_preimage(account: &str, key: &[u8]) -> Vec<u8> {
    tagged_pair(0x03, account.as_bytes(), key)
}

/// `tag ‖ u16 len ‖ first ‖ u16 len ‖ second`.
fn tagged_pair(tag: u8, first: &[u8], second: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(5 + first.len() + second.len());
    bytes.push(tag);
    bytes.extend_from_slice(&(first.len() as u16).to_be_bytes());
    bytes.extend_from_slice(first);
    bytes.extend_from_slice(&(second.len() as u16).to_be_bytes());
    bytes.extend_from_slice(second);
    bytes
}

/// The state leaf value of a data key: `version u64 ‖ H(value)`.
pub fn data_leaf_value(algorithm: HashAlgorithm, version: u64, value: &[u8]) -> Vec<u8> {
    data_leaf_from_hash(version, crypto_parallel::hash(algorithm, value).as_bytes())
}

/// The same from the value's hash.
pub fn data_leaf_from_hash(version: u64, value_hash: &Hash32) -> Vec<u8> {
    let mut leaf = Vec::with_capacity(40);
    leaf.extend_from_slice(&version.to_be_bytes());
    leaf.extend_from_slice(value_hash);
    leaf
}

/// Reads tree nodes (and the leaf values stored with them) of one ledger from a `KvStore`.
pub struct StateReader<'a> {
    /// The store.
    pub store: &'a dyn KvStore,
    /// The ledger.
    pub ledger: LedgerId,
    /// Nodes near the root that this process committed (`NodeCache`), looked up before
    /// the store.
    pub cache: Option<&'a NodeCache>,
}

impl<'a> StateReader<'a> {
    /// A reader of `ledger` on `store`, without a node cache.
    pub fn new(store: &'a dyn KvStore, ledger: LedgerId) -> Self {
        StateReader { store, ledger, cache: None }
    }
}

/// The newest tree nodes at most [`NodeCache::DEPTH`] nibbles below the root, as the
/// ledger handle that commits wrote them (borsh bytes, hashes filled in).
///
/// Every block rewrites the nodes on its keys' paths, and the next block's update reads
/// most of the upper ones again: with 1,000 keys per block, the root, all 16 nodes of
/// depth 1, nearly all 256 of depth 2 and a quarter of depth 3. Below the cached depths
/// a new key meets the node in its slot (a leaf to move down, or a subtree), written by
/// any earlier block. From the store each is a point read (a memtable search, or an SST
/// read once the memtable flushed). A node key (version, path) names one node forever
/// (versions are block heights, and a committed height is never rewritten), so a cached
/// node is never stale: a lookup for another version of the same path simply misses.
/// Only nodes of committed blocks enter it (`Ledger::commit`), never a block that was
/// executed and then dropped (a `bft` proposal that lost), whose nodes would share
/// version numbers with the block that replaced it.
///
/// One slot per path (an array indexed by the path's nibbles, no hashing): at most
/// 1 + 16 + 256 + 4,096 + 65,536 = 69,905 nodes. A ledger of up to a few hundred
/// thousand keys has leaves (~0.1 KiB) at depth 4, a ledger of millions full internal
/// nodes (up to ~0.8 KiB): about 1.6 MiB of slots plus at most ~55 MiB of nodes per
/// committing ledger handle; a small ledger has only as many as its tree.
#[derive(Default)]
pub struct NodeCache {
    /// `slot(path)` → the newest node at that path: (version, borsh bytes).
    nodes: Vec<Option<(Version, Box<[u8]>)>>,
    /// For the internal nodes within [`NodeCache::INNER_DEPTH`]: the hashes inside the
    /// node (`InnerHashes`), by slot, so the next block rehashes only the ranges whose
    /// children changed.
    inner: Vec<Option<(Version, InnerHashes)>>,
    /// How many nodes the last update through this cache read from the store.
    store_reads: StoreReads,
}

/// Nodes the last update read from the store; unknown (`usize::MAX`: many) before the
/// first update, whose cache is empty.
struct StoreReads(std::sync::atomic::AtomicUsize);

impl Default for StoreReads {
    fn default() -> Self {
        StoreReads(std::sync::atomic::AtomicUsize::new(usize::MAX))
    }
}

/// The hashes inside an internal node's 16-way node, a 4-level binary tree over its
/// slots: the 8 ranges of width 2, the 4 of width 4, the 2 of width 8, then the node's
/// own hash (width 16).
pub(crate) type InnerHashes = [Hash32; 15];

impl NodeCache {
    /// How many nibbles below the root the cache reaches.
    pub const DEPTH: usize = 4;
    /// How deep internal nodes keep their inner hashes: 1 + 16 + 256 + 4,096 nodes of
    /// 480 bytes, ~2 MiB. Nodes down to depth 3 are full in a ledger of ~60,000 keys and
    /// up, and a block changes one or two children of most depth-3 nodes: 4 or 5
    /// hashes instead of 15.
    pub const INNER_DEPTH: usize = 3;
    const INNER_SLOTS: usize = ((1 << (4 * (Self::INNER_DEPTH + 1))) - 1) / 15;
    /// Paths of at most `DEPTH` nibbles: 1 + 16 + ... + 16^DEPTH.
    const SLOTS: usize = ((1 << (4 * (Self::DEPTH + 1))) - 1) / 15;

    /// The slot of the path of the first `depth` nibbles of `key`, if at most `DEPTH`.
    pub(crate) fn slot_of_key(depth: usize, key: &Hash32) -> Option<usize> {
        Self::slot((0..depth).map(|i| batch::nibble(key, i)), depth)
    }

    /// `slot_of_key` for a jmt path.
    fn slot_of_path(path: &jmt::storage::NibblePath) -> Option<usize> {
        Self::slot(path.nibbles().map(|nibble| u8::from(nibble) as usize), path.num_nibbles())
    }

    /// Paths of `depth` nibbles follow the `(16^depth - 1) / 15` shorter ones, in nibble
    /// order.
    fn slot(nibbles: impl Iterator<Item = usize>, depth: usize) -> Option<usize> {
        if depth > Self::DEPTH {
            return None;
        }
        let index = nibbles.fold(0, |index, nibble| index * 16 + nibble);
        Some(((1usize << (4 * depth)) - 1) / 15 + index)
    }

    /// The node of `version` in `slot`, if it is the one cached there.
    pub(crate) fn get_slot(&self, slot: usize, version: Version) -> Option<&[u8]> {
        match self.nodes.get(slot)? {
            Some((cached, bytes)) if *cached == version => Some(bytes),
            _ => None,
        }
    }

    /// The inner hashes of the internal node of `version` in `slot`, if cached.
    pub(crate) fn get_inner(&self, slot: usize, version: Version) -> Option<&InnerHashes> {
        match self.inner.get(slot)? {
            Some((cached, hashes)) if *cached == version => Some(hashes),
            _ => None,
        }
    }

    fn get(&self, node_key: &NodeKey) -> Option<&[u8]> {
        self.get_slot(Self::slot_of_path(node_key.nibble_path())?, node_key.version())
    }

    /// How many nodes the last update through this cache read from the store.
    pub(crate) fn store_reads(&self) -> usize {
        self.store_reads.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_store_reads(&self, reads: usize) {
        self.store_reads.0.store(reads, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes a committed block's new upper nodes.
    pub fn insert(&mut self, fresh: FreshNodes) {
        if !fresh.nodes.is_empty() && self.nodes.is_empty() {
            self.nodes.resize_with(Self::SLOTS, || None);
        }
        for (slot, version, bytes) in fresh.nodes {
            self.nodes[slot] = Some((version, bytes));
        }
        if !fresh.inner.is_empty() && self.inner.is_empty() {
            self.inner.resize_with(Self::INNER_SLOTS, || None);
        }
        for (slot, version, hashes) in fresh.inner {
            self.inner[slot] = Some((version, hashes));
        }
    }
}

/// A block's new nodes within [`NodeCache::DEPTH`] of the root (slot, version, bytes)
/// and the inner hashes of its internal nodes within [`NodeCache::INNER_DEPTH`], for
/// the cache once the block commits.
#[derive(Debug, Default)]
pub struct FreshNodes {
    nodes: Vec<(usize, Version, Box<[u8]>)>,
    inner: Vec<(usize, Version, InnerHashes)>,
}

impl FreshNodes {
    fn offer(&mut self, node_key: &NodeKey, bytes: &[u8]) {
        if let Some(slot) = NodeCache::slot_of_path(node_key.nibble_path()) {
            self.offer_slot(slot, node_key.version(), bytes);
        }
    }

    /// Room for `nodes` more nodes and `inner` more inner hashes.
    pub(crate) fn reserve(&mut self, nodes: usize, inner: usize) {
        self.nodes.reserve(nodes);
        self.inner.reserve(inner);
    }

    pub(crate) fn offer_slot(&mut self, slot: usize, version: Version, bytes: &[u8]) {
        self.nodes.push((slot, version, bytes.into()));
    }

    pub(crate) fn offer_inner(&mut self, slot: usize, version: Version, hashes: InnerHashes) {
        self.inner.push((slot, version, hashes));
    }
}

// `jmt`'s reader trait speaks `anyhow`; errors are turned into our types at the edge
// (`apply_updates`, `prove`), so `anyhow` never appears in this crate's public API.
impl StateReader<'_> {
    /// The record of `node_key` as stored (a leaf's with its value): node cache, then
    /// store.
    fn node_record(&self, node_key: &NodeKey) -> Result<Option<Vec<u8>>, String> {
        if let Some(bytes) = self.cache.and_then(|cache| cache.get(node_key)) {
            return Ok(Some(bytes.to_vec()));
        }
        let key = layout::state_node_key(
            &self.ledger,
            &borsh::to_vec(node_key).map_err(|e| e.to_string())?,
        );
        self.store.get(&key).map_err(|e| e.to_string())
    }
}

/// A stored state node record (`key` in table `0x08` of `ledger`) as the current layout
/// writes it: a leaf record written before leaf values moved into leaf records gets its
/// value from the retired `0x09` table. For `verify_ledger`, which compares stored
/// records with a replay's.
pub(crate) fn node_record_in_current_layout(
    store: &dyn KvStore,
    ledger: LedgerId,
    key: &[u8],
    value: Vec<u8>,
) -> Result<Vec<u8>, String> {
    batch::in_current_layout(&StateReader::new(store, ledger), key, value)
}

/// The node of a node record: the whole record, or for a leaf the bytes before its
/// value (none in a leaf record written before values moved into leaf records).
fn node_of_record(bytes: &[u8]) -> anyhow::Result<Node> {
    let node = match bytes.first() {
        Some(&batch::LEAF) if bytes.len() > batch::LEAF_NODE_LEN => &bytes[..batch::LEAF_NODE_LEN],
        _ => bytes,
    };
    Ok(borsh::from_slice(node)?)
}

impl TreeReader for StateReader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.node_record(node_key).map_err(anyhow::Error::msg)? {
            Some(bytes) => Ok(Some(node_of_record(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The value stored with the leaf of `key_hash` in tree version `max_version` (jmt
    /// asks for it once a proof's walk found that leaf): the walk again, from the root.
    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        batch::leaf_value(self, max_version, &key_hash.0).map_err(anyhow::Error::msg)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only used by jmt's snapshot restore, which polyledger does not use (replicas
        // catch up from blocks).
        Err(anyhow::anyhow!("get_rightmost_leaf is not supported"))
    }
}

/// Adds the nodes of jmt's update to tree version `version` to `batch`, each leaf with
/// its value; the upper nodes also go to `fresh`. A new leaf's value is in the update; a
/// leaf jmt moved (a split below it, or a deletion beside it) keeps the value it has in
/// version `version - 1`.
fn write_node_batch(
    reader: &StateReader<'_>,
    version: u64,
    node_batch: &NodeBatch,
    batch: &mut WriteBatch,
    fresh: &mut FreshNodes,
) -> Result<(), String> {
    let values: std::collections::HashMap<Hash32, &[u8]> = node_batch
        .values()
        .iter()
        .filter(|((at, _), _)| *at == version)
        .filter_map(|((_, key_hash), value)| Some((key_hash.0, value.as_deref()?)))
        .collect();
    for (node_key, node) in node_batch.nodes() {
        let key = borsh::to_vec(node_key).expect("in-memory borsh encoding cannot fail");
        let mut value = borsh::to_vec(node).expect("in-memory borsh encoding cannot fail");
        if let Node::Leaf(leaf) = node {
            let key_hash = leaf.key_hash().0;
            let leaf_value = match values.get(&key_hash) {
                Some(new) => new.to_vec(),
                None => version
                    .checked_sub(1)
                    .map(|previous| batch::leaf_value(reader, previous, &key_hash))
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| {
                        format!("the value of a leaf moved in tree version {version} is missing")
                    })?,
            };
            value.extend_from_slice(&leaf_value);
        }
        fresh.offer(node_key, &value);
        batch.put(layout::state_node_key(&reader.ledger, &key), value);
    }
    Ok(())
}

/// Applies `updates` as tree version `height` and adds the new nodes to `batch` (the
/// upper ones also to `fresh`, for the node cache); returns the new root.
pub fn apply_updates(
    algorithm: HashAlgorithm,
    reader: &StateReader<'_>,
    height: u64,
    updates: Vec<(Hash32, Option<Vec<u8>>)>,
    batch: &mut WriteBatch,
    fresh: &mut FreshNodes,
) -> Result<Hash32, String> {
    // jmt's batched insert needs at least one key and cannot delete.
    let batched = !updates.is_empty() && updates.iter().all(|(_, value)| value.is_some());
    apply_updates_with(algorithm, reader, height, updates, batch, fresh, batched)
}

/// `apply_updates`, choosing jmt's algorithm: `batched` (every update must set a value)
/// builds each rewritten node once per block and hashes it once; otherwise every key is
/// inserted from the root on its own, which rehashes the whole path (a 16-way node is up
/// to 15 hashes) once per key. Both give the same tree, node for node; jmt's batched
/// insert cannot delete, so blocks with a deletion take the per-key path.
fn apply_updates_with(
    algorithm: HashAlgorithm,
    reader: &StateReader<'_>,
    height: u64,
    updates: Vec<(Hash32, Option<Vec<u8>>)>,
    batch: &mut WriteBatch,
    fresh: &mut FreshNodes,
    batched: bool,
) -> Result<Hash32, String> {
    if updates.iter().any(|(_, value)| value.as_ref().is_some_and(|value| value.is_empty())) {
        return Err("a state leaf value cannot be empty".into());
    }
    require_previous_root(reader, height)?;
    if batched {
        let mut values = Vec::with_capacity(updates.len());
        for (key, value) in updates {
            values.push((key, value.ok_or("the batched state update cannot delete a key")?));
        }
        return batch::apply(algorithm, reader, height, values, batch, fresh);
    }
    with_tree_hasher!(algorithm, H => {
        let tree = JellyfishMerkleTree::<_, H>::new(reader);
        let (root, update) = tree
            .put_value_set(updates.into_iter().map(|(k, v)| (KeyHash(k), v)), height)
            .map_err(|e| format!("state tree update failed: {e:#}"))?;
        write_node_batch(reader, height, &update.node_batch, batch, fresh)?;
        Ok(root.0)
    })
}

/// jmt's hash of an empty subtree (`SPARSE_MERKLE_PLACEHOLDER_HASH`, not exported).
const PLACEHOLDER_HASH: [u8; 32] = *b"SPARSE_MERKLE_PLACEHOLDER_HASH__";

/// The hashes of internal nodes given as (existence bitmap, leaf bitmap, the 16 child
/// hashes), all nodes' ranges of one width hashed together; each node's `InnerHashes`
/// (its own hash last). With `prior` for a node (the inner hashes of the node it
/// replaces, and a bitmap of the slots whose child changed), a range without a changed
/// slot keeps its earlier hash.
fn merkle_hashes(
    algorithm: HashAlgorithm,
    nodes: &[(u16, u16, [Hash32; 16])],
    prior: &[Option<(&InnerHashes, u16)>],
) -> Vec<InnerHashes> {
    debug_assert_eq!(nodes.len(), prior.len());
    // Width 1: the child's hash, or the placeholder (already in the slots). Each wider
    // range's hash goes where its left half's was: range `r` of width `w` reads slots
    // `2r` and `2r + 1` of width `w / 2` and writes slot `r`, and ranges are visited in
    // ascending order, so a slot is read before it is overwritten (one array per node,
    // none per width).
    let mut level: Vec<[Hash32; 16]> = nodes.iter().map(|(_, _, children)| *children).collect();
    let mut inner = vec![[PLACEHOLDER_HASH; 15]; nodes.len()];
    let mut messages = Vec::new();
    let mut targets = Vec::new();
    let (mut width, mut offset) = (2, 0);
    while width <= 16 {
        messages.clear();
        targets.clear();
        for (n, (exist, leaf, children)) in nodes.iter().enumerate() {
            for range in 0..16 / width {
                let mask = (((1u32 << width) - 1) << (range * width)) as u16;
                if let Some((earlier, changed)) = prior[n]
                    && changed & mask == 0
                {
                    level[n][range] = earlier[offset + range];
                    continue;
                }
                let (exist, leaf) = (exist & mask, leaf & mask);
                level[n][range] = if exist == 0 {
                    PLACEHOLDER_HASH
                } else if exist.count_ones() == 1 && leaf != 0 {
                    children[exist.trailing_zeros() as usize]
                } else {
                    messages.push(pair_message::<80>(
                        jmt::proof::INTERNAL_DOMAIN_SEPARATOR,
                        &level[n][2 * range],
                        &level[n][2 * range + 1],
                    ));
                    targets.push((n, range));
                    continue;
                };
            }
        }
        for ((n, range), hash) in
            targets.iter().zip(crypto_parallel::hash_many(algorithm, &messages))
        {
            level[*n][*range] = *hash.as_bytes();
        }
        for (n, ranges) in level.iter().enumerate() {
            inner[n][offset..offset + 16 / width].copy_from_slice(&ranges[..16 / width]);
        }
        offset += 16 / width;
        width *= 2;
    }
    inner
}

/// The key of tree version `version`'s root node.
fn root_key(version: u64) -> NodeKey {
    // jmt exposes no constructor for an empty nibble path; build the root key from its
    // borsh form: version u64 LE, nibble count u64 LE = 0, path bytes u32 LE = 0.
    let mut bytes = version.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 12]);
    borsh::from_slice(&bytes).expect("well-formed root node key")
}

/// Fails unless tree version `height - 1` has a root. jmt treats a missing root as an
/// EMPTY tree, so without this check a lost root would silently drop the whole state
/// from the next root instead of failing.
fn require_previous_root(reader: &StateReader<'_>, height: u64) -> Result<(), String> {
    if height == 0 {
        return Ok(());
    }
    match reader.get_node_option(&root_key(height - 1)) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("state tree root of height {} is missing", height - 1)),
        Err(error) => Err(format!("state tree root of height {}: {error}", height - 1)),
    }
}

/// Makes tree version `height` equal to version `height - 1` when a block changes no
/// state: jmt looks up the root of version `v - 1` when writing version `v`, and proofs
/// at `v` need a root at `v`, so every height gets one. The root node is copied under the
/// new version's root key (its children keep pointing at their own versions; a root
/// leaf keeps its value), byte for byte.
pub fn carry_root_forward(
    reader: &StateReader<'_>,
    height: u64,
    batch: &mut WriteBatch,
    fresh: &mut FreshNodes,
) -> Result<(), String> {
    assert!(height > 0, "genesis always writes a tree version");
    let context = |error: String| format!("state tree root of height {}: {error}", height - 1);
    let record = reader
        .node_record(&root_key(height - 1))
        .map_err(context)?
        .ok_or_else(|| format!("state tree root of height {} is missing", height - 1))?;
    node_of_record(&record).map_err(|e| context(e.to_string()))?;
    let key = borsh::to_vec(&root_key(height)).expect("in-memory borsh encoding cannot fail");
    fresh.offer(&root_key(height), &record);
    batch.put(layout::state_node_key(&reader.ledger, &key), record);
    Ok(())
}

/// The tree value and the proof (borsh-encoded `SparseMerkleProof`) of `key_hash` at
/// `height`.
pub fn prove(
    algorithm: HashAlgorithm,
    reader: &StateReader<'_>,
    height: u64,
    key_hash: Hash32,
) -> Result<(Option<Vec<u8>>, Vec<u8>), String> {
    // jmt reports any failure to read the root as a pruned version: a corrupt root is
    // named here first.
    if let Some(record) = reader.node_record(&root_key(height))? {
        node_of_record(&record).map_err(|e| format!("state tree root of height {height}: {e}"))?;
    }
    with_tree_hasher!(algorithm, H => {
        let tree = JellyfishMerkleTree::<_, H>::new(reader);
        let (value, proof) = tree
            .get_with_proof(KeyHash(key_hash), height)
            .map_err(|e| format!("state proof failed: {e:#}"))?;
        let proof = borsh::to_vec(&proof).map_err(|e| e.to_string())?;
        Ok((value, proof))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use proptest::prelude::*;

    /// A tree key from a small id: ids divisible by 4 share their first 20 bits in
    /// groups of 16 (leaves split deep in the tree), the others spread out.
    fn tree_key(id: u16) -> Hash32 {
        let mut key = *crypto_parallel::hash(HashAlgorithm::Sm3, &id.to_be_bytes()).as_bytes();
        if id.is_multiple_of(4) {
            key[..3].copy_from_slice(&[0xab, 0xcd, 0xe0 | (id as u8 >> 4 & 0x0f)]);
        }
        key
    }

    fn sorted_ops(batch: &WriteBatch) -> Vec<crate::store::WriteOp> {
        let mut ops = batch.ops().to_vec();
        ops.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        ops
    }

    fn commit(store: &MemoryStore, batch: WriteBatch) {
        store.write(batch).unwrap();
    }

    /// `apply_updates` on an SM3 tree: the root and the batch it wrote.
    fn update(
        reader: &StateReader<'_>,
        height: u64,
        updates: Vec<(Hash32, Option<Vec<u8>>)>,
    ) -> Result<(Hash32, WriteBatch), String> {
        let mut batch = WriteBatch::new();
        let root = apply_updates(
            HashAlgorithm::Sm3,
            reader,
            height,
            updates,
            &mut batch,
            &mut FreshNodes::default(),
        )?;
        Ok((root, batch))
    }

    /// A one-key tree (key 1 = `[1, 2, 3]` at height 0) in the earlier layout: its
    /// root leaf record without the value, and with `retired` the value in the retired
    /// `0x09` table.
    fn earlier_layout_one_key(ledger: LedgerId, retired: bool) -> MemoryStore {
        let store = MemoryStore::new();
        let (_, batch) =
            update(&StateReader::new(&store, ledger), 0, vec![(tree_key(1), Some(vec![1, 2, 3]))])
                .unwrap();
        let [crate::store::WriteOp::Put { key, value }] = batch.ops() else {
            panic!("one key: one root leaf record")
        };
        assert_eq!(value.len(), batch::LEAF_NODE_LEN + 3);
        assert_eq!(&value[batch::LEAF_NODE_LEN..], &[1, 2, 3]);
        let mut earlier = WriteBatch::new();
        earlier.put(key.clone(), value[..batch::LEAF_NODE_LEN].to_vec());
        if retired {
            let value_key = layout::retired_state_value_key(&ledger, &tree_key(1), 0);
            earlier.put(value_key, vec![1, 1, 2, 3]);
        }
        commit(&store, earlier);
        store
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// jmt's batched insert (one hash per rewritten node per block) and its per-key
        /// insert give the same roots and write the same nodes and values, block after
        /// block, for new keys, rewritten keys and keys that split leaves deep down.
        #[test]
        fn batched_and_per_key_updates_build_the_same_tree(
            blocks in prop::collection::vec(
                prop::collection::btree_map(0u16..600, any::<u8>(), 1..120),
                1..6,
            ),
            algorithm in prop_oneof![Just(HashAlgorithm::Sm3), Just(HashAlgorithm::Sha256)],
        ) {
            let batched = MemoryStore::new();
            let per_key = MemoryStore::new();
            // Batched without a cache: every update reads its nodes ahead (`prefetch`).
            let ahead = MemoryStore::new();
            let ledger = LedgerId([7; 32]);
            // The batched side reads through a node cache, as the committing ledger
            // handle does; the per-key side reads only the store.
            let mut cache = NodeCache::default();
            // The model: every key's value after each height.
            let mut model = std::collections::BTreeMap::new();
            let mut models = Vec::new();
            for (height, block) in blocks.iter().enumerate() {
                let updates: Vec<(Hash32, Option<Vec<u8>>)> = block
                    .iter()
                    .map(|(id, value)| (tree_key(*id), Some(vec![*value; 1 + *value as usize % 40])))
                    .collect();
                let mut sorted = updates.clone();
                sorted.sort();
                let mut batch_a = WriteBatch::new();
                let mut fresh_a = FreshNodes::default();
                let reader_a = StateReader { store: &batched, ledger, cache: Some(&cache) };
                let root_a = apply_updates_with(
                    algorithm, &reader_a, height as u64, sorted.clone(), &mut batch_a,
                    &mut fresh_a, true,
                ).unwrap();
                let mut batch_c = WriteBatch::new();
                let root_c = apply_updates_with(
                    algorithm, &StateReader::new(&ahead, ledger), height as u64, sorted.clone(),
                    &mut batch_c, &mut FreshNodes::default(), true,
                ).unwrap();
                let mut batch_b = WriteBatch::new();
                let reader_b = StateReader::new(&per_key, ledger);
                let root_b = apply_updates_with(
                    algorithm, &reader_b, height as u64, sorted, &mut batch_b,
                    &mut FreshNodes::default(), false,
                ).unwrap();
                prop_assert_eq!(root_a, root_b);
                prop_assert_eq!(root_c, root_b);
                prop_assert_eq!(sorted_ops(&batch_a), sorted_ops(&batch_b));
                prop_assert_eq!(sorted_ops(&batch_c), sorted_ops(&batch_b));
                commit(&ahead, batch_c);
                // What the cache takes is what the store holds, byte for byte: every
                // written node within the cached depths, and nothing else.
                let mut written: Vec<(usize, u64, Box<[u8]>)> = batch_a
                    .ops()
                    .iter()
                    .filter_map(|op| match op {
                        crate::store::WriteOp::Put { key, value }
                            if key[32] == layout::Table::StateNode as u8 =>
                        {
                            let node_key: NodeKey = borsh::from_slice(&key[33..]).unwrap();
                            NodeCache::slot_of_path(node_key.nibble_path()).map(|slot| {
                                (slot, node_key.version(), value.clone().into_boxed_slice())
                            })
                        }
                        _ => None,
                    })
                    .collect();
                let mut offered = fresh_a.nodes.clone();
                written.sort();
                offered.sort();
                prop_assert!(!offered.is_empty());
                prop_assert_eq!(offered, written);
                commit(&batched, batch_a);
                commit(&per_key, batch_b);
                cache.insert(fresh_a);
                for (key, value) in updates {
                    model.insert(key, value.expect("no deletions here"));
                }
                models.push(model.clone());
            }
            // Proofs at every height through the cache equal the store's: an older
            // version of a cached path is never answered with the newer node.
            let reader_a = StateReader { store: &batched, ledger, cache: Some(&cache) };
            let reader_b = StateReader::new(&per_key, ledger);
            // Each proven value is the model's at that height: the value stored with
            // its leaf, also for a leaf moved down by a later split.
            for height in 0..blocks.len() as u64 {
                for id in (0u16..600).step_by(37) {
                    let proven = prove(algorithm, &reader_a, height, tree_key(id)).unwrap();
                    prop_assert_eq!(
                        proven.0.as_ref(),
                        models[height as usize].get(&tree_key(id))
                    );
                    prop_assert_eq!(
                        proven,
                        prove(algorithm, &reader_b, height, tree_key(id)).unwrap()
                    );
                }
            }
        }
    }

    /// A fake store that counts point reads and multi-gets (the read pattern of an
    /// update), over a `MemoryStore`.
    #[derive(Default)]
    struct CountingStore {
        inner: MemoryStore,
        gets: std::sync::atomic::AtomicUsize,
        multi_gets: std::sync::atomic::AtomicUsize,
        /// Keys asked for in all multi-gets.
        multi_got: std::sync::atomic::AtomicUsize,
    }

    impl KvStore for CountingStore {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.inner.get(key)
        }
        fn multi_get(
            &self,
            keys: &[&[u8]],
        ) -> Result<Vec<Option<Vec<u8>>>, crate::store::StoreError> {
            self.multi_gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.multi_got.fetch_add(keys.len(), std::sync::atomic::Ordering::Relaxed);
            keys.iter().map(|key| self.inner.get(key)).collect()
        }
        fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            direction: crate::store::Direction,
            limit: usize,
        ) -> Result<crate::store::Entries, crate::store::StoreError> {
            self.inner.scan(start, end, direction, limit)
        }
        fn write(&self, batch: WriteBatch) -> Result<(), crate::store::StoreError> {
            self.inner.write(batch)
        }
    }

    /// An update that reads many nodes from the store (here: no node cache, so every
    /// node) reads them a depth at a time, one multi-get each, not one point read per
    /// key; a ledger handle's cache that served the last update from memory is not
    /// walked ahead.
    #[test]
    fn nodes_below_the_cache_are_read_a_depth_at_a_time() {
        use std::sync::atomic::Ordering::Relaxed;
        let store = CountingStore::default();
        let ledger = LedgerId([7; 32]);
        let keys = |ids: std::ops::Range<u16>| -> Vec<(Hash32, Option<Vec<u8>>)> {
            ids.map(|id| (tree_key(id), Some(vec![id as u8 | 1]))).collect()
        };
        let reader = StateReader::new(&store, ledger);
        let (_, batch) = update(&reader, 0, keys(0..3_000)).unwrap();
        store.write(batch).unwrap();
        let (root, batch) = update(&reader, 1, keys(3_000..3_400)).unwrap();
        // One point read: the check that the previous root exists.
        assert_eq!(store.gets.load(Relaxed), 1, "a node read on its own");
        // Hundreds of nodes (every new key meets an existing path), in one multi-get
        // per depth: the tree is at most 9 deep (the ids divisible by 4 share their
        // first five nibbles, and split below).
        let multi_gets = store.multi_gets.swap(0, Relaxed);
        let nodes = store.multi_got.swap(0, Relaxed);
        assert!(multi_gets <= 10, "{multi_gets} multi-gets");
        assert!(nodes >= 400, "{nodes} nodes read ahead");
        // The same tree as the update that reads node by node (jmt's per-key path).
        let plain = MemoryStore::new();
        let plain_reader = StateReader::new(&plain, ledger);
        let (_, first) = update(&plain_reader, 0, keys(0..3_000)).unwrap();
        commit(&plain, first);
        let mut expected = WriteBatch::new();
        let mut updates = keys(3_000..3_400);
        updates.sort();
        let expected_root = apply_updates_with(
            HashAlgorithm::Sm3,
            &plain_reader,
            1,
            updates,
            &mut expected,
            &mut FreshNodes::default(),
            false,
        )
        .unwrap();
        assert_eq!(root, expected_root);
        assert_eq!(sorted_ops(&batch), sorted_ops(&expected));
        store.write(batch).unwrap();

        // Through a node cache that held everything the last update read: point reads
        // only for what is below it, no walk ahead.
        let mut cache = NodeCache::default();
        let cached = StateReader { store: &store, ledger, cache: Some(&cache) };
        let mut fresh = FreshNodes::default();
        let mut batch = WriteBatch::new();
        apply_updates(HashAlgorithm::Sm3, &cached, 2, keys(3_400..3_401), &mut batch, &mut fresh)
            .unwrap();
        // An empty cache: the update read ahead, and says how much it read.
        assert!(store.multi_gets.swap(0, Relaxed) > 0);
        assert!(cache.store_reads() >= 3, "{}", cache.store_reads());
        store.write(batch).unwrap();
        cache.insert(fresh);
        cache.set_store_reads(0);
        let cached = StateReader { store: &store, ledger, cache: Some(&cache) };
        let mut batch = WriteBatch::new();
        apply_updates(
            HashAlgorithm::Sm3,
            &cached,
            3,
            keys(3_401..3_402),
            &mut batch,
            &mut FreshNodes::default(),
        )
        .unwrap();
        assert_eq!(store.multi_gets.load(Relaxed), 0, "walked ahead through the cache");
    }

    /// A tree of one key has a leaf for its root: the batched update replaces it, splits
    /// it, and splits leaves that share 20 bits deep down, writing what jmt's per-key
    /// insert writes.
    #[test]
    fn a_root_leaf_is_replaced_and_split_as_jmt_does() {
        let batched = MemoryStore::new();
        let per_key = MemoryStore::new();
        let ledger = LedgerId([7; 32]);
        let blocks: [&[(u16, u8)]; 5] =
            [&[(1, 1)], &[(1, 2)], &[(2, 3)], &[(4, 4)], &[(8, 5), (1, 6), (12, 7)]];
        for (height, block) in blocks.iter().enumerate() {
            let updates: Vec<(Hash32, Option<Vec<u8>>)> =
                block.iter().map(|(id, value)| (tree_key(*id), Some(vec![*value]))).collect();
            let (mut batch_a, mut batch_b) = (WriteBatch::new(), WriteBatch::new());
            let root_a = apply_updates_with(
                HashAlgorithm::Sm3,
                &StateReader::new(&batched, ledger),
                height as u64,
                updates.clone(),
                &mut batch_a,
                &mut FreshNodes::default(),
                true,
            )
            .unwrap();
            let root_b = apply_updates_with(
                HashAlgorithm::Sm3,
                &StateReader::new(&per_key, ledger),
                height as u64,
                updates,
                &mut batch_b,
                &mut FreshNodes::default(),
                false,
            )
            .unwrap();
            assert_eq!(root_a, root_b, "height {height}");
            assert_eq!(sorted_ops(&batch_a), sorted_ops(&batch_b), "height {height}");
            commit(&batched, batch_a);
            commit(&per_key, batch_b);
        }
    }

    #[test]
    fn a_deletion_takes_the_per_key_path_and_the_batched_path_refuses_it() {
        let store = MemoryStore::new();
        let ledger = LedgerId([7; 32]);
        let reader = StateReader::new(&store, ledger);
        let (_, batch) =
            update(&reader, 0, vec![(tree_key(1), Some(vec![1])), (tree_key(2), Some(vec![2]))])
                .unwrap();
        commit(&store, batch);
        let deletion = vec![(tree_key(1), None)];
        let mut refused = WriteBatch::new();
        let error = apply_updates_with(
            HashAlgorithm::Sm3,
            &reader,
            1,
            deletion.clone(),
            &mut refused,
            &mut FreshNodes::default(),
            true,
        )
        .unwrap_err();
        assert!(error.contains("cannot delete"), "{error}");
        assert!(refused.is_empty());
        let (root, batch) = update(&reader, 1, deletion).unwrap();
        commit(&store, batch);
        // Only key 2 is left: the same root as a tree that only ever held key 2.
        let fresh = MemoryStore::new();
        let (only_two, _) =
            update(&StateReader::new(&fresh, ledger), 0, vec![(tree_key(2), Some(vec![2]))])
                .unwrap();
        assert_eq!(root, only_two);
        // Key 2's leaf moved up to the root beside the deletion, with its value.
        let (value, _) = prove(HashAlgorithm::Sm3, &reader, 1, tree_key(2)).unwrap();
        assert_eq!(value, Some(vec![2]));
        let (gone, _) = prove(HashAlgorithm::Sm3, &reader, 1, tree_key(1)).unwrap();
        assert_eq!(gone, None);
    }

    /// A one-key ledger of the earlier layout has a value-less root leaf; an empty block
    /// carries it forward byte for byte, into the node cache too. A split read through
    /// the cache still moves the leaf with its value from the retired table.
    #[test]
    fn a_carried_root_leaf_of_the_earlier_layout_keeps_its_value_through_the_cache() {
        let ledger = LedgerId([7; 32]);
        let store = earlier_layout_one_key(ledger, true);
        let mut cache = NodeCache::default();
        let mut fresh = FreshNodes::default();
        let mut batch = WriteBatch::new();
        let reader = StateReader { store: &store, ledger, cache: Some(&cache) };
        carry_root_forward(&reader, 1, &mut batch, &mut fresh).unwrap();
        commit(&store, batch);
        cache.insert(fresh);

        let reader = StateReader { store: &store, ledger, cache: Some(&cache) };
        let (value, _) = prove(HashAlgorithm::Sm3, &reader, 1, tree_key(1)).unwrap();
        assert_eq!(value, Some(vec![1, 2, 3]));
        let (_, batch) = update(&reader, 2, vec![(tree_key(2), Some(vec![2]))]).unwrap();
        let moved = batch.ops().iter().any(|op| {
            matches!(op, crate::store::WriteOp::Put { value, .. }
                if value[0] == batch::LEAF && value[batch::LEAF_NODE_LEN..] == [1, 2, 3])
        });
        assert!(moved, "key 1's leaf moved with its value");
        commit(&store, batch);
        let (value, _) = prove(HashAlgorithm::Sm3, &reader, 2, tree_key(1)).unwrap();
        assert_eq!(value, Some(vec![1, 2, 3]));
        let (value, _) =
            prove(HashAlgorithm::Sm3, &StateReader::new(&store, ledger), 2, tree_key(1)).unwrap();
        assert_eq!(value, Some(vec![1, 2, 3]));
    }

    /// A leaf's record is its node and then its value. A leaf record of the earlier
    /// layout (no value: it was kept in the retired `0x09` table) still reads its value
    /// from there, in proofs and when a split moves the leaf (which writes it in the
    /// new layout); with no value in either place it is an error, never an empty value.
    #[test]
    fn a_leaf_record_of_the_earlier_layout_reads_its_value_from_the_retired_table() {
        let ledger = LedgerId([7; 32]);
        let store = earlier_layout_one_key(ledger, true);
        let reader = StateReader::new(&store, ledger);
        let (value, _) = prove(HashAlgorithm::Sm3, &reader, 0, tree_key(1)).unwrap();
        assert_eq!(value, Some(vec![1, 2, 3]));
        // Key 2 splits the root leaf: key 1's leaf moves down, with its value.
        let (_, batch) = update(&reader, 1, vec![(tree_key(2), Some(vec![2]))]).unwrap();
        let leaves: Vec<&Vec<u8>> = batch
            .ops()
            .iter()
            .filter_map(|op| match op {
                crate::store::WriteOp::Put { value, .. } if value[0] == batch::LEAF => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(leaves.len(), 2, "the new leaf and the moved one");
        assert!(leaves.iter().all(|leaf| leaf.len() > batch::LEAF_NODE_LEN));
        commit(&store, batch);
        let (value, _) = prove(HashAlgorithm::Sm3, &reader, 1, tree_key(1)).unwrap();
        assert_eq!(value, Some(vec![1, 2, 3]));

        let store = earlier_layout_one_key(ledger, false);
        let reader = StateReader::new(&store, ledger);
        let error = prove(HashAlgorithm::Sm3, &reader, 0, tree_key(1)).unwrap_err();
        assert!(error.contains("has no value"), "{error}");
        let mut next = WriteBatch::new();
        let error = apply_updates(
            HashAlgorithm::Sm3,
            &reader,
            1,
            vec![(tree_key(2), Some(vec![2]))],
            &mut next,
            &mut FreshNodes::default(),
        )
        .unwrap_err();
        assert!(error.contains("has no value"), "{error}");
        let error = apply_updates(
            HashAlgorithm::Sm3,
            &reader,
            1,
            vec![(tree_key(2), Some(Vec::new()))],
            &mut next,
            &mut FreshNodes::default(),
        )
        .unwrap_err();
        assert!(error.contains("cannot be empty"), "{error}");
        assert!(next.is_empty());
    }
}
