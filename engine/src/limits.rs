//! Limits of the ledger model, in one place, with why each has its value. Decoders check
//! every length against these before allocating, so untrusted bytes cannot make a node
//! allocate more than a transaction's worth of memory.

/// Operations in one transaction. A traceability event is one or a few writes; 1,024
/// leaves room for bulk imports while bounding one transaction's execution time.
pub const TX_OPERATIONS_MAX: usize = 1024;

/// Signatures on one transaction (multi-party approvals); a consortium quorum fits.
pub const TX_SIGNATURES_MAX: usize = 16;

/// Length of a key inside a data account (trace codes, GS1 identifiers + event ids).
pub const KEY_LEN_MAX: usize = 1024;

/// Length of one value. Records are events, not documents: store documents elsewhere
/// and their hash here.
pub const VALUE_LEN_MAX: usize = 1 << 20;

/// Length of a ledger or data-account name.
pub const NAME_LEN_MAX: usize = 128;

/// Encoded public keys and signatures (2-byte code + raw); the largest raw form today is
/// 65 bytes.
pub const KEY_ENCODED_LEN_MAX: usize = 256;

/// Encoded length of one transaction (the gateway's body limit is derived from it).
pub const TX_ENCODED_LEN_MAX: usize = 4 << 20;

/// Transactions in one block. The actors cut blocks far smaller (around 1,000); this
/// bounds what a (faulty) proposer can make every node execute at once.
pub const BLOCK_TXS_MAX: usize = 20_000;

/// Participants (consensus nodes) and initial users named in a genesis.
pub const PARTICIPANTS_MAX: usize = 256;

const _: () = assert!(VALUE_LEN_MAX + KEY_LEN_MAX + NAME_LEN_MAX < TX_ENCODED_LEN_MAX);
const _: () = assert!(KEY_LEN_MAX <= u16::MAX as usize);
const _: () = assert!(NAME_LEN_MAX <= u16::MAX as usize);
const _: () = assert!(KEY_ENCODED_LEN_MAX <= u16::MAX as usize);
