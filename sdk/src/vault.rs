//! Keys at rest: password-encrypted private key files, and a key split into N shares of
//! which any M recover it.
//!
//! **Encrypted key file** (`docs/FORMAT.md` §16): PEM with the label
//! `POLYLEDGER ENCRYPTED PRIVATE KEY` around
//! `magic "PLKEYv1\0" | kdf u8 = 1 (scrypt) | log_n u8 | r u32 | p u32 | salt [16] |
//! aead u8 = 1 (AES-256-GCM) | nonce [12] | ciphertext ‖ tag [16]`. The key is
//! `scrypt(password, salt, log_n, r, p)` (32 bytes); the plaintext is the PKCS#8 DER of
//! the private key; everything before the ciphertext is the AEAD's associated data, so
//! no parameter can be changed unnoticed. A wrong password fails the tag check: a clear
//! error, never a wrong key.
//!
//! **Key shares**: Shamir's secret sharing over GF(256) (the `sharks` crate) of the
//! PKCS#8 DER. Each share is PEM `POLYLEDGER KEY SHARE` around
//! `magic "PLSHAREv1" | threshold u8 | count u8 | public key bytes16 | share`, where
//! `share` is `sharks`' encoding (x ‖ y…). Recovery needs `threshold` distinct shares of
//! the same key and checks that the result is the private key of that public key.
//!
//! Secrets (passwords, key bytes, shares) live in `Zeroizing` buffers and never appear
//! in errors or `Debug` output.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use crypto_parallel::{PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// PEM label of an encrypted private key file.
pub const ENCRYPTED_LABEL: &str = "POLYLEDGER ENCRYPTED PRIVATE KEY";
/// PEM label of a key share.
pub const SHARE_LABEL: &str = "POLYLEDGER KEY SHARE";
/// The environment variable a node and the CLI read a key password from (when no
/// password file is given).
pub const PASSWORD_ENV: &str = "POLYLEDGER_KEY_PASSWORD";

const MAGIC: &[u8; 8] = b"PLKEYv1\0";
const SHARE_MAGIC: &[u8; 9] = b"PLSHAREv1";
const KDF_SCRYPT: u8 = 1;
const AEAD_AES_256_GCM: u8 = 1;
/// scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, ~0.1 s): the OWASP baseline.
const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 1;
/// Largest accepted cost, so a crafted file cannot make unlocking take hours.
const LOG_N_MAX: u8 = 20;
const HEADER_LEN: usize = 8 + 1 + 1 + 4 + 4 + 16 + 1 + 12;

/// A password (zeroized when dropped; `Debug` prints nothing of it).
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Password(Zeroizing::new(text.into()))
    }

    /// From a file (its first line; the file should be readable by the node's user
    /// only), else from `PASSWORD_ENV`; `None` when neither is given.
    pub fn from_file_or_env(file: Option<&Path>) -> Result<Option<Self>, VaultError> {
        if let Some(path) = file {
            let text =
                Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    VaultError::Io(format!("password file {}: {e}", path.display()))
                })?);
            let line = text.lines().next().unwrap_or("");
            if line.is_empty() {
                return Err(VaultError::Io(format!("password file {} is empty", path.display())));
            }
            return Ok(Some(Password::new(line)));
        }
        Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()).map(Password::new))
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a key could not be sealed or opened. Messages never contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// The password does not open the file (or the file was altered).
    #[error("wrong password, or the encrypted key file was altered")]
    WrongPassword,
    /// The file is encrypted and no password was given.
    #[error("the key file is encrypted: give its password (password file, or {PASSWORD_ENV})")]
    PasswordNeeded,
    /// Not an encrypted key / a share, or a malformed one.
    #[error("{0}")]
    Format(String),
    /// Shares that cannot recover the key.
    #[error("{0}")]
    Shares(String),
    /// A file could not be read.
    #[error("{0}")]
    Io(String),
}

fn derive(
    password: &Password,
    salt: &[u8],
    log_n: u8,
    r: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 32]>, VaultError> {
    if log_n == 0 || log_n > LOG_N_MAX || r == 0 || r > 32 || p == 0 || p > 16 {
        return Err(VaultError::Format(format!(
            "scrypt cost out of range (log_n {log_n}, r {r}, p {p})"
        )));
    }
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| VaultError::Format(format!("scrypt parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password.bytes(), salt, &params, key.as_mut())
        .map_err(|e| VaultError::Format(format!("scrypt: {e}")))?;
    Ok(key)
}

/// Encrypts `key` under `password`; returns the PEM text of the file.
pub fn seal(key: &PrivateKey, password: &Password) -> Result<String, VaultError> {
    if password.bytes().is_empty() {
        return Err(VaultError::Format("an empty password protects nothing".into()));
    }
    let der = key.to_pkcs8_der().map_err(|e| VaultError::Format(e.to_string()))?;
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 12] = rand::random();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.push(KDF_SCRYPT);
    header.push(LOG_N);
    header.extend_from_slice(&R.to_be_bytes());
    header.extend_from_slice(&P.to_be_bytes());
    header.extend_from_slice(&salt);
    header.push(AEAD_AES_256_GCM);
    header.extend_from_slice(&nonce);
    let secret = derive(password, &salt, LOG_N, R, P)?;
    let cipher = Aes256Gcm::new_from_slice(secret.as_ref()).expect("32-byte key");
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: der.as_ref(), aad: &header })
        .map_err(|_| VaultError::Format("encryption failed".into()))?;
    header.extend_from_slice(&sealed);
    pem_rfc7468::encode_string(ENCRYPTED_LABEL, pem_rfc7468::LineEnding::LF, &header)
        .map_err(|e| VaultError::Format(e.to_string()))
}

/// Whether `text` is an encrypted key file (by its PEM label).
pub fn is_sealed(text: &str) -> bool {
    text.contains(&format!("-----BEGIN {ENCRYPTED_LABEL}-----"))
}

/// Decrypts an encrypted key file's text.
pub fn open(text: &str, password: &Password) -> Result<PrivateKey, VaultError> {
    let (label, bytes) = pem_rfc7468::decode_vec(text.trim().as_bytes())
        .map_err(|e| VaultError::Format(format!("not an encrypted key file: {e}")))?;
    if label != ENCRYPTED_LABEL {
        return Err(VaultError::Format(format!("PEM label {label}, expected {ENCRYPTED_LABEL}")));
    }
    if bytes.len() < HEADER_LEN + 16 || &bytes[..8] != MAGIC {
        return Err(VaultError::Format("not a polyledger encrypted key (magic, length)".into()));
    }
    let (header, sealed) = bytes.split_at(HEADER_LEN);
    if header[8] != KDF_SCRYPT || header[34] != AEAD_AES_256_GCM {
        return Err(VaultError::Format("unknown KDF or cipher".into()));
    }
    let log_n = header[9];
    let r = u32::from_be_bytes(header[10..14].try_into().expect("4 bytes"));
    let p = u32::from_be_bytes(header[14..18].try_into().expect("4 bytes"));
    let salt = &header[18..34];
    let nonce = &header[35..47];
    let secret = derive(password, salt, log_n, r, p)?;
    let cipher = Aes256Gcm::new_from_slice(secret.as_ref()).expect("32-byte key");
    let der = Zeroizing::new(
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: header })
            .map_err(|_| VaultError::WrongPassword)?,
    );
    PrivateKey::from_pkcs8_der(&der).map_err(|e| VaultError::Format(e.to_string()))
}

/// Reads a private key file, plain PKCS#8 PEM or encrypted (then `password` opens it).
pub fn read_key(path: &Path, password: Option<&Password>) -> Result<PrivateKey, VaultError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| VaultError::Io(format!("{}: {e}", path.display())))?,
    );
    if is_sealed(&text) {
        let password = password.ok_or(VaultError::PasswordNeeded)?;
        return open(&text, password);
    }
    PrivateKey::from_pem(&text).map_err(|e| VaultError::Format(format!("{}: {e}", path.display())))
}

/// Splits `key` into `count` shares of which any `threshold` recover it (2 ≤ threshold ≤
/// count ≤ 255). Returns each share's PEM text.
pub fn split(
    key: &PrivateKey,
    threshold: u8,
    count: u8,
) -> Result<Vec<Zeroizing<String>>, VaultError> {
    if threshold < 2 || count < threshold {
        return Err(VaultError::Shares(format!(
            "need 2 <= threshold <= shares, got threshold {threshold} of {count}"
        )));
    }
    let der = key.to_pkcs8_der().map_err(|e| VaultError::Format(e.to_string()))?;
    let public = key.public_key().to_bytes();
    let dealer = sharks::Sharks(threshold).dealer(der.as_ref());
    dealer
        .take(count as usize)
        .map(|share| {
            let share_bytes = Zeroizing::new(Vec::from(&share));
            let mut bytes =
                Zeroizing::new(Vec::with_capacity(16 + public.len() + share_bytes.len()));
            bytes.extend_from_slice(SHARE_MAGIC);
            bytes.push(threshold);
            bytes.push(count);
            bytes.extend_from_slice(&(public.len() as u16).to_be_bytes());
            bytes.extend_from_slice(&public);
            bytes.extend_from_slice(&share_bytes);
            pem_rfc7468::encode_string(SHARE_LABEL, pem_rfc7468::LineEnding::LF, &bytes)
                .map(Zeroizing::new)
                .map_err(|e| VaultError::Format(e.to_string()))
        })
        .collect()
}

/// Recovers a key from share texts (at least the threshold, all of one key).
pub fn recover(shares: &[&str]) -> Result<PrivateKey, VaultError> {
    let mut threshold = None;
    let mut public_key: Option<Vec<u8>> = None;
    let mut parts = Vec::new();
    let mut indexes = std::collections::HashSet::new();
    for (i, text) in shares.iter().enumerate() {
        let (label, bytes) = pem_rfc7468::decode_vec(text.trim().as_bytes())
            .map_err(|e| VaultError::Format(format!("share {}: not a key share: {e}", i + 1)))?;
        let bytes = Zeroizing::new(bytes);
        if label != SHARE_LABEL || bytes.len() < 14 || &bytes[..9] != SHARE_MAGIC {
            return Err(VaultError::Format(format!("share {}: not a polyledger key share", i + 1)));
        }
        let (t, key_len) = (bytes[9], u16::from_be_bytes([bytes[11], bytes[12]]) as usize);
        if bytes.len() < 13 + key_len + 2 {
            return Err(VaultError::Format(format!("share {}: truncated", i + 1)));
        }
        let public = bytes[13..13 + key_len].to_vec();
        if threshold.is_some_and(|known| known != t)
            || public_key.as_ref().is_some_and(|k| *k != public)
        {
            return Err(VaultError::Shares(format!(
                "share {} belongs to another key or split",
                i + 1
            )));
        }
        threshold = Some(t);
        public_key = Some(public);
        let share = sharks::Share::try_from(&bytes[13 + key_len..])
            .map_err(|e| VaultError::Format(format!("share {}: {e}", i + 1)))?;
        if indexes.insert(bytes[13 + key_len]) {
            parts.push(share);
        }
    }
    let (Some(threshold), Some(public)) = (threshold, public_key) else {
        return Err(VaultError::Shares("no shares given".into()));
    };
    if parts.len() < threshold as usize {
        return Err(VaultError::Shares(format!(
            "{} distinct shares given; this key needs {threshold}",
            parts.len()
        )));
    }
    let der = Zeroizing::new(
        sharks::Sharks(threshold)
            .recover(parts.as_slice())
            .map_err(|e| VaultError::Shares(e.to_string()))?,
    );
    let key = PrivateKey::from_pkcs8_der(&der)
        .map_err(|_| VaultError::Shares("the shares do not recover a key".into()))?;
    let expected = PublicKey::from_bytes(&public).map_err(|e| VaultError::Format(e.to_string()))?;
    if key.public_key() != expected {
        return Err(VaultError::Shares(
            "the shares recover another key than the one they name".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_parallel::SignatureAlgorithm;

    #[test]
    fn sealed_keys_open_with_their_password_only() {
        let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
        let password = Password::new("correct horse battery staple");
        let text = seal(&key, &password).unwrap();
        assert!(is_sealed(&text));
        assert_eq!(open(&text, &password).unwrap().public_key(), key.public_key());
        assert_eq!(open(&text, &Password::new("wrong")).unwrap_err(), VaultError::WrongPassword);
        // Any altered byte (header parameters included) fails like a wrong password.
        let (label, mut bytes) = pem_rfc7468::decode_vec(text.as_bytes()).unwrap();
        for position in [9, 20, 40, bytes.len() - 1] {
            bytes[position] ^= 1;
            let altered =
                pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, &bytes).unwrap();
            assert!(open(&altered, &password).is_err(), "byte {position}");
            bytes[position] ^= 1;
        }
        assert!(!format!("{password:?}").contains("horse"));
        assert!(!text.contains(&hex::encode(key.to_pkcs8_der().unwrap().as_slice())));
    }

    #[test]
    fn a_key_split_3_of_5_is_recovered_from_any_3_and_not_from_2() {
        let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
        let shares = split(&key, 3, 5).unwrap();
        let texts: Vec<&str> = shares.iter().map(|s| s.as_str()).collect();
        for a in 0..5 {
            for b in a + 1..5 {
                for c in b + 1..5 {
                    let recovered = recover(&[texts[a], texts[b], texts[c]]).unwrap();
                    assert_eq!(recovered.public_key(), key.public_key(), "shares {a} {b} {c}");
                }
                let error = recover(&[texts[a], texts[b]]).unwrap_err();
                assert!(matches!(error, VaultError::Shares(_)), "{error}");
                // The same share twice is one share.
                assert!(recover(&[texts[a], texts[b], texts[b]]).is_err());
            }
        }
        // Two shares forced through a threshold of 2 give garbage, not the key.
        let parts: Vec<sharks::Share> = texts[..2]
            .iter()
            .map(|text| {
                let (_, bytes) = pem_rfc7468::decode_vec(text.as_bytes()).unwrap();
                let key_len = u16::from_be_bytes([bytes[11], bytes[12]]) as usize;
                sharks::Share::try_from(&bytes[13 + key_len..]).unwrap()
            })
            .collect();
        let forced = sharks::Sharks(2).recover(parts.as_slice()).unwrap();
        assert!(
            PrivateKey::from_pkcs8_der(&forced)
                .map_or(true, |k| k.public_key() != key.public_key())
        );
        // Shares of another key do not mix.
        let other = split(&PrivateKey::generate(SignatureAlgorithm::Sm2), 3, 5).unwrap();
        assert!(recover(&[texts[0], texts[1], other[2].as_str()]).is_err());
    }
}
