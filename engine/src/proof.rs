//! Proofs and their verification: pure functions over bytes, no storage, so the SDK (and
//! a program in another language following `docs/FORMAT.md` §10) can check a record
//! without trusting the node that served it.
//!
//! A proof ends at a block header; verification returns that header's hash, which the
//! caller compares with a block hash it trusts (from its own node, from several nodes, or
//! — with BFT consensus — from a commit certificate).

use crypto_parallel::HashAlgorithm;
use jmt::proof::SparseMerkleProof;
use jmt::{KeyHash, RootHash};

use crate::codec::{DecodeError, Reader, Writer};
use crate::limits::{KEY_LEN_MAX, NAME_LEN_MAX, VALUE_LEN_MAX};
use crate::model::{BlockHeader, Hash32, ResultCode};
use crate::state::{StateKey, data_leaf_value, with_tree_hasher};
use crate::txroot;

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The proof bytes are not a proof.
    #[error("malformed proof: {0}")]
    Malformed(String),
    /// The proof does not lead to the root in the header.
    #[error("proof does not match the block's {0} root")]
    RootMismatch(&'static str),
    /// The proven leaf is not the claimed value/version.
    #[error("the proof is for a different value or version than claimed")]
    ValueMismatch,
}

/// Proof that a transaction, with its result, is in a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxProof {
    /// The block's header.
    pub header: BlockHeader,
    /// The transaction hash.
    pub tx_hash: Hash32,
    /// Its recorded result.
    pub result: ResultCode,
    /// Its position in the block.
    pub index: u64,
    /// Number of transactions in the block.
    pub tree_size: u64,
    /// Audit path, leaf to root.
    pub path: Vec<Hash32>,
}

/// Checks a transaction proof; returns the hash of the block it is anchored in.
pub fn verify_tx_proof(algorithm: HashAlgorithm, proof: &TxProof) -> Result<Hash32, ProofError> {
    let leaf = txroot::leaf_hash(algorithm, &proof.tx_hash, proof.result);
    let root = txroot::root_from_path(algorithm, &leaf, proof.index, proof.tree_size, &proof.path)
        .ok_or_else(|| ProofError::Malformed("audit path does not fit the tree size".into()))?;
    if root != proof.header.tx_root {
        return Err(ProofError::RootMismatch("transaction"));
    }
    Ok(proof.header.hash(algorithm))
}

/// Proof of a state record's value — or of its absence — at a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateProof {
    /// The header of the block at whose end the state is proven.
    pub header: BlockHeader,
    /// The record's preimage (`StateKey::preimage`).
    pub key_preimage: Vec<u8>,
    /// The leaf value, or `None` for an absence proof.
    pub leaf_value: Option<Vec<u8>>,
    /// `jmt::proof::SparseMerkleProof`, borsh-encoded.
    pub proof: Vec<u8>,
}

/// Checks a state proof (inclusion of `leaf_value`, or absence when it is `None`);
/// returns the block hash it is anchored in.
pub fn verify_state_proof(
    algorithm: HashAlgorithm,
    proof: &StateProof,
) -> Result<Hash32, ProofError> {
    let key_hash = KeyHash(*crypto_parallel::hash(algorithm, &proof.key_preimage).as_bytes());
    let root = RootHash(proof.header.state_root);
    with_tree_hasher!(algorithm, H => {
        let sparse: SparseMerkleProof<H> = borsh::from_slice(&proof.proof)
            .map_err(|e| ProofError::Malformed(format!("sparse Merkle proof: {e}")))?;
        sparse
            .verify(root, key_hash, proof.leaf_value.as_ref())
            .map_err(|_| ProofError::RootMismatch("state"))?;
    });
    Ok(proof.header.hash(algorithm))
}

/// Checks that `proof` shows data key `key` of `account` holding `expected` — `(version,
/// value)`, or `None` for "no such key" — at the proof's block; returns the block hash.
pub fn verify_data_proof(
    algorithm: HashAlgorithm,
    proof: &StateProof,
    account: &str,
    key: &[u8],
    expected: Option<(u64, &[u8])>,
) -> Result<Hash32, ProofError> {
    let state_key = StateKey::Data { account: account.to_owned(), key: key.to_vec() };
    if proof.key_preimage != state_key.preimage() {
        return Err(ProofError::ValueMismatch);
    }
    let expected_leaf = expected.map(|(version, value)| data_leaf_value(algorithm, version, value));
    if proof.leaf_value != expected_leaf {
        return Err(ProofError::ValueMismatch);
    }
    verify_state_proof(algorithm, proof)
}

impl TxProof {
    /// `header | tx_hash | result u8 | index u64 | tree_size u64 | count u32 | path`.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer =
            Writer::with_capacity(BlockHeader::ENCODED_LEN + 64 + 32 * self.path.len());
        writer
            .raw(&self.header.encode())
            .raw(&self.tx_hash)
            .u8(self.result as u8)
            .u64(self.index)
            .u64(self.tree_size)
            .u32(self.path.len() as u32);
        for sibling in &self.path {
            writer.raw(sibling);
        }
        writer.into_bytes()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let header = BlockHeader::decode_from(&mut reader)?;
        let tx_hash = reader.array("tx hash")?;
        let result = ResultCode::from_u8(reader.u8("result")?)?;
        let index = reader.u64("index")?;
        let tree_size = reader.u64("tree size")?;
        // A path is at most 64 hashes long (tree sizes are u64).
        let count = reader.count(64, "audit path")?;
        let mut path = Vec::with_capacity(count);
        for _ in 0..count {
            path.push(reader.array("audit path")?);
        }
        reader.finish("tx proof")?;
        Ok(TxProof { header, tx_hash, result, index, tree_size, path })
    }
}

/// Bound on an encoded sparse Merkle proof: 256 siblings of at most ~100 bytes.
const SPARSE_PROOF_LEN_MAX: usize = 64 * 1024;

impl StateProof {
    /// `header | preimage bytes16 | u8 present [+ value bytes32] | proof bytes32`.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(BlockHeader::ENCODED_LEN + self.proof.len() + 128);
        writer.raw(&self.header.encode()).bytes16(&self.key_preimage);
        match &self.leaf_value {
            Some(value) => writer.u8(1).bytes32(value),
            None => writer.u8(0),
        };
        writer.bytes32(&self.proof);
        writer.into_bytes()
    }

    /// Decodes untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let header = BlockHeader::decode_from(&mut reader)?;
        let key_preimage = reader.bytes16(5 + NAME_LEN_MAX + KEY_LEN_MAX, "key preimage")?.to_vec();
        let leaf_value = match reader.u8("leaf presence")? {
            0 => None,
            1 => Some(reader.bytes32(VALUE_LEN_MAX, "leaf value")?.to_vec()),
            tag => return Err(DecodeError::UnknownTag { what: "leaf presence", tag: tag.into() }),
        };
        let proof = reader.bytes32(SPARSE_PROOF_LEN_MAX, "sparse proof")?.to_vec();
        reader.finish("state proof")?;
        Ok(StateProof { header, key_preimage, leaf_value, proof })
    }
}
