//! The signature SPI: what an algorithm must provide to be usable by ledgers.
//!
//! Providers work on raw bytes (the algorithm's own fixed-size encodings); the typed
//! wrappers in `keys.rs` add the algorithm code and validation. Adding an algorithm means
//! writing one provider and naming it in `algorithm.rs` — nothing else changes.

use der::asn1::ObjectIdentifier;
use zeroize::Zeroizing;

use crate::Result;
use crate::algorithm::SignatureAlgorithm;
use crate::batch::VerifyItem;

/// One signature algorithm. Implementations are stateless unit structs.
pub trait SignatureProvider: Send + Sync {
    /// The algorithm this provider implements.
    fn algorithm(&self) -> SignatureAlgorithm;

    /// Length of a raw private key.
    fn private_key_len(&self) -> usize;
    /// Length of a raw (canonical) public key.
    fn public_key_len(&self) -> usize;
    /// Length of a raw signature.
    fn signature_len(&self) -> usize;

    /// A fresh random private key from the operating system's CSPRNG.
    fn generate_private_key(&self) -> Zeroizing<Vec<u8>>;
    /// Checks the raw private key (length, range).
    fn check_private_key(&self, private_key: &[u8]) -> Result<()>;
    /// The canonical raw public key of a raw private key.
    fn public_key_from_private(&self, private_key: &[u8]) -> Result<Vec<u8>>;
    /// Checks the raw public key (length, point on the curve, not the identity).
    fn check_public_key(&self, public_key: &[u8]) -> Result<()>;
    /// Checks the raw signature's shape (length, scalar ranges) without verifying it.
    fn check_signature(&self, signature: &[u8]) -> Result<()>;

    /// Signs `message` (the provider hashes it as the algorithm prescribes).
    fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>>;
    /// Verifies one signature. `Err(InvalidSignature)` is the verdict "does not verify";
    /// other errors mean malformed input.
    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()>;

    /// Verifies many signatures of this algorithm, writing one result per item. The
    /// default checks them one by one; providers with a true batch equation override it,
    /// but must produce exactly the one-by-one results.
    fn verify_many(&self, items: &[VerifyItem<'_>], results: &mut [Result<()>]) {
        debug_assert_eq!(items.len(), results.len());
        for (item, result) in items.iter().zip(results.iter_mut()) {
            *result =
                self.verify(item.public_key.as_bytes(), item.message, item.signature.as_bytes());
        }
    }

    /// Raw signature → DER `SEQUENCE { r INTEGER, s INTEGER }`; only ECDSA-like
    /// algorithms have one.
    fn signature_to_der(&self, _signature: &[u8]) -> Result<Vec<u8>> {
        Err(crate::CryptoError::MalformedSignature {
            algorithm: self.algorithm().code(),
            reason: "this algorithm has no DER signature form",
        })
    }
    /// DER `SEQUENCE { r, s }` → raw signature.
    fn signature_from_der(&self, _der: &[u8]) -> Result<Vec<u8>> {
        Err(crate::CryptoError::MalformedSignature {
            algorithm: self.algorithm().code(),
            reason: "this algorithm has no DER signature form",
        })
    }

    /// Whether a PKCS#8 / SPKI algorithm identifier (OID and optional parameters OID)
    /// names this algorithm.
    fn matches_key_algorithm(
        &self,
        oid: ObjectIdentifier,
        parameters: Option<ObjectIdentifier>,
    ) -> bool;
    /// Raw private key → PKCS#8 DER.
    fn private_key_to_pkcs8_der(&self, private_key: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// PKCS#8 DER → raw private key.
    fn private_key_from_pkcs8_der(&self, der: &[u8]) -> Result<Zeroizing<Vec<u8>>>;
    /// Raw public key → SubjectPublicKeyInfo DER.
    fn public_key_to_spki_der(&self, public_key: &[u8]) -> Result<Vec<u8>>;
    /// SubjectPublicKeyInfo DER → canonical raw public key.
    fn public_key_from_spki_der(&self, der: &[u8]) -> Result<Vec<u8>>;
}

/// Maps a PKCS#8/SPKI parser error into ours without echoing input bytes.
pub(crate) fn pem_error(error: impl core::fmt::Display) -> crate::CryptoError {
    crate::CryptoError::MalformedPem { reason: error.to_string() }
}
