//! The Merkle tree over a block's transactions (RFC 6962 / RFC 9162 shape, with the
//! ledger's hash algorithm).
//!
//! Leaf `i` commits to the transaction hash AND its result, so an inclusion proof also
//! proves the outcome: `leaf = H(0x00 ‖ tx_hash ‖ result u8)`; inner nodes
//! `H(0x01 ‖ left ‖ right)`; a tree of n > 1 leaves splits at the largest power of two
//! below n; the empty tree's root is `H()` (empty input).

use crypto_parallel::{HashAlgorithm, Hasher};

use crate::model::{Hash32, ResultCode};

/// The leaf hash of one transaction and its result.
pub fn leaf_hash(algorithm: HashAlgorithm, tx_hash: &Hash32, result: ResultCode) -> Hash32 {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(&[0x00]).update(tx_hash).update(&[result as u8]);
    *hasher.finalize().as_bytes()
}

/// The leaf hashes of a block's `(tx hash, result)` pairs, hashed together
/// (`crypto_parallel::hash_many`); equal to [`leaf_hash`] on each.
pub fn leaf_hashes(algorithm: HashAlgorithm, entries: &[(Hash32, ResultCode)]) -> Vec<Hash32> {
    let messages: Vec<[u8; 34]> = entries
        .iter()
        .map(|(hash, result)| {
            let mut message = [0u8; 34];
            message[1..33].copy_from_slice(hash);
            message[33] = *result as u8;
            message
        })
        .collect();
    crypto_parallel::hash_many(algorithm, &messages).iter().map(|d| *d.as_bytes()).collect()
}

fn node_hash(algorithm: HashAlgorithm, left: &Hash32, right: &Hash32) -> Hash32 {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(&[0x01]).update(left).update(right);
    *hasher.finalize().as_bytes()
}

/// Largest power of two strictly below `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root over already-hashed leaves.
pub fn root_of_leaves(algorithm: HashAlgorithm, leaves: &[Hash32]) -> Hash32 {
    match leaves.len() {
        0 => *crypto_parallel::hash(algorithm, &[]).as_bytes(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            let left = root_of_leaves(algorithm, &leaves[..k]);
            let right = root_of_leaves(algorithm, &leaves[k..]);
            node_hash(algorithm, &left, &right)
        }
    }
}

/// The root over `(tx hash, result)` pairs.
pub fn root(algorithm: HashAlgorithm, entries: &[(Hash32, ResultCode)]) -> Hash32 {
    let leaves: Vec<Hash32> =
        entries.iter().map(|(hash, result)| leaf_hash(algorithm, hash, *result)).collect();
    root_of_leaves(algorithm, &leaves)
}

/// Leaves per chunk of [`chunk_roots`].
pub const CHUNK: usize = 64;

/// The roots of the aligned `CHUNK`-leaf chunks (the last may be shorter). In this
/// tree shape every such chunk is a complete subtree (a tree of more than `CHUNK`
/// leaves splits at a power of two ≥ `CHUNK`, so at a chunk boundary), and the tree
/// over the chunk roots, shaped the same way, has the same root.
///
/// Computed level by level from the leaves up, each level's node hashes together
/// (`crypto_parallel::hash_many`): pairing neighbours and carrying an odd last node up
/// unchanged gives, in this tree shape, the same nodes as the recursive definition, and
/// a chunk starts at a multiple of `CHUNK`, so no pair crosses a chunk boundary in the
/// `log2(CHUNK)` levels up to the chunk roots.
pub fn chunk_roots(algorithm: HashAlgorithm, leaves: &[Hash32]) -> Vec<Hash32> {
    let mut level = leaves.to_vec();
    for _ in 0..CHUNK.trailing_zeros() {
        level = next_level(algorithm, &level);
    }
    level
}

/// One level up: `H(0x01 ‖ left ‖ right)` for each pair, an odd last node as it is.
fn next_level(algorithm: HashAlgorithm, level: &[Hash32]) -> Vec<Hash32> {
    let messages: Vec<[u8; 65]> = level
        .chunks_exact(2)
        .map(|pair| crate::codec::pair_message(&[0x01], &pair[0], &pair[1]))
        .collect();
    let mut next: Vec<Hash32> =
        crypto_parallel::hash_many(algorithm, &messages).iter().map(|d| *d.as_bytes()).collect();
    if level.len() % 2 == 1 {
        next.push(level[level.len() - 1]);
    }
    next
}

/// The audit path of leaf `index` from its chunk's leaves and every chunk root
/// ([`chunk_roots`]): equal to [`audit_path`] over all leaves, for about `CHUNK`
/// hashes instead of the whole tree's.
pub fn audit_path_chunked(
    algorithm: HashAlgorithm,
    chunk_leaves: &[Hash32],
    roots: &[Hash32],
    index: usize,
) -> Vec<Hash32> {
    let mut path = audit_path(algorithm, chunk_leaves, index % CHUNK);
    path.extend(audit_path(algorithm, roots, index / CHUNK));
    path
}

/// The audit path of leaf `index`: sibling hashes from the leaf up.
pub fn audit_path(algorithm: HashAlgorithm, leaves: &[Hash32], index: usize) -> Vec<Hash32> {
    assert!(index < leaves.len(), "audit path for a leaf outside the tree");
    let mut path = Vec::new();
    collect_path(algorithm, leaves, index, &mut path);
    path
}

fn collect_path(algorithm: HashAlgorithm, leaves: &[Hash32], index: usize, path: &mut Vec<Hash32>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split_point(leaves.len());
    if index < k {
        collect_path(algorithm, &leaves[..k], index, path);
        path.push(root_of_leaves(algorithm, &leaves[k..]));
    } else {
        collect_path(algorithm, &leaves[k..], index - k, path);
        path.push(root_of_leaves(algorithm, &leaves[..k]));
    }
}

/// Recomputes the root from a leaf and its audit path (RFC 9162 §2.1.3.2); `None` when
/// the path does not fit a tree of `tree_size` leaves.
pub fn root_from_path(
    algorithm: HashAlgorithm,
    leaf: &Hash32,
    index: u64,
    tree_size: u64,
    path: &[Hash32],
) -> Option<Hash32> {
    if index >= tree_size {
        return None;
    }
    let (mut fn_, mut sn) = (index, tree_size - 1);
    let mut root = *leaf;
    for sibling in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            root = node_hash(algorithm, sibling, &root);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            root = node_hash(algorithm, &root, sibling);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| leaf_hash(HashAlgorithm::Sm3, &[i as u8; 32], ResultCode::Committed))
            .collect()
    }

    #[test]
    fn every_path_of_every_small_tree_verifies() {
        for n in 1..40 {
            let leaves = leaves(n);
            let root = root_of_leaves(HashAlgorithm::Sm3, &leaves);
            for index in 0..n {
                let path = audit_path(HashAlgorithm::Sm3, &leaves, index);
                let computed = root_from_path(
                    HashAlgorithm::Sm3,
                    &leaves[index],
                    index as u64,
                    n as u64,
                    &path,
                );
                assert_eq!(computed, Some(root), "n={n} index={index}");
                // Wrong index or wrong size must not give the root.
                let wrong = root_from_path(
                    HashAlgorithm::Sm3,
                    &leaves[index],
                    ((index + 1) % n) as u64,
                    n as u64,
                    &path,
                );
                assert!(n == 1 || wrong != Some(root), "n={n} index={index}");
                let other_leaf = leaf_hash(HashAlgorithm::Sm3, &[0xee; 32], ResultCode::Committed);
                let tampered =
                    root_from_path(HashAlgorithm::Sm3, &other_leaf, index as u64, n as u64, &path);
                assert_ne!(tampered, Some(root));
            }
        }
    }

    #[test]
    fn chunked_paths_and_roots_equal_the_whole_trees() {
        for n in [1, 2, 63, 64, 65, 127, 128, 129, 200, 1000, 2000, 4097] {
            let leaves = leaves_wide(n);
            let roots = chunk_roots(HashAlgorithm::Sm3, &leaves);
            let recursive: Vec<Hash32> =
                leaves.chunks(CHUNK).map(|c| root_of_leaves(HashAlgorithm::Sm3, c)).collect();
            assert_eq!(roots, recursive, "n={n}");
            let root = root_of_leaves(HashAlgorithm::Sm3, &leaves);
            assert_eq!(root_of_leaves(HashAlgorithm::Sm3, &roots), root, "n={n}");
            for index in [0, 1, n / 3, n / 2, n - 1].into_iter().filter(|i| *i < n) {
                let start = index / CHUNK * CHUNK;
                let chunk = &leaves[start..(start + CHUNK).min(n)];
                assert_eq!(
                    audit_path_chunked(HashAlgorithm::Sm3, chunk, &roots, index),
                    audit_path(HashAlgorithm::Sm3, &leaves, index),
                    "n={n} index={index}"
                );
            }
        }
    }

    fn leaves_wide(n: usize) -> Vec<Hash32> {
        (0..n)
            .map(|i| {
                let mut hash = [0u8; 32];
                hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
                leaf_hash(HashAlgorithm::Sm3, &hash, ResultCode::Committed)
            })
            .collect()
    }

    #[test]
    fn batched_leaves_and_levels_equal_one_by_one() {
        for algorithm in HashAlgorithm::ALL {
            for n in [0, 1, 2, 3, 5, 16, 17, 31, 33, 64, 65, 100, 1000] {
                let entries: Vec<(Hash32, ResultCode)> = (0..n)
                    .map(|i| {
                        let result = if i % 7 == 3 {
                            ResultCode::VersionConflict
                        } else {
                            ResultCode::Committed
                        };
                        ([i as u8; 32], result)
                    })
                    .collect();
                let leaves = leaf_hashes(algorithm, &entries);
                let one_by_one: Vec<Hash32> = entries
                    .iter()
                    .map(|(hash, result)| leaf_hash(algorithm, hash, *result))
                    .collect();
                assert_eq!(leaves, one_by_one, "{algorithm:?} n={n}");
                let recursive: Vec<Hash32> =
                    leaves.chunks(CHUNK).map(|c| root_of_leaves(algorithm, c)).collect();
                assert_eq!(chunk_roots(algorithm, &leaves), recursive, "{algorithm:?} n={n}");
            }
        }
    }

    #[test]
    fn result_is_part_of_the_leaf() {
        let a = leaf_hash(HashAlgorithm::Sm3, &[1; 32], ResultCode::Committed);
        let b = leaf_hash(HashAlgorithm::Sm3, &[1; 32], ResultCode::VersionConflict);
        assert_ne!(a, b);
    }
}
