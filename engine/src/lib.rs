//! polyledger's ledger model.
//!
//! A ledger is an append-only chain of blocks over a versioned key–value state, every
//! part of which can be proven to a third party. How the pieces fit:
//!
//! - `model.rs` — ids, operations, transactions, block headers, results, settings, with
//!   canonical encodings (`codec.rs`) documented byte by byte in `docs/FORMAT.md`;
//! - `ledger.rs` — create/open a ledger, execute a block deterministically (validate →
//!   apply into an overlay → state root), commit it in ONE atomic write batch whose head
//!   record is the commit point, and answer queries (blocks, transactions, latest value,
//!   version history, proofs);
//! - `state.rs` — authenticated state: a Jellyfish Merkle Tree per ledger hashed with the
//!   ledger's algorithm (SM3 by default), one version per height;
//! - `certificate.rs` — BFT commit certificates (precommit signatures on a block), pure;
//! - `txroot.rs` — the Merkle tree over a block's transactions and their results;
//! - `proof.rs` — pure proof verification, usable by the SDK without any storage;
//! - `verify.rs` — whole-ledger verification by replay from genesis;
//! - `store.rs` — the `KvStore` SPI and `MemoryStore`; `layout.rs` — the key layout;
//!   `conformance.rs` — the suite every `KvStore` backend runs;
//! - `limits.rs` — every limit, in one place.

pub mod certificate;
pub mod codec;
pub mod conformance;
pub mod layout;
pub mod ledger;
pub mod limits;
pub mod model;
pub mod proof;
pub mod state;
pub mod store;
pub mod txroot;
pub mod verify;
