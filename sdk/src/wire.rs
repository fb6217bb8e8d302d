//! The JSON forms the gateway speaks (`/api/v1`), shared by the gateway (which answers
//! them) and the client (which reads them), so the two cannot drift apart.
//!
//! Conventions: hashes, ids, addresses, public keys and signatures are lowercase hex
//! (public keys and signatures in their binary form with the algorithm code, as in
//! `docs/FORMAT.md`); byte strings (keys, values) appear as `*_hex`, plus a UTF-8 copy
//! (`key`, `value`) when the bytes are valid UTF-8. On input either form is accepted.

use crypto_parallel::{PublicKey, Signature};
use engine::model::{
    BlockHeader, Endorsement, Hash32, LedgerId, LedgerSettings, Operation, Transaction,
    TransactionContent,
};
use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Why a JSON form does not convert to the binary model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    /// The offending field, as a JSON path (`transactions[2].content.nonce`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError { field: field.into(), reason: reason.into() }
    }

    fn within(self, parent: &str) -> Self {
        FieldError { field: format!("{parent}.{}", self.field), reason: self.reason }
    }
}

/// Parses 32 hex-encoded bytes (a hash, ledger id or address).
pub fn parse_hash(field: &str, text: &str) -> Result<Hash32, FieldError> {
    let bytes = hex::decode(text.trim_start_matches("0x"))
        .map_err(|e| FieldError::new(field, format!("not hex: {e}")))?;
    bytes.try_into().map_err(|_| FieldError::new(field, "must be 32 bytes (64 hex digits)"))
}

fn utf8_copy(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}

fn bytes_field(
    field: &str,
    utf8: &Option<String>,
    hex_form: &Option<String>,
) -> Result<Vec<u8>, FieldError> {
    match (utf8, hex_form) {
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(encoded)) => hex::decode(encoded)
            .map_err(|e| FieldError::new(format!("{field}_hex"), format!("not hex: {e}"))),
        (Some(text), Some(encoded)) => {
            let decoded = hex::decode(encoded)
                .map_err(|e| FieldError::new(format!("{field}_hex"), format!("not hex: {e}")))?;
            if decoded != text.as_bytes() {
                return Err(FieldError::new(field, format!("`{field}` and `{field}_hex` differ")));
            }
            Ok(decoded)
        }
        (None, None) => Err(FieldError::new(field, format!("`{field}` or `{field}_hex` needed"))),
    }
}

/// One operation, tagged by its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum OperationJson {
    /// Register a user account.
    RegisterUser {
        /// The user's public key (hex, binary form with algorithm code).
        public_key: String,
    },
    /// Register a data account (a key namespace) owned by the first signer.
    RegisterDataAccount {
        /// Account name.
        name: String,
    },
    /// Write a value under a key, if the key's version is `expected_version` (−1: new).
    WriteKv {
        /// Data account.
        account: String,
        /// The key as UTF-8 (or give `key_hex`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// The key's bytes in hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_hex: Option<String>,
        /// The value as UTF-8 (or give `value_hex`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        /// The value's bytes in hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value_hex: Option<String>,
        /// The version the writer saw, −1 for a new key.
        expected_version: i64,
    },
}

impl OperationJson {
    /// The JSON form of `operation`.
    pub fn from_operation(operation: &Operation) -> Self {
        match operation {
            Operation::RegisterUser { public_key } => {
                OperationJson::RegisterUser { public_key: hex::encode(public_key.to_bytes()) }
            }
            Operation::RegisterDataAccount { name } => {
                OperationJson::RegisterDataAccount { name: name.clone() }
            }
            Operation::WriteKv { account, key, value, expected_version } => {
                OperationJson::WriteKv {
                    account: account.clone(),
                    key: utf8_copy(key),
                    key_hex: Some(hex::encode(key)),
                    value: utf8_copy(value),
                    value_hex: Some(hex::encode(value)),
                    expected_version: *expected_version,
                }
            }
        }
    }

    /// The model operation.
    pub fn to_operation(&self) -> Result<Operation, FieldError> {
        Ok(match self {
            OperationJson::RegisterUser { public_key } => {
                Operation::RegisterUser { public_key: parse_public_key("public_key", public_key)? }
            }
            OperationJson::RegisterDataAccount { name } => {
                Operation::RegisterDataAccount { name: name.clone() }
            }
            OperationJson::WriteKv {
                account,
                key,
                key_hex,
                value,
                value_hex,
                expected_version,
            } => {
                if *expected_version < -1 {
                    return Err(FieldError::new("expected_version", "must be -1 or a version"));
                }
                Operation::WriteKv {
                    account: account.clone(),
                    key: bytes_field("key", key, key_hex)?,
                    value: bytes_field("value", value, value_hex)?,
                    expected_version: *expected_version,
                }
            }
        })
    }
}

/// Parses a public key in hex (binary form with the algorithm code).
pub fn parse_public_key(field: &str, text: &str) -> Result<PublicKey, FieldError> {
    let bytes = hex::decode(text).map_err(|e| FieldError::new(field, format!("not hex: {e}")))?;
    PublicKey::from_bytes(&bytes).map_err(|e| FieldError::new(field, e.to_string()))
}

/// What is signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContentJson {
    /// Ledger id (hex).
    pub ledger_id: String,
    /// Client-chosen nonce.
    pub nonce: u64,
    /// Client clock, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Operations, applied all or nothing.
    pub operations: Vec<OperationJson>,
}

/// One signer's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EndorsementJson {
    /// Signer's public key (hex, binary form with algorithm code).
    pub public_key: String,
    /// Signature over the canonical content bytes (hex, binary form with algorithm code).
    pub signature: String,
}

/// A signed transaction in JSON. The signatures are over the canonical bytes of
/// `content` (`docs/FORMAT.md`), which the gateway rebuilds from these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TransactionJson {
    /// What is signed.
    pub content: ContentJson,
    /// At least one signature.
    pub endorsements: Vec<EndorsementJson>,
}

impl TransactionJson {
    /// The JSON form of `transaction`.
    pub fn from_transaction(transaction: &Transaction) -> Self {
        TransactionJson {
            content: ContentJson {
                ledger_id: hex::encode(transaction.content.ledger_id.0),
                nonce: transaction.content.nonce,
                timestamp_ms: transaction.content.timestamp_ms,
                operations: transaction
                    .content
                    .operations
                    .iter()
                    .map(OperationJson::from_operation)
                    .collect(),
            },
            endorsements: transaction
                .endorsements
                .iter()
                .map(|e| EndorsementJson {
                    public_key: hex::encode(e.public_key.to_bytes()),
                    signature: hex::encode(e.signature.to_bytes()),
                })
                .collect(),
        }
    }

    /// The model transaction (signatures are not checked here).
    pub fn to_transaction(&self) -> Result<Transaction, FieldError> {
        let operations = self
            .content
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| op.to_operation().map_err(|e| e.within(&format!("operations[{i}]"))))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.within("content"))?;
        let content = TransactionContent {
            ledger_id: LedgerId(
                parse_hash("ledger_id", &self.content.ledger_id)
                    .map_err(|e| e.within("content"))?,
            ),
            nonce: self.content.nonce,
            timestamp_ms: self.content.timestamp_ms,
            operations,
        };
        content.check().map_err(|reason| FieldError::new("content", reason))?;
        if self.endorsements.is_empty()
            || self.endorsements.len() > engine::limits::TX_SIGNATURES_MAX
        {
            return Err(FieldError::new(
                "endorsements",
                format!("1 to {} signatures", engine::limits::TX_SIGNATURES_MAX),
            ));
        }
        let endorsements = self
            .endorsements
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let field = format!("endorsements[{i}]");
                let public_key = parse_public_key("public_key", &e.public_key)
                    .map_err(|err| err.within(&field))?;
                let bytes = hex::decode(&e.signature).map_err(|err| {
                    FieldError::new(format!("{field}.signature"), err.to_string())
                })?;
                let signature = Signature::from_bytes(&bytes).map_err(|err| {
                    FieldError::new(format!("{field}.signature"), err.to_string())
                })?;
                Ok(Endorsement { public_key, signature })
            })
            .collect::<Result<Vec<_>, FieldError>>()?;
        Ok(Transaction { content, endorsements })
    }
}

/// A JSON submission: one transaction or a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(untagged)]
pub enum SubmitJson {
    /// `{"transactions": [...]}`
    Batch {
        /// The transactions, in order.
        transactions: Vec<TransactionJson>,
    },
    /// One transaction object.
    One(TransactionJson),
}

/// The answer to a submission without waiting: the hashes, in submission order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Accepted {
    /// Transaction hashes (hex).
    pub hashes: Vec<String>,
}

/// What became of one submitted transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Outcome {
    /// Transaction hash (hex).
    pub hash: String,
    /// `committed` (in a block; see `result`) or `rejected` (never entered a block).
    pub status: String,
    /// Block height, when committed.
    pub height: Option<u64>,
    /// Position in the block, when committed.
    pub index: Option<u32>,
    /// The result code (`committed`, `version_conflict`, … or, when rejected,
    /// `BAD_SIGNATURE`, `WRONG_LEDGER`, `ALREADY_COMMITTED`, …).
    pub result: Option<String>,
    /// Why it was rejected.
    pub reason: Option<String>,
}

/// The answer to a submission with `wait=commit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Outcomes {
    /// One per transaction, in submission order.
    pub outcomes: Vec<Outcome>,
}

/// An RFC 7807 problem (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code (`docs/OPERATIONS.md` lists them).
    pub code: String,
    /// Short summary.
    pub title: String,
    /// What exactly was wrong.
    pub detail: String,
}

/// A ledger hosted by the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LedgerView {
    /// Ledger id (hex).
    pub id: String,
    /// Name.
    pub name: String,
    /// Latest committed height on this node.
    pub height: u64,
    /// Its block hash (hex).
    pub block_hash: String,
    /// State root after it (hex).
    pub state_root: String,
    /// Whether this node leads the ledger's consensus group now.
    pub leader: bool,
    /// Whether this node knows the group's leader (the ledger can commit).
    pub leader_known: bool,
    /// Why the ledger is halted on this node, if it is.
    pub halted: Option<String>,
    /// Transactions committed since the node started.
    pub transactions_committed: u64,
    /// Transactions waiting to be final.
    pub pending: u64,
}

/// A ledger's genesis settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SettingsView {
    /// Name.
    pub name: String,
    /// `sm3` or `sha256`.
    pub hash_algorithm: String,
    /// Accepted signature algorithms.
    pub signature_algorithms: Vec<String>,
    /// `solo`, `raft`, …
    pub consensus: String,
    /// Consensus members, in order.
    pub participants: Vec<ParticipantView>,
    /// Users registered at genesis (public keys, hex).
    pub initial_users: Vec<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
}

/// A consensus member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ParticipantView {
    /// Member number (1-based, genesis order).
    pub member: u64,
    /// Public key (hex).
    pub public_key: String,
    /// Address derived from it (hex).
    pub address: String,
}

impl SettingsView {
    /// The view of `settings`.
    pub fn new(settings: &LedgerSettings) -> Self {
        SettingsView {
            name: settings.name.clone(),
            hash_algorithm: settings.hash_algorithm.name().to_owned(),
            signature_algorithms: settings
                .signature_algorithms
                .iter()
                .map(|a| a.name().to_owned())
                .collect(),
            consensus: settings.consensus.clone(),
            participants: settings
                .participants
                .iter()
                .enumerate()
                .map(|(i, key)| ParticipantView {
                    member: i as u64 + 1,
                    public_key: hex::encode(key.to_bytes()),
                    address: hex::encode(
                        engine::model::Address::of(settings.hash_algorithm, key).0,
                    ),
                })
                .collect(),
            initial_users: settings
                .initial_users
                .iter()
                .map(|key| hex::encode(key.to_bytes()))
                .collect(),
            created_ms: settings.created_ms,
        }
    }
}

/// A block header with its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlockView {
    /// Height.
    pub height: u64,
    /// Header hash (hex).
    pub hash: String,
    /// Previous block's hash (hex).
    pub previous_hash: String,
    /// Root of the transaction tree (hex).
    pub tx_root: String,
    /// State root after this block (hex).
    pub state_root: String,
    /// Proposer's timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Proposer's address (hex).
    pub proposer: String,
    /// Number of transactions.
    pub tx_count: u64,
    /// The canonical header bytes (hex, `docs/FORMAT.md`), to recompute `hash`.
    pub header_hex: String,
}

impl BlockView {
    /// The view of a header.
    pub fn new(header: &BlockHeader, hash: &Hash32, tx_count: usize) -> Self {
        BlockView {
            height: header.height,
            hash: hex::encode(hash),
            previous_hash: hex::encode(header.previous_hash),
            tx_root: hex::encode(header.tx_root),
            state_root: hex::encode(header.state_root),
            timestamp_ms: header.timestamp_ms,
            proposer: hex::encode(header.proposer.0),
            tx_count: tx_count as u64,
            header_hex: hex::encode(header.encode()),
        }
    }
}

/// A transaction's hash and result within a block.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlockTxView {
    /// Position in the block.
    pub index: u32,
    /// Transaction hash (hex).
    pub hash: String,
    /// Result code.
    pub result: String,
}

/// A page of a block's transactions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlockTxPage {
    /// The block's height.
    pub height: u64,
    /// The page.
    pub transactions: Vec<BlockTxView>,
    /// `from` for the next page, when there is one.
    pub next_from: Option<u32>,
}

/// A transaction's status on this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TxStatusView {
    /// Transaction hash (hex).
    pub hash: String,
    /// `committed` or `pending` (unknown transactions answer 404).
    pub status: String,
    /// Block height, when committed.
    pub height: Option<u64>,
    /// Position in the block, when committed.
    pub index: Option<u32>,
    /// Result code, when committed.
    pub result: Option<String>,
    /// The transaction as signed, when committed.
    pub transaction: Option<TransactionJson>,
}

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserView {
    /// Address (hex).
    pub address: String,
    /// Whether it is registered.
    pub registered: bool,
}

/// A data account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AccountView {
    /// Name.
    pub name: String,
    /// Owner's address (hex).
    pub owner: String,
}

/// One version of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ValueView {
    /// Data account.
    pub account: String,
    /// The key as UTF-8, when it is.
    pub key: Option<String>,
    /// The key's bytes (hex).
    pub key_hex: String,
    /// 0 for the first write, +1 per write.
    pub version: u64,
    /// Height of the block that wrote it.
    pub height: u64,
    /// The transaction that wrote it (hex).
    pub tx_hash: String,
    /// The value as UTF-8, when it is.
    pub value: Option<String>,
    /// The value's bytes (hex).
    pub value_hex: String,
}

impl ValueView {
    /// The view of one version.
    pub fn new(account: &str, key: &[u8], value: &engine::ledger::VersionedValue) -> Self {
        ValueView {
            account: account.to_owned(),
            key: utf8_copy(key),
            key_hex: hex::encode(key),
            version: value.version,
            height: value.height,
            tx_hash: hex::encode(value.tx_hash),
            value: utf8_copy(&value.value),
            value_hex: hex::encode(&value.value),
        }
    }

    /// The value's bytes.
    pub fn value_bytes(&self) -> Result<Vec<u8>, FieldError> {
        hex::decode(&self.value_hex).map_err(|e| FieldError::new("value_hex", e.to_string()))
    }
}

/// A page of a key's history, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HistoryPage {
    /// The versions.
    pub versions: Vec<ValueView>,
    /// `from_version` for the next page, when there is one.
    pub next_from_version: Option<u64>,
}

/// A proof in its documented JSON form (`docs/FORMAT.md` §14): the claim in readable
/// fields, and the canonical proof bytes in `encoded`. Verification (`crate::proof`)
/// decodes `encoded`, checks that it proves exactly the claim, and recomputes the block
/// hash; the caller compares that with a block hash it trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProofDocument {
    /// `transaction` (inclusion of a transaction with its result) or `state` (a data
    /// key's value and version at a block, or its absence).
    pub kind: String,
    /// Ledger id (hex).
    pub ledger_id: String,
    /// `sm3` or `sha256`: the ledger's hash algorithm.
    pub hash_algorithm: String,
    /// Height of the block the proof ends at.
    pub height: u64,
    /// That block's hash (hex), as claimed by the node.
    pub block_hash: String,
    /// Transaction proofs: the transaction hash (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// Transaction proofs: its result code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// State proofs: the data account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// State proofs: the key's bytes (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<String>,
    /// State proofs: whether the key exists at that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
    /// State proofs of a present key: its version at that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// State proofs of a present key: its value at that block (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
    /// The canonical proof bytes (hex): `TxProof` or `StateProof` of `docs/FORMAT.md`.
    pub encoded: String,
}

/// The answer of `POST /api/v1/proofs/verify`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProofVerdict {
    /// The proof proves its claim and ends at the claimed block hash.
    pub valid: bool,
    /// Why not, when it does not.
    pub error: Option<String>,
    /// The block hash the proof ends at (hex), when valid.
    pub block_hash: Option<String>,
    /// Whether this node holds the same block at that height (its own anchor).
    pub matches_node: bool,
}
