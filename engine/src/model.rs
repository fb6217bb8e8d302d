//! The ledger model: ids, operations, transactions, blocks, results, settings, and their
//! canonical encodings (`docs/FORMAT.md` §5–§7).
//!
//! Identity never depends on signature bytes (ECDSA and SM2 signatures are malleable):
//! a transaction's hash covers its content only; signatures ride alongside.

use crypto_parallel::{HashAlgorithm, PublicKey, Signature, SignatureAlgorithm, hash};

use crate::codec::{DecodeError, Reader, Writer};
use crate::limits::*;

/// Version byte at the start of every encoded transaction content, header and settings.
pub const FORMAT_VERSION: u8 = 1;

/// A 32-byte hash (digest bytes without the algorithm code: the ledger's settings name
/// the algorithm).
pub type Hash32 = [u8; 32];

/// Identifies a ledger: the hash of its genesis block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerId(pub Hash32);

/// A user account's address: hash of its public key's binary form (`code || raw`) under
/// the ledger's hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub Hash32);

impl Address {
    /// The address of `public_key` on a ledger hashing with `algorithm`.
    pub fn of(algorithm: HashAlgorithm, public_key: &PublicKey) -> Address {
        Address(*hash(algorithm, &public_key.to_bytes()).as_bytes())
    }
}

pub(crate) fn encode_public_key(writer: &mut Writer, key: &PublicKey) {
    writer.bytes16(&key.to_bytes());
}

pub(crate) fn decode_public_key(reader: &mut Reader<'_>) -> Result<PublicKey, DecodeError> {
    let bytes = reader.bytes16(KEY_ENCODED_LEN_MAX, "public key")?;
    PublicKey::from_bytes(bytes)
        .map_err(|error| DecodeError::Invalid { what: "public key", reason: error.to_string() })
}

fn decode_name(reader: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let bytes = reader.bytes16(NAME_LEN_MAX, what)?;
    let name = std::str::from_utf8(bytes)
        .map_err(|_| DecodeError::Invalid { what, reason: "not UTF-8".into() })?;
    check_name(name).map_err(|reason| DecodeError::Invalid { what, reason: reason.into() })?;
    Ok(name.to_owned())
}

/// Names (ledgers, data accounts) are 1..=128 bytes of printable ASCII other than
/// space, so they are safe in URLs, logs and file names.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return Err("must be 1 to 128 bytes");
    }
    if !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces");
    }
    Ok(())
}

/// One state change requested by a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Register a user account for `public_key` (address derived from it).
    RegisterUser {
        /// The new user's key.
        public_key: PublicKey,
    },
    /// Register a data account (a key namespace) owned by the transaction's first signer.
    RegisterDataAccount {
        /// Account name, unique in the ledger.
        name: String,
    },
    /// Write `value` under `key` of data account `account`, if the key's current version
    /// equals `expected_version` (−1: the key must not exist yet).
    WriteKv {
        /// Data account name.
        account: String,
        /// Key within the account.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
        /// Optimistic concurrency: the version the writer saw.
        expected_version: i64,
    },
    /// Register an event account (a namespace of event topics) owned by the
    /// transaction's first signer. Names starting with `$` are reserved for the system.
    RegisterEventAccount {
        /// Account name, unique among the ledger's event accounts.
        name: String,
    },
    /// Append an event to `topic` of event account `account`. Its sequence number in the
    /// topic (0, 1, 2, …) and its ledger-wide event number are assigned at execution.
    PublishEvent {
        /// Event account name.
        account: String,
        /// Topic within the account (a name: printable ASCII, 1 to 128 bytes).
        topic: String,
        /// The event body (opaque bytes; JSON by convention).
        payload: Vec<u8>,
    },
    /// Record a recall of a trade item's lot/batch. Only a regulator of the ledger
    /// (`LedgerSettings::regulators`) may; it becomes a recall record (provable by its
    /// state leaf) and a system event on `$system` / `recall`.
    Recall {
        /// The GTIN, 14 digits with a valid GS1 check digit (shorter GTINs padded with
        /// leading zeros).
        gtin: String,
        /// The lot/batch number (GS1 AI 10): 1 to 20 characters of GS1's CSet 82.
        lot: String,
        /// Why (free text, up to 1,024 bytes of UTF-8).
        reason: String,
    },
    /// Create or change a role (needs `configure_roles`; permissioned ledgers only).
    DefineRole {
        /// Role name.
        name: String,
        /// Its permissions (`permission::*` bits).
        permissions: u32,
    },
    /// Set a user's roles and how they combine (needs `configure_roles`).
    AssignRoles {
        /// The user's address.
        user: Address,
        /// Role names (at most `USER_ROLES_MAX`); unknown roles grant nothing.
        roles: Vec<String>,
        /// Union or intersection of the roles' permissions.
        policy: RolePolicy,
    },
    /// Allow (or stop allowing) `grantee` to write data account `account`; only its
    /// owner may.
    GrantWrite {
        /// Data account.
        account: String,
        /// The user allowed.
        grantee: Address,
        /// `false` revokes.
        allowed: bool,
    },
    /// Admit a consensus participant (needs `register_participant` of the actor and the
    /// signatures of a quorum of the current participants' node keys): the next member
    /// of the group, reached at `address` as node `node_id`.
    AddParticipant {
        /// Its node key.
        public_key: PublicKey,
        /// Its node id in the deployment (`[node] id`).
        node_id: u64,
        /// Its node-to-node address (`IP:PORT`).
        address: String,
    },
    /// Remove a consensus participant (same permission and quorum): it stops voting and
    /// its blocks are refused from the next block on.
    RemoveParticipant {
        /// Its node key.
        public_key: PublicKey,
    },
    /// Seal the ledger: it takes no transaction after this one (later ones, in this
    /// block too, get `LedgerSealed`). A split or merge seals its parents; the children's
    /// genesis commits to the sealing block (`LedgerSettings::parents`). Only an initial
    /// user (an administrator) may, or on a permissioned ledger a holder of
    /// `configure_roles`.
    Seal {
        /// Why, for the record (e.g. "split into dairy-1, dairy-2"), up to 1,024 bytes.
        note: String,
    },
}

/// Ledger permissions: a bit set held through roles (`LedgerSettings::roles`,
/// `Operation::DefineRole`, `Operation::AssignRoles`). Enforced only on a ledger whose
/// genesis defines roles (a *permissioned* ledger); on others every registered user may
/// do everything but configure roles and recall (only regulators recall there).
pub mod permission {
    /// Define roles and assign them to users.
    pub const CONFIGURE_ROLES: u32 = 1 << 0;
    /// Approve transactions (reserved: no operation needs it yet).
    pub const APPROVE_TRANSACTIONS: u32 = 1 << 1;
    /// Register users.
    pub const REGISTER_USER: u32 = 1 << 2;
    /// Register data accounts.
    pub const REGISTER_DATA_ACCOUNT: u32 = 1 << 3;
    /// Write data (into accounts the signers own or were granted).
    pub const WRITE_DATA: u32 = 1 << 4;
    /// Register event accounts.
    pub const REGISTER_EVENT_ACCOUNT: u32 = 1 << 5;
    /// Publish events (on accounts the signers own).
    pub const PUBLISH_EVENT: u32 = 1 << 6;
    /// Register participants (reserved: for run-time membership).
    pub const REGISTER_PARTICIPANT: u32 = 1 << 7;
    /// Record recalls (besides the settings' regulators).
    pub const RECALL: u32 = 1 << 8;
    /// Every permission.
    pub const ALL: u32 = (1 << 9) - 1;
    /// Names, for configuration and APIs.
    pub const NAMES: [(&str, u32); 9] = [
        ("configure_roles", CONFIGURE_ROLES),
        ("approve_transactions", APPROVE_TRANSACTIONS),
        ("register_user", REGISTER_USER),
        ("register_data_account", REGISTER_DATA_ACCOUNT),
        ("write_data", WRITE_DATA),
        ("register_event_account", REGISTER_EVENT_ACCOUNT),
        ("publish_event", PUBLISH_EVENT),
        ("register_participant", REGISTER_PARTICIPANT),
        ("recall", RECALL),
    ];

    /// The bit of a permission name.
    pub fn by_name(name: &str) -> Option<u32> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, bit)| *bit)
    }
}

/// How a user's roles combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RolePolicy {
    /// A permission of any of the roles.
    Union = 0,
    /// Only permissions every role has.
    Intersect = 1,
}

/// Most roles defined at genesis.
pub const ROLES_MAX: usize = 256;

/// Most roles one user holds.
pub const USER_ROLES_MAX: usize = 32;

/// Most parents a ledger continues (a merge of this many sealed ledgers).
pub const PARENTS_MAX: usize = 64;

/// Longest seal note in bytes.
pub const SEAL_NOTE_LEN_MAX: usize = 1024;

/// Longest recall reason in bytes.
pub const RECALL_REASON_LEN_MAX: usize = 1024;

/// Checks a GTIN-14: 14 digits whose last is the GS1 mod-10 check digit of the others.
pub fn check_gtin(gtin: &str) -> Result<(), String> {
    let digits: Vec<u32> = gtin.chars().filter_map(|c| c.to_digit(10)).collect();
    if gtin.len() != 14 || digits.len() != 14 {
        return Err(format!("GTIN `{gtin}` must be 14 digits (pad shorter GTINs with zeros)"));
    }
    let sum: u32 = digits[..13]
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    let check = (10 - sum % 10) % 10;
    if check != digits[13] {
        return Err(format!("GTIN `{gtin}`: check digit {} should be {check}", digits[13]));
    }
    Ok(())
}

/// Checks a lot/batch number: 1 to 20 characters of GS1's CSet 82.
pub fn check_lot(lot: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!\"%&'()*+,-./:;<=>?_".contains(c);
    if lot.is_empty() || lot.len() > 20 || !lot.chars().all(allowed) {
        return Err(format!("lot `{lot}` must be 1 to 20 characters of GS1 CSet 82"));
    }
    Ok(())
}

/// Prefix of event account names the engine keeps for itself (`$system`).
pub const RESERVED_NAME_PREFIX: char = '$';

impl Operation {
    const TAG_REGISTER_USER: u8 = 1;
    const TAG_REGISTER_DATA_ACCOUNT: u8 = 2;
    const TAG_WRITE_KV: u8 = 3;
    const TAG_REGISTER_EVENT_ACCOUNT: u8 = 4;
    const TAG_PUBLISH_EVENT: u8 = 5;
    const TAG_RECALL: u8 = 6;
    const TAG_DEFINE_ROLE: u8 = 7;
    const TAG_ASSIGN_ROLES: u8 = 8;
    const TAG_GRANT_WRITE: u8 = 9;
    const TAG_ADD_PARTICIPANT: u8 = 10;
    const TAG_REMOVE_PARTICIPANT: u8 = 11;
    const TAG_SEAL: u8 = 12;

    /// About the length of the operation's encoding (at least it, for the common
    /// ones), so a transaction is encoded into one allocation.
    fn size_hint(&self) -> usize {
        match self {
            Operation::WriteKv { account, key, value, .. } => {
                32 + account.len() + key.len() + value.len()
            }
            Operation::PublishEvent { account, topic, payload } => {
                32 + account.len() + topic.len() + payload.len()
            }
            _ => 64,
        }
    }

    fn encode(&self, writer: &mut Writer) {
        match self {
            Operation::RegisterUser { public_key } => {
                writer.u8(Self::TAG_REGISTER_USER);
                encode_public_key(writer, public_key);
            }
            Operation::RegisterDataAccount { name } => {
                writer.u8(Self::TAG_REGISTER_DATA_ACCOUNT).bytes16(name.as_bytes());
            }
            Operation::WriteKv { account, key, value, expected_version } => {
                writer
                    .u8(Self::TAG_WRITE_KV)
                    .bytes16(account.as_bytes())
                    .bytes16(key)
                    .bytes32(value)
                    .i64(*expected_version);
            }
            Operation::RegisterEventAccount { name } => {
                writer.u8(Self::TAG_REGISTER_EVENT_ACCOUNT).bytes16(name.as_bytes());
            }
            Operation::PublishEvent { account, topic, payload } => {
                writer
                    .u8(Self::TAG_PUBLISH_EVENT)
                    .bytes16(account.as_bytes())
                    .bytes16(topic.as_bytes())
                    .bytes32(payload);
            }
            Operation::Recall { gtin, lot, reason } => {
                writer
                    .u8(Self::TAG_RECALL)
                    .bytes16(gtin.as_bytes())
                    .bytes16(lot.as_bytes())
                    .bytes16(reason.as_bytes());
            }
            Operation::DefineRole { name, permissions } => {
                writer.u8(Self::TAG_DEFINE_ROLE).bytes16(name.as_bytes()).u32(*permissions);
            }
            Operation::AssignRoles { user, roles, policy } => {
                writer
                    .u8(Self::TAG_ASSIGN_ROLES)
                    .raw(&user.0)
                    .u8(*policy as u8)
                    .u32(roles.len() as u32);
                for role in roles {
                    writer.bytes16(role.as_bytes());
                }
            }
            Operation::GrantWrite { account, grantee, allowed } => {
                writer
                    .u8(Self::TAG_GRANT_WRITE)
                    .bytes16(account.as_bytes())
                    .raw(&grantee.0)
                    .u8(u8::from(*allowed));
            }
            Operation::AddParticipant { public_key, node_id, address } => {
                writer.u8(Self::TAG_ADD_PARTICIPANT);
                encode_public_key(writer, public_key);
                writer.u64(*node_id).bytes16(address.as_bytes());
            }
            Operation::RemoveParticipant { public_key } => {
                writer.u8(Self::TAG_REMOVE_PARTICIPANT);
                encode_public_key(writer, public_key);
            }
            Operation::Seal { note } => {
                writer.u8(Self::TAG_SEAL).bytes16(note.as_bytes());
            }
        }
    }

    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("operation tag")? {
            Self::TAG_REGISTER_USER => {
                Ok(Operation::RegisterUser { public_key: decode_public_key(reader)? })
            }
            Self::TAG_REGISTER_DATA_ACCOUNT => {
                Ok(Operation::RegisterDataAccount { name: decode_name(reader, "account name")? })
            }
            Self::TAG_WRITE_KV => {
                let account = decode_name(reader, "account name")?;
                let key = reader.bytes16(KEY_LEN_MAX, "key")?.to_vec();
                let value = reader.bytes32(VALUE_LEN_MAX, "value")?.to_vec();
                let expected_version = reader.i64("expected version")?;
                if expected_version < -1 {
                    return Err(DecodeError::Invalid {
                        what: "expected version",
                        reason: "must be -1 or a version".into(),
                    });
                }
                Ok(Operation::WriteKv { account, key, value, expected_version })
            }
            Self::TAG_REGISTER_EVENT_ACCOUNT => Ok(Operation::RegisterEventAccount {
                name: decode_name(reader, "event account name")?,
            }),
            Self::TAG_PUBLISH_EVENT => {
                let account = decode_name(reader, "event account name")?;
                let topic = decode_name(reader, "topic")?;
                let payload = reader.bytes32(VALUE_LEN_MAX, "payload")?.to_vec();
                Ok(Operation::PublishEvent { account, topic, payload })
            }
            Self::TAG_RECALL => {
                let text = |bytes: &[u8], what| {
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| DecodeError::Invalid { what, reason: "not UTF-8".into() })
                };
                let gtin = text(reader.bytes16(14, "gtin")?, "gtin")?;
                let lot = text(reader.bytes16(20, "lot")?, "lot")?;
                let reason = text(reader.bytes16(RECALL_REASON_LEN_MAX, "reason")?, "reason")?;
                check_gtin(&gtin)
                    .map_err(|reason| DecodeError::Invalid { what: "gtin", reason })?;
                check_lot(&lot).map_err(|reason| DecodeError::Invalid { what: "lot", reason })?;
                Ok(Operation::Recall { gtin, lot, reason })
            }
            Self::TAG_DEFINE_ROLE => {
                let name = decode_name(reader, "role name")?;
                let permissions = reader.u32("permissions")?;
                if permissions & !permission::ALL != 0 {
                    return Err(DecodeError::Invalid {
                        what: "permissions",
                        reason: "unknown permission bits".into(),
                    });
                }
                Ok(Operation::DefineRole { name, permissions })
            }
            Self::TAG_ASSIGN_ROLES => {
                let user = Address(reader.array("user")?);
                let policy = match reader.u8("role policy")? {
                    0 => RolePolicy::Union,
                    1 => RolePolicy::Intersect,
                    tag => {
                        return Err(DecodeError::UnknownTag {
                            what: "role policy",
                            tag: tag.into(),
                        });
                    }
                };
                let count = reader.count(USER_ROLES_MAX, "roles")?;
                let mut roles = Vec::with_capacity(count);
                for _ in 0..count {
                    roles.push(decode_name(reader, "role name")?);
                }
                Ok(Operation::AssignRoles { user, roles, policy })
            }
            Self::TAG_GRANT_WRITE => {
                let account = decode_name(reader, "account name")?;
                let grantee = Address(reader.array("grantee")?);
                let allowed = match reader.u8("allowed")? {
                    0 => false,
                    1 => true,
                    tag => {
                        return Err(DecodeError::UnknownTag { what: "allowed", tag: tag.into() });
                    }
                };
                Ok(Operation::GrantWrite { account, grantee, allowed })
            }
            Self::TAG_ADD_PARTICIPANT => {
                let public_key = decode_public_key(reader)?;
                let node_id = reader.u64("node id")?;
                let address = decode_name(reader, "participant address")?;
                Ok(Operation::AddParticipant { public_key, node_id, address })
            }
            Self::TAG_REMOVE_PARTICIPANT => {
                Ok(Operation::RemoveParticipant { public_key: decode_public_key(reader)? })
            }
            Self::TAG_SEAL => {
                let note = reader.bytes16(SEAL_NOTE_LEN_MAX, "seal note")?;
                let note = String::from_utf8(note.to_vec()).map_err(|_| DecodeError::Invalid {
                    what: "seal note",
                    reason: "not UTF-8".into(),
                })?;
                Ok(Operation::Seal { note })
            }
            tag => Err(DecodeError::UnknownTag { what: "operation", tag: tag.into() }),
        }
    }

    /// Checks lengths before encoding (the encoder assumes them).
    fn check(&self) -> Result<(), String> {
        match self {
            Operation::RegisterUser { .. } => Ok(()),
            Operation::RegisterDataAccount { name } => check_name(name).map_err(str::to_owned),
            Operation::WriteKv { account, key, value, expected_version } => {
                check_name(account).map_err(str::to_owned)?;
                if key.len() > KEY_LEN_MAX {
                    return Err(format!("key longer than {KEY_LEN_MAX} bytes"));
                }
                if value.len() > VALUE_LEN_MAX {
                    return Err(format!("value longer than {VALUE_LEN_MAX} bytes"));
                }
                if *expected_version < -1 {
                    return Err("expected version must be -1 or a version".into());
                }
                Ok(())
            }
            Operation::RegisterEventAccount { name } => check_name(name).map_err(str::to_owned),
            Operation::PublishEvent { account, topic, payload } => {
                check_name(account).map_err(|e| format!("event account name {e}"))?;
                check_name(topic).map_err(|e| format!("topic {e}"))?;
                if payload.len() > VALUE_LEN_MAX {
                    return Err(format!("payload longer than {VALUE_LEN_MAX} bytes"));
                }
                Ok(())
            }
            Operation::Recall { gtin, lot, reason } => {
                check_gtin(gtin)?;
                check_lot(lot)?;
                if reason.len() > RECALL_REASON_LEN_MAX {
                    return Err(format!("recall reason longer than {RECALL_REASON_LEN_MAX} bytes"));
                }
                Ok(())
            }
            Operation::DefineRole { name, permissions } => {
                check_name(name).map_err(|e| format!("role name {e}"))?;
                if permissions & !permission::ALL != 0 {
                    return Err("unknown permission bits".into());
                }
                Ok(())
            }
            Operation::AssignRoles { roles, .. } => {
                if roles.len() > USER_ROLES_MAX {
                    return Err(format!("at most {USER_ROLES_MAX} roles per user"));
                }
                roles
                    .iter()
                    .try_for_each(|role| check_name(role).map_err(|e| format!("role name {e}")))
            }
            Operation::GrantWrite { account, .. } => check_name(account).map_err(str::to_owned),
            Operation::AddParticipant { node_id, address, .. } => {
                if *node_id == 0 {
                    return Err("a participant's node id is at least 1".into());
                }
                if address.len() > 128 || address.parse::<std::net::SocketAddr>().is_err() {
                    return Err(format!("participant address `{address}` is not IP:PORT"));
                }
                Ok(())
            }
            Operation::RemoveParticipant { .. } => Ok(()),
            Operation::Seal { note } => {
                if note.len() > SEAL_NOTE_LEN_MAX {
                    return Err(format!("seal note longer than {SEAL_NOTE_LEN_MAX} bytes"));
                }
                Ok(())
            }
        }
    }
}

/// What the signers sign: everything about a transaction except the signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionContent {
    /// The ledger this transaction is for; other ledgers reject it.
    pub ledger_id: LedgerId,
    /// Chosen by the client so that otherwise equal transactions differ.
    pub nonce: u64,
    /// Client's clock, milliseconds since the Unix epoch (informational).
    pub timestamp_ms: u64,
    /// Applied in order, all or nothing.
    pub operations: Vec<Operation>,
}

impl TransactionContent {
    /// Canonical bytes: `version u8 | ledger_id [32] | nonce u64 | timestamp_ms u64 |
    /// count u32 | operations`. These are what is signed and hashed.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.operations.iter().map(Operation::size_hint).sum();
        let mut writer = Writer::with_capacity(64 + size);
        writer
            .u8(FORMAT_VERSION)
            .raw(&self.ledger_id.0)
            .u64(self.nonce)
            .u64(self.timestamp_ms)
            .u32(self.operations.len() as u32);
        for operation in &self.operations {
            operation.encode(&mut writer);
        }
        writer.into_bytes()
    }

    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u8("format version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownTag { what: "format version", tag: version.into() });
        }
        let ledger_id = LedgerId(reader.array("ledger id")?);
        let nonce = reader.u64("nonce")?;
        let timestamp_ms = reader.u64("timestamp")?;
        let count = reader.count(TX_OPERATIONS_MAX, "operations")?;
        let mut operations = Vec::with_capacity(count);
        for _ in 0..count {
            operations.push(Operation::decode(reader)?);
        }
        Ok(TransactionContent { ledger_id, nonce, timestamp_ms, operations })
    }

    /// Checks limits; a transaction that fails cannot be encoded.
    pub fn check(&self) -> Result<(), String> {
        if self.operations.is_empty() || self.operations.len() > TX_OPERATIONS_MAX {
            return Err(format!("a transaction has 1 to {TX_OPERATIONS_MAX} operations"));
        }
        self.operations.iter().try_for_each(Operation::check)
    }

    /// The transaction hash under `algorithm`: the hash of the canonical content bytes.
    pub fn hash(&self, algorithm: HashAlgorithm) -> Hash32 {
        *hash(algorithm, &self.encode()).as_bytes()
    }
}

/// One signer's approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endorsement {
    /// The signer.
    pub public_key: PublicKey,
    /// Signature over the canonical content bytes.
    pub signature: Signature,
}

/// A signed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// What is signed.
    pub content: TransactionContent,
    /// At least one; the first signer is the transaction's actor (owner of what it
    /// registers).
    pub endorsements: Vec<Endorsement>,
}

impl Transaction {
    /// Signs `content` with each key in `signers`.
    pub fn sign(
        content: TransactionContent,
        signers: &[&crypto_parallel::PrivateKey],
    ) -> Result<Self, String> {
        content.check()?;
        if signers.is_empty() || signers.len() > TX_SIGNATURES_MAX {
            return Err(format!("a transaction has 1 to {TX_SIGNATURES_MAX} signatures"));
        }
        let message = content.encode();
        let endorsements = signers
            .iter()
            .map(|key| Endorsement { public_key: key.public_key(), signature: key.sign(&message) })
            .collect();
        Ok(Transaction { content, endorsements })
    }

    /// Canonical bytes: `content | count u32 | (public key bytes16, signature bytes16)*`.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_content(self.content.encode())
    }

    /// `encode` for a caller that already holds `self.content.encode()` (the hot path
    /// hashes the content first, then stores the whole transaction).
    pub fn encode_with_content(&self, content_bytes: Vec<u8>) -> Vec<u8> {
        debug_assert_eq!(content_bytes, self.content.encode());
        let mut writer = Writer::from_vec(content_bytes);
        writer.reserve(self.endorsements_len_hint());
        self.encode_endorsements(&mut writer);
        writer.into_bytes()
    }

    /// At least the length of the endorsements' encoding: an endorsement of any of the
    /// signature algorithms (key and signature with their algorithm codes and lengths)
    /// takes at most 140 bytes.
    pub(crate) fn endorsements_len_hint(&self) -> usize {
        4 + 140 * self.endorsements.len()
    }

    /// The bytes after the content: `count u32 | (public key bytes16 | signature
    /// bytes16)*`.
    pub(crate) fn encode_endorsements(&self, writer: &mut Writer) {
        writer.u32(self.endorsements.len() as u32);
        for endorsement in &self.endorsements {
            writer.bytes16(&endorsement.public_key.to_bytes());
            writer.bytes16(&endorsement.signature.to_bytes());
        }
    }

    /// Decodes untrusted bytes; every error is typed, nothing panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > TX_ENCODED_LEN_MAX {
            return Err(DecodeError::TooLong {
                what: "transaction",
                len: bytes.len(),
                max: TX_ENCODED_LEN_MAX,
            });
        }
        let mut reader = Reader::new(bytes);
        let content = TransactionContent::decode_from(&mut reader)?;
        let count = reader.count(TX_SIGNATURES_MAX, "signatures")?;
        if count == 0 {
            return Err(DecodeError::Invalid { what: "signatures", reason: "none".into() });
        }
        let mut endorsements = Vec::with_capacity(count);
        for _ in 0..count {
            let public_key = decode_public_key(&mut reader)?;
            let signature_bytes = reader.bytes16(KEY_ENCODED_LEN_MAX, "signature")?;
            let signature = Signature::from_bytes(signature_bytes).map_err(|error| {
                DecodeError::Invalid { what: "signature", reason: error.to_string() }
            })?;
            endorsements.push(Endorsement { public_key, signature });
        }
        reader.finish("transaction")?;
        let transaction = Transaction { content, endorsements };
        transaction
            .content
            .check()
            .map_err(|reason| DecodeError::Invalid { what: "transaction", reason })?;
        Ok(transaction)
    }

    /// The transaction hash (content only).
    pub fn hash(&self, algorithm: HashAlgorithm) -> Hash32 {
        self.content.hash(algorithm)
    }
}

/// The outcome of one transaction in a block. Stable codes: part of the data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ResultCode {
    /// Applied.
    Committed = 0,
    /// A write's expected version differs from the key's current version.
    VersionConflict = 1,
    /// A signer, or a data account written to, is not registered.
    UnknownAccount = 2,
    /// The signer may not do this (e.g. write another owner's data account).
    NoPermission = 3,
    /// A transaction with the same hash is already on the ledger.
    Duplicate = 4,
    /// The user or data account to register already exists.
    AccountExists = 5,
    /// The transaction names another ledger.
    WrongLedger = 6,
    /// A signature does not verify.
    InvalidSignature = 7,
    /// The ledger is sealed (`Operation::Seal`): it takes no more transactions.
    LedgerSealed = 8,
}

impl ResultCode {
    /// Decodes a stored code.
    pub fn from_u8(code: u8) -> Result<Self, DecodeError> {
        Ok(match code {
            0 => ResultCode::Committed,
            1 => ResultCode::VersionConflict,
            2 => ResultCode::UnknownAccount,
            3 => ResultCode::NoPermission,
            4 => ResultCode::Duplicate,
            5 => ResultCode::AccountExists,
            6 => ResultCode::WrongLedger,
            7 => ResultCode::InvalidSignature,
            8 => ResultCode::LedgerSealed,
            tag => return Err(DecodeError::UnknownTag { what: "result code", tag: tag.into() }),
        })
    }

    /// A stable name for APIs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            ResultCode::Committed => "committed",
            ResultCode::VersionConflict => "version_conflict",
            ResultCode::UnknownAccount => "unknown_account",
            ResultCode::NoPermission => "no_permission",
            ResultCode::Duplicate => "duplicate",
            ResultCode::AccountExists => "account_exists",
            ResultCode::WrongLedger => "wrong_ledger",
            ResultCode::InvalidSignature => "invalid_signature",
            ResultCode::LedgerSealed => "ledger_sealed",
        }
    }
}

/// A block header. Its hash (under the ledger's hash algorithm) is the block hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// The ledger (all zeros in the genesis header, whose hash *is* the ledger id).
    pub ledger_id: LedgerId,
    /// 0 for genesis.
    pub height: u64,
    /// Hash of the previous block's header; zeros for genesis.
    pub previous_hash: Hash32,
    /// Merkle root over `(tx hash, result)` of this block's transactions (`txroot.rs`);
    /// for genesis, the hash of the encoded settings.
    pub tx_root: Hash32,
    /// Root of the authenticated state after this block.
    pub state_root: Hash32,
    /// Proposer's clock, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Address of the proposing participant (zeros for genesis).
    pub proposer: Address,
}

impl BlockHeader {
    /// Encoded length (fixed).
    pub const ENCODED_LEN: usize = 1 + 32 + 8 + 32 + 32 + 32 + 8 + 32;

    /// Canonical bytes: `version u8 | ledger_id | height u64 | previous_hash |
    /// tx_root | state_root | timestamp_ms u64 | proposer`.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(Self::ENCODED_LEN);
        writer
            .u8(FORMAT_VERSION)
            .raw(&self.ledger_id.0)
            .u64(self.height)
            .raw(&self.previous_hash)
            .raw(&self.tx_root)
            .raw(&self.state_root)
            .u64(self.timestamp_ms)
            .raw(&self.proposer.0);
        writer.into_bytes()
    }

    /// Decodes the fixed-length header.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let header = Self::decode_from(&mut reader)?;
        reader.finish("block header")?;
        Ok(header)
    }

    pub(crate) fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = reader.u8("format version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownTag { what: "format version", tag: version.into() });
        }
        Ok(BlockHeader {
            ledger_id: LedgerId(reader.array("ledger id")?),
            height: reader.u64("height")?,
            previous_hash: reader.array("previous hash")?,
            tx_root: reader.array("tx root")?,
            state_root: reader.array("state root")?,
            timestamp_ms: reader.u64("timestamp")?,
            proposer: Address(reader.array("proposer")?),
        })
    }

    /// The block hash.
    pub fn hash(&self, algorithm: HashAlgorithm) -> Hash32 {
        *hash(algorithm, &self.encode()).as_bytes()
    }
}

/// A ledger's settings, fixed by its genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    /// Human name, e.g. `dairy-0`.
    pub name: String,
    /// Hash algorithm of blocks, transactions, addresses and the state tree.
    pub hash_algorithm: HashAlgorithm,
    /// Signature algorithms accepted from users.
    pub signature_algorithms: Vec<SignatureAlgorithm>,
    /// Consensus provider name (`solo`, `raft`, …) — interpreted by the actors.
    pub consensus: String,
    /// Consensus participants' node keys.
    pub participants: Vec<PublicKey>,
    /// Users registered at genesis (administrators, the first writers).
    pub initial_users: Vec<PublicKey>,
    /// Regulators: keys that may record recalls; registered as users at genesis too.
    pub regulators: Vec<PublicKey>,
    /// Roles defined at genesis (name, `permission::*` bits). Non-empty makes the ledger
    /// *permissioned*: permissions are enforced, and every initial user holds all of
    /// these roles (union).
    pub roles: Vec<(String, u32)>,
    /// Signatures of current participants an admission or removal needs; 0: a majority
    /// of the current participants.
    pub participant_quorum: u32,
    /// Genesis time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The sealed ledgers this one continues (a split's parent, a merge's parents),
    /// each with its sealing block: the genesis commits to them, so a history read
    /// across the lineage is verifiable. Empty for a new ledger.
    pub parents: Vec<Lineage>,
}

/// A sealed parent a ledger continues (`LedgerSettings::parents`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// The parent ledger.
    pub ledger_id: LedgerId,
    /// Height of its sealing block (the block with its `Seal`).
    pub height: u64,
    /// That block's hash.
    pub block_hash: Hash32,
}

impl LedgerSettings {
    /// Canonical bytes: `version | name bytes16 | hash code u16 | count u32 + sig codes
    /// u16* | consensus bytes16 | count u32 + participant keys bytes16* | count u32 +
    /// user keys bytes16* | created_ms u64`, then extensions, each only when non-empty,
    /// tags increasing: `0x01 | count u32 + regulator keys bytes16*`, `0x02 | count u32 +
    /// (role name bytes16 | permissions u32)*`, `0x03 | participant quorum u32`, `0x04 |
    /// count u32 + (parent ledger id [32] | sealing height u64 | sealing block hash
    /// [32])*` (so settings using none, and the ids of ledgers created before extensions
    /// existed, are unchanged).
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::with_capacity(256);
        writer
            .u8(FORMAT_VERSION)
            .bytes16(self.name.as_bytes())
            .u16(self.hash_algorithm.code().0)
            .u32(self.signature_algorithms.len() as u32);
        for algorithm in &self.signature_algorithms {
            writer.u16(algorithm.code().0);
        }
        writer.bytes16(self.consensus.as_bytes());
        for keys in [&self.participants, &self.initial_users] {
            writer.u32(keys.len() as u32);
            for key in keys {
                encode_public_key(&mut writer, key);
            }
        }
        writer.u64(self.created_ms);
        // Extensions, each present only when non-empty, in increasing tag order: the
        // settings (and ids) of ledgers that use none are those of before.
        if !self.regulators.is_empty() {
            writer.u8(Self::EXTENSION_REGULATORS).u32(self.regulators.len() as u32);
            for key in &self.regulators {
                encode_public_key(&mut writer, key);
            }
        }
        if !self.roles.is_empty() {
            writer.u8(Self::EXTENSION_ROLES).u32(self.roles.len() as u32);
            for (name, permissions) in &self.roles {
                writer.bytes16(name.as_bytes()).u32(*permissions);
            }
        }
        if self.participant_quorum != 0 {
            writer.u8(Self::EXTENSION_PARTICIPANT_QUORUM).u32(self.participant_quorum);
        }
        if !self.parents.is_empty() {
            writer.u8(Self::EXTENSION_PARENTS).u32(self.parents.len() as u32);
            for parent in &self.parents {
                writer.raw(&parent.ledger_id.0).u64(parent.height).raw(&parent.block_hash);
            }
        }
        writer.into_bytes()
    }

    /// Decodes settings.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("format version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnknownTag { what: "format version", tag: version.into() });
        }
        let name = decode_name(&mut reader, "ledger name")?;
        let hash_algorithm = HashAlgorithm::from_code(reader.u16("hash algorithm")?)
            .map_err(|e| DecodeError::Invalid { what: "hash algorithm", reason: e.to_string() })?;
        let count = reader.count(SignatureAlgorithm::ALL.len(), "signature algorithms")?;
        let mut signature_algorithms = Vec::with_capacity(count);
        for _ in 0..count {
            let code = reader.u16("signature algorithm")?;
            signature_algorithms.push(SignatureAlgorithm::from_code(code).map_err(|e| {
                DecodeError::Invalid { what: "signature algorithm", reason: e.to_string() }
            })?);
        }
        let consensus = decode_name(&mut reader, "consensus")?;
        let mut key_lists = [Vec::new(), Vec::new()];
        for list in &mut key_lists {
            let count = reader.count(PARTICIPANTS_MAX, "keys")?;
            for _ in 0..count {
                list.push(decode_public_key(&mut reader)?);
            }
        }
        let created_ms = reader.u64("created")?;
        let (mut regulators, mut roles, mut participant_quorum) = (Vec::new(), Vec::new(), 0);
        let mut parents = Vec::new();
        let mut last_tag = 0u8;
        while reader.remaining() > 0 {
            let tag = reader.u8("settings extension")?;
            if tag <= last_tag {
                return Err(DecodeError::Invalid {
                    what: "settings extension",
                    reason: "extensions come once each, in increasing tag order".into(),
                });
            }
            last_tag = tag;
            let empty = || DecodeError::Invalid {
                what: "settings extension",
                reason: "an empty list is encoded by its absence".into(),
            };
            match tag {
                Self::EXTENSION_REGULATORS => {
                    let count = reader.count(PARTICIPANTS_MAX, "regulators")?;
                    if count == 0 {
                        return Err(empty());
                    }
                    for _ in 0..count {
                        regulators.push(decode_public_key(&mut reader)?);
                    }
                }
                Self::EXTENSION_ROLES => {
                    let count = reader.count(ROLES_MAX, "roles")?;
                    if count == 0 {
                        return Err(empty());
                    }
                    for _ in 0..count {
                        let name = decode_name(&mut reader, "role name")?;
                        let permissions = reader.u32("permissions")?;
                        if permissions & !permission::ALL != 0 {
                            return Err(DecodeError::Invalid {
                                what: "permissions",
                                reason: "unknown permission bits".into(),
                            });
                        }
                        roles.push((name, permissions));
                    }
                }
                Self::EXTENSION_PARTICIPANT_QUORUM => {
                    participant_quorum = reader.u32("participant quorum")?;
                    if participant_quorum == 0 {
                        return Err(empty());
                    }
                }
                Self::EXTENSION_PARENTS => {
                    let count = reader.count(PARENTS_MAX, "parents")?;
                    if count == 0 {
                        return Err(empty());
                    }
                    for _ in 0..count {
                        parents.push(Lineage {
                            ledger_id: LedgerId(reader.array("parent ledger id")?),
                            height: reader.u64("parent height")?,
                            block_hash: reader.array("parent block hash")?,
                        });
                    }
                }
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "settings extension",
                        tag: tag.into(),
                    });
                }
            }
        }
        reader.finish("ledger settings")?;
        let [participants, initial_users] = key_lists;
        Ok(LedgerSettings {
            name,
            hash_algorithm,
            signature_algorithms,
            consensus,
            participants,
            initial_users,
            regulators,
            roles,
            participant_quorum,
            created_ms,
            parents,
        })
    }

    /// Settings extension tag: regulators.
    pub const EXTENSION_REGULATORS: u8 = 1;
    /// Settings extension tag: roles.
    pub const EXTENSION_ROLES: u8 = 2;
    /// Settings extension tag: participant quorum.
    pub const EXTENSION_PARTICIPANT_QUORUM: u8 = 3;
    /// Settings extension tag: parents (lineage).
    pub const EXTENSION_PARENTS: u8 = 4;

    /// Signatures of current participants that admitting or removing one needs, out of
    /// `active` current participants: a majority, or the configured quorum when larger
    /// (capped at `active`). Never fewer than a majority: a minority must not be able to
    /// take the group over one removal at a time.
    pub fn participant_quorum_of(&self, active: usize) -> usize {
        let majority = active / 2 + 1;
        (self.participant_quorum as usize).min(active).max(majority)
    }

    /// Whether permissions are enforced (the genesis defines roles).
    pub fn permissioned(&self) -> bool {
        !self.roles.is_empty()
    }

    /// Everyone registered as a user at genesis: the initial users, then the
    /// regulators that are not among them.
    pub fn genesis_users(&self) -> Vec<PublicKey> {
        let mut users = self.initial_users.clone();
        for regulator in &self.regulators {
            if !users.contains(regulator) {
                users.push(regulator.clone());
            }
        }
        users
    }

    /// Checks limits and names.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name).map_err(|e| format!("ledger name {e}"))?;
        check_name(&self.consensus).map_err(|e| format!("consensus name {e}"))?;
        if self.signature_algorithms.is_empty() {
            return Err("at least one signature algorithm".into());
        }
        if self.participants.len() > PARTICIPANTS_MAX
            || self.initial_users.len() > PARTICIPANTS_MAX
            || self.regulators.len() > PARTICIPANTS_MAX
            || self.roles.len() > ROLES_MAX
        {
            return Err(format!("at most {PARTICIPANTS_MAX} participants and initial users"));
        }
        if self.initial_users.is_empty() {
            return Err("at least one initial user (nobody could write otherwise)".into());
        }
        let mut names = std::collections::HashSet::new();
        for (name, permissions) in &self.roles {
            check_name(name).map_err(|e| format!("role name {e}"))?;
            if !names.insert(name) {
                return Err(format!("role {name} defined twice"));
            }
            if permissions & !permission::ALL != 0 {
                return Err(format!("role {name}: unknown permission bits"));
            }
        }
        Ok(())
    }
}

/// A batch of transactions: `count u32 | (len u32 | transaction bytes)*` (the gateway's
/// binary submission body and the node-to-node forward; `docs/FORMAT.md` §13).
pub fn encode_transactions<'a>(
    transactions: impl ExactSizeIterator<Item = &'a Transaction>,
) -> Vec<u8> {
    let mut writer = Writer::with_capacity(4 + 400 * transactions.len());
    write_transactions(&mut writer, transactions);
    writer.into_bytes()
}

/// Writes `encode_transactions` bytes into `writer`.
pub fn write_transactions<'a>(
    writer: &mut Writer,
    transactions: impl ExactSizeIterator<Item = &'a Transaction>,
) {
    writer.u32(transactions.len() as u32);
    for transaction in transactions {
        writer.bytes32(&transaction.encode());
    }
}

/// Decodes `encode_transactions` bytes.
pub fn decode_transactions(bytes: &[u8]) -> Result<Vec<Transaction>, DecodeError> {
    let mut reader = Reader::new(bytes);
    let transactions = decode_transactions_from(&mut reader)?;
    reader.finish("transactions")?;
    Ok(transactions)
}

/// Reads `encode_transactions` bytes from `reader`.
pub fn decode_transactions_from(reader: &mut Reader<'_>) -> Result<Vec<Transaction>, DecodeError> {
    let count = reader.count(BLOCK_TXS_MAX, "transactions")?;
    let mut transactions = Vec::with_capacity(count);
    for _ in 0..count {
        transactions.push(Transaction::decode(reader.bytes32(TX_ENCODED_LEN_MAX, "transaction")?)?);
    }
    Ok(transactions)
}
