//! Whole-ledger verification: walk a ledger from genesis and recompute everything.
//!
//! The check is a replay: the stored transactions of every block are executed again —
//! signatures verified, results and state recomputed — into a fresh scratch ledger
//! (in memory), and every recomputed header must equal the stored one byte for byte.
//! That one comparison covers block hashes and the hash chain, transaction roots,
//! results, and state roots. Indexes (block-by-hash, transaction records) are checked
//! against the blocks. The first height where anything differs is reported.

use crate::layout;
use crate::ledger::{EngineError, Ledger, SignatureCheck};
use crate::model::{Hash32, LedgerId, ResultCode, Transaction};
use crate::store::{KvStore, MemoryStore};

/// What `verify_ledger` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every block from genesis to `height` checks out.
    Valid {
        /// The last verified height (the head).
        height: u64,
        /// Transactions replayed.
        transactions: u64,
    },
    /// The first problem, at `height`.
    Invalid {
        /// The height of the first block that does not check out.
        height: u64,
        /// What is wrong there.
        reason: String,
    },
}

/// Verifies ledger `id` in `store` from genesis to its head.
pub fn verify_ledger<S: KvStore>(store: S, id: LedgerId) -> Result<Verdict, EngineError> {
    let ledger = Ledger::open(store, id)?;
    let algorithm = ledger.hash_algorithm();
    let head = ledger.head();
    let invalid = |height, reason: String| Ok(Verdict::Invalid { height, reason });

    let Some(genesis) = ledger.block(0)? else {
        return invalid(0, "genesis block missing".into());
    };
    let mut replay = match Ledger::create(MemoryStore::new(), ledger.settings().clone()) {
        Ok(replay) => replay,
        Err(error) => return invalid(0, format!("settings do not make a valid genesis: {error}")),
    };
    if replay.id() != id || genesis.hash != id.0 {
        return invalid(0, "genesis hash does not equal the ledger id".into());
    }
    if let Some(reason) = index_problem(&ledger, &genesis.hash, 0)? {
        return invalid(0, reason);
    }

    let mut transactions = 0u64;
    for height in 1..=head.height {
        let Some(block) = ledger.block(height)? else {
            return invalid(height, "block missing".into());
        };
        let mut bodies: Vec<Transaction> = Vec::with_capacity(block.transactions.len());
        for (index, (tx_hash, result)) in block.transactions.iter().enumerate() {
            if *result == ResultCode::InvalidSignature {
                match ledger.unsigned_transaction(height, index as u32)? {
                    Some(body) if body.hash(algorithm) == *tx_hash => bodies.push(body),
                    _ => return invalid(height, format!("rejected transaction {index} missing")),
                }
                continue;
            }
            let Some(record) = ledger.transaction(tx_hash)? else {
                return invalid(height, format!("transaction {index} missing"));
            };
            if record.transaction.hash(algorithm) != *tx_hash {
                return invalid(height, format!("transaction {index} does not hash to its id"));
            }
            // A duplicate points at the first occurrence's record, elsewhere.
            let placed_here = record.height == height && record.index as usize == index;
            if *result != ResultCode::Duplicate && (!placed_here || record.result != *result) {
                return invalid(height, format!("transaction {index} record disagrees with block"));
            }
            bodies.push(record.transaction);
        }
        transactions += bodies.len() as u64;
        let mut executed = match replay.execute_block(
            bodies,
            SignatureCheck::Verify,
            block.header.timestamp_ms,
            block.header.proposer,
        ) {
            Ok(executed) => executed,
            Err(error) => return invalid(height, format!("replay failed: {error}")),
        };
        if executed.block.transactions != block.transactions {
            return invalid(height, "recomputed transaction results differ".into());
        }
        if executed.block.header != block.header {
            return invalid(height, header_difference(&executed.block.header, &block.header));
        }
        if let Some(reason) = index_problem(&ledger, &block.hash, height)? {
            return invalid(height, reason);
        }
        if ledger.settings().consensus == "bft" {
            // Signed by more than 2/3 of the participants of this height: those active
            // after the block before it.
            let Some(bytes) = ledger.certificate(height)? else {
                return invalid(height, "commit certificate missing".into());
            };
            let participants: std::collections::BTreeMap<u64, crypto_parallel::PublicKey> = replay
                .active_participants()?
                .into_iter()
                .map(|p| (p.member, p.public_key))
                .collect();
            let checked = crate::certificate::Certificate::decode(&bytes)
                .and_then(|c| c.verify(&id, height, &block.hash, &participants));
            if let Err(error) = checked {
                return invalid(height, format!("commit certificate: {error}"));
            }
            executed.batch.put(layout::certificate_key(&id, height), bytes);
        }
        replay.commit(executed)?;
    }
    if replay.head() != head {
        return invalid(head.height, "head record differs from the last block".into());
    }
    // Execution is deterministic, so the replay wrote exactly the same records: compare
    // the whole key range of the ledger's data tables, which also covers history values, accounts and tree nodes
    // that no header hashes directly.
    if let Some(reason) = first_difference(ledger.store(), replay.store(), &id)? {
        return invalid(head.height, reason);
    }
    Ok(Verdict::Valid { height: head.height, transactions })
}

fn first_difference(
    stored: &impl KvStore,
    replayed: &impl KvStore,
    id: &LedgerId,
) -> Result<Option<String>, EngineError> {
    // Ledger data is every table but the consensus table (0x0b): that one is the node's
    // own bookkeeping (its Raft log, its applied marker) and differs by node. The
    // retired state value table (0x09) is skipped too: a replay no longer writes it, and
    // the stored values it holds for leaf records of the earlier layout are compared as
    // part of those records (`node_record_in_current_layout`).
    let retired = layout::table_prefix(id, layout::Table::StateValueRetired);
    let after_retired = crate::store::prefix_end(&retired).expect("starts with a ledger id");
    let consensus = layout::table_prefix(id, layout::Table::Consensus);
    let after_consensus = crate::store::prefix_end(&consensus).expect("starts with a ledger id");
    // (An all-0xff ledger id has no prefix end; 33 × 0xff sorts after all its keys.)
    let ledger_end = crate::store::prefix_end(&id.0).unwrap_or_else(|| vec![0xff; 33]);
    let ranges =
        [(id.0.to_vec(), retired), (after_retired, consensus), (after_consensus, ledger_end)];
    for (start, end) in ranges {
        if let Some(reason) = range_difference(stored, replayed, id, start, &end)? {
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

fn range_difference(
    stored: &impl KvStore,
    replayed: &impl KvStore,
    id: &LedgerId,
    mut start: Vec<u8>,
    end: &[u8],
) -> Result<Option<String>, EngineError> {
    const PAGE: usize = 1024;
    let state_node = layout::Table::StateNode as u8;
    loop {
        let mut left = stored.scan(&start, end, crate::store::Direction::Forward, PAGE)?;
        let right = replayed.scan(&start, end, crate::store::Direction::Forward, PAGE)?;
        for (key, value) in &mut left {
            if key.get(32) == Some(&state_node) {
                let record = std::mem::take(value);
                match crate::state::node_record_in_current_layout(stored, *id, key, record) {
                    Ok(record) => *value = record,
                    Err(error) => return Ok(Some(format!("stored state tree record: {error}"))),
                }
            }
        }
        for (a, b) in left.iter().zip(&right) {
            if a != b {
                let key = if a.0 <= b.0 { &a.0 } else { &b.0 };
                return Ok(Some(format!(
                    "stored record in table 0x{:02x} differs from the replay",
                    key.get(32).copied().unwrap_or(0)
                )));
            }
        }
        if left.len() != right.len() {
            return Ok(Some(
                "stored ledger has a different number of records than the replay".into(),
            ));
        }
        match left.last() {
            Some((last, _)) if left.len() == PAGE => {
                start = last.clone();
                start.push(0);
            }
            _ => return Ok(None),
        }
    }
}

fn index_problem<S: KvStore>(
    ledger: &Ledger<S>,
    hash: &Hash32,
    height: u64,
) -> Result<Option<String>, EngineError> {
    let indexed = ledger.store().get(&layout::block_by_hash_key(&ledger.id(), hash))?;
    Ok((indexed.as_deref() != Some(&height.to_be_bytes()[..]))
        .then(|| "block-by-hash index does not point at this block".to_owned()))
}

/// The fields in which a recomputed block header differs from a recorded one (empty when
/// they are equal), for reports that say what does not check out.
pub fn header_differences(
    recomputed: &crate::model::BlockHeader,
    recorded: &crate::model::BlockHeader,
) -> Vec<&'static str> {
    let checks = [
        (recomputed.ledger_id != recorded.ledger_id, "ledger id"),
        (recomputed.height != recorded.height, "height"),
        (recomputed.previous_hash != recorded.previous_hash, "previous hash"),
        (recomputed.tx_root != recorded.tx_root, "transaction root"),
        (recomputed.state_root != recorded.state_root, "state root"),
        (recomputed.timestamp_ms != recorded.timestamp_ms, "timestamp"),
        (recomputed.proposer != recorded.proposer, "proposer"),
    ];
    checks.into_iter().filter_map(|(differs, field)| differs.then_some(field)).collect()
}

fn header_difference(
    recomputed: &crate::model::BlockHeader,
    stored: &crate::model::BlockHeader,
) -> String {
    format!("recomputed header differs in: {}", header_differences(recomputed, stored).join(", "))
}
