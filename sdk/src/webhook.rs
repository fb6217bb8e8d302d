//! Checking a webhook delivery: the node signs each POST body with its node key
//! (`X-Polyledger-Key`, `X-Polyledger-Signature`, hex). A receiver checks the signature
//! AND that the key is one it trusts (a participant of the ledger: `GET
//! /api/v1/ledgers/{id}/participants`, or its own list), then de-duplicates the
//! messages by `position`.

use crypto_parallel::{PublicKey, Signature};

use crate::wire::StreamMessage;

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// A header is missing or not hex of a key / signature.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The sender's key is not one of the trusted keys.
    #[error("the sender's key is not trusted")]
    UntrustedKey,
    /// The signature does not verify over the body.
    #[error("the signature does not verify")]
    BadSignature,
    /// The body is not a JSON array of stream messages.
    #[error("body: {0}")]
    Body(String),
}

/// Checks a delivery and returns its messages.
pub fn verify(
    body: &[u8],
    key_hex: &str,
    signature_hex: &str,
    trusted: &[PublicKey],
) -> Result<Vec<StreamMessage>, WebhookError> {
    let key = hex::decode(key_hex.trim())
        .ok()
        .and_then(|bytes| PublicKey::from_bytes(&bytes).ok())
        .ok_or(WebhookError::Malformed("X-Polyledger-Key"))?;
    let signature = hex::decode(signature_hex.trim())
        .ok()
        .and_then(|bytes| Signature::from_bytes(&bytes).ok())
        .ok_or(WebhookError::Malformed("X-Polyledger-Signature"))?;
    if !trusted.contains(&key) {
        return Err(WebhookError::UntrustedKey);
    }
    key.verify(body, &signature).map_err(|_| WebhookError::BadSignature)?;
    serde_json::from_slice(body).map_err(|e| WebhookError::Body(e.to_string()))
}
