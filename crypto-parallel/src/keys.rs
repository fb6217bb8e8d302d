//! Typed keys and signatures: raw bytes plus the algorithm code, validated on
//! construction, with binary, text (base58) and PEM forms.
//!
//! Binary form (see `docs/FORMAT.md`): `code: u16 big-endian || raw bytes`, where the raw
//! bytes have the provider's fixed length. Text form: base58 (Bitcoin alphabet) of the
//! binary form. Private keys never print: `Debug` shows only the algorithm, and the bytes
//! are zeroized when dropped.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Result;
use crate::algorithm::SignatureAlgorithm;
use crate::error::CryptoError;
use crate::provider::pem_error;

/// Splits `code || raw` into the algorithm and the raw bytes.
fn split_code(bytes: &[u8]) -> Result<(SignatureAlgorithm, &[u8])> {
    if bytes.len() < 2 {
        return Err(CryptoError::MalformedText {
            reason: "shorter than the 2-byte algorithm code",
        });
    }
    let algorithm = SignatureAlgorithm::from_code(u16::from_be_bytes([bytes[0], bytes[1]]))?;
    Ok((algorithm, &bytes[2..]))
}

fn join_code(algorithm: SignatureAlgorithm, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + raw.len());
    out.extend_from_slice(&algorithm.code().0.to_be_bytes());
    out.extend_from_slice(raw);
    out
}

fn from_base58(text: &str) -> Result<Zeroizing<Vec<u8>>> {
    bs58::decode(text.trim())
        .into_vec()
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::MalformedText { reason: "not base58" })
}

/// A public key of any supported algorithm, validated (on the curve, not the identity).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey {
    algorithm: SignatureAlgorithm,
    bytes: Vec<u8>,
}

impl PublicKey {
    /// Validates canonical raw bytes of `algorithm` (SM2/P-256: 65-byte uncompressed
    /// SEC1; Ed25519: 32 bytes).
    pub fn from_raw(algorithm: SignatureAlgorithm, raw: &[u8]) -> Result<Self> {
        algorithm.provider().check_public_key(raw)?;
        Ok(PublicKey { algorithm, bytes: raw.to_vec() })
    }

    /// Decodes the binary form `code || raw`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (algorithm, raw) = split_code(bytes)?;
        Self::from_raw(algorithm, raw)
    }

    /// The binary form `code || raw`.
    pub fn to_bytes(&self) -> Vec<u8> {
        join_code(self.algorithm, &self.bytes)
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The raw key bytes, without the algorithm code.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Text form: base58 of `code || raw`.
    pub fn to_base58(&self) -> String {
        bs58::encode(self.to_bytes()).into_string()
    }

    /// Parses the text form written by `to_base58`.
    pub fn from_base58(text: &str) -> Result<Self> {
        Self::from_bytes(&from_base58(text)?)
    }

    /// Verifies `signature` over `message` with this key.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<()> {
        if signature.algorithm != self.algorithm {
            return Err(CryptoError::AlgorithmMismatch {
                expected: self.algorithm.code(),
                found: signature.algorithm.code(),
            });
        }
        self.algorithm.provider().verify(&self.bytes, message, &signature.bytes)
    }

    /// SubjectPublicKeyInfo DER (what OpenSSL writes as `PUBLIC KEY`).
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        self.algorithm.provider().public_key_to_spki_der(&self.bytes)
    }

    /// PEM `-----BEGIN PUBLIC KEY-----` (SPKI).
    pub fn to_pem(&self) -> Result<String> {
        let der = self.to_spki_der()?;
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &der).map_err(pem_error)
    }

    /// Parses SPKI DER of any supported algorithm (the algorithm is read from the DER).
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<Self> {
        let info = spki::SubjectPublicKeyInfoRef::try_from(der_bytes).map_err(pem_error)?;
        let (oid, parameters) = info.algorithm.oids().map_err(pem_error)?;
        let algorithm = algorithm_for_oids(oid, parameters)?;
        let raw = algorithm.provider().public_key_from_spki_der(der_bytes)?;
        Self::from_raw(algorithm, &raw)
    }

    /// Parses PEM `PUBLIC KEY` (SPKI) of any supported algorithm.
    pub fn from_pem(pem: &str) -> Result<Self> {
        let (label, der_bytes) = der::pem::decode_vec(pem.trim().as_bytes()).map_err(pem_error)?;
        if label != "PUBLIC KEY" {
            return Err(CryptoError::MalformedPem {
                reason: format!("expected a PUBLIC KEY (SPKI) block, found {label}"),
            });
        }
        Self::from_spki_der(&der_bytes)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}:{})", self.algorithm, self.to_base58())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base58())
    }
}

/// Finds the provider for a PKCS#8/SPKI algorithm identifier.
fn algorithm_for_oids(
    oid: der::asn1::ObjectIdentifier,
    parameters: Option<der::asn1::ObjectIdentifier>,
) -> Result<SignatureAlgorithm> {
    SignatureAlgorithm::ALL
        .into_iter()
        .find(|a| a.provider().matches_key_algorithm(oid, parameters))
        .ok_or_else(|| CryptoError::MalformedPem {
            reason: format!(
                "unsupported key algorithm {oid}{}",
                parameters.map(|p| format!(" with parameters {p}")).unwrap_or_default()
            ),
        })
}

/// A private (secret) key. Never printed; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey {
    #[zeroize(skip)]
    algorithm: SignatureAlgorithm,
    bytes: Vec<u8>,
}

impl PrivateKey {
    /// A fresh random key of `algorithm`.
    pub fn generate(algorithm: SignatureAlgorithm) -> Self {
        let raw = algorithm.provider().generate_private_key();
        PrivateKey { algorithm, bytes: raw.to_vec() }
    }

    /// Validates raw private key bytes of `algorithm` (SM2/P-256: a 32-byte big-endian
    /// scalar in [1, n-1]; Ed25519: the 32-byte seed).
    pub fn from_raw(algorithm: SignatureAlgorithm, raw: &[u8]) -> Result<Self> {
        algorithm.provider().check_private_key(raw)?;
        Ok(PrivateKey { algorithm, bytes: raw.to_vec() })
    }

    /// Decodes the binary form `code || raw`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (algorithm, raw) = split_code(bytes)?;
        Self::from_raw(algorithm, raw)
    }

    /// The binary form `code || raw`, zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(join_code(self.algorithm, &self.bytes))
    }

    /// The algorithm of this key.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The raw secret bytes. Handle with care: do not log or copy them.
    pub fn expose_secret_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let raw = self
            .algorithm
            .provider()
            .public_key_from_private(&self.bytes)
            .expect("private key validated on construction");
        PublicKey { algorithm: self.algorithm, bytes: raw }
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        let raw = self
            .algorithm
            .provider()
            .sign(&self.bytes, message)
            .expect("private key validated on construction");
        Signature { algorithm: self.algorithm, bytes: raw }
    }

    /// Text form: base58 of `code || raw`. Zeroized when dropped.
    pub fn to_base58(&self) -> Zeroizing<String> {
        Zeroizing::new(bs58::encode(self.to_bytes().as_slice()).into_string())
    }

    /// Parses the text form written by `to_base58`.
    pub fn from_base58(text: &str) -> Result<Self> {
        Self::from_bytes(&from_base58(text)?)
    }

    /// PKCS#8 DER (unencrypted), zeroized when dropped.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>> {
        self.algorithm.provider().private_key_to_pkcs8_der(&self.bytes)
    }

    /// PEM `-----BEGIN PRIVATE KEY-----` (PKCS#8), zeroized when dropped.
    pub fn to_pem(&self) -> Result<Zeroizing<String>> {
        let der = self.to_pkcs8_der()?;
        der::pem::encode_string("PRIVATE KEY", der::pem::LineEnding::LF, &der)
            .map(Zeroizing::new)
            .map_err(pem_error)
    }

    /// Parses PKCS#8 DER of any supported algorithm.
    pub fn from_pkcs8_der(der_bytes: &[u8]) -> Result<Self> {
        let info = pkcs8::PrivateKeyInfoRef::try_from(der_bytes).map_err(pem_error)?;
        let (oid, parameters) = info.algorithm.oids().map_err(pem_error)?;
        let algorithm = algorithm_for_oids(oid, parameters)?;
        let raw = algorithm.provider().private_key_from_pkcs8_der(der_bytes)?;
        Self::from_raw(algorithm, &raw)
    }

    /// Parses PEM `PRIVATE KEY` (PKCS#8, as written by `openssl genpkey`).
    pub fn from_pem(pem: &str) -> Result<Self> {
        let (label, der_bytes) = der::pem::decode_vec(pem.trim().as_bytes()).map_err(pem_error)?;
        let der_bytes = Zeroizing::new(der_bytes);
        match label {
            "PRIVATE KEY" => Self::from_pkcs8_der(&der_bytes),
            "EC PRIVATE KEY" => Err(CryptoError::MalformedPem {
                reason: "SEC1 'EC PRIVATE KEY' is not supported; convert it with \
                         `openssl pkcs8 -topk8 -nocrypt`"
                    .into(),
            }),
            "ENCRYPTED PRIVATE KEY" => Err(CryptoError::MalformedPem {
                reason: "encrypted PKCS#8 is not supported; decrypt it with \
                         `openssl pkcs8 -nocrypt`"
                    .into(),
            }),
            other => Err(CryptoError::MalformedPem {
                reason: format!("expected a PRIVATE KEY (PKCS#8) block, found {other}"),
            }),
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.algorithm)
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        // Not constant-time: only for tests and config comparisons, never on secrets
        // chosen by an attacker.
        self.algorithm == other.algorithm && self.bytes == other.bytes
    }
}
impl Eq for PrivateKey {}

/// A signature, carrying the algorithm code. Raw forms: SM2 and ECDSA-P256 `r || s`
/// (32 bytes each, big-endian); Ed25519 the 64-byte RFC 8032 signature.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    algorithm: SignatureAlgorithm,
    bytes: Vec<u8>,
}

impl Signature {
    /// Validates the raw signature's shape (length, r and s in [1, n-1] for SM2/ECDSA).
    pub fn from_raw(algorithm: SignatureAlgorithm, raw: &[u8]) -> Result<Self> {
        algorithm.provider().check_signature(raw)?;
        Ok(Signature { algorithm, bytes: raw.to_vec() })
    }

    /// Decodes the binary form `code || raw`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (algorithm, raw) = split_code(bytes)?;
        Self::from_raw(algorithm, raw)
    }

    /// The binary form `code || raw`.
    pub fn to_bytes(&self) -> Vec<u8> {
        join_code(self.algorithm, &self.bytes)
    }

    /// The algorithm of this signature.
    pub fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The raw signature bytes, without the algorithm code.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Text form: base58 of `code || raw`.
    pub fn to_base58(&self) -> String {
        bs58::encode(self.to_bytes()).into_string()
    }

    /// Parses the text form written by `to_base58`.
    pub fn from_base58(text: &str) -> Result<Self> {
        Self::from_bytes(&from_base58(text)?)
    }

    /// DER `SEQUENCE { r INTEGER, s INTEGER }`, the encoding OpenSSL reads and writes.
    /// Only SM2 and ECDSA have it; Ed25519 answers `MalformedSignature`.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        self.algorithm.provider().signature_to_der(&self.bytes)
    }

    /// Parses a DER `SEQUENCE { r, s }` signature of `algorithm` (SM2 or ECDSA).
    pub fn from_der(algorithm: SignatureAlgorithm, der_bytes: &[u8]) -> Result<Self> {
        let raw = algorithm.provider().signature_from_der(der_bytes)?;
        Self::from_raw(algorithm, &raw)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}:{})", self.algorithm, hex::encode(&self.bytes))
    }
}
