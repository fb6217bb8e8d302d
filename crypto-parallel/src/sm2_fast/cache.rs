//! A bounded, sharded per-public-key cache of `PrecomputedKey`s.
//!
//! Each shard is a `Mutex<HashMap>` keyed by the 64-byte `x ‖ y`; a key gets its comb
//! table once it has been seen `build_after` times (building costs ~2 verifications).
//! When a shard is full, the least recently used entry is evicted (linear scan of the
//! shard, done only on insertion of a new key). Entries are `Arc`s, so a verification
//! never holds a lock while computing. Only keys that parse (on the curve) are inserted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::sm2_fast::verify::{PrecomputedKey, PublicKey, verify_digest_with_key};

const SHARDS: usize = 16;

struct Slot {
    seen: u32,
    last_used: u64,
    table: Option<Arc<PrecomputedKey>>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<[u8; 64], Slot>,
    clock: u64,
}

/// Bounded per-key cache of comb tables (see the module docs).
pub struct KeyCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    build_after: u32,
}

enum Action {
    Hit(Arc<PrecomputedKey>),
    Uncached(PublicKey),
    Build(PublicKey),
    Invalid,
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A poisoned lock only means another thread panicked mid-update; the map is still
    // a valid cache (entries are immutable Arcs), so keep using it.
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KeyCache {
    /// `capacity` keys in all (rounded up to a multiple of 16); a table is built the
    /// `build_after`-th time a key is seen (1 = immediately).
    pub fn new(capacity: usize, build_after: u32) -> KeyCache {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        KeyCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            build_after: build_after.max(1),
        }
    }

    fn shard_of(key: &[u8; 64]) -> usize {
        // Low bits of x: public keys are uniformly distributed points.
        (key[31] as usize) % SHARDS
    }

    /// Keys currently tracked, and how many of them have a table.
    pub fn stats(&self) -> (usize, usize) {
        let mut keys = 0;
        let mut tables = 0;
        for shard in &self.shards {
            let shard = lock(shard);
            keys += shard.map.len();
            tables += shard.map.values().filter(|s| s.table.is_some()).count();
        }
        (keys, tables)
    }

    fn evict_if_full(&self, shard: &mut Shard) {
        while shard.map.len() >= self.per_shard {
            let victim = shard.map.iter().min_by_key(|(_, slot)| slot.last_used).map(|(k, _)| *k);
            match victim {
                Some(k) => {
                    shard.map.remove(&k);
                }
                None => break,
            }
        }
    }

    /// Verifies like `verify_digest`, using (and feeding) the cache.
    pub fn verify_digest(
        &self,
        public_key: &[u8; 65],
        e: &[u8; 32],
        r: &[u8; 32],
        s: &[u8; 32],
    ) -> bool {
        let mut id = [0u8; 64];
        id.copy_from_slice(&public_key[1..]);
        let shard = &self.shards[Self::shard_of(&id)];
        let action = {
            let mut guard = lock(shard);
            guard.clock += 1;
            let now = guard.clock;
            match guard.map.get_mut(&id) {
                Some(slot) if public_key[0] == 0x04 => {
                    slot.last_used = now;
                    slot.seen = slot.seen.saturating_add(1);
                    if let Some(table) = &slot.table {
                        Action::Hit(Arc::clone(table))
                    } else {
                        // Seen before, so it parsed then; parse again (cheap) to get the point.
                        match PublicKey::from_sec1_uncompressed(public_key) {
                            Some(key) if slot.seen >= self.build_after => Action::Build(key),
                            Some(key) => Action::Uncached(key),
                            None => Action::Invalid,
                        }
                    }
                }
                _ => match PublicKey::from_sec1_uncompressed(public_key) {
                    None => Action::Invalid,
                    Some(key) => {
                        self.evict_if_full(&mut guard);
                        guard.map.insert(id, Slot { seen: 1, last_used: now, table: None });
                        if self.build_after <= 1 {
                            Action::Build(key)
                        } else {
                            Action::Uncached(key)
                        }
                    }
                },
            }
        };
        match action {
            Action::Invalid => false,
            Action::Hit(table) => table.verify_digest(e, r, s),
            Action::Uncached(key) => verify_digest_with_key(&key, e, r, s),
            Action::Build(key) => {
                let table = Arc::new(PrecomputedKey::new(&key));
                let verdict = table.verify_digest(e, r, s);
                let mut guard = lock(shard);
                guard.clock += 1;
                let now = guard.clock;
                if let Some(slot) = guard.map.get_mut(&id) {
                    slot.last_used = now;
                    if slot.table.is_none() {
                        slot.table = Some(table);
                    }
                } else {
                    self.evict_if_full(&mut guard);
                    guard.map.insert(
                        id,
                        Slot { seen: self.build_after, last_used: now, table: Some(table) },
                    );
                }
                verdict
            }
        }
    }
}

/// The process-wide cache: 4096 keys, table built on the second sighting.
pub fn global_cache() -> &'static KeyCache {
    static CACHE: OnceLock<KeyCache> = OnceLock::new();
    CACHE.get_or_init(|| KeyCache::new(4096, 2))
}

/// `verify_digest` through the process-wide cache.
pub fn verify_digest_cached(
    public_key: &[u8; 65],
    e: &[u8; 32],
    r: &[u8; 32],
    s: &[u8; 32],
) -> bool {
    global_cache().verify_digest(public_key, e, r, s)
}
