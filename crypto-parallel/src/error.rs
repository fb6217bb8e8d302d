//! Errors of the crypto SPI.
//!
//! Every variant has a stable code (`CryptoError::code`) that users can search for in
//! `docs/OPERATIONS.md`; the messages never contain key material.

use crate::algorithm::AlgorithmCode;

/// Why a crypto operation failed. Decoding errors are about the shape of the bytes;
/// `InvalidSignature` is the one and only verdict "well-formed, but does not verify".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The algorithm code is not one this build knows (neither hash nor signature).
    #[error("unknown crypto algorithm code 0x{code:04x}")]
    UnknownAlgorithm {
        /// The code as found in the input.
        code: u16,
    },
    /// A key and a signature (or two keys) name different algorithms.
    #[error("algorithm mismatch: expected {expected}, found {found}")]
    AlgorithmMismatch {
        /// The algorithm the operation required.
        expected: AlgorithmCode,
        /// The algorithm the input carried.
        found: AlgorithmCode,
    },
    /// Public key bytes have the wrong length, are not on the curve, or are the identity.
    #[error("malformed {algorithm} public key: {reason}")]
    MalformedPublicKey {
        /// Algorithm the key was decoded as.
        algorithm: AlgorithmCode,
        /// What is wrong, without the key bytes.
        reason: &'static str,
    },
    /// Private key bytes have the wrong length or are out of range (zero, ≥ group order).
    #[error("malformed {algorithm} private key: {reason}")]
    MalformedPrivateKey {
        /// Algorithm the key was decoded as.
        algorithm: AlgorithmCode,
        /// What is wrong, without the key bytes.
        reason: &'static str,
    },
    /// Signature bytes have the wrong length or encoding.
    #[error("malformed {algorithm} signature: {reason}")]
    MalformedSignature {
        /// Algorithm the signature was decoded as.
        algorithm: AlgorithmCode,
        /// What is wrong.
        reason: &'static str,
    },
    /// The signature is well-formed but does not verify for this key and message.
    #[error("signature does not verify")]
    InvalidSignature,
    /// PEM or DER input could not be parsed or names an unsupported key type.
    #[error("malformed PEM/DER key: {reason}")]
    MalformedPem {
        /// What is wrong (the parser's message, never the key).
        reason: String,
    },
    /// A textual key or signature (base58 with algorithm code) could not be decoded.
    #[error("malformed text form: {reason}")]
    MalformedText {
        /// What is wrong.
        reason: &'static str,
    },
    /// An SM2 distinguishing identifier is longer than the standard allows (8,191 bytes).
    #[error("SM2 distinguishing identifier too long: {len} bytes")]
    DistinguishingIdTooLong {
        /// Length of the rejected identifier.
        len: usize,
    },
}

impl CryptoError {
    /// A stable, searchable code for this error; part of the public interface.
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::UnknownAlgorithm { .. } => "CRYPTO_UNKNOWN_ALGORITHM",
            CryptoError::AlgorithmMismatch { .. } => "CRYPTO_ALGORITHM_MISMATCH",
            CryptoError::MalformedPublicKey { .. } => "CRYPTO_MALFORMED_PUBLIC_KEY",
            CryptoError::MalformedPrivateKey { .. } => "CRYPTO_MALFORMED_PRIVATE_KEY",
            CryptoError::MalformedSignature { .. } => "CRYPTO_MALFORMED_SIGNATURE",
            CryptoError::InvalidSignature => "CRYPTO_INVALID_SIGNATURE",
            CryptoError::MalformedPem { .. } => "CRYPTO_MALFORMED_PEM",
            CryptoError::MalformedText { .. } => "CRYPTO_MALFORMED_TEXT",
            CryptoError::DistinguishingIdTooLong { .. } => "CRYPTO_DISTID_TOO_LONG",
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = CryptoError> = core::result::Result<T, E>;
