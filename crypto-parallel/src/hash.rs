//! Hashing: SM3 (default) and SHA-256 behind one small interface.
//!
//! Every ledger hash is 32 bytes. Both algorithms produce 32 bytes natively; a future
//! algorithm with a wider output must use its standard 256-bit truncation (e.g.
//! SHA-512/256) so block and proof layouts stay fixed-width.

use core::fmt;

use sha2::Digest as _;

use crate::algorithm::HashAlgorithm;

/// Length in bytes of every digest.
pub const DIGEST_LEN: usize = 32;

/// A digest together with the algorithm that produced it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashDigest {
    algorithm_code: u16,
    bytes: [u8; DIGEST_LEN],
}

impl HashDigest {
    /// Wraps raw digest bytes produced by `algorithm`.
    pub const fn new(algorithm: HashAlgorithm, bytes: [u8; DIGEST_LEN]) -> Self {
        HashDigest { algorithm_code: algorithm.code().0, bytes }
    }

    /// The algorithm that produced this digest.
    pub fn algorithm(&self) -> HashAlgorithm {
        HashAlgorithm::from_code(self.algorithm_code).expect("constructed from a known algorithm")
    }

    /// The raw 32 digest bytes.
    pub const fn as_bytes(&self) -> &[u8; DIGEST_LEN] {
        &self.bytes
    }

    /// Encoded form: algorithm code (u16, big-endian) then the 32 digest bytes.
    pub fn to_encoded(&self) -> [u8; 2 + DIGEST_LEN] {
        let mut out = [0u8; 2 + DIGEST_LEN];
        out[..2].copy_from_slice(&self.algorithm_code.to_be_bytes());
        out[2..].copy_from_slice(&self.bytes);
        out
    }

    /// Decodes the form written by `to_encoded`.
    pub fn from_encoded(bytes: &[u8]) -> crate::Result<Self> {
        if bytes.len() != 2 + DIGEST_LEN {
            return Err(crate::CryptoError::MalformedText {
                reason: "hash digest must be 34 bytes",
            });
        }
        let algorithm = HashAlgorithm::from_code(u16::from_be_bytes([bytes[0], bytes[1]]))?;
        let mut digest = [0u8; DIGEST_LEN];
        digest.copy_from_slice(&bytes[2..]);
        Ok(HashDigest::new(algorithm, digest))
    }

    /// Lower-case hex of the raw digest bytes (without the algorithm code).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }
}

impl fmt::Debug for HashDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm().name(), self.to_hex())
    }
}

impl fmt::Display for HashDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// An incremental hasher for either algorithm; use it to hash data in several parts
/// without concatenating them first.
#[derive(Clone)]
pub enum Hasher {
    /// SM3 state.
    Sm3(sm3::Sm3),
    /// SHA-256 state.
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Sm3 => Hasher::Sm3(sm3::Sm3::new()),
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        match self {
            Hasher::Sm3(state) => sm3::Digest::update(state, data),
            Hasher::Sha256(state) => state.update(data),
        }
        self
    }

    /// Finishes and returns the digest.
    pub fn finalize(self) -> HashDigest {
        match self {
            Hasher::Sm3(state) => {
                HashDigest::new(HashAlgorithm::Sm3, sm3::Digest::finalize(state).into())
            }
            Hasher::Sha256(state) => {
                HashDigest::new(HashAlgorithm::Sha256, state.finalize().into())
            }
        }
    }
}

/// Hashes `data` in one call.
pub fn hash(algorithm: HashAlgorithm, data: &[u8]) -> HashDigest {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_digest(algorithm: HashAlgorithm, data: &[u8]) -> String {
        hash(algorithm, data).to_hex()
    }

    #[test]
    fn sm3_gbt_32905_vectors() {
        // GB/T 32905-2016, Appendix A, example 1: "abc".
        assert_eq!(
            hex_digest(HashAlgorithm::Sm3, b"abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        // Example 2: "abcd" repeated 16 times (64 bytes).
        assert_eq!(
            hex_digest(HashAlgorithm::Sm3, "abcd".repeat(16).as_bytes()),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }

    #[test]
    fn sha256_nist_vectors() {
        // FIPS 180-2 Appendix B / NIST CSRC examples.
        assert_eq!(
            hex_digest(HashAlgorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex_digest(HashAlgorithm::Sha256, b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex_digest(
                HashAlgorithm::Sha256,
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            ),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            hex_digest(HashAlgorithm::Sha256, &million_a),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        for algorithm in HashAlgorithm::ALL {
            let mut hasher = Hasher::new(algorithm);
            hasher.update(b"ab").update(b"").update(b"c");
            assert_eq!(hasher.finalize(), hash(algorithm, b"abc"));
        }
    }

    #[test]
    fn encoded_round_trip_and_errors() {
        let digest = hash(HashAlgorithm::Sm3, b"x");
        assert_eq!(HashDigest::from_encoded(&digest.to_encoded()), Ok(digest));
        assert!(HashDigest::from_encoded(&[0u8; 5]).is_err());
        let mut bad = digest.to_encoded();
        bad[0] = 0x7f;
        assert!(matches!(
            HashDigest::from_encoded(&bad),
            Err(crate::CryptoError::UnknownAlgorithm { code: 0x7f02 })
        ));
    }
}
