//! `RocksStore`: the `KvStore` SPI on embedded RocksDB, polyledger's default storage.
//!
//! One RocksDB instance per node holds every ledger (each ledger is its own key range,
//! see `engine::layout`). Every `write` is one RocksDB `WriteBatch` written with
//! `sync = true`: when it returns, the batch is in the fsync'd WAL, so a committed block
//! survives a crash; a batch interrupted by a crash is not visible at all (RocksDB
//! replays only complete WAL records).
//!
//! Tuning (why each option): bloom filters on point lookups (transaction and user
//! look-ups are mostly point gets, many for absent keys); a 64 MiB write buffer so a
//! block's batch never stalls on a memtable switch; LZ4 for the bulk levels (cheap CPU,
//! ~2x on JSON-like values); `max_background_jobs` = cores so compaction keeps up under
//! sustained load.

use std::path::{Path, PathBuf};

use engine::store::{Direction, Entries, KvStore, StoreError, StoreStats, WriteBatch, WriteOp};
use rocksdb::{BlockBasedOptions, DB, IteratorMode, Options, ReadOptions, WriteOptions};

/// `KvStore` on an embedded RocksDB database.
pub struct RocksStore {
    db: DB,
    sync_writes: bool,
    path: PathBuf,
    /// Serialises conditional batches (`WriteBatch::expect`): check and write as one.
    conditional: std::sync::Mutex<()>,
}

fn backend(error: rocksdb::Error) -> StoreError {
    StoreError::Backend(error.into_string())
}

/// Options for `RocksStore::open_with`.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// fsync the WAL on every write batch (default `true`). Turning it off makes a crash
    /// lose the last committed blocks; only for benchmarks that say so.
    pub sync_writes: bool,
    /// Block cache size in bytes (default 256 MiB).
    pub block_cache_bytes: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions { sync_writes: true, block_cache_bytes: 256 << 20 }
    }
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &RocksOptions::default())
    }

    /// Opens (creating if needed) the database at `path`.
    pub fn open_with(path: &Path, options: &RocksOptions) -> Result<Self, StoreError> {
        keep_large_allocations_in_the_heap();
        // Inserts into the memtable start from the previous insert's position within the
        // same table (ledger id and table tag, `engine::layout`): a block's batch is
        // written in key order, so each key lands a short way after the one before,
        // rather than after a search from the top of the skip list. Settable only by
        // name (the C API has no setter).
        let mut db_options = Options::default()
            .get_options_from_string(format!(
                "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.{}",
                engine::layout::TABLE_PREFIX_LEN
            ))
            .map_err(|e| StoreError::Backend(format!("RocksDB options: {e}")))?;
        db_options.create_if_missing(true);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
        db_options.set_max_background_jobs(cores.max(2));
        db_options.set_write_buffer_size(64 << 20);
        db_options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        db_options.set_bytes_per_sync(1 << 20);
        // A Bloom filter over the memtable's whole keys: most point reads on the hot path
        // are for absent keys (a new transaction's hash, version 0 of a new key), and
        // without it each searches the whole skip list. 1% of the write buffer (~640 KiB,
        // over 20 bits per key). Measured: execute −2 µs/tx, commit +0.7 µs/tx, net +4–5%.
        db_options.set_memtable_whole_key_filtering(true);
        db_options.set_memtable_prefix_bloom_ratio(0.01);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        table.set_block_cache(&rocksdb::Cache::new_lru_cache(options.block_cache_bytes));
        table.set_cache_index_and_filter_blocks(true);
        db_options.set_block_based_table_factory(&table);
        // The default column family named at open, so `multi_get` has its handle.
        let column_family = rocksdb::ColumnFamilyDescriptor::new(
            rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
            db_options.clone(),
        );
        let db = DB::open_cf_descriptors(&db_options, path, [column_family]).map_err(|e| {
            StoreError::Unavailable(format!("cannot open RocksDB at {}: {}", path.display(), e))
        })?;
        Ok(RocksStore {
            db,
            sync_writes: options.sync_writes,
            path: path.to_path_buf(),
            conditional: std::sync::Mutex::new(()),
        })
    }

    /// Opens the database at `path` read-only (a backup, a stopped node's data): every
    /// write fails.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        let db = DB::open_for_read_only(&Options::default(), path, false).map_err(|e| {
            StoreError::Unavailable(format!("cannot open RocksDB at {}: {}", path.display(), e))
        })?;
        Ok(RocksStore {
            db,
            sync_writes: true,
            path: path.to_path_buf(),
            conditional: std::sync::Mutex::new(()),
        })
    }

    /// RocksDB's estimate of live data size in bytes (for size reports).
    pub fn live_data_bytes(&self) -> u64 {
        self.db.property_int_value("rocksdb.estimate-live-data-size").ok().flatten().unwrap_or(0)
    }

    /// Total size of the SST files on disk, in bytes (after `flush`, everything written).
    pub fn sst_files_bytes(&self) -> u64 {
        self.db.property_int_value("rocksdb.total-sst-files-size").ok().flatten().unwrap_or(0)
    }

    /// Flushes memtables to SST files (for size measurements and clean shutdowns).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(backend)
    }
}

/// Keeps glibc from giving RocksDB's large allocations their own `mmap` (once per
/// process, before the first store opens).
///
/// A block's RocksDB write batch (~1.5 MiB for 1,000 transactions) and the memtable's
/// arena blocks (write buffer / 8 = 8 MiB) are above glibc's default `mmap` threshold
/// (128 KiB, raised only as mapped chunks are freed). A mapped chunk is unmapped when
/// freed, so the next one is fresh memory that the kernel zero-fills page by page on
/// first touch: in `perf` of the commit loop, `clear_page_erms` was 19% of the engine
/// thread on the Zen 3 machine. Below a 32 MiB threshold (glibc's maximum) they come
/// from the heap and are reused; heap memory above 256 MiB free at its top is still
/// given back. The node's RSS then stays near its peak instead of following each
/// block. Rust allocations (mimalloc in the node) are not affected. Linux with glibc
/// only; elsewhere the allocator's defaults stay.
fn keep_large_allocations_in_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            #[allow(unsafe_code)] // two libc calls, justified below
            // SAFETY: `mallopt` only sets allocator parameters; both values are in the
            // range glibc accepts (it ignores and reports others, which is checked).
            let set = unsafe {
                (
                    libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20),
                    libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20),
                )
            };
            debug_assert_eq!(set, (1, 1), "glibc refused the malloc thresholds");
        });
    }
}

/// `ops` sorted by key, stably (a key written twice keeps its order).
fn key_order(ops: &[WriteOp]) -> Vec<&WriteOp> {
    fn op_key(op: &WriteOp) -> &[u8] {
        match op {
            WriteOp::Put { key, .. } | WriteOp::Delete { key } => key,
        }
    }
    sorted_positions(ops.len(), |at| op_key(&ops[at])).into_iter().map(|at| &ops[at]).collect()
}

/// The positions `0..count` sorted by `key(position)`, stably (equal keys keep their
/// order). Sorting references with a comparison of the keys chased a pointer per
/// comparison into ~4,400 scattered keys a block; here each position is first sorted by
/// 16 bytes of its key after the prefix all keys share (a block's: its ledger id), held
/// inline, and only positions with the same 16 bytes are compared in full. Measured: the
/// commit's CPU −0.6 µs/tx.
fn sorted_positions<'k>(count: usize, key: impl Fn(usize) -> &'k [u8]) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let first = key(0);
    let common = (1..count).fold(first.len(), |common, at| {
        let same = first[..common].iter().zip(key(at)).take_while(|(a, b)| a == b).count();
        common.min(same)
    });
    let prefix = |key: &[u8]| {
        let mut bytes = [0u8; 16];
        let rest = &key[common..];
        let n = rest.len().min(16);
        bytes[..n].copy_from_slice(&rest[..n]);
        u128::from_be_bytes(bytes)
    };
    let mut order: Vec<(u128, u32)> = (0..count).map(|at| (prefix(key(at)), at as u32)).collect();
    order.sort_unstable();
    // Equal prefixes (a shorter key padded with zeros among them): by the whole key,
    // then by position.
    for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            run.sort_unstable_by(|a, b| {
                key(a.1 as usize).cmp(key(b.1 as usize)).then(a.1.cmp(&b.1))
            });
        }
    }
    order.into_iter().map(|(_, at)| at as usize).collect()
}

impl KvStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(backend)
    }

    /// RocksDB's batched `MultiGet` with the keys given in order (`sorted_input`): it
    /// would otherwise sort them itself, comparing whole keys (a block's ~2,000 probe
    /// keys share their first 33 bytes), and the key-by-key API copies every key and
    /// value twice more.
    fn multi_get(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let Some(column_family) = self.db.cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME) else {
            // Opened read-only: the key-by-key API.
            return self.db.multi_get(keys).into_iter().map(|r| r.map_err(backend)).collect();
        };
        let order = sorted_positions(keys.len(), |at| keys[at]);
        let sorted: Vec<&[u8]> = order.iter().map(|&at| keys[at]).collect();
        let mut values = vec![None; keys.len()];
        for (at, found) in
            order.into_iter().zip(self.db.batched_multi_get_cf(column_family, sorted, true))
        {
            values[at] = found.map_err(backend)?.map(|value| value.to_vec());
        }
        Ok(values)
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        direction: Direction,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_lower_bound(start.to_vec());
        read_options.set_iterate_upper_bound(end.to_vec());
        let mode = match direction {
            Direction::Forward => IteratorMode::Start,
            Direction::Reverse => IteratorMode::End,
        };
        let mut entries = Vec::new();
        for item in self.db.iterator_opt(mode, read_options) {
            let (key, value) = item.map_err(backend)?;
            entries.push((key.into_vec(), value.into_vec()));
            if entries.len() >= limit {
                break;
            }
        }
        Ok(entries)
    }

    fn stats(&self) -> StoreStats {
        let property = |name: &str| self.db.property_int_value(name).ok().flatten();
        let stopped = property("rocksdb.is-write-stopped");
        let delayed = property("rocksdb.actual-delayed-write-rate");
        StoreStats {
            write_stalled: stopped.map(|stopped| stopped > 0 || delayed.unwrap_or(0) > 0),
            compaction_pending_bytes: property("rocksdb.estimate-pending-compaction-bytes"),
            disk_available_bytes: fs4::available_space(&self.path).ok(),
        }
    }

    /// A RocksDB checkpoint: SST files hard-linked (copied across file systems), the WAL
    /// copied, all at one sequence number; writes continue meanwhile.
    fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        if dir.exists() {
            return Err(StoreError::Unavailable(format!("{} already exists", dir.display())));
        }
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.db).map_err(backend)?;
        checkpoint.create_checkpoint(dir).map_err(backend)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write_batch(batch, self.sync_writes)
    }

    /// The batch goes into the WAL (the operating system's page cache) and the memtable;
    /// `sync` fsyncs the WAL later, on any thread.
    fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write_batch(batch, false)
    }

    /// RocksDB's `FlushWAL(sync = true)`: fsyncs every WAL file written so far, while
    /// other threads keep writing.
    fn sync(&self) -> Result<(), StoreError> {
        if !self.sync_writes {
            return Ok(());
        }
        self.db.flush_wal(true).map_err(backend)
    }
}

impl RocksStore {
    /// One RocksDB write batch, in key order; fsync'd before returning with `sync`.
    fn write_batch(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        let _serial = if batch.expectations().is_empty() {
            None
        } else {
            let guard = self.conditional.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            engine::store::check_expectations(&batch, |key| self.get(key))?;
            Some(guard)
        };
        // Sized up front (each record adds a tag and two varint lengths, ≤ 11 bytes, to
        // its key and value; 12 bytes of header): a block's ~1.5 MB batch is not
        // reallocated and copied as it grows.
        let mut rocks_batch =
            rocksdb::WriteBatch::with_capacity_bytes(12 + batch.size_bytes() + 11 * batch.len());
        // In key order (stable, so a key written twice keeps its last value): the
        // memtable's skip list starts each insert from where the previous one went
        // instead of from the top; in execution order that search was ~5% of the engine
        // thread in a profile of the commit bench.
        for op in key_order(batch.ops()) {
            match op {
                WriteOp::Put { key, value } => rocks_batch.put(key, value),
                WriteOp::Delete { key } => rocks_batch.delete(key),
            }
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(sync);
        self.db.write_opt(rocks_batch, &write_options).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key_order` is a stable sort by key: keys sharing long prefixes, keys that are
    /// prefixes of others or differ only in trailing zeros, duplicates (kept in their
    /// order), and batches whose keys share no prefix at all.
    #[test]
    fn key_order_is_a_stable_sort_by_key() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for shared in [0usize, 3, 32, 40] {
            let mut ops = Vec::new();
            for at in 0..3_000u32 {
                let mut key = vec![0xab; shared];
                let length = next(24) as usize;
                key.extend((0..length).map(|_| [0u8, 1, 0xff][next(3) as usize]));
                if next(10) == 0 && !ops.is_empty() {
                    // A duplicate of an earlier key, with another value.
                    let (WriteOp::Put { key: earlier, .. } | WriteOp::Delete { key: earlier }) =
                        &ops[next(ops.len() as u64) as usize];
                    key = earlier.clone();
                }
                let value = at.to_be_bytes().to_vec();
                ops.push(if next(20) == 0 {
                    WriteOp::Delete { key }
                } else {
                    WriteOp::Put { key, value }
                });
            }
            let mut expected: Vec<&WriteOp> = ops.iter().collect();
            let key = |op: &WriteOp| match op {
                WriteOp::Put { key, .. } | WriteOp::Delete { key } => key.clone(),
            };
            expected.sort_by_key(|op| key(op));
            assert_eq!(key_order(&ops), expected, "keys sharing {shared} bytes");
        }
        assert!(key_order(&[]).is_empty());
    }
}
