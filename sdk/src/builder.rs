//! Building and signing transactions offline: the private key never leaves the client.

use crypto_parallel::{PrivateKey, PublicKey};
use engine::model::{LedgerId, Operation, Transaction, TransactionContent};

/// Why a transaction cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transaction: {0}")]
pub struct BuildError(pub String);

/// Builds one transaction: operations in order, then `sign`.
///
/// ```
/// # use crypto_parallel::{PrivateKey, SignatureAlgorithm};
/// # use engine::model::LedgerId;
/// let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
/// let tx = sdk::TxBuilder::new(LedgerId([7; 32]))
///     .register_data_account("trace")
///     .write("trace", "sku-1", "{\"event\":\"packed\"}", -1)
///     .sign(&[&key])
///     .unwrap();
/// assert_eq!(tx.content.operations.len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct TxBuilder {
    ledger: LedgerId,
    nonce: Option<u64>,
    timestamp_ms: Option<u64>,
    operations: Vec<Operation>,
}

impl TxBuilder {
    /// A transaction for `ledger`.
    pub fn new(ledger: LedgerId) -> Self {
        TxBuilder { ledger, nonce: None, timestamp_ms: None, operations: Vec::new() }
    }

    /// Sets the nonce (default: random). Two transactions with equal content have equal
    /// hashes, and a ledger commits a hash once: vary the nonce to repeat an operation.
    pub fn nonce(mut self, nonce: u64) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// Sets the timestamp (default: now).
    pub fn timestamp_ms(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Adds any operation.
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operations.push(operation);
        self
    }

    /// Registers a user account for `public_key`.
    pub fn register_user(self, public_key: PublicKey) -> Self {
        self.operation(Operation::RegisterUser { public_key })
    }

    /// Registers a data account owned by the first signer.
    pub fn register_data_account(self, name: impl Into<String>) -> Self {
        self.operation(Operation::RegisterDataAccount { name: name.into() })
    }

    /// Writes `value` under `key` if the key is at `expected_version` (−1: a new key).
    pub fn write(
        self,
        account: impl Into<String>,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        expected_version: i64,
    ) -> Self {
        self.operation(Operation::WriteKv {
            account: account.into(),
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
            expected_version,
        })
    }

    /// Registers an event account (a namespace of topics) owned by the first signer.
    pub fn register_event_account(self, name: impl Into<String>) -> Self {
        self.operation(Operation::RegisterEventAccount { name: name.into() })
    }

    /// Publishes `payload` on `topic` of event account `account`.
    pub fn publish(
        self,
        account: impl Into<String>,
        topic: impl Into<String>,
        payload: impl AsRef<[u8]>,
    ) -> Self {
        self.operation(Operation::PublishEvent {
            account: account.into(),
            topic: topic.into(),
            payload: payload.as_ref().to_vec(),
        })
    }

    /// Records a recall of `gtin`'s `lot` (the signer must be a regulator of the ledger).
    pub fn recall(
        self,
        gtin: impl Into<String>,
        lot: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        self.operation(Operation::Recall {
            gtin: gtin.into(),
            lot: lot.into(),
            reason: reason.into(),
        })
    }

    /// The unsigned content (for signing elsewhere, e.g. by several parties).
    pub fn content(self) -> Result<TransactionContent, BuildError> {
        let content = TransactionContent {
            ledger_id: self.ledger,
            nonce: self.nonce.unwrap_or_else(rand::random),
            timestamp_ms: self.timestamp_ms.unwrap_or_else(now_ms),
            operations: self.operations,
        };
        content.check().map_err(BuildError)?;
        Ok(content)
    }

    /// Signs with each of `signers`; the first is the transaction's actor.
    pub fn sign(self, signers: &[&PrivateKey]) -> Result<Transaction, BuildError> {
        Transaction::sign(self.content()?, signers).map_err(BuildError)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
