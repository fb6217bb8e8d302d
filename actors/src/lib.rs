//! The polyledger node: one actix actor per ledger, the node-to-node transport, and the
//! node's configuration.
//!
//! Ledgers share nothing but the node's transport, its storage handle and its thread
//! pools: each `LedgerActor` owns its mempool, its consensus group and its `Ledger`.

pub mod config;
pub mod follow;
pub mod ledger_actor;
pub mod metrics;
pub mod node;
pub mod p2p_tls;
pub mod proposal;
pub mod transport;
pub mod wal_sync;

pub use ledger_actor::{BlockNotice, LedgerOptions, Rejection, TxOutcome, TxStatus};
pub use node::{LedgerHandle, Node, NodeError, NodeOptions, SubmitError, Submitted};
