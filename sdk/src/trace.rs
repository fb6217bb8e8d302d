//! Offline verification of a trace (`GET /api/v1/trace/{code}`): every event and every
//! recall is checked against the transaction that recorded it and that transaction's
//! inclusion proof, with no node and no storage.
//!
//! For each event, [`verify`] checks that
//! - `transaction_hex` decodes, its signatures verify, and it hashes to the proof's
//!   transaction (so the bytes are the ones the ledger committed);
//! - the transaction publishes exactly `payload` on event account `epcis`, topic
//!   `topic`, on the proof's ledger;
//! - the proof holds, ends at the claimed height, and records result `committed`;
//! - the display fields (type, time, action, bizStep, disposition, location, block
//!   time) are what the payload and the proven block say;
//! - events come in trace order (`event_time_ms`, ledger, event number).
//!
//! Recalls are checked the same way against their `Recall` operation. What stays the
//! caller's decision is whether the block hashes returned ([`TraceVerified::blocks`])
//! are blocks it trusts (its own node's, several nodes' agreeing, a checkpoint), and
//! whether the node left events out: a proof shows that an event is recorded, not that
//! no other is.

use std::collections::BTreeMap;

use engine::model::{Hash32, Operation, Transaction};

use crate::proof::{self, Verified, VerifyError};
use crate::wire::{ProofDocument, TraceView};

/// The event account captured EPCIS events are published on.
pub const EPCIS_ACCOUNT: &str = "epcis";

/// What a verified trace establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceVerified {
    /// Events verified.
    pub events: usize,
    /// Recalls verified.
    pub recalls: usize,
    /// Every (ledger id hex, height) the proofs end at, with the block hash each
    /// recomputes: what to compare with blocks you trust.
    pub blocks: BTreeMap<(String, u64), Hash32>,
    /// Parent → child links checked: the child's genesis names the parent's sealing
    /// block, and the parent's seal proof ends at that very block.
    pub lineage_links: usize,
}

fn invalid(what: impl std::fmt::Display) -> VerifyError {
    VerifyError::Invalid(what.to_string())
}

fn decode_transaction(what: &str, transaction_hex: &str) -> Result<Transaction, VerifyError> {
    let bytes = hex::decode(transaction_hex)
        .map_err(|e| VerifyError::Malformed(format!("{what}: transaction_hex: {e}")))?;
    Transaction::decode(&bytes)
        .map_err(|e| VerifyError::Malformed(format!("{what}: transaction: {e}")))
}

/// Checks the signatures of every transaction of the trace (events, recalls, seals) in
/// one batch on all cores.
fn signatures_hold(trace: &TraceView) -> Result<(), VerifyError> {
    let mut labelled: Vec<(String, &str)> = Vec::new();
    for (i, event) in trace.events.iter().enumerate() {
        labelled.push((format!("event {i}"), &event.transaction_hex));
    }
    for (i, recall) in trace.recalls.iter().enumerate() {
        labelled.push((format!("recall {i}"), &recall.transaction_hex));
    }
    for ledger in &trace.ledgers {
        if let Some(seal) = &ledger.sealed {
            labelled.push((format!("ledger {} seal", ledger.name), &seal.transaction_hex));
        }
    }
    let transactions = labelled
        .iter()
        .map(|(what, hex)| decode_transaction(what, hex))
        .collect::<Result<Vec<_>, _>>()?;
    let verdicts = engine::ledger::verify_signatures(&transactions);
    match verdicts.iter().position(|valid| !valid) {
        Some(at) => Err(invalid(format!("{}: a signature does not verify", labelled[at].0))),
        None => Ok(()),
    }
}

/// Decodes `hex` and checks that its hash is the proof's transaction; verifies the
/// proof. (Signatures are checked for the whole trace at once: `signatures_hold`.)
fn proven_transaction(
    what: &str,
    transaction_hex: &str,
    document: &ProofDocument,
) -> Result<(Transaction, Verified), VerifyError> {
    let tx = decode_transaction(what, transaction_hex)?;
    let algorithm = crypto_parallel::HashAlgorithm::from_name(&document.hash_algorithm)
        .ok_or_else(|| VerifyError::Malformed(format!("{what}: unknown hash algorithm")))?;
    let hash = hex::encode(tx.hash(algorithm));
    if document.tx_hash.as_deref() != Some(hash.as_str()) {
        return Err(invalid(format!("{what}: the transaction is not the one the proof is for")));
    }
    if hex::encode(tx.content.ledger_id.0) != document.ledger_id {
        return Err(invalid(format!("{what}: the transaction is for another ledger")));
    }
    let verified = proof::verify(document).map_err(|e| match e {
        VerifyError::Invalid(reason) => invalid(format!("{what}: {reason}")),
        VerifyError::Malformed(reason) => VerifyError::Malformed(format!("{what}: {reason}")),
    })?;
    if document.result.as_deref() != Some("committed") {
        return Err(invalid(format!("{what}: the transaction did not commit")));
    }
    Ok((tx, verified))
}

fn text(event: &serde_json::Value, field: &str) -> Option<String> {
    event.get(field).and_then(|v| v.as_str()).map(str::to_owned)
}

fn place(event: &serde_json::Value) -> Option<String> {
    ["bizLocation", "readPoint"].iter().find_map(|field| {
        event
            .get(*field)
            .and_then(|v| v.get("id"))
            .and_then(|v| v.as_str())
            .map(|id| sharding::gs1::canonicalize(id).unwrap_or_else(|_| id.to_owned()))
    })
}

/// Verifies every event and recall of `trace` (see the module docs).
pub fn verify(trace: &TraceView) -> Result<TraceVerified, VerifyError> {
    signatures_hold(trace)?;
    let mut blocks = BTreeMap::new();
    let (ledgers, lineage_links) = verify_ledgers(trace, &mut blocks)?;
    let mut previous: Option<(i64, &str, u64)> = None;
    for (i, event) in trace.events.iter().enumerate() {
        let what = format!("event {i}");
        let (tx, verified) = proven_transaction(&what, &event.transaction_hex, &event.proof)?;
        let published = tx.content.operations.iter().any(|op| {
            matches!(op, Operation::PublishEvent { account, topic, payload }
                if account == EPCIS_ACCOUNT && *topic == event.topic
                    && payload == event.payload.as_bytes())
        });
        if !published {
            return Err(invalid(format!(
                "{what}: the transaction does not publish this payload on topic {}",
                event.topic
            )));
        }
        if verified.height != event.height || verified.timestamp_ms != event.block_time_ms {
            return Err(invalid(format!("{what}: height or block time differ from the proof")));
        }
        if event.proof.ledger_id != event.ledger_id {
            return Err(invalid(format!("{what}: the proof is for another ledger")));
        }
        match ledgers.get(&event.ledger_id) {
            None => return Err(invalid(format!("{what}: its ledger is not in `ledgers`"))),
            Some(Some(sealed_at)) if event.height > *sealed_at => {
                return Err(invalid(format!("{what}: after its ledger's seal")));
            }
            Some(_) => {}
        }
        let json: serde_json::Value = serde_json::from_str(&event.payload)
            .map_err(|e| invalid(format!("{what}: payload is not JSON: {e}")))?;
        let time = text(&json, "eventTime").unwrap_or_default();
        let time_ms = sharding::epcis::parse_time(&time)
            .map_err(|e| invalid(format!("{what}: eventTime: {e}")))?;
        let shown = (
            text(&json, "type"),
            time,
            time_ms,
            text(&json, "action"),
            text(&json, "bizStep"),
            text(&json, "disposition"),
            place(&json),
        );
        let claimed = (
            Some(event.event_type.clone()),
            event.event_time.clone(),
            event.event_time_ms,
            event.action.clone(),
            event.biz_step.clone(),
            event.disposition.clone(),
            event.location.clone(),
        );
        if shown != claimed {
            return Err(invalid(format!("{what}: its fields differ from the recorded payload")));
        }
        let key = (event.event_time_ms, event.ledger.as_str(), event.event_number);
        if previous.is_some_and(|p| p > key) {
            return Err(invalid(format!("{what}: out of order")));
        }
        previous = Some(key);
        blocks.insert((event.proof.ledger_id.clone(), verified.height), verified.block_hash);
    }
    for (i, recall) in trace.recalls.iter().enumerate() {
        let what = format!("recall {i}");
        let (tx, verified) = proven_transaction(&what, &recall.transaction_hex, &recall.proof)?;
        let recorded = tx.content.operations.iter().any(|op| {
            matches!(op, Operation::Recall { gtin, lot, reason }
                if *gtin == recall.gtin && *lot == recall.lot && *reason == recall.reason)
        });
        if !recorded {
            return Err(invalid(format!("{what}: the transaction does not record this recall")));
        }
        if verified.height != recall.height || verified.timestamp_ms != recall.block_time_ms {
            return Err(invalid(format!("{what}: height or block time differ from the proof")));
        }
        blocks.insert((recall.proof.ledger_id.clone(), verified.height), verified.block_hash);
    }
    Ok(TraceVerified {
        events: trace.events.len(),
        recalls: trace.recalls.len(),
        blocks,
        lineage_links,
    })
}

/// Each ledger id (hex) of a trace, with its sealing height when sealed.
type SealedAt = BTreeMap<String, Option<u64>>;

/// Checks every ledger of the trace: its id is its genesis header's hash, the header
/// commits to its settings, its seal (if any) is proven; and every parent named by a
/// child's settings that the trace includes is sealed at exactly that block. Answers
/// each ledger id with its sealing height, and the number of links checked.
fn verify_ledgers(
    trace: &TraceView,
    blocks: &mut BTreeMap<(String, u64), Hash32>,
) -> Result<(SealedAt, usize), VerifyError> {
    let mut sealed_at: SealedAt = BTreeMap::new();
    let mut seal_blocks: BTreeMap<String, (u64, Hash32)> = BTreeMap::new();
    let mut all_parents = Vec::new();
    for ledger in &trace.ledgers {
        let what = format!("ledger {}", ledger.name);
        let malformed =
            |field: &str, e: String| VerifyError::Malformed(format!("{what}: {field}: {e}"));
        let settings_bytes = hex::decode(&ledger.settings_hex)
            .map_err(|e| malformed("settings_hex", e.to_string()))?;
        let settings = engine::model::LedgerSettings::decode(&settings_bytes)
            .map_err(|e| malformed("settings", e.to_string()))?;
        let header_bytes = hex::decode(&ledger.genesis_header_hex)
            .map_err(|e| malformed("genesis_header_hex", e.to_string()))?;
        let header = engine::model::BlockHeader::decode(&header_bytes)
            .map_err(|e| malformed("genesis header", e.to_string()))?;
        let algorithm = settings.hash_algorithm;
        if hex::encode(header.hash(algorithm)) != ledger.ledger_id || header.height != 0 {
            return Err(invalid(format!("{what}: the genesis header is not this ledger's")));
        }
        if header.tx_root != *crypto_parallel::hash(algorithm, &settings_bytes).as_bytes() {
            return Err(invalid(format!("{what}: the genesis does not commit to these settings")));
        }
        let seal = match &ledger.sealed {
            Some(seal) => {
                let (tx, verified) = proven_transaction(
                    &format!("{what} seal"),
                    &seal.transaction_hex,
                    &seal.proof,
                )?;
                if !tx.content.operations.iter().any(|op| matches!(op, Operation::Seal { .. })) {
                    return Err(invalid(format!("{what}: the seal transaction does not seal")));
                }
                if seal.proof.ledger_id != ledger.ledger_id || verified.height != seal.height {
                    return Err(invalid(format!("{what}: the seal proof is for another block")));
                }
                blocks.insert((ledger.ledger_id.clone(), verified.height), verified.block_hash);
                seal_blocks
                    .insert(ledger.ledger_id.clone(), (verified.height, verified.block_hash));
                Some(seal.height)
            }
            None => None,
        };
        sealed_at.insert(ledger.ledger_id.clone(), seal);
        all_parents.extend(settings.parents.into_iter().map(|p| (what.clone(), p)));
    }
    let mut links = 0;
    for (what, parent) in all_parents {
        let id = hex::encode(parent.ledger_id.0);
        if !sealed_at.contains_key(&id) {
            continue; // a parent the trace does not need (no event of the code there)
        }
        match seal_blocks.get(&id) {
            Some((height, hash)) if *height == parent.height && *hash == parent.block_hash => {
                links += 1;
            }
            _ => {
                return Err(invalid(format!(
                    "{what}: its parent {id} is not sealed at the block its genesis names"
                )));
            }
        }
    }
    Ok((sealed_at, links))
}
