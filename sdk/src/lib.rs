//! polyledger's client SDK: everything an application needs to use a ledger without
//! trusting the node it talks to, and nothing of the server (no storage, no consensus).
//!
//! - `keys` — generate keys, read and write PEM files (OpenSSL-compatible);
//! - `builder` — build a transaction and sign it offline (`TxBuilder`);
//! - `client` — the HTTP client (feature `client`, on by default): submit, wait for
//!   finality, query blocks, transactions, values and histories, fetch proofs;
//! - `subscribe` — a ledger's blocks, events or one topic as a stream that resumes
//!   after disconnects, without loss or duplicates (`Client::subscribe`);
//! - `proof` — verify a proof document offline (`proof::verify`);
//! - `trace` — verify a product's trace offline (`trace::verify`);
//! - `routing` — the shard map and `route` (the `sharding` crate: one routing function
//!   for gateway, SDK and load generator);
//! - `vault` — keys at rest: password-encrypted key files (scrypt, AES-256-GCM) and
//!   Shamir shares of a key (any M of N recover it);
//! - `webhook` — check a webhook delivery's signature (`webhook::verify`);
//! - `wire` — the JSON forms of `/api/v1`, shared with the gateway.
//!
//! Runnable examples: `sdk/examples/`.

pub mod builder;
#[cfg(feature = "client")]
pub mod client;
pub mod keys;
pub mod proof;
#[cfg(feature = "client")]
pub mod subscribe;
pub mod trace;
pub mod vault;
pub mod webhook;
pub mod wire;

/// The shard map and GS1 identifiers: routing offline exactly as the nodes do.
pub use sharding as routing;

pub use builder::{BuildError, TxBuilder};
#[cfg(feature = "client")]
pub use client::{Client, ClientError, ClientOptions};
pub use engine::model::{Hash32, LedgerId, Transaction};
#[cfg(feature = "client")]
pub use subscribe::Subscription;
