//! The storage SPI (`KvStore`) and its in-memory implementation.
//!
//! A ledger maps onto a sorted key–value space. Backends implement five things: get,
//! multi-get, a bounded range scan in either direction, and an atomic, durable write
//! batch (optionally also an unsynced write and a later `sync`, which by default are a
//! durable write and nothing). This crate never depends on a backend;
//! `storage-rocksdb` (embedded default) and `storage-tikv` implement the trait, and
//! `conformance` is the one test suite every implementation runs, so a backend (or the
//! in-memory one) cannot drift from the others.

use std::collections::BTreeMap;
use std::ops::Bound;

use parking_lot::RwLock;

/// Why a storage call failed. These are operating conditions (I/O, a dead cluster), not
/// bugs: callers return them, never panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend reported an I/O or internal error.
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The backend did not answer in time.
    #[error("storage timeout after {0} ms")]
    Timeout(u64),
    /// The store was opened read-only or is closed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A batch's expectation did not hold (another writer changed the key): nothing of
    /// the batch was written.
    #[error("write conflict: {0}")]
    Conflict(String),
}

/// One change in a write batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` (absent keys are fine).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

/// Changes applied atomically by `KvStore::write`: all of them or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
    bytes: usize,
    expected: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Room for `additional` more ops without reallocating (a block's batch holds a few
    /// thousand).
    pub fn reserve(&mut self, additional: usize) {
        self.ops.reserve(additional);
    }

    /// Adds a put.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.bytes += key.len() + value.len();
        self.ops.push(WriteOp::Put { key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.bytes += key.len();
        self.ops.push(WriteOp::Delete { key });
    }

    /// Makes the batch conditional: it applies only if `key` holds `value` (`None`:
    /// absent) when it is written, checked atomically with the write — a compare-and-swap.
    /// Otherwise the store writes nothing and returns [`StoreError::Conflict`]. The ledger
    /// head moves this way, so two writers can never both advance one ledger.
    pub fn expect(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.expected.push((key, value));
    }

    /// The expectations ([`WriteBatch::expect`]), in the order added.
    pub fn expectations(&self) -> &[(Vec<u8>, Option<Vec<u8>>)] {
        &self.expected
    }

    /// The changes, in the order added (later ones win for the same key).
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Total key and value bytes (for metrics and the bytes-per-transaction figure).
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }
}

/// Entries returned by a scan: `(key, value)` pairs in scan order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Direction of a range scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending keys from `start`.
    Forward,
    /// Descending keys from just below `end`.
    Reverse,
}

/// Sorted, durable key–value storage. Keys compare as byte strings.
pub trait KvStore: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The values of `keys`, in order.
    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|key| self.get(key)).collect()
    }

    /// Up to `limit` entries with `start <= key < end`, in `direction` order.
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        limit: usize,
    ) -> Result<Entries, StoreError>;

    /// Applies every change in `batch` atomically and durably: when this returns `Ok`,
    /// the whole batch survives a crash; when it fails or the process dies, none of it
    /// is visible.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Applies every change in `batch` atomically, visible to reads at once but durable
    /// only after the next [`KvStore::sync`]: a crash before that may lose this batch
    /// and every later one, in order, but never part of a batch. The default, for
    /// backends whose every write is durable (the in-memory store, TiKV), is `write`.
    ///
    /// What the caller must do: report nothing written this way as committed (to a
    /// client, to consensus, to a peer) until a `sync` that began after this call
    /// returned `Ok`.
    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write(batch)
    }

    /// Makes every batch that `write_unsynced` returned before this call durable. Safe to
    /// call from another thread while writes go on. An error means the store cannot say
    /// what reached the disk: the caller must stop writing and reopen (a failed fsync
    /// is not retried).
    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Health figures of the backend for monitoring (`/metrics`); all `None` when it has
    /// none (the in-memory store).
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Writes a consistent, point-in-time copy of the whole store into the new directory
    /// `dir` while writes go on (an online backup): every write batch is in it entirely
    /// or not at all, so each ledger is at one committed height. Backends without one
    /// say so.
    fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
        let _ = dir;
        Err(StoreError::Unavailable("this storage backend has no online checkpoint".into()))
    }
}

/// Checks `batch`'s expectations against current values read with `get` (the caller
/// holds whatever makes the check and its write atomic).
pub fn check_expectations(
    batch: &WriteBatch,
    mut get: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, StoreError>,
) -> Result<(), StoreError> {
    for (key, expected) in batch.expectations() {
        let current = get(key)?;
        if current != *expected {
            return Err(expectation_failed(key, expected.as_deref(), current.as_deref()));
        }
    }
    Ok(())
}

/// The conflict a failed expectation reports (every backend words it alike).
pub fn expectation_failed(key: &[u8], expected: Option<&[u8]>, found: Option<&[u8]>) -> StoreError {
    let describe =
        |value: Option<&[u8]>| value.map_or("absent".into(), |v| format!("{} bytes", v.len()));
    StoreError::Conflict(format!(
        "key {} changed: expected {}, found {}",
        hex::encode(key),
        describe(expected),
        describe(found)
    ))
}

/// What a backend can tell monitoring about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Writes are stopped or delayed by the backend (RocksDB write stall).
    pub write_stalled: Option<bool>,
    /// Bytes compaction still has to rewrite.
    pub compaction_pending_bytes: Option<u64>,
    /// Free bytes on the file system holding the data.
    pub disk_available_bytes: Option<u64>,
}

/// The smallest key greater than every key starting with `prefix` (`None` when the
/// prefix is all `0xff`: scan to the end).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Up to `limit` entries whose key starts with `prefix`.
pub fn scan_prefix(
    store: &dyn KvStore,
    prefix: &[u8],
    direction: Direction,
    limit: usize,
) -> Result<Entries, StoreError> {
    match prefix_end(prefix) {
        Some(end) => store.scan(prefix, &end, direction, limit),
        // Every key of a ledger starts with its 32-byte id, never all 0xff in practice;
        // fall back to an explicit filter for completeness.
        None => Ok(store
            .scan(prefix, &[0xff; 64], direction, usize::MAX)?
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .collect()),
    }
}

/// An in-memory `KvStore` (a `BTreeMap` behind a lock). Not durable: for tests, the
/// embedded demo's `--memory` mode, and as the model the conformance suite compares to.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys (tests and size reports).
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    /// Total bytes of keys and values.
    pub fn size_bytes(&self) -> usize {
        self.map.read().iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

impl KvStore for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        if start >= end {
            return Ok(Vec::new());
        }
        let map = self.map.read();
        let range = map.range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
        let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(match direction {
            Direction::Forward => range.take(limit).map(clone).collect(),
            Direction::Reverse => range.rev().take(limit).map(clone).collect(),
        })
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut map = self.map.write();
        check_expectations(&batch, |key| Ok(map.get(key).cloned()))?;
        for op in batch.ops {
            match op {
                WriteOp::Put { key, value } => {
                    map.insert(key, value);
                }
                WriteOp::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }
}

/// Forwards to the shared store, so one store can back a ledger and, say, a verifier.
macro_rules! forward_kv_store {
    ($($wrapper:ty),*) => {$(
        impl<S: KvStore + ?Sized> KvStore for $wrapper {
            fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
                (**self).get(key)
            }
            fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
                (**self).multi_get(keys)
            }
            fn scan(
                &self,
                start: &[u8],
                end: &[u8],
                direction: Direction,
                limit: usize,
            ) -> Result<Entries, StoreError> {
                (**self).scan(start, end, direction, limit)
            }
            fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
                (**self).write(batch)
            }
            fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
                (**self).write_unsynced(batch)
            }
            fn sync(&self) -> Result<(), StoreError> {
                (**self).sync()
            }
            fn stats(&self) -> StoreStats {
                (**self).stats()
            }
            fn checkpoint(&self, dir: &std::path::Path) -> Result<(), StoreError> {
                (**self).checkpoint(dir)
            }
        }
    )*};
}
forward_kv_store!(std::sync::Arc<S>, &S);
