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
    /// Register an event account (a namespace of topics) owned by the first signer.
    RegisterEventAccount {
        /// Account name (names starting with `$` are reserved).
        name: String,
    },
    /// Publish an event on a topic of an event account the signers own.
    PublishEvent {
        /// Event account.
        account: String,
        /// Topic.
        topic: String,
        /// The payload as UTF-8 (or give `payload_hex`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<String>,
        /// The payload's bytes in hex.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload_hex: Option<String>,
    },
    /// Record a recall of a GTIN's lot (a regulator of the ledger only).
    Recall {
        /// GTIN-14 with its check digit.
        gtin: String,
        /// Lot/batch number (1 to 20 characters of GS1 CSet 82).
        lot: String,
        /// Why.
        reason: String,
    },
    /// Create or change a role (permissioned ledgers; needs `configure_roles`).
    DefineRole {
        /// Role name.
        name: String,
        /// Permission names (`configure_roles`, `register_user`, `write_data`, …).
        permissions: Vec<String>,
    },
    /// Set a user's roles (needs `configure_roles`).
    AssignRoles {
        /// The user's address (hex).
        user: String,
        /// Role names.
        roles: Vec<String>,
        /// `union` or `intersect`.
        policy: String,
    },
    /// Allow (or stop allowing) a user to write a data account (its owner only).
    GrantWrite {
        /// Data account.
        account: String,
        /// The user's address (hex).
        grantee: String,
        /// `false` revokes.
        allowed: bool,
    },
    /// Admit a consensus participant (needs a quorum of the current participants'
    /// signatures besides the actor's).
    AddParticipant {
        /// Its node key (hex, binary form with the algorithm code).
        public_key: String,
        /// Its node id.
        node_id: u64,
        /// Its node-to-node address (`IP:PORT`).
        address: String,
    },
    /// Remove a consensus participant (same quorum).
    RemoveParticipant {
        /// Its node key (hex).
        public_key: String,
    },
    /// Seal the ledger: it takes no more transactions (an administrator only).
    Seal {
        /// Why, for the record.
        note: String,
    },
}

/// Permission names of a bit set, in `permission::NAMES` order.
pub fn permission_names(bits: u32) -> Vec<String> {
    engine::model::permission::NAMES
        .iter()
        .filter(|(_, bit)| bits & bit == *bit)
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

fn parse_permissions(names: &[String]) -> Result<u32, FieldError> {
    names.iter().try_fold(0u32, |bits, name| {
        engine::model::permission::by_name(name)
            .map(|bit| bits | bit)
            .ok_or_else(|| FieldError::new("permissions", format!("unknown permission `{name}`")))
    })
}

fn parse_address(field: &str, text: &str) -> Result<engine::model::Address, FieldError> {
    parse_hash(field, text).map(engine::model::Address)
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
            Operation::RegisterEventAccount { name } => {
                OperationJson::RegisterEventAccount { name: name.clone() }
            }
            Operation::PublishEvent { account, topic, payload } => OperationJson::PublishEvent {
                account: account.clone(),
                topic: topic.clone(),
                payload: utf8_copy(payload),
                payload_hex: Some(hex::encode(payload)),
            },
            Operation::Recall { gtin, lot, reason } => OperationJson::Recall {
                gtin: gtin.clone(),
                lot: lot.clone(),
                reason: reason.clone(),
            },
            Operation::DefineRole { name, permissions } => OperationJson::DefineRole {
                name: name.clone(),
                permissions: permission_names(*permissions),
            },
            Operation::AssignRoles { user, roles, policy } => OperationJson::AssignRoles {
                user: hex::encode(user.0),
                roles: roles.clone(),
                policy: match policy {
                    engine::model::RolePolicy::Union => "union".into(),
                    engine::model::RolePolicy::Intersect => "intersect".into(),
                },
            },
            Operation::GrantWrite { account, grantee, allowed } => OperationJson::GrantWrite {
                account: account.clone(),
                grantee: hex::encode(grantee.0),
                allowed: *allowed,
            },
            Operation::AddParticipant { public_key, node_id, address } => {
                OperationJson::AddParticipant {
                    public_key: hex::encode(public_key.to_bytes()),
                    node_id: *node_id,
                    address: address.clone(),
                }
            }
            Operation::RemoveParticipant { public_key } => {
                OperationJson::RemoveParticipant { public_key: hex::encode(public_key.to_bytes()) }
            }
            Operation::Seal { note } => OperationJson::Seal { note: note.clone() },
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
            OperationJson::RegisterEventAccount { name } => {
                Operation::RegisterEventAccount { name: name.clone() }
            }
            OperationJson::PublishEvent { account, topic, payload, payload_hex } => {
                Operation::PublishEvent {
                    account: account.clone(),
                    topic: topic.clone(),
                    payload: bytes_field("payload", payload, payload_hex)?,
                }
            }
            OperationJson::Recall { gtin, lot, reason } => {
                engine::model::check_gtin(gtin).map_err(|e| FieldError::new("gtin", e))?;
                engine::model::check_lot(lot).map_err(|e| FieldError::new("lot", e))?;
                Operation::Recall { gtin: gtin.clone(), lot: lot.clone(), reason: reason.clone() }
            }
            OperationJson::DefineRole { name, permissions } => Operation::DefineRole {
                name: name.clone(),
                permissions: parse_permissions(permissions)?,
            },
            OperationJson::AssignRoles { user, roles, policy } => Operation::AssignRoles {
                user: parse_address("user", user)?,
                roles: roles.clone(),
                policy: match policy.as_str() {
                    "union" => engine::model::RolePolicy::Union,
                    "intersect" => engine::model::RolePolicy::Intersect,
                    other => {
                        return Err(FieldError::new(
                            "policy",
                            format!("`{other}`: union or intersect"),
                        ));
                    }
                },
            },
            OperationJson::GrantWrite { account, grantee, allowed } => Operation::GrantWrite {
                account: account.clone(),
                grantee: parse_address("grantee", grantee)?,
                allowed: *allowed,
            },
            OperationJson::AddParticipant { public_key, node_id, address } => {
                Operation::AddParticipant {
                    public_key: parse_public_key("public_key", public_key)?,
                    node_id: *node_id,
                    address: address.clone(),
                }
            }
            OperationJson::RemoveParticipant { public_key } => Operation::RemoveParticipant {
                public_key: parse_public_key("public_key", public_key)?,
            },
            OperationJson::Seal { note } => Operation::Seal { note: note.clone() },
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
    /// The consensus group's voting members as this node sees them (member numbers,
    /// `GET …/participants` maps them to keys); empty while this node waits to be
    /// admitted.
    #[serde(default)]
    pub voters: Vec<u64>,
    /// Its seal, once sealed (a split or merge): it takes no more transactions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealView>,
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
    /// Regulators: keys that may record recalls (public keys, hex).
    pub regulators: Vec<String>,
    /// Roles defined at genesis (name → permission names); non-empty: the ledger is
    /// permissioned.
    pub roles: Vec<RoleView>,
    /// Creation time, ms since the Unix epoch.
    pub created_ms: u64,
    /// The sealed ledgers this one continues (split, merge), with their sealing blocks.
    #[serde(default)]
    pub parents: Vec<LineageView>,
    /// The canonical settings bytes (hex): what the genesis block commits to
    /// (`docs/FORMAT.md`); `POST /api/v1/admin/ledgers` takes them.
    #[serde(default)]
    pub settings_hex: String,
}

/// A sealed parent ledger and its sealing block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LineageView {
    /// Parent ledger id (hex).
    pub ledger_id: String,
    /// Height of its sealing block.
    pub height: u64,
    /// That block's hash (hex).
    pub block_hash: String,
}

/// A ledger's seal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SealView {
    /// Height of the sealing block: the ledger's last.
    pub height: u64,
    /// The sealing transaction (hex).
    pub tx_hash: String,
    /// Its note.
    pub note: String,
}

/// A role and its permissions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoleView {
    /// Role name.
    pub name: String,
    /// Permission names.
    pub permissions: Vec<String>,
}

/// A consensus member.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ParticipantView {
    /// Member number (1-based: genesis order, then admission order; never reused).
    pub member: u64,
    /// Public key (hex).
    pub public_key: String,
    /// Address derived from it (hex).
    pub address: String,
    /// Node id, for a participant admitted by a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// Node-to-node address, for a participant admitted by a transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_address: Option<String>,
    /// Height of the block that admitted it (0: genesis).
    #[serde(default)]
    pub added_height: u64,
    /// Height of the block that removed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_height: Option<u64>,
}

impl ParticipantView {
    /// The view of a ledger's participant record.
    pub fn of(
        participant: &engine::ledger::Participant,
        algorithm: crypto_parallel::HashAlgorithm,
    ) -> Self {
        ParticipantView {
            member: participant.member,
            public_key: hex::encode(participant.public_key.to_bytes()),
            address: hex::encode(engine::model::Address::of(algorithm, &participant.public_key).0),
            node_id: participant.node_id,
            network_address: participant.address.clone(),
            added_height: participant.added_height,
            removed_height: participant.removed_height,
        }
    }
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
                    node_id: None,
                    network_address: None,
                    added_height: 0,
                    removed_height: None,
                })
                .collect(),
            initial_users: settings
                .initial_users
                .iter()
                .map(|key| hex::encode(key.to_bytes()))
                .collect(),
            regulators: settings.regulators.iter().map(|key| hex::encode(key.to_bytes())).collect(),
            roles: settings
                .roles
                .iter()
                .map(|(name, bits)| RoleView {
                    name: name.clone(),
                    permissions: permission_names(*bits),
                })
                .collect(),
            created_ms: settings.created_ms,
            parents: settings
                .parents
                .iter()
                .map(|p| LineageView {
                    ledger_id: hex::encode(p.ledger_id.0),
                    height: p.height,
                    block_hash: hex::encode(p.block_hash),
                })
                .collect(),
            settings_hex: hex::encode(settings.encode()),
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
    /// `bft` ledgers: the block's commit certificate (hex, `docs/FORMAT.md` §18) — the
    /// precommit signatures of more than 2/3 of the participants on `hash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_hex: Option<String>,
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
            certificate_hex: None,
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
    /// `bft` ledgers: the commit certificate of the block the proof ends at (hex,
    /// `docs/FORMAT.md` §18); `sdk::proof::verify_certified` checks it against the
    /// participants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_hex: Option<String>,
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

/// One committed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventView {
    /// Ledger-wide event number (0, 1, 2, … in commit order).
    pub number: u64,
    /// Height of the block that committed it.
    pub height: u64,
    /// The transaction that published it (hex).
    pub tx_hash: String,
    /// Event account.
    pub account: String,
    /// Topic.
    pub topic: String,
    /// Position in the topic (0, 1, 2, …).
    pub sequence: u64,
    /// The payload as UTF-8, when it is.
    pub payload: Option<String>,
    /// The payload's bytes (hex).
    pub payload_hex: String,
}

impl EventView {
    /// The view of a stored event.
    pub fn new(event: &engine::ledger::EventRecord) -> Self {
        EventView {
            number: event.number,
            height: event.height,
            tx_hash: hex::encode(event.tx_hash),
            account: event.account.clone(),
            topic: event.topic.clone(),
            sequence: event.sequence,
            payload: utf8_copy(&event.payload),
            payload_hex: hex::encode(&event.payload),
        }
    }

    /// The payload's bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, FieldError> {
        hex::decode(&self.payload_hex).map_err(|e| FieldError::new("payload_hex", e.to_string()))
    }
}

/// A page of events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EventPage {
    /// The events.
    pub events: Vec<EventView>,
    /// Where the next page starts (`from` of the next call): an event number, or a
    /// sequence for a topic.
    pub next: u64,
}

/// A block as a stream message: the header view and each transaction's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BlockMessage {
    /// The block.
    pub block: BlockView,
    /// Its transactions with their results, in order.
    pub transactions: Vec<BlockTxView>,
}

/// One message of a subscription stream. `position` orders the stream: a block height
/// for the block stream, the ledger-wide event number for the event stream, the topic
/// sequence for a topic stream. Resuming from `position + 1` continues without a gap; a
/// client de-duplicates by position.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StreamMessage {
    /// Ledger id (hex).
    pub ledger: String,
    /// The message's position in its stream.
    pub position: u64,
    /// What happened.
    #[serde(flatten)]
    pub item: StreamItem,
}

/// What a stream message carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StreamItem {
    /// A committed block.
    Block(BlockMessage),
    /// A committed event.
    Event(EventView),
}

/// Which events a subscription wants (all given conditions hold). The EPCIS-style
/// conditions look into JSON payloads: `event_type` is the payload's `type`
/// (`ObjectEvent`, …); `biz_step` its `bizStep`, compared without the CBV prefix
/// (`shipping` matches `urn:epcglobal:cbv:bizstep:shipping`); `epc` any of `epcList`,
/// `childEPCs`, `parentID`, `inputEPCList`, `outputEPCList`. A payload that is not a
/// JSON object never matches an EPCIS condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct EventFilter {
    /// Event account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// Topic (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// EPCIS event type (payload `type`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// EPCIS business step (payload `bizStep`).
    #[serde(default, rename = "bizStep", skip_serializing_if = "Option::is_none")]
    pub biz_step: Option<String>,
    /// An EPC named by the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epc: Option<String>,
}

impl EventFilter {
    /// Whether the filter has no condition.
    pub fn is_empty(&self) -> bool {
        *self == EventFilter::default()
    }

    /// Whether an event of `account`/`topic` with `payload` passes.
    pub fn matches(&self, account: &str, topic: &str, payload: &[u8]) -> bool {
        if self.account.as_deref().is_some_and(|wanted| wanted != account)
            || self.topic.as_deref().is_some_and(|wanted| wanted != topic)
        {
            return false;
        }
        if self.event_type.is_none() && self.biz_step.is_none() && self.epc.is_none() {
            return true;
        }
        let Ok(serde_json::Value::Object(event)) = serde_json::from_slice(payload) else {
            return false;
        };
        let text = |field: &str| event.get(field).and_then(serde_json::Value::as_str);
        if self.event_type.as_deref().is_some_and(|wanted| text("type") != Some(wanted)) {
            return false;
        }
        if let Some(wanted) = &self.biz_step {
            let short = |step: &str| step.rsplit([':', '/']).next().unwrap_or(step).to_owned();
            match text("bizStep") {
                Some(step) if step == wanted || short(step) == short(wanted) => {}
                _ => return false,
            }
        }
        if let Some(wanted) = &self.epc {
            let named = ["epcList", "childEPCs", "inputEPCList", "outputEPCList"]
                .iter()
                .filter_map(|field| event.get(*field).and_then(serde_json::Value::as_array))
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .chain(text("parentID"))
                .any(|epc| epc == wanted);
            if !named {
                return false;
            }
        }
        true
    }
}

/// What an online backup holds (`manifest.json` beside its `db/` directory, and the
/// answer of `POST /api/v1/admin/backup`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupManifest {
    /// The backup's directory on the node's machine.
    pub path: String,
    /// When it was taken, ms since the Unix epoch.
    pub created_ms: u64,
    /// Each ledger in it, at the one committed height the backup holds.
    pub ledgers: Vec<BackupLedger>,
}

/// One ledger of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct BackupLedger {
    /// Ledger name.
    pub name: String,
    /// Ledger id (hex).
    pub id: String,
    /// Height of its last block in the backup.
    pub height: u64,
    /// That block's hash (hex).
    pub block_hash: String,
}

/// Body of `POST /api/v1/admin/backup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// The backup's directory name under the node's `backup_dir` (letters, digits, `.`,
    /// `_`, `-`; default `backup-<ms since epoch>`).
    #[serde(default)]
    pub name: Option<String>,
}

/// The answer of `GET /api/v1/trace/{code}`: a product's history across the node's
/// ledgers, each event with what proves it offline (`sdk::trace::verify`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TraceView {
    /// The trace code asked for, in canonical form (GS1 Digital Link on `id.gs1.org`).
    pub code: String,
    /// Its events, and those of the containers that held it while they did, ordered by
    /// `event_time_ms`, then ledger name, then event number.
    pub events: Vec<TraceEventView>,
    /// The containers followed (pallets, cases) and when they held the item.
    pub containers: Vec<ContainmentView>,
    /// Recalls of the item's GTIN and lot, with their proofs.
    pub recalls: Vec<RecallView>,
    /// The history was longer than the node answers at once (`TRACE_EVENTS_MAX`).
    pub truncated: bool,
    /// Every ledger the events and recalls are on, and the sealed parents they continue:
    /// its genesis (which commits to its settings, lineage included) and its seal with
    /// proof, so a history spanning a split or merge verifies as one.
    #[serde(default)]
    pub ledgers: Vec<TraceLedgerView>,
}

/// A ledger of a trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TraceLedgerView {
    /// Name.
    pub name: String,
    /// Id (hex): the hash of the genesis header.
    pub ledger_id: String,
    /// The canonical settings bytes (hex); the genesis header's `tx_root` is their hash.
    pub settings_hex: String,
    /// The genesis header (hex).
    pub genesis_header_hex: String,
    /// Its seal, when sealed (split or merged into others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<TraceSealView>,
}

/// A sealed ledger's seal, with its proof.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TraceSealView {
    /// Height of the sealing block.
    pub height: u64,
    /// The sealing transaction, as signed (hex).
    pub transaction_hex: String,
    /// Proof that it committed.
    pub proof: ProofDocument,
}

/// One event of a trace.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TraceEventView {
    /// Ledger name.
    pub ledger: String,
    /// Ledger id (hex).
    pub ledger_id: String,
    /// Height of the block that committed it.
    pub height: u64,
    /// That block's timestamp (ms since the Unix epoch).
    pub block_time_ms: u64,
    /// The ledger's event number.
    pub event_number: u64,
    /// The trace code whose history holds it: the item's, or a container's.
    pub topic: String,
    /// The container it was inherited from, when not the item's own event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// EPCIS event type (`ObjectEvent`, …).
    pub event_type: String,
    /// `eventTime` as given.
    pub event_time: String,
    /// `eventTime` in ms since the Unix epoch.
    pub event_time_ms: i64,
    /// `action`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `bizStep`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub biz_step: Option<String>,
    /// `disposition`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disposition: Option<String>,
    /// `bizLocation.id`, else `readPoint.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The event's JSON exactly as recorded (the payload of its `PublishEvent`).
    pub payload: String,
    /// The transaction that recorded it, as signed (hex of its canonical bytes).
    pub transaction_hex: String,
    /// Committed after a recall of this item: still recorded, flagged.
    pub recall_alert: bool,
    /// Proof that the transaction committed in its block.
    pub proof: ProofDocument,
}

/// A container that held the traced item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ContainmentView {
    /// The container's trace code (an SSCC pallet, a case).
    pub parent: String,
    /// The code it contained (the item, or an inner container).
    pub child: String,
    /// From the `ADD` aggregation (ms since the Unix epoch).
    pub from_ms: i64,
    /// Until the `DELETE` aggregation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
}

/// A recall that applies to the traced item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecallView {
    /// GTIN-14 recalled.
    pub gtin: String,
    /// Lot/batch recalled.
    pub lot: String,
    /// Why.
    pub reason: String,
    /// The regulator's address (hex).
    pub regulator: String,
    /// Ledger name.
    pub ledger: String,
    /// Height of the block that recorded it.
    pub height: u64,
    /// That block's timestamp (ms since the Unix epoch).
    pub block_time_ms: u64,
    /// The recall transaction, as signed (hex).
    pub transaction_hex: String,
    /// Proof that it committed.
    pub proof: ProofDocument,
}

/// The answer of `GET /epcis/events`: one page of captured events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EpcisEventsPage {
    /// Matching events (EPCIS JSON as recorded), in ledger order.
    pub events: Vec<EpcisEventView>,
    /// Pass as `nextPageToken` for the next page; absent on the last.
    #[serde(rename = "nextPageToken", default, skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// One event of an `/epcis/events` page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EpcisEventView {
    /// Ledger name.
    pub ledger: String,
    /// Height of its block.
    pub height: u64,
    /// Its transaction (hex).
    pub tx_hash: String,
    /// The event as recorded.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub event: serde_json::Value,
}

/// The answer of `GET /api/v1/shard-map`: the map captures are routed by.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ShardMapView {
    /// Its epoch.
    pub epoch: u64,
    /// SHA-256 of its canonical JSON (hex).
    pub digest: String,
    /// The map (`sharding::map` JSON form).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub map: serde_json::Value,
    /// The ledger that records it, when recorded on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<String>,
    /// Its version of key `map` in data account `shard-map` there (epoch − 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The height that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
}

/// The body of `POST /api/v1/admin/ledgers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateLedgerRequest {
    /// The ledger's canonical settings bytes (hex, `docs/FORMAT.md`): the same bytes on
    /// every participant make the same ledger.
    pub settings_hex: String,
}
