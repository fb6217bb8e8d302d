//! ECDSA over NIST P-256 with SHA-256 (FIPS 186-4), through RustCrypto `p256`.
//!
//! Raw forms: private key = 32-byte big-endian scalar in [1, n-1]; public key = 65-byte
//! uncompressed SEC1; signature = `r || s`, 32 bytes each. Both low-S and high-S
//! signatures verify, as in OpenSSL; transaction identity must therefore never depend on
//! signature bytes (see docs/FORMAT.md).

use der::asn1::ObjectIdentifier;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::Generate;
use p256::elliptic_curve::sec1::ToSec1Point;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use zeroize::Zeroizing;

use crate::Result;
use crate::algorithm::SignatureAlgorithm;
use crate::error::CryptoError;
use crate::provider::{SignatureProvider, pem_error};

const PUBLIC_KEY_LEN: usize = 65;
const PRIVATE_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// prime256v1 / secp256r1.
const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

fn code() -> crate::AlgorithmCode {
    SignatureAlgorithm::EcdsaP256.code()
}

fn parse_secret(private_key: &[u8]) -> Result<p256::SecretKey> {
    let malformed = |reason| CryptoError::MalformedPrivateKey { algorithm: code(), reason };
    if private_key.len() != PRIVATE_KEY_LEN {
        return Err(malformed("expected a 32-byte scalar"));
    }
    p256::SecretKey::from_slice(private_key).map_err(|_| malformed("scalar not in [1, n-1]"))
}

fn parse_public(public_key: &[u8]) -> Result<p256::PublicKey> {
    let malformed = |reason| CryptoError::MalformedPublicKey { algorithm: code(), reason };
    if public_key.len() != PUBLIC_KEY_LEN || public_key[0] != 0x04 {
        return Err(malformed("expected 65-byte uncompressed SEC1 (04 || x || y)"));
    }
    p256::PublicKey::from_sec1_bytes(public_key)
        .map_err(|_| malformed("not a point on the P-256 curve"))
}

fn parse_signature(signature: &[u8]) -> Result<Signature> {
    let malformed = |reason| CryptoError::MalformedSignature { algorithm: code(), reason };
    if signature.len() != SIGNATURE_LEN {
        return Err(malformed("expected 64 bytes r || s"));
    }
    Signature::from_slice(signature).map_err(|_| malformed("r or s not in [1, n-1]"))
}

fn uncompressed(public_key: &p256::PublicKey) -> Vec<u8> {
    public_key.to_sec1_point(false).as_bytes().to_vec()
}

/// The ECDSA-P256-SHA256 provider.
#[derive(Debug, Clone, Copy, Default)]
pub struct EcdsaP256Provider;

impl SignatureProvider for EcdsaP256Provider {
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::EcdsaP256
    }

    fn private_key_len(&self) -> usize {
        PRIVATE_KEY_LEN
    }

    fn public_key_len(&self) -> usize {
        PUBLIC_KEY_LEN
    }

    fn signature_len(&self) -> usize {
        SIGNATURE_LEN
    }

    fn generate_private_key(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(p256::SecretKey::generate().to_bytes().to_vec())
    }

    fn check_private_key(&self, private_key: &[u8]) -> Result<()> {
        parse_secret(private_key).map(drop)
    }

    fn public_key_from_private(&self, private_key: &[u8]) -> Result<Vec<u8>> {
        Ok(uncompressed(&parse_secret(private_key)?.public_key()))
    }

    fn check_public_key(&self, public_key: &[u8]) -> Result<()> {
        parse_public(public_key).map(drop)
    }

    fn check_signature(&self, signature: &[u8]) -> Result<()> {
        parse_signature(signature).map(drop)
    }

    fn sign(&self, private_key: &[u8], message: &[u8]) -> Result<Vec<u8>> {
        let signing_key = SigningKey::from(parse_secret(private_key)?);
        let signature: Signature = signing_key.sign(message);
        Ok(signature.to_bytes().to_vec())
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
        let key = VerifyingKey::from(parse_public(public_key)?);
        let signature = parse_signature(signature)?;
        key.verify(message, &signature).map_err(|_| CryptoError::InvalidSignature)
    }

    fn signature_to_der(&self, signature: &[u8]) -> Result<Vec<u8>> {
        Ok(parse_signature(signature)?.to_der().as_bytes().to_vec())
    }

    fn signature_from_der(&self, der_bytes: &[u8]) -> Result<Vec<u8>> {
        let signature =
            Signature::from_der(der_bytes).map_err(|_| CryptoError::MalformedSignature {
                algorithm: code(),
                reason: "not a DER SEQUENCE of r, s in [1, n-1]",
            })?;
        Ok(signature.to_bytes().to_vec())
    }

    fn matches_key_algorithm(
        &self,
        oid: ObjectIdentifier,
        parameters: Option<ObjectIdentifier>,
    ) -> bool {
        oid == ID_EC_PUBLIC_KEY && parameters == Some(P256_CURVE)
    }

    fn private_key_to_pkcs8_der(&self, private_key: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let document = parse_secret(private_key)?.to_pkcs8_der().map_err(pem_error)?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    fn private_key_from_pkcs8_der(&self, der_bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let secret = p256::SecretKey::from_pkcs8_der(der_bytes).map_err(pem_error)?;
        Ok(Zeroizing::new(secret.to_bytes().to_vec()))
    }

    fn public_key_to_spki_der(&self, public_key: &[u8]) -> Result<Vec<u8>> {
        let document = parse_public(public_key)?.to_public_key_der().map_err(pem_error)?;
        Ok(document.as_bytes().to_vec())
    }

    fn public_key_from_spki_der(&self, der_bytes: &[u8]) -> Result<Vec<u8>> {
        let key = p256::PublicKey::from_public_key_der(der_bytes).map_err(pem_error)?;
        Ok(uncompressed(&key))
    }
}
