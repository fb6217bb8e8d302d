//! polyledger's crypto SPI: hashing, signatures and batch verification on all cores.
//!
//! Every transaction carries at least one signature and every block is a tree of hashes,
//! so this crate sits under everything else. Its design:
//!
//! - **Algorithm codes** (`algorithm.rs`): hashes, keys and signatures carry a stable
//!   16-bit code, so a ledger can hold keys of several algorithms side by side, and
//!   stored bytes name how to check them. SM3 and SM2-with-SM3 are the defaults.
//! - **Hashing** (`hash.rs`): SM3 (GB/T 32905) and SHA-256, 32-byte digests;
//!   `hash_many.rs` hashes many independent messages at once (sixteen SM3 lanes with
//!   AVX-512, the same digests).
//! - **Signature SPI** (`provider.rs`): one `SignatureProvider` per algorithm —
//!   `sm2.rs` (GB/T 32918 with the default user id), `ed25519.rs` (ZIP-215 rules, so batch
//!   and single verification always agree), `p256.rs` (ECDSA P-256/SHA-256). Adding an
//!   algorithm is a new provider named in `algorithm.rs`.
//! - **Typed keys** (`keys.rs`): `PublicKey`, `PrivateKey`, `Signature` validate on
//!   construction; binary (`code || raw`), base58 text, PEM (PKCS#8 / SPKI, OpenSSL
//!   compatible) and DER signature forms. Private keys never print and are zeroized.
//! - **Batches** (`batch.rs`): `verify_batch` spreads chunks over a dedicated rayon pool
//!   sized to the cores and returns one verdict per item, equal to one-by-one checking.
//!
//! Bytes layouts are specified in `docs/FORMAT.md`; measured speeds in `perf/RESULTS.md`.

pub mod algorithm;
pub mod batch;
pub mod ed25519;
pub mod error;
pub mod hash;
pub mod hash_many;
pub mod keys;
pub mod p256;
pub mod provider;
pub mod sm2;
pub mod sm2_fast;

pub use algorithm::{AlgorithmCode, HashAlgorithm, SignatureAlgorithm};
pub use batch::{BATCH_CHUNK_LEN, BatchVerifier, VerifyItem, verify_batch};
pub use error::{CryptoError, Result};
pub use hash::{DIGEST_LEN, HashDigest, Hasher, hash};
pub use hash_many::hash_many;
pub use keys::{PrivateKey, PublicKey, Signature};
pub use provider::SignatureProvider;
