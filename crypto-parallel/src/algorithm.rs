//! Stable algorithm codes.
//!
//! Every hash, public key, private key and signature carries a 16-bit code, so a ledger
//! can hold keys of several algorithms side by side and stored data stays decodable when
//! algorithms are added. Codes are part of the data format (`docs/FORMAT.md`): never
//! renumber one. The high byte is the kind (0x01 hash, 0x02 signature), the low byte the
//! algorithm within that kind.

use core::fmt;

/// A 16-bit algorithm code, as written in encoded hashes, keys and signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlgorithmCode(pub u16);

impl fmt::Display for AlgorithmCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Ok(algorithm) = HashAlgorithm::from_code(self.0) {
            return f.write_str(algorithm.name());
        }
        match SignatureAlgorithm::from_code(self.0) {
            Ok(algorithm) => f.write_str(algorithm.name()),
            Err(_) => write!(f, "0x{:04x}", self.0),
        }
    }
}

/// Hash algorithms. SM3 (GB/T 32905) is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum HashAlgorithm {
    /// SM3, GB/T 32905-2016; 32-byte digest.
    #[default]
    Sm3,
    /// SHA-256, FIPS 180-4; 32-byte digest.
    Sha256,
}

impl HashAlgorithm {
    /// Every hash algorithm this build knows, for tests and listings.
    pub const ALL: [HashAlgorithm; 2] = [HashAlgorithm::Sm3, HashAlgorithm::Sha256];

    /// Stable code (see module docs).
    pub const fn code(self) -> AlgorithmCode {
        AlgorithmCode(match self {
            HashAlgorithm::Sha256 => 0x0101,
            HashAlgorithm::Sm3 => 0x0102,
        })
    }

    /// The algorithm with this code.
    pub fn from_code(code: u16) -> crate::Result<Self> {
        match code {
            0x0101 => Ok(HashAlgorithm::Sha256),
            0x0102 => Ok(HashAlgorithm::Sm3),
            _ => Err(crate::CryptoError::UnknownAlgorithm { code }),
        }
    }

    /// Lower-case name used in configs and logs (`"sm3"`, `"sha256"`).
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sm3 => "sm3",
            HashAlgorithm::Sha256 => "sha256",
        }
    }

    /// The algorithm with this name (as printed by `name`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

/// Signature algorithms. SM2 with SM3 (GB/T 32918, GM/T 0009) is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SignatureAlgorithm {
    /// SM2 digital signature with SM3, Z_A over the standard default user id.
    #[default]
    Sm2,
    /// Ed25519 (RFC 8032), verified under the ZIP-215 rules (batch ≡ single).
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256 (FIPS 186-4).
    EcdsaP256,
}

impl SignatureAlgorithm {
    /// Every signature algorithm this build knows.
    pub const ALL: [SignatureAlgorithm; 3] =
        [SignatureAlgorithm::Sm2, SignatureAlgorithm::Ed25519, SignatureAlgorithm::EcdsaP256];

    /// Stable code (see module docs).
    pub const fn code(self) -> AlgorithmCode {
        AlgorithmCode(match self {
            SignatureAlgorithm::Sm2 => 0x0201,
            SignatureAlgorithm::Ed25519 => 0x0202,
            SignatureAlgorithm::EcdsaP256 => 0x0203,
        })
    }

    /// The algorithm with this code.
    pub fn from_code(code: u16) -> crate::Result<Self> {
        match code {
            0x0201 => Ok(SignatureAlgorithm::Sm2),
            0x0202 => Ok(SignatureAlgorithm::Ed25519),
            0x0203 => Ok(SignatureAlgorithm::EcdsaP256),
            _ => Err(crate::CryptoError::UnknownAlgorithm { code }),
        }
    }

    /// Lower-case name used in configs and CLIs (`"sm2"`, `"ed25519"`, `"ecdsa-p256"`).
    pub const fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::Sm2 => "sm2",
            SignatureAlgorithm::Ed25519 => "ed25519",
            SignatureAlgorithm::EcdsaP256 => "ecdsa-p256",
        }
    }

    /// The algorithm with this name (as printed by `name`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The provider that implements this algorithm.
    pub fn provider(self) -> &'static dyn crate::SignatureProvider {
        match self {
            SignatureAlgorithm::Sm2 => &crate::sm2::Sm2Provider,
            SignatureAlgorithm::Ed25519 => &crate::ed25519::Ed25519Provider,
            SignatureAlgorithm::EcdsaP256 => &crate::p256::EcdsaP256Provider,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for a in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_code(a.code().0), Ok(a));
            assert_eq!(HashAlgorithm::from_name(a.name()), Some(a));
            assert!(seen.insert(a.code()));
        }
        for a in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::from_code(a.code().0), Ok(a));
            assert_eq!(SignatureAlgorithm::from_name(a.name()), Some(a));
            assert_eq!(a.provider().algorithm(), a);
            assert!(seen.insert(a.code()));
        }
        assert!(SignatureAlgorithm::from_code(0x0101).is_err());
        assert!(HashAlgorithm::from_code(0x0201).is_err());
    }

    #[test]
    fn codes_are_frozen() {
        // These values are written into ledgers; changing one breaks stored data.
        assert_eq!(HashAlgorithm::Sha256.code().0, 0x0101);
        assert_eq!(HashAlgorithm::Sm3.code().0, 0x0102);
        assert_eq!(SignatureAlgorithm::Sm2.code().0, 0x0201);
        assert_eq!(SignatureAlgorithm::Ed25519.code().0, 0x0202);
        assert_eq!(SignatureAlgorithm::EcdsaP256.code().0, 0x0203);
        assert_eq!(HashAlgorithm::default(), HashAlgorithm::Sm3);
        assert_eq!(SignatureAlgorithm::default(), SignatureAlgorithm::Sm2);
    }
}
