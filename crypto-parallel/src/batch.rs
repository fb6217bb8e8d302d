//! Batch verification on a dedicated rayon pool.
//!
//! Signature checks are the most expensive step of admitting a transaction, so the
//! gateway and the ledger actors hand them over in batches. A batch is cut into chunks of
//! `BATCH_CHUNK_LEN` items that the pool's threads (one per core) take in turn; a batch no
//! longer than one chunk stays on the calling thread, where handing it over would cost
//! more than it saves. Within a chunk, items are grouped by algorithm and each provider
//! checks its group (`SignatureProvider::verify_many`: Ed25519 uses its batch equation).
//!
//! The result is one `Result` per item, equal to what `PublicKey::verify` answers for
//! that item alone: one bad signature rejects exactly that item, never its neighbours.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::Result;
use crate::algorithm::SignatureAlgorithm;
use crate::error::CryptoError;
use crate::keys::{PublicKey, Signature};

/// Items per unit of parallel work. Large enough that the hand-over (a few µs) is noise
/// next to 64 verifications (≥ 1 ms for SM2) and that Ed25519's batch equation gets most
/// of its gain; small enough that 2 cores stay balanced on batches of a few hundred.
pub const BATCH_CHUNK_LEN: usize = 64;

/// Batches up to this many items are verified on the calling thread.
pub const BATCH_INLINE_LEN_MAX: usize = BATCH_CHUNK_LEN;

const _: () = assert!(BATCH_INLINE_LEN_MAX <= BATCH_CHUNK_LEN);

/// One signature to check: `signature` over `message` by `public_key`.
#[derive(Debug, Clone, Copy)]
pub struct VerifyItem<'a> {
    /// The signer's key.
    pub public_key: &'a PublicKey,
    /// The signed bytes (the provider hashes them as its algorithm prescribes).
    pub message: &'a [u8],
    /// The signature to check.
    pub signature: &'a Signature,
}

static GLOBAL: OnceLock<BatchVerifier> = OnceLock::new();

/// A rayon pool dedicated to signature verification.
pub struct BatchVerifier {
    pool: rayon::ThreadPool,
}

impl BatchVerifier {
    /// A verifier with its own pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|index| format!("polyledger-verify-{index}"))
            .build()
            .expect("spawning verification threads");
        BatchVerifier { pool }
    }

    /// Sizes the process-wide verifier before its first use (a node's
    /// `pools.verify_threads`). Returns false when it already exists (the size stays).
    pub fn init_global(threads: usize) -> bool {
        let mut created = false;
        GLOBAL.get_or_init(|| {
            created = true;
            BatchVerifier::new(threads)
        });
        created
    }

    /// The process-wide verifier, one thread per available core unless `init_global`
    /// sized it first.
    pub fn global() -> &'static BatchVerifier {
        GLOBAL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            BatchVerifier::new(cores)
        })
    }

    /// Number of threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Verifies every item; `results[i]` is the verdict on `items[i]`.
    pub fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Vec<Result<()>> {
        let mut results = vec![Ok(()); items.len()];
        if items.len() <= BATCH_INLINE_LEN_MAX {
            verify_chunk(items, &mut results);
        } else {
            self.pool.install(|| {
                items
                    .par_chunks(BATCH_CHUNK_LEN)
                    .zip(results.par_chunks_mut(BATCH_CHUNK_LEN))
                    .for_each(|(chunk, chunk_results)| verify_chunk(chunk, chunk_results));
            });
        }
        results
    }
}

/// Verifies `items` on the global pool (see `BatchVerifier::verify_batch`).
pub fn verify_batch(items: &[VerifyItem<'_>]) -> Vec<Result<()>> {
    BatchVerifier::global().verify_batch(items)
}

/// Verifies one chunk on the current thread: mismatched algorithms are rejected, the
/// rest is grouped by algorithm and handed to each provider.
fn verify_chunk(items: &[VerifyItem<'_>], results: &mut [Result<()>]) {
    debug_assert_eq!(items.len(), results.len());
    let first = items.first().map(|item| item.public_key.algorithm());
    let uniform = items.iter().all(|item| {
        Some(item.public_key.algorithm()) == first
            && item.signature.algorithm() == item.public_key.algorithm()
    });
    if let (true, Some(algorithm)) = (uniform, first) {
        // The common case: one algorithm for the whole chunk, no regrouping.
        algorithm.provider().verify_many(items, results);
        return;
    }
    for (item, result) in items.iter().zip(results.iter_mut()) {
        if item.signature.algorithm() != item.public_key.algorithm() {
            *result = Err(CryptoError::AlgorithmMismatch {
                expected: item.public_key.algorithm().code(),
                found: item.signature.algorithm().code(),
            });
        }
    }
    for algorithm in SignatureAlgorithm::ALL {
        let indices: Vec<usize> = (0..items.len())
            .filter(|&i| {
                items[i].public_key.algorithm() == algorithm
                    && items[i].signature.algorithm() == algorithm
            })
            .collect();
        if indices.is_empty() {
            continue;
        }
        let group: Vec<VerifyItem<'_>> = indices.iter().map(|&i| items[i]).collect();
        let mut group_results = vec![Ok(()); group.len()];
        algorithm.provider().verify_many(&group, &mut group_results);
        for (index, result) in indices.into_iter().zip(group_results) {
            results[index] = result;
        }
    }
}
