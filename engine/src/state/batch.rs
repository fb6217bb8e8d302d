//! The state tree's batched insert: jmt's `batch_put_value_sets` rebuilt on the stored
//! bytes, without jmt's in-memory machinery.
//!
//! jmt's batched insert keeps every node it reads or builds in a `HashMap<NodeKey,
//! Node>` (SipHash over a heap-allocated path), moves them into a `BTreeMap` for the
//! batch, tracks stale nodes polyledger never prunes, decodes each read node into boxed
//! children and encodes each new one again. Inside a block's execution that machinery
//! cost more than the hashing it organised (perf/RESULTS.md). Here a block's update walks
//! the tree once, reading each node's bytes (node cache, then store) straight into a
//! fixed array of children, collects the new nodes in one vector, hashes them a depth
//! at a time (`merkle_hashes`, each width of each depth in one `hash_many` call) and
//! writes their borsh bytes directly.
//!
//! The tree is jmt's, node for node and byte for byte (the same shape rules, the same
//! encodings: `docs/FORMAT.md`), so jmt reads it for proofs and the per-key path (which
//! can delete) keeps working on it. The property test `state::tests::
//! batched_and_per_key_updates_build_the_same_tree` compares both paths' roots and
//! every written byte.
//!
//! The shape rules, as in jmt 0.12 (`batch_insert_at`,
//! `batch_create_subtree_with_existing_leaf`, `batch_create_subtree`): a key goes to the
//! slot of its next nibble; an empty slot gets a leaf; a leaf in the slot with the same
//! key is replaced; a leaf with another key moves down under new internal nodes to the
//! first depth where the keys' nibbles differ (a new internal node for every shared
//! nibble); every node on a changed path is rewritten with the new version.

use super::{FreshNodes, NodeCache, PLACEHOLDER_HASH, StateReader, merkle_hashes};
use crate::codec::pair_message;
use crate::layout;
use crate::model::Hash32;
use crate::store::WriteBatch;
use crypto_parallel::HashAlgorithm;

/// borsh enum tags of `jmt::storage::Node`.
const NULL: u8 = 0;
const INTERNAL: u8 = 1;
pub(super) const LEAF: u8 = 2;
/// borsh(`jmt::storage::Node::Leaf`): the tag, the key hash, the value hash. A leaf's
/// record is these bytes followed by the leaf value (`docs/FORMAT.md` §9).
pub(super) const LEAF_NODE_LEN: usize = 65;

/// Nibbles in a 32-byte key: no path is longer.
const MAX_DEPTH: usize = 64;

/// A child entry of a stored internal node (`jmt::Child`).
#[derive(Clone, Copy)]
struct Child {
    hash: Hash32,
    version: u64,
    /// `None` for a leaf; the leaves under an internal node.
    leaf_count: Option<u64>,
}

/// A node as stored.
enum Stored {
    Null,
    Leaf(Leaf),
    Internal(Box<[Option<Child>; 16]>),
}

/// A stored leaf.
struct Leaf {
    key_hash: Hash32,
    value_hash: Hash32,
    /// The leaf value (its hash is `value_hash`), stored after the node.
    value: Vec<u8>,
    /// Its hash, when its parent's entry held it.
    hash: Option<Hash32>,
}

/// A child of a new internal node: kept from the node it replaces, or new (its index in
/// `Update::nodes`).
#[derive(Clone, Copy)]
enum NewChild {
    Kept(Child),
    New { index: usize, leaf_count: Option<u64> },
}

enum Body {
    /// `hash`: known for a leaf moved down (its parent's entry held it); `moved`: the
    /// value of a leaf moved down (`None`: a new value, in the update).
    Leaf { key_hash: Hash32, value_hash: Hash32, hash: Option<Hash32>, moved: Option<Vec<u8>> },
    /// `replaces`: the version of the stored internal node at the same path that this
    /// one rewrites (its inner hashes may be cached).
    Internal { children: Box<[Option<NewChild>; 16]>, leaf_count: u64, replaces: Option<u64> },
}

/// A new node: at `depth` nibbles on the path of `path_key` (any key under it).
struct NewNode {
    depth: usize,
    path_key: Hash32,
    body: Body,
}

/// The `depth`th nibble of `key`.
pub(super) fn nibble(key: &Hash32, depth: usize) -> usize {
    let byte = key[depth / 2];
    (if depth.is_multiple_of(2) { byte >> 4 } else { byte & 0x0f }) as usize
}

/// The `0x08` record key of a node: `ledger id | STATE_NODE |` borsh(`jmt::storage::NodeKey`)
/// (version u64 LE, nibble count u64 LE, path bytes: u32 LE length, then the nibbles two
/// to a byte, an odd last nibble in the high half), built in one buffer.
fn node_record_key(
    ledger: &crate::model::LedgerId,
    version: u64,
    depth: usize,
    path_key: &Hash32,
) -> Vec<u8> {
    let length = depth.div_ceil(2);
    let mut key = layout::prefixed(ledger, layout::Table::StateNode, 20 + length);
    key.extend_from_slice(&version.to_le_bytes());
    key.extend_from_slice(&(depth as u64).to_le_bytes());
    key.extend_from_slice(&(length as u32).to_le_bytes());
    key.extend_from_slice(&path_key[..length]);
    if depth % 2 == 1 {
        *key.last_mut().expect("an odd path has a byte") &= 0xf0;
    }
    key
}

/// Reads a node record: borsh(`jmt::storage::Node`), and after a leaf its value (at
/// least one byte: no leaf value is empty; none in a record written before values moved
/// into leaf records, `read` then finds it). Strict: every byte accounted for.
fn decode(bytes: &[u8]) -> Result<Stored, String> {
    let malformed = || "malformed state tree node".to_string();
    let mut at = 1;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let part = bytes.get(at..at + n).ok_or_else(malformed)?;
        at += n;
        Ok(part)
    };
    let u64_at = |part: &[u8]| u64::from_le_bytes(part.try_into().expect("8 bytes"));
    let node = match bytes.first() {
        Some(&NULL) => Stored::Null,
        Some(&LEAF) => {
            let key_hash = take(32)?.try_into().expect("32 bytes");
            let value_hash = take(32)?.try_into().expect("32 bytes");
            let value = bytes[at..].to_vec();
            at = bytes.len();
            Stored::Leaf(Leaf { key_hash, value_hash, value, hash: None })
        }
        Some(&INTERNAL) => {
            let mut children = Box::new([None; 16]);
            let mut count = 0u64;
            for slot in children.iter_mut() {
                match take(1)?[0] {
                    0 => {}
                    1 => {
                        let hash = take(32)?.try_into().expect("32 bytes");
                        let version = u64_at(take(8)?);
                        let leaf_count = match take(1)?[0] {
                            0 => None,
                            1 => Some(u64_at(take(8)?)),
                            _ => return Err(malformed()),
                        };
                        *slot = Some(Child { hash, version, leaf_count });
                        count += 1;
                    }
                    _ => return Err(malformed()),
                }
            }
            if u64_at(take(8)?) != count {
                return Err(malformed());
            }
            take(8)?; // leaf count, recomputed when the node is rewritten
            Stored::Internal(children)
        }
        _ => return Err(malformed()),
    };
    if at != bytes.len() {
        return Err(malformed());
    }
    Ok(node)
}

/// One block's tree update in progress.
struct Update<'r, 'a> {
    reader: &'r StateReader<'a>,
    nodes: Vec<NewNode>,
    /// Stored nodes below the node cache, read ahead (`prefetch`), by record key; each
    /// is taken out when the update reaches it.
    prefetched: Prefetched,
    /// Nodes read from the store (read ahead or one by one).
    store_reads: usize,
}

/// Node records by record key.
type Prefetched = std::collections::HashMap<Vec<u8>, Vec<u8>, foldhash::fast::RandomState>;

/// The node cache of the last update read at least this many nodes from the store: the
/// next update reads its nodes below the cache ahead, a depth at a time (`prefetch`).
const PREFETCH_AFTER_STORE_READS: usize = 64;

/// The node of `version` at the path of the first `depth` nibbles of `path_key`: from
/// the node cache, else the store.
fn read(
    reader: &StateReader<'_>,
    version: u64,
    depth: usize,
    path_key: &Hash32,
) -> Result<Stored, String> {
    read_with(reader, version, depth, path_key, |key| {
        reader.store.get(key).map_err(|e| e.to_string())
    })
}

/// `read`, with `fetch` reading a node record the cache does not hold.
fn read_with(
    reader: &StateReader<'_>,
    version: u64,
    depth: usize,
    path_key: &Hash32,
    fetch: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, String>,
) -> Result<Stored, String> {
    let context = |error: String| format!("{error} (version {version}, depth {depth})");
    let slot = NodeCache::slot_of_key(depth, path_key);
    let cached = reader.cache.and_then(|cache| cache.get_slot(slot?, version));
    let mut stored = match cached {
        Some(bytes) => decode(bytes).map_err(context)?,
        None => {
            let key = node_record_key(&reader.ledger, version, depth, path_key);
            match fetch(&key).map_err(context)? {
                Some(bytes) => decode(&bytes).map_err(context)?,
                None => return Err(context("state tree node is missing".into())),
            }
        }
    };
    // (A root leaf of the earlier layout carried forward by an empty block reaches the
    // cache as it was stored, without its value.)
    if let Stored::Leaf(leaf) = &mut stored
        && leaf.value.is_empty()
    {
        leaf.value = retired_value(reader, version, &leaf.key_hash).map_err(context)?;
    }
    Ok(stored)
}

/// A stored `0x08` record (`key`, `value`) in the current layout: a leaf record written
/// before leaf values moved into leaf records gets its value from the retired table, as
/// `read` does; any other record is unchanged.
pub(super) fn in_current_layout(
    reader: &StateReader<'_>,
    key: &[u8],
    mut value: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let node_version = key.get(layout::TABLE_PREFIX_LEN..layout::TABLE_PREFIX_LEN + 8);
    if value.len() == LEAF_NODE_LEN
        && value[0] == LEAF
        && let Some(version) = node_version
    {
        let version = u64::from_le_bytes(version.try_into().expect("8 bytes"));
        let key_hash: Hash32 = value[1..33].try_into().expect("32 bytes");
        value.extend_from_slice(&retired_value(reader, version, &key_hash)?);
    }
    Ok(value)
}

/// The value of a leaf written before leaf values moved into leaf records: the newest
/// record of `key_hash` at most `version` (the leaf's own) in the retired `0x09` table.
fn retired_value(
    reader: &StateReader<'_>,
    version: u64,
    key_hash: &Hash32,
) -> Result<Vec<u8>, String> {
    let start = layout::retired_state_value_key(&reader.ledger, key_hash, 0);
    let mut end = layout::retired_state_value_key(&reader.ledger, key_hash, version);
    end.push(0); // just past the record of `version`
    let found = reader
        .store
        .scan(&start, &end, crate::store::Direction::Reverse, 1)
        .map_err(|e| e.to_string())?;
    match found.first().map(|(_, record)| record.split_first()) {
        Some(Some((1, value))) if !value.is_empty() => Ok(value.to_vec()),
        _ => Err("state tree leaf has no value: none in its record, none in the retired \
                  0x09 table"
            .into()),
    }
}

/// The leaf value of `key_hash` in tree version `version` (`None`: not in the tree),
/// walked down from that version's root.
pub(super) fn leaf_value(
    reader: &StateReader<'_>,
    version: u64,
    key_hash: &Hash32,
) -> Result<Option<Vec<u8>>, String> {
    let (mut version, mut depth) = (version, 0);
    loop {
        match read(reader, version, depth, key_hash)? {
            Stored::Null => return Ok(None),
            Stored::Leaf(leaf) => return Ok((leaf.key_hash == *key_hash).then_some(leaf.value)),
            Stored::Internal(_) if depth >= MAX_DEPTH => {
                return Err(format!("an internal state tree node at depth {depth}"));
            }
            Stored::Internal(children) => match children[nibble(key_hash, depth)] {
                Some(child) => (version, depth) = (child.version, depth + 1),
                None => return Ok(None),
            },
        }
    }
}

/// The stored nodes that inserting `kvs` (sorted, distinct) into tree version `version`
/// will read and the node cache does not hold, read a depth at a time with one
/// multi-get each, rather than one point read per node as the update reaches it: a few
/// reads a block instead of one for every new key of a ledger larger than the cache
/// (on TiKV, each read is a network round trip). The walk follows the update's: from
/// the root, each group of keys into the child of its next nibble, down to leaves and
/// empty slots. A node the walk cannot find is left to the update, which reports it.
fn prefetch(
    reader: &StateReader<'_>,
    version: u64,
    kvs: &[(Hash32, Hash32)],
) -> Result<Prefetched, String> {
    let mut fetched = Prefetched::default();
    // (version, keys) of the nodes at `depth` that the update reads.
    let mut level: Vec<(u64, &[(Hash32, Hash32)])> = vec![(version, kvs)];
    let mut depth = 0;
    while !level.is_empty() && depth < MAX_DEPTH {
        let cached = |version: u64, path_key: &Hash32| {
            let slot = NodeCache::slot_of_key(depth, path_key)?;
            reader.cache?.get_slot(slot, version)
        };
        // Each node of the level: its cached bytes, or its place among the missing.
        let mut missing: Vec<Vec<u8>> = Vec::new();
        let sources: Vec<Result<&[u8], usize>> = level
            .iter()
            .map(|(version, group)| {
                cached(*version, &group[0].0).ok_or_else(|| {
                    missing.push(node_record_key(&reader.ledger, *version, depth, &group[0].0));
                    missing.len() - 1
                })
            })
            .collect();
        let values = if missing.is_empty() {
            Vec::new()
        } else {
            let keys: Vec<&[u8]> = missing.iter().map(Vec::as_slice).collect();
            reader.store.multi_get(&keys).map_err(|e| e.to_string())?
        };
        let mut next = Vec::new();
        for ((_, group), source) in level.into_iter().zip(sources) {
            let bytes = match source {
                Ok(bytes) => bytes,
                Err(at) => match &values[at] {
                    Some(bytes) => bytes.as_slice(),
                    None => continue,
                },
            };
            // Leaves, empty slots and undecodable nodes end the walk here.
            if let Ok(Stored::Internal(children)) = decode(bytes) {
                for group in groups(group, depth) {
                    if let Some(child) = children[nibble(&group[0].0, depth)] {
                        next.push((child.version, group));
                    }
                }
            }
        }
        fetched
            .extend(missing.into_iter().zip(values).filter_map(|(key, value)| Some((key, value?))));
        level = next;
        depth += 1;
    }
    Ok(fetched)
}

impl Update<'_, '_> {
    /// `read`, taking a node read ahead if there is one.
    fn read(&mut self, version: u64, depth: usize, path_key: &Hash32) -> Result<Stored, String> {
        let (reader, prefetched, store_reads) =
            (self.reader, &mut self.prefetched, &mut self.store_reads);
        read_with(reader, version, depth, path_key, |key| {
            *store_reads += 1;
            match prefetched.remove(key) {
                Some(bytes) => Ok(Some(bytes)),
                None => reader.store.get(key).map_err(|e| e.to_string()),
            }
        })
    }

    fn push(&mut self, depth: usize, path_key: Hash32, body: Body) -> NewChild {
        let leaf_count = match &body {
            Body::Leaf { .. } => None,
            Body::Internal { leaf_count, .. } => Some(*leaf_count),
        };
        self.nodes.push(NewNode { depth, path_key, body });
        NewChild::New { index: self.nodes.len() - 1, leaf_count }
    }

    /// Adds a leaf with a new value (in the update).
    fn push_new_leaf(&mut self, depth: usize, key_hash: Hash32, value_hash: Hash32) -> NewChild {
        let body = Body::Leaf { key_hash, value_hash, hash: None, moved: None };
        self.push(depth, key_hash, body)
    }

    /// Adds `children` as an internal node (rewriting the one of version `replaces`).
    fn push_internal(
        &mut self,
        depth: usize,
        path_key: Hash32,
        children: [Option<NewChild>; 16],
        replaces: Option<u64>,
    ) -> NewChild {
        let leaf_count = children
            .iter()
            .flatten()
            .map(|child| match child {
                NewChild::Kept(Child { leaf_count, .. }) | NewChild::New { leaf_count, .. } => {
                    leaf_count.unwrap_or(1)
                }
            })
            .sum();
        let body = Body::Internal { children: Box::new(children), leaf_count, replaces };
        self.push(depth, path_key, body)
    }

    /// `kvs` (sorted, distinct, sharing their first `depth` nibbles) into the subtree
    /// whose root is the stored node of `version` at that path (`batch_insert_at`).
    fn insert_at(
        &mut self,
        version: u64,
        depth: usize,
        kvs: &[(Hash32, Hash32)],
        hash: Option<Hash32>,
    ) -> Result<NewChild, String> {
        match self.read(version, depth, &kvs[0].0)? {
            Stored::Internal(_) if depth >= MAX_DEPTH => {
                Err(format!("an internal state tree node at depth {depth}"))
            }
            Stored::Internal(children) => {
                let mut new = children.map(|child| child.map(NewChild::Kept));
                for group in groups(kvs, depth) {
                    let index = nibble(&group[0].0, depth);
                    new[index] = Some(match children[index] {
                        Some(child) => {
                            self.insert_at(child.version, depth + 1, group, Some(child.hash))?
                        }
                        None => self.create_subtree(depth + 1, group)?,
                    });
                }
                Ok(self.push_internal(depth, kvs[0].0, new, Some(version)))
            }
            Stored::Leaf(leaf) => self.with_existing_leaf(depth, &Leaf { hash, ..leaf }, kvs),
            Stored::Null if depth == 0 => self.create_subtree(0, kvs),
            Stored::Null => Err(format!("a null state tree node at depth {depth}")),
        }
    }

    /// `kvs` into the slot of a stored leaf (`batch_create_subtree_with_existing_leaf`).
    fn with_existing_leaf(
        &mut self,
        depth: usize,
        leaf: &Leaf,
        kvs: &[(Hash32, Hash32)],
    ) -> Result<NewChild, String> {
        let leaf_key = leaf.key_hash;
        if let [(key_hash, value_hash)] = kvs
            && *key_hash == leaf_key
        {
            return Ok(self.push_new_leaf(depth, *key_hash, *value_hash));
        }
        if depth >= MAX_DEPTH {
            return Err("state tree keys share every nibble".into());
        }
        let bucket = nibble(&leaf_key, depth);
        let mut children = [None; 16];
        for group in groups(kvs, depth) {
            let index = nibble(&group[0].0, depth);
            children[index] = Some(if index == bucket {
                self.with_existing_leaf(depth + 1, leaf, group)?
            } else {
                self.create_subtree(depth + 1, group)?
            });
        }
        if children[bucket].is_none() {
            let body = Body::Leaf {
                key_hash: leaf_key,
                value_hash: leaf.value_hash,
                hash: leaf.hash,
                moved: Some(leaf.value.clone()),
            };
            children[bucket] = Some(self.push(depth + 1, leaf_key, body));
        }
        Ok(self.push_internal(depth, kvs[0].0, children, None))
    }

    /// A new subtree of `kvs` (`batch_create_subtree`).
    fn create_subtree(
        &mut self,
        depth: usize,
        kvs: &[(Hash32, Hash32)],
    ) -> Result<NewChild, String> {
        if let [(key_hash, value_hash)] = kvs {
            return Ok(self.push_new_leaf(depth, *key_hash, *value_hash));
        }
        if depth >= MAX_DEPTH {
            return Err("state tree keys share every nibble".into());
        }
        let mut children = [None; 16];
        for group in groups(kvs, depth) {
            children[nibble(&group[0].0, depth)] = Some(self.create_subtree(depth + 1, group)?);
        }
        Ok(self.push_internal(depth, kvs[0].0, children, None))
    }
}

/// `kvs` split into runs with the same nibble at `depth` (jmt's `NibbleRangeIterator`).
fn groups(kvs: &[(Hash32, Hash32)], depth: usize) -> impl Iterator<Item = &[(Hash32, Hash32)]> {
    kvs.chunk_by(move |a, b| nibble(&a.0, depth) == nibble(&b.0, depth))
}

/// borsh(`jmt::storage::Node::Internal`) of `children` with their final `hashes`.
fn encode_internal(
    children: &[Option<NewChild>; 16],
    hashes: &[Hash32; 16],
    version: u64,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + 16 * 50 + 16);
    bytes.push(INTERNAL);
    let (mut count, mut leaves) = (0u64, 0u64);
    for (child, hash) in children.iter().zip(hashes) {
        let Some(child) = child else {
            bytes.push(0);
            continue;
        };
        let (child_version, leaf_count) = match child {
            NewChild::Kept(kept) => (kept.version, kept.leaf_count),
            NewChild::New { leaf_count, .. } => (version, *leaf_count),
        };
        bytes.push(1);
        bytes.extend_from_slice(hash);
        bytes.extend_from_slice(&child_version.to_le_bytes());
        match leaf_count {
            None => bytes.push(0),
            Some(n) => {
                bytes.push(1);
                bytes.extend_from_slice(&n.to_le_bytes());
            }
        }
        count += 1;
        leaves += leaf_count.unwrap_or(1);
    }
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&leaves.to_le_bytes());
    bytes
}

/// Sets `updates` (key hash → value; a key given twice keeps its last value) as tree
/// version `version`, on top of version `version - 1` (or the empty tree for version 0);
/// adds the new nodes (each leaf with its value) to `batch` and the upper nodes to
/// `fresh`; returns the new root hash.
pub(super) fn apply(
    algorithm: HashAlgorithm,
    reader: &StateReader<'_>,
    version: u64,
    mut updates: Vec<(Hash32, Vec<u8>)>,
    batch: &mut WriteBatch,
    fresh: &mut FreshNodes,
) -> Result<Hash32, String> {
    if updates.is_empty() {
        return Err("a state update needs at least one key".into());
    }
    // Sorted by key, the last value of a key kept (jmt collects into a `BTreeMap`).
    updates.reverse();
    updates.sort_by_key(|update| update.0);
    updates.dedup_by(|later, first| later.0 == first.0);
    let value_hashes = crypto_parallel::hash_many(
        algorithm,
        &updates.iter().map(|(_, value)| value.as_slice()).collect::<Vec<_>>(),
    );
    let kvs: Vec<(Hash32, Hash32)> = updates
        .iter()
        .zip(&value_hashes)
        .map(|((key, _), value_hash)| (*key, *value_hash.as_bytes()))
        .collect();

    let mut update = Update {
        reader,
        nodes: Vec::with_capacity(3 * kvs.len()),
        prefetched: Prefetched::default(),
        store_reads: 0,
    };
    let root = if version == 0 {
        update.create_subtree(0, &kvs)?
    } else {
        // Only when the last update read many nodes from the store (a ledger larger
        // than the cache, or a cache not yet filled): otherwise the walk ahead, through
        // cached nodes, costs more than the point reads it saves.
        if reader.cache.is_none_or(|cache| cache.store_reads() >= PREFETCH_AFTER_STORE_READS) {
            update.prefetched = prefetch(reader, version - 1, &kvs)?;
        }
        let root = update.insert_at(version - 1, 0, &kvs, None)?;
        if let Some(cache) = reader.cache {
            cache.set_store_reads(update.store_reads);
        }
        root
    };
    let NewChild::New { index: root, .. } = root else {
        unreachable!("an update always writes a new root")
    };
    let nodes = update.nodes;

    // Leaf hashes: every new leaf, and a moved leaf whose hash was not in a parent entry.
    let mut hashes = vec![PLACEHOLDER_HASH; nodes.len()];
    let mut to_hash = Vec::new();
    let mut messages: Vec<[u8; 77]> = Vec::new();
    let mut deepest = 0;
    for (index, node) in nodes.iter().enumerate() {
        deepest = deepest.max(node.depth);
        if let Body::Leaf { key_hash, value_hash, hash, .. } = &node.body {
            match hash {
                Some(hash) => hashes[index] = *hash,
                None => {
                    to_hash.push(index);
                    messages.push(pair_message(
                        jmt::proof::LEAF_DOMAIN_SEPARATOR,
                        key_hash,
                        value_hash,
                    ));
                }
            }
        }
    }
    for (index, hash) in to_hash.into_iter().zip(crypto_parallel::hash_many(algorithm, &messages)) {
        hashes[index] = *hash.as_bytes();
    }

    // Internal nodes a depth at a time, deepest first: a child is one deeper than its
    // parent, so its hash is known when the parent's depth is hashed.
    let mut by_depth: Vec<Vec<usize>> = vec![Vec::new(); deepest + 1];
    for (index, node) in nodes.iter().enumerate() {
        if matches!(node.body, Body::Internal { .. }) {
            by_depth[node.depth].push(index);
        }
    }
    fresh.reserve(
        nodes.iter().filter(|node| node.depth <= NodeCache::DEPTH).count(),
        by_depth.iter().take(NodeCache::INNER_DEPTH + 1).map(Vec::len).sum(),
    );
    let mut encoded: Vec<Option<Vec<u8>>> = (0..nodes.len()).map(|_| None).collect();
    let cache = reader.cache;
    for indices in by_depth.iter().rev() {
        // The cached inner hashes of the nodes rewritten, and which of their slots
        // changed (a new child; a kept one is the same).
        let prior: Vec<Option<(&super::InnerHashes, u16)>> = indices
            .iter()
            .map(|&index| {
                let node = &nodes[index];
                let Body::Internal { children, replaces: Some(replaces), .. } = &node.body else {
                    return None;
                };
                if node.depth > NodeCache::INNER_DEPTH {
                    return None;
                }
                let slot = NodeCache::slot_of_key(node.depth, &node.path_key)?;
                let earlier = cache?.get_inner(slot, *replaces)?;
                let changed =
                    children.iter().enumerate().fold(0u16, |changed, (at, child)| match child {
                        Some(NewChild::New { .. }) => changed | 1 << at,
                        _ => changed,
                    });
                Some((earlier, changed))
            })
            .collect();
        let slots: Vec<(u16, u16, [Hash32; 16])> = indices
            .iter()
            .map(|&index| {
                let Body::Internal { children, .. } = &nodes[index].body else {
                    unreachable!("indexed as internal")
                };
                let (mut exist, mut leaf) = (0u16, 0u16);
                let mut child_hashes = [PLACEHOLDER_HASH; 16];
                for (slot, child) in children.iter().enumerate() {
                    let Some(child) = child else { continue };
                    exist |= 1 << slot;
                    let (hash, leaf_count) = match child {
                        NewChild::Kept(kept) => (kept.hash, kept.leaf_count),
                        NewChild::New { index, leaf_count } => (hashes[*index], *leaf_count),
                    };
                    if leaf_count.is_none() {
                        leaf |= 1 << slot;
                    }
                    child_hashes[slot] = hash;
                }
                (exist, leaf, child_hashes)
            })
            .collect();
        for ((&index, (_, _, child_hashes)), inner) in
            indices.iter().zip(&slots).zip(merkle_hashes(algorithm, &slots, &prior))
        {
            let node = &nodes[index];
            hashes[index] = inner[14];
            if node.depth <= NodeCache::INNER_DEPTH
                && let Some(slot) = NodeCache::slot_of_key(node.depth, &node.path_key)
            {
                fresh.offer_inner(slot, version, inner);
            }
            let Body::Internal { children, .. } = &nodes[index].body else {
                unreachable!("indexed as internal")
            };
            encoded[index] = Some(encode_internal(children, child_hashes, version));
        }
    }

    for (node, bytes) in nodes.iter().zip(encoded) {
        let bytes = match (&node.body, bytes) {
            (_, Some(bytes)) => bytes,
            (Body::Leaf { key_hash, value_hash, moved, .. }, None) => {
                let value = match moved {
                    Some(value) => value.as_slice(),
                    None => {
                        let at = updates
                            .binary_search_by_key(key_hash, |(key, _)| *key)
                            .expect("a new leaf's key is in the update");
                        updates[at].1.as_slice()
                    }
                };
                let mut bytes = Vec::with_capacity(LEAF_NODE_LEN + value.len());
                bytes.push(LEAF);
                bytes.extend_from_slice(key_hash);
                bytes.extend_from_slice(value_hash);
                bytes.extend_from_slice(value);
                bytes
            }
            (Body::Internal { .. }, None) => unreachable!("every internal node is encoded"),
        };
        if let Some(slot) = NodeCache::slot_of_key(node.depth, &node.path_key) {
            fresh.offer_slot(slot, version, &bytes);
        }
        batch.put(node_record_key(&reader.ledger, version, node.depth, &node.path_key), bytes);
    }
    Ok(hashes[root])
}
