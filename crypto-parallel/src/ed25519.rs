//! Ed25519 (RFC 8032) through `ed25519-consensus`.
//!
//! Why not `ed25519-dalek`: a consensus system must get the same verdict from every
//! node and from batch and single verification alike. `ed25519-consensus` implements the
//! ZIP-215 rules, under which single and batch verification agree on every input
//! (including small-order and non-canonical points), while all RFC 8032 signatures still
//! verify. Batches use its true batch equation and fall back to one-by-one checks only
//! when the batch fails, to find exactly the bad items.
//!
//! Raw forms: private key = 32-byte seed, public key = 32-byte compressed point,
//! signature = 64 bytes `R || S`.

use der::asn1::ObjectIdentifier;
use ed25519::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
    PublicKeyBytes,
};
use ed25519_consensus::{Signature, SigningKey, VerificationKey};
use rand_core_06::RngCore;
use zeroize::Zeroizing;

use crate::Result;
use crate::algorithm::SignatureAlgorithm;
use crate::batch::VerifyItem;
use crate::error::CryptoError;
use crate::provider::{SignatureProvider, pem_error};

const KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;
/// id-Ed25519 (RFC 8410).
const ID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

fn malformed_public(reason: &'static str) -> CryptoError {
    CryptoError::MalformedPublicKey { algorithm: SignatureAlgorithm::Ed25519.code(), reason }
}

fn seed(private_key: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let array: [u8; KEY_LEN] =
        private_key.try_into().map_err(|_| CryptoError::MalformedPrivateKey {
            algorithm: SignatureAlgorithm::Ed25519.code(),
            reason: "expected a 32-byte seed",
        })?;
    Ok(Zeroizing::new(array))
}

fn parse_public(public_key: &[u8]) -> Result<VerificationKey> {
    let array: [u8; KEY_LEN] =
        public_key.try_into().map_err(|_| malformed_public("expected 32 bytes"))?;
    VerificationKey::try_from(array)
        .map_err(|_| malformed_public("not a valid curve point encoding"))
}

fn parse_signature(signature: &[u8]) -> Result<Signature> {
    let array: [u8; SIGNATURE_LEN] =
        signature.try_into().map_err(|_| CryptoError::MalformedSignature {
            algorithm: SignatureAlgorithm::Ed25519.code(),
            reason: "expected 64 bytes",
        })?;
    Ok(Signature::from(array))
}

/// The Ed25519 provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ed25519Provider;

impl SignatureProvider for Ed25519Provider {
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Ed25519
    }

    fn private_key_len(&self) -> usize {
        KEY_LEN
    }

    fn public_key_len(&self) -> usize {
        KEY_LEN
    }

    fn signature_len(&self) -> usize {
        SIGNATURE_LEN
    }

    fn generate_private_key(&self) -> Zeroizing<Vec<u8>> {
        let mut seed = Zeroizing::new(vec![0u8; KEY_LEN]);
        rand_core_06::OsRng.fill_bytes(&mut seed);
        seed
    }

    fn check_private_key(&self, private_key: &[u8]) -> Result<()> {
        seed(private_key).map(drop)
    }

    fn public_key_from_private(&self, private_key: &[u8]) -> Result<Vec<u8>> {
        let signing_key = SigningKey::from(*seed(private_key)?);
        Ok(signing_key.verification_key().to_bytes().to_vec())
    }

    fn check_public_key(&self, public_key: &[u8]) -> Result<()> {
        parse_public(public_key).map(drop)
    }

    fn check_signature(&self, signature: &[u8]) -> Result<()> {
        parse_signature(signature).map(drop)
    }

    fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        let signing_key = SigningKey::from(*seed(private_key)?);
        Ok(signing_key.sign(message).to_bytes().to_vec())
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
        let key = parse_public(public_key)?;
        let signature = parse_signature(signature)?;
        key.verify(&signature, message).map_err(|_| CryptoError::InvalidSignature)
    }

    fn verify_many(&self, items: &[VerifyItem<'_>], results: &mut [Result<()>]) {
        debug_assert_eq!(items.len(), results.len());
        // Malformed items get their error at once and stay out of the batch equation.
        let mut batch = ed25519_consensus::batch::Verifier::new();
        let mut queued = 0usize;
        for (item, result) in items.iter().zip(results.iter_mut()) {
            match (
                parse_public(item.public_key.as_bytes()),
                parse_signature(item.signature.as_bytes()),
            ) {
                (Ok(key), Ok(signature)) => {
                    batch.queue((key.into(), signature, item.message));
                    queued += 1;
                    *result = Ok(());
                }
                (Err(error), _) | (_, Err(error)) => *result = Err(error),
            }
        }
        if queued == 0 || batch.verify(rand_core_06::OsRng).is_ok() {
            return;
        }
        // At least one bad signature: find exactly which, one by one.
        for (item, result) in items.iter().zip(results.iter_mut()) {
            if result.is_ok() {
                *result = self.verify(
                    item.public_key.as_bytes(),
                    item.message,
                    item.signature.as_bytes(),
                );
            }
        }
    }

    fn matches_key_algorithm(
        &self,
        oid: ObjectIdentifier,
        parameters: Option<ObjectIdentifier>,
    ) -> bool {
        oid == ID_ED25519 && parameters.is_none()
    }

    fn private_key_to_pkcs8_der(&self, private_key: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let keypair = KeypairBytes { secret_key: *seed(private_key)?, public_key: None };
        let document = keypair.to_pkcs8_der().map_err(pem_error)?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    fn private_key_from_pkcs8_der(&self, der_bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let keypair = KeypairBytes::from_pkcs8_der(der_bytes).map_err(pem_error)?;
        if let Some(public_key) = &keypair.public_key {
            // PKCS#8 v2 may carry the public key: it must match the seed.
            let derived = self.public_key_from_private(&keypair.secret_key)?;
            if derived != public_key.to_bytes() {
                return Err(CryptoError::MalformedPem {
                    reason: "Ed25519 PKCS#8 public key does not match its private key".into(),
                });
            }
        }
        Ok(Zeroizing::new(keypair.secret_key.to_vec()))
    }

    fn public_key_to_spki_der(&self, public_key: &[u8]) -> Result<Vec<u8>> {
        let key = parse_public(public_key)?;
        let document = PublicKeyBytes(key.to_bytes()).to_public_key_der().map_err(pem_error)?;
        Ok(document.as_bytes().to_vec())
    }

    fn public_key_from_spki_der(&self, der_bytes: &[u8]) -> Result<Vec<u8>> {
        let key = PublicKeyBytes::from_public_key_der(der_bytes).map_err(pem_error)?;
        Ok(key.to_bytes().to_vec())
    }
}
