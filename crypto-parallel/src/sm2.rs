//! SM2 digital signatures with SM3 (GB/T 32918.2-2016, GM/T 0009-2012).
//!
//! - The signed digest is `e = SM3(Z_A || M)`, with
//!   `Z_A = SM3(ENTL_A || ID_A || a || b || x_G || y_G || x_A || y_A)` and the standard's
//!   default user id `"1234567812345678"` (`DEFAULT_DISTID`). A different id can be used
//!   explicitly through `sign_with_distid` / `verify_with_distid`; the default is never
//!   changed silently.
//! - Raw signature: `r || s`, 32 bytes each, big-endian; both in `[1, n-1]`. DER
//!   (`SEQUENCE { r, s }`, as OpenSSL writes) through `Signature::to_der`/`from_der`.
//! - Raw public key: 65-byte uncompressed SEC1 (`04 || x || y`); compressed input is
//!   accepted by `public_key_from_sec1` and normalised.
//!
//! Signing uses RustCrypto's `sm2` (constant-time, deterministic nonces). Verification
//! handles only public data and was chosen by measurement (`perf/RESULTS.md`): the
//! default path is `sm2_fast` (fiat-crypto field arithmetic, variable-time double-scalar
//! multiplication, a per-key table cache for repeated signers); `verify_reference` is
//! RustCrypto's verifier, kept for differential tests and as the fallback selected by
//! the `reference-sm2-verify` feature; `verify_efficient_sm2` is the previous default,
//! kept as a benchmark candidate.

use der::asn1::ObjectIdentifier;
use sm2::elliptic_curve::Generate;
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sm3::Digest;
use zeroize::Zeroizing;

use crate::Result;
use crate::algorithm::SignatureAlgorithm;
use crate::error::CryptoError;
use crate::provider::{SignatureProvider, pem_error};

/// The default distinguishing identifier of GB/T 32918 (and GM/T 0009): the ASCII string
/// "1234567812345678".
pub const DEFAULT_DISTID: &str = "1234567812345678";

/// ENTL_A is a 16-bit count of bits, so an id is at most 8,191 bytes.
pub const DISTID_LEN_MAX: usize = (u16::MAX as usize) / 8;

const PUBLIC_KEY_LEN: usize = 65;
const PRIVATE_KEY_LEN: usize = 32;
const SIGNATURE_LEN: usize = 64;

/// id-ecPublicKey (RFC 5480), the PKCS#8/SPKI algorithm of EC keys.
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The SM2 curve (GM/T 0006), the parameters OID of SM2 keys.
const SM2_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.301");

fn algorithm_code() -> crate::AlgorithmCode {
    SignatureAlgorithm::Sm2.code()
}

fn malformed_public(reason: &'static str) -> CryptoError {
    CryptoError::MalformedPublicKey { algorithm: algorithm_code(), reason }
}

fn malformed_private(reason: &'static str) -> CryptoError {
    CryptoError::MalformedPrivateKey { algorithm: algorithm_code(), reason }
}

fn malformed_signature(reason: &'static str) -> CryptoError {
    CryptoError::MalformedSignature { algorithm: algorithm_code(), reason }
}

fn parse_public(public_key: &[u8]) -> Result<sm2::PublicKey> {
    if public_key.len() != PUBLIC_KEY_LEN || public_key[0] != 0x04 {
        return Err(malformed_public("expected 65-byte uncompressed SEC1 (04 || x || y)"));
    }
    sm2::PublicKey::from_sec1_bytes(public_key)
        .map_err(|_| malformed_public("not a point on the SM2 curve"))
}

fn parse_secret(private_key: &[u8]) -> Result<sm2::SecretKey> {
    if private_key.len() != PRIVATE_KEY_LEN {
        return Err(malformed_private("expected a 32-byte scalar"));
    }
    sm2::SecretKey::from_slice(private_key).map_err(|_| malformed_private("scalar not in [1, n-1]"))
}

fn parse_signature(signature: &[u8]) -> Result<sm2::dsa::Signature> {
    if signature.len() != SIGNATURE_LEN {
        return Err(malformed_signature("expected 64 bytes r || s"));
    }
    sm2::dsa::Signature::from_slice(signature)
        .map_err(|_| malformed_signature("r or s not in [1, n-1]"))
}

fn check_distid(distid: &str) -> Result<()> {
    if distid.len() > DISTID_LEN_MAX {
        return Err(CryptoError::DistinguishingIdTooLong { len: distid.len() });
    }
    Ok(())
}

fn uncompressed(public_key: &sm2::PublicKey) -> Vec<u8> {
    public_key.to_sec1_point(false).as_bytes().to_vec()
}

/// Normalises a SEC1 public key (compressed 33 bytes or uncompressed 65 bytes) to the
/// canonical 65-byte form, checking that it is on the curve.
pub fn public_key_from_sec1(sec1: &[u8]) -> Result<Vec<u8>> {
    let key = sm2::PublicKey::from_sec1_bytes(sec1)
        .map_err(|_| malformed_public("not a SEC1 point on the SM2 curve"))?;
    Ok(uncompressed(&key))
}

/// `Z_A` for a canonical 65-byte public key (`04 || x || y`) and a user id.
pub fn z_a(distid: &str, public_key: &[u8]) -> Result<[u8; 32]> {
    check_distid(distid)?;
    if public_key.len() != PUBLIC_KEY_LEN {
        return Err(malformed_public("expected 65-byte uncompressed SEC1 (04 || x || y)"));
    }
    // `check_distid` bounds the id as `z_a_prefix` does, so this is never `None`.
    let mut hasher = crate::sm2_fast::z_a_prefix(distid.as_bytes())
        .ok_or(CryptoError::DistinguishingIdTooLong { len: distid.len() })?;
    hasher.update(&public_key[1..]);
    Ok(hasher.finalize().into())
}

/// Signs `message` with an explicit user id (the default provider uses
/// `DEFAULT_DISTID`). Returns raw `r || s`.
pub fn sign_with_distid(private_key: &[u8], distid: &str, message: &[u8]) -> Result<Vec<u8>> {
    use sm2::dsa::signature::Signer;
    check_distid(distid)?;
    let secret = parse_secret(private_key)?;
    let signing_key = sm2::dsa::SigningKey::new(distid, &secret)
        .map_err(|_| malformed_private("rejected by SM2"))?;
    let signature: sm2::dsa::Signature = signing_key.sign(message);
    Ok(signature.to_bytes().to_vec())
}

/// Verifies with an explicit user id on the default (fast) path.
pub fn verify_with_distid(
    public_key: &[u8],
    distid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    let z = z_a(distid, public_key)?;
    verify_fast(public_key, &z, message, signature)
}

/// RustCrypto's verifier (the reference): constant-time arithmetic, slower.
pub fn verify_reference(
    public_key: &[u8],
    distid: &str,
    message: &[u8],
    signature: &[u8],
) -> Result<()> {
    use sm2::dsa::signature::Verifier;
    check_distid(distid)?;
    let key = parse_public(public_key)?;
    let signature = parse_signature(signature)?;
    let verifying_key = sm2::dsa::VerifyingKey::new(distid, key)
        .map_err(|_| malformed_public("rejected by SM2"))?;
    verifying_key.verify(message, &signature).map_err(|_| CryptoError::InvalidSignature)
}

/// The fast path: GB/T 32918.2 §7.1 steps B1–B7 with `sm2_fast` (variable-time, public
/// data only): fiat-crypto's field, `[s]G + [t]P` with a static table for G and wNAF for
/// P, and — for a key seen before — a per-key comb table from the bounded global cache,
/// so a repeated signer's verification needs ~31 doublings instead of 256.
///
/// The errors keep the reference path's classification: a signature whose r or s is out
/// of [1, n−1] is malformed (RustCrypto's parser), a key off the curve is malformed, and
/// everything else that fails is `InvalidSignature`.
fn verify_fast(public_key: &[u8], z: &[u8; 32], message: &[u8], signature: &[u8]) -> Result<()> {
    let key: &[u8; PUBLIC_KEY_LEN] = public_key
        .try_into()
        .ok()
        .filter(|key: &&[u8; PUBLIC_KEY_LEN]| key[0] == 0x04)
        .ok_or_else(|| malformed_public("expected 65-byte uncompressed SEC1 (04 || x || y)"))?;
    parse_signature(signature)?;
    let mut hasher = sm3::Sm3::new();
    hasher.update(z);
    hasher.update(message);
    let e: [u8; 32] = hasher.finalize().into();
    let r: &[u8; 32] = signature[..32].try_into().expect("64-byte signature");
    let s: &[u8; 32] = signature[32..].try_into().expect("64-byte signature");
    if crate::sm2_fast::verify_digest_cached(key, &e, r, s) {
        return Ok(());
    }
    if crate::sm2_fast::PublicKey::from_sec1_uncompressed(public_key).is_none() {
        return Err(malformed_public("not a point on the SM2 curve"));
    }
    Err(CryptoError::InvalidSignature)
}

/// efficient-sm2's verifier (the previous default, kept as a measured candidate):
/// `[s]G + [t]P` by efficient-sm2, after the checks it leaves out (r, s in range,
/// t ≠ 0, the key on the curve).
pub fn verify_efficient_sm2(public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
    parse_public(public_key)?;
    let parsed = parse_signature(signature)?;
    let (r, s) = parsed.split_scalars();
    if bool::from(sm2::elliptic_curve::ff::Field::is_zero(&(*r + *s))) {
        return Err(CryptoError::InvalidSignature);
    }
    let z = z_a(DEFAULT_DISTID, public_key)?;
    let mut hasher = sm3::Sm3::new();
    hasher.update(z);
    hasher.update(message);
    let e = hasher.finalize();
    let key = efficient_sm2::PublicKey::new(&public_key[1..33], &public_key[33..]);
    let signature = efficient_sm2::Signature::new(&signature[..32], &signature[32..])
        .map_err(|_| malformed_signature("rejected by efficient-sm2 parser"))?;
    signature.verify_digest(&key, &e).map_err(|_| CryptoError::InvalidSignature)
}

/// The SM2-with-SM3 provider (default user id).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sm2Provider;

impl SignatureProvider for Sm2Provider {
    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Sm2
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
        let secret = sm2::SecretKey::generate();
        Zeroizing::new(secret.to_bytes().to_vec())
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
        sign_with_distid(private_key, DEFAULT_DISTID, message)
    }

    fn verify(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Result<()> {
        if cfg!(feature = "reference-sm2-verify") {
            verify_reference(public_key, DEFAULT_DISTID, message, signature)
        } else {
            verify_with_distid(public_key, DEFAULT_DISTID, message, signature)
        }
    }

    fn signature_to_der(&self, signature: &[u8]) -> Result<Vec<u8>> {
        Ok(parse_signature(signature)?.to_der().to_vec())
    }

    fn signature_from_der(&self, der_bytes: &[u8]) -> Result<Vec<u8>> {
        let signature = sm2::dsa::Signature::from_der(der_bytes)
            .map_err(|_| malformed_signature("not a DER SEQUENCE of r, s in [1, n-1]"))?;
        Ok(signature.to_bytes().to_vec())
    }

    fn matches_key_algorithm(
        &self,
        oid: ObjectIdentifier,
        parameters: Option<ObjectIdentifier>,
    ) -> bool {
        // OpenSSL 3 writes SM2 keys as id-ecPublicKey with the SM2 curve; some tools write
        // the SM2 OID itself as the algorithm.
        (oid == ID_EC_PUBLIC_KEY && parameters == Some(SM2_CURVE)) || oid == SM2_CURVE
    }

    fn private_key_to_pkcs8_der(&self, private_key: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let document = parse_secret(private_key)?.to_pkcs8_der().map_err(pem_error)?;
        Ok(Zeroizing::new(document.as_bytes().to_vec()))
    }

    fn private_key_from_pkcs8_der(&self, der_bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let secret = sm2::SecretKey::from_pkcs8_der(der_bytes).map_err(pem_error)?;
        Ok(Zeroizing::new(secret.to_bytes().to_vec()))
    }

    fn public_key_to_spki_der(&self, public_key: &[u8]) -> Result<Vec<u8>> {
        let document = parse_public(public_key)?.to_public_key_der().map_err(pem_error)?;
        Ok(document.as_bytes().to_vec())
    }

    fn public_key_from_spki_der(&self, der_bytes: &[u8]) -> Result<Vec<u8>> {
        let key = sm2::PublicKey::from_public_key_der(der_bytes).map_err(pem_error)?;
        Ok(uncompressed(&key))
    }
}
