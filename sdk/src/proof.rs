//! Offline verification of the proofs the gateway returns: no node, no storage, only the
//! proof document. A verified proof says "this claim holds in the block with hash H";
//! whether H is a block you trust (your own node's, several nodes' agreeing, a saved
//! checkpoint) is the caller's decision — `Verified::block_hash` is what to compare.

use crypto_parallel::HashAlgorithm;
use engine::model::{Hash32, ResultCode};
use engine::proof::{StateProof, TxProof, verify_data_proof, verify_tx_proof};

use std::collections::BTreeMap;

use crypto_parallel::PublicKey;
use engine::certificate::Certificate;
use engine::model::LedgerId;

use crate::wire::{BlockView, ProofDocument, parse_hash};

/// Why a proof document does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A field is missing or malformed.
    #[error("malformed proof document: {0}")]
    Malformed(String),
    /// The canonical bytes do not prove the claim.
    #[error("proof does not hold: {0}")]
    Invalid(String),
}

/// What a valid proof establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The hash of the block the proof ends at (equal to the document's `block_hash`).
    pub block_hash: Hash32,
    /// That block's height.
    pub height: u64,
    /// That block's timestamp (ms since the Unix epoch).
    pub timestamp_ms: u64,
}

fn malformed(what: impl std::fmt::Display) -> VerifyError {
    VerifyError::Malformed(what.to_string())
}

fn field<'a, T>(value: &'a Option<T>, name: &str) -> Result<&'a T, VerifyError> {
    value.as_ref().ok_or_else(|| malformed(format!("`{name}` is required for this kind")))
}

/// Verifies `document`: decodes its canonical bytes, checks they prove exactly the
/// document's claim (transaction and result, or key, version and value, or absence), and
/// that they end at the claimed ledger, height and block hash.
pub fn verify(document: &ProofDocument) -> Result<Verified, VerifyError> {
    let algorithm = HashAlgorithm::from_name(&document.hash_algorithm).ok_or_else(|| {
        malformed(format!("unknown hash algorithm `{}`", document.hash_algorithm))
    })?;
    let ledger_id = parse_hash("ledger_id", &document.ledger_id).map_err(malformed)?;
    let claimed_block = parse_hash("block_hash", &document.block_hash).map_err(malformed)?;
    let encoded = hex::decode(&document.encoded).map_err(|e| malformed(format!("encoded: {e}")))?;
    let (header, block_hash) = match document.kind.as_str() {
        "transaction" => {
            let proof =
                TxProof::decode(&encoded).map_err(|e| malformed(format!("encoded: {e}")))?;
            let tx_hash =
                parse_hash("tx_hash", field(&document.tx_hash, "tx_hash")?).map_err(malformed)?;
            if proof.tx_hash != tx_hash {
                return Err(VerifyError::Invalid("the proof is for another transaction".into()));
            }
            let result = field(&document.result, "result")?;
            if proof.result.name() != result {
                return Err(VerifyError::Invalid(format!(
                    "the proof records result `{}`, the document claims `{result}`",
                    proof.result.name()
                )));
            }
            let block_hash = verify_tx_proof(algorithm, &proof)
                .map_err(|e| VerifyError::Invalid(e.to_string()))?;
            (proof.header, block_hash)
        }
        "state" => {
            let proof =
                StateProof::decode(&encoded).map_err(|e| malformed(format!("encoded: {e}")))?;
            let account = field(&document.account, "account")?;
            let key = hex::decode(field(&document.key_hex, "key_hex")?)
                .map_err(|e| malformed(format!("key_hex: {e}")))?;
            let present = *field(&document.present, "present")?;
            let value = match (&document.value_hex, present) {
                (Some(value), true) => {
                    Some(hex::decode(value).map_err(|e| malformed(format!("value_hex: {e}")))?)
                }
                (None, false) => None,
                (None, true) => return Err(malformed("a present key needs `value_hex`")),
                (Some(_), false) => return Err(malformed("an absent key has no `value_hex`")),
            };
            let expected = match (&value, present) {
                (Some(value), true) => Some((*field(&document.version, "version")?, &value[..])),
                _ => None,
            };
            let block_hash = verify_data_proof(algorithm, &proof, account, &key, expected)
                .map_err(|e| VerifyError::Invalid(e.to_string()))?;
            (proof.header, block_hash)
        }
        other => return Err(malformed(format!("unknown kind `{other}`"))),
    };
    if header.ledger_id.0 != ledger_id {
        return Err(VerifyError::Invalid("the proof is for another ledger".into()));
    }
    if header.height != document.height {
        return Err(VerifyError::Invalid(format!(
            "the proof ends at height {}, the document claims {}",
            header.height, document.height
        )));
    }
    if block_hash != claimed_block {
        return Err(VerifyError::Invalid(format!(
            "the proof ends at block {}, the document claims {}",
            hex::encode(block_hash),
            document.block_hash
        )));
    }
    Ok(Verified { block_hash, height: header.height, timestamp_ms: header.timestamp_ms })
}

/// Verifies `document` as [`verify`] does, and its commit certificate (a `bft` ledger):
/// participants holding more than 2/3 of the votes at that height — `participants`, by
/// member number, as the caller knows them (the ledger's genesis settings, plus any
/// admissions and removals since) — signed a precommit for exactly the block the proof
/// ends at. The proof then holds without trusting the node that served it.
pub fn verify_certified(
    document: &ProofDocument,
    participants: &BTreeMap<u64, PublicKey>,
) -> Result<Verified, VerifyError> {
    let verified = verify(document)?;
    let ledger = LedgerId(parse_hash("ledger_id", &document.ledger_id).map_err(malformed)?);
    check_certificate(
        &ledger,
        verified.height,
        &verified.block_hash,
        document.certificate_hex.as_deref(),
        participants,
    )?;
    Ok(verified)
}

/// Verifies a block as served (`GET …/blocks/{height}`): its header bytes hash to its
/// hash with `algorithm`, and its certificate commits that hash at its height.
pub fn verify_block_certificate(
    algorithm: HashAlgorithm,
    ledger: &LedgerId,
    block: &BlockView,
    participants: &BTreeMap<u64, PublicKey>,
) -> Result<Hash32, VerifyError> {
    let bytes =
        hex::decode(&block.header_hex).map_err(|e| malformed(format!("header_hex: {e}")))?;
    let header = engine::model::BlockHeader::decode(&bytes)
        .map_err(|e| malformed(format!("header_hex: {e}")))?;
    let hash = header.hash(algorithm);
    if hex::encode(hash) != block.hash || header.height != block.height {
        return Err(VerifyError::Invalid("the header does not hash to the block's hash".into()));
    }
    if header.ledger_id != *ledger {
        return Err(VerifyError::Invalid("the block is of another ledger".into()));
    }
    check_certificate(
        ledger,
        header.height,
        &hash,
        block.certificate_hex.as_deref(),
        participants,
    )?;
    Ok(hash)
}

fn check_certificate(
    ledger: &LedgerId,
    height: u64,
    block_hash: &Hash32,
    certificate_hex: Option<&str>,
    participants: &BTreeMap<u64, PublicKey>,
) -> Result<(), VerifyError> {
    let hex_text = certificate_hex
        .ok_or_else(|| VerifyError::Invalid("no commit certificate for the block".into()))?;
    let bytes = hex::decode(hex_text).map_err(|e| malformed(format!("certificate_hex: {e}")))?;
    Certificate::decode(&bytes)
        .and_then(|certificate| certificate.verify(ledger, height, block_hash, participants))
        .map_err(|e| VerifyError::Invalid(format!("commit certificate: {e}")))
}

/// Builds the document of a transaction proof.
pub fn tx_document(algorithm: HashAlgorithm, proof: &TxProof) -> ProofDocument {
    ProofDocument {
        kind: "transaction".into(),
        ledger_id: hex::encode(proof.header.ledger_id.0),
        hash_algorithm: algorithm.name().into(),
        height: proof.header.height,
        block_hash: hex::encode(proof.header.hash(algorithm)),
        tx_hash: Some(hex::encode(proof.tx_hash)),
        result: Some(proof.result.name().into()),
        account: None,
        key_hex: None,
        present: None,
        version: None,
        value_hex: None,
        encoded: hex::encode(proof.encode()),
        certificate_hex: None,
    }
}

/// Builds the document of a data-key proof; `value` is `(version, bytes)` for a present
/// key, `None` for absence.
pub fn state_document(
    algorithm: HashAlgorithm,
    proof: &StateProof,
    account: &str,
    key: &[u8],
    value: Option<(u64, &[u8])>,
) -> ProofDocument {
    ProofDocument {
        kind: "state".into(),
        ledger_id: hex::encode(proof.header.ledger_id.0),
        hash_algorithm: algorithm.name().into(),
        height: proof.header.height,
        block_hash: hex::encode(proof.header.hash(algorithm)),
        tx_hash: None,
        result: None,
        account: Some(account.to_owned()),
        key_hex: Some(hex::encode(key)),
        present: Some(value.is_some()),
        version: value.map(|(version, _)| version),
        value_hex: value.map(|(_, bytes)| hex::encode(bytes)),
        encoded: hex::encode(proof.encode()),
        certificate_hex: None,
    }
}

/// The result code named `name`, if there is one.
pub fn result_code(name: &str) -> Option<ResultCode> {
    (0..=u8::MAX).filter_map(|code| ResultCode::from_u8(code).ok()).find(|code| code.name() == name)
}
