//! Keys: generation and PEM files (PKCS#8 private keys, SPKI public keys — the formats
//! `openssl pkey` reads and writes).

use std::path::Path;

pub use crypto_parallel::{PrivateKey, PublicKey, Signature, SignatureAlgorithm};

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key of a supported algorithm.
    #[error("{path}: {detail}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

/// A new random key.
pub fn generate(algorithm: SignatureAlgorithm) -> PrivateKey {
    PrivateKey::generate(algorithm)
}

/// Reads a PKCS#8 PEM private key.
pub fn read_private_key(path: impl AsRef<Path>) -> Result<PrivateKey, KeyError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    PrivateKey::from_pem(&text)
        .map_err(|e| KeyError::Format { path: path.display().to_string(), detail: e.to_string() })
}

/// Reads an SPKI PEM public key.
pub fn read_public_key(path: impl AsRef<Path>) -> Result<PublicKey, KeyError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
    PublicKey::from_pem(&text)
        .map_err(|e| KeyError::Format { path: path.display().to_string(), detail: e.to_string() })
}

/// Writes `key` as PKCS#8 PEM, readable only by its owner (mode 0600 on Unix); refuses
/// to overwrite an existing file.
pub fn write_private_key(path: impl AsRef<Path>, key: &PrivateKey) -> Result<(), KeyError> {
    let path = path.as_ref();
    let pem = key.to_pem().map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    write_secret_file(path, &pem)
}

/// Writes secret text (a key, an encrypted key, a key share) to a new file readable only
/// by its owner (mode 0600 on Unix); refuses to overwrite an existing file.
pub fn write_secret_file(path: impl AsRef<Path>, text: &str) -> Result<(), KeyError> {
    use std::io::Write as _;
    let path = path.as_ref();
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Writes a public key as SPKI PEM.
pub fn write_public_key(path: impl AsRef<Path>, key: &PublicKey) -> Result<(), KeyError> {
    let path = path.as_ref();
    let pem = key.to_pem().map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    std::fs::write(path, pem)
        .map_err(|source| KeyError::Io { path: path.display().to_string(), source })
}
