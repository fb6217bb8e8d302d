//! `POST /epcis/capture`: an EPCIS 2.0 document becomes signed transactions on the
//! category ledgers its events route to (`[traceability]` in the node config).
//!
//! The whole document is accepted or refused: it is validated first
//! (`sharding::epcis`, every problem with its JSON pointer in the problem's `errors`),
//! then every event is routed (`?category=`, else the GTIN of its first trade-item code,
//! else the company prefix of its parent or first GS1 key, through the current shard
//! map, `shardmap.rs`) to a ledger this node hosts, then checked against the ledgers
//! for duplicates; only then is anything submitted. An event naming an item whose GTIN
//! and lot were recalled (on any ledger of the node) is recorded all the same, with
//! `recall_alerts` in its answer.
//!
//! Each event is one transaction signed by the capture key: nonce = the first 8 bytes
//! of the event hash (big-endian), timestamp = `eventTime` in ms, and one
//! `PublishEvent` per trace code it names, on event account `epcis`, topic = the code
//! (canonical Digital Link), payload = the event's canonical JSON. An event that names
//! no object (a sensor reading at a place) goes to the history of its location instead
//! (`bizLocation`, else `readPoint`), or of topic `unidentified`. Sending the same event
//! again makes the same transaction: refused as `DUPLICATE_EVENT` before anything is
//! written. A topic's events are the code's history, in commit order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actors::{LedgerHandle, TxStatus};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crypto_parallel::PrivateKey;
use engine::model::{Operation, ResultCode, Transaction, TransactionContent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sharding::epcis::validate_document;
use sharding::gs1::Identifier;
use sharding::{ShardMap, Target};

use crate::api::read;
use crate::{ApiError, AppState};

/// The event account captured events are published on.
pub const EPCIS_ACCOUNT: &str = "epcis";
/// Most trace codes one event may name.
pub const CODES_PER_EVENT_MAX: usize = 256;
/// How long a capture waits for its transactions to be final.
const CAPTURE_WAIT: Duration = Duration::from_secs(30);

/// An event's index, its transaction and the codes whose history it joins.
type Planned = (usize, Transaction, Vec<String>);
/// A planned event with the ledger it goes to.
type Routed = (usize, LedgerHandle, Transaction, Vec<String>);
/// An event's index, the codes it names and its JSON (for the recall check).
type Named = (usize, Vec<String>, serde_json::Value);

/// What capture needs: the shard map and the key that signs.
#[derive(Clone)]
pub struct Capture {
    /// Where events go.
    pub map: crate::shardmap::MapSource,
    /// Signs the capture transactions (a registered user of the ledgers).
    pub key: Arc<PrivateKey>,
}

/// `?category=`: route every event to this category instead of by GTIN.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct CaptureQuery {
    category: Option<String>,
}

/// Where one captured event went.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CapturedView {
    /// Index in the document's event list.
    pub index: usize,
    /// Ledger name.
    pub ledger: String,
    /// Transaction hash (hex).
    pub hash: String,
    /// Block height.
    pub height: u64,
    /// The trace codes it was appended to.
    pub codes: Vec<String>,
    /// Recalls of items it names, recorded before it: the event is recorded all the
    /// same, and flagged (here and in every trace it appears in).
    pub recall_alerts: Vec<RecallAlert>,
}

/// A recall that an event names a recalled item of.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecallAlert {
    /// GTIN-14.
    pub gtin: String,
    /// Lot/batch.
    pub lot: String,
    /// Why it was recalled.
    pub reason: String,
    /// Ledger of the recall.
    pub ledger: String,
    /// Height of the recall's block there.
    pub height: u64,
}

/// The answer to a capture.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CaptureAnswer {
    /// Every event, in document order.
    pub events: Vec<CapturedView>,
}

fn refused(status: u16, code: &str, title: &str, errors: Vec<serde_json::Value>) -> ApiError {
    let detail = format!("{} problem(s); see `errors`", errors.len());
    ApiError::new(status, code, title, detail).with_errors(errors)
}

fn entry(event: Option<usize>, pointer: &str, reason: impl Into<String>) -> serde_json::Value {
    json!({"event": event, "pointer": pointer, "reason": reason.into()})
}

/// Captures an EPCIS 2.0 document: every event on its category ledger, or nothing.
#[utoipa::path(post, path = "/epcis/capture", tag = "epcis",
    params(CaptureQuery),
    request_body(content = String, description = "an EPCISDocument (JSON / JSON-LD)"),
    responses(
        (status = 201, description = "every event committed", body = CaptureAnswer),
        (status = 400, description = "MALFORMED_JSON, INVALID_EPCIS, UNROUTABLE (with `errors`)", body = sdk::wire::Problem),
        (status = 409, description = "DUPLICATE_EVENT (with `errors`), EVENT_REJECTED", body = sdk::wire::Problem),
        (status = 413, description = "BODY_TOO_LARGE", body = sdk::wire::Problem),
        (status = 503, description = "BUSY (with Retry-After), STOPPED", body = sdk::wire::Problem),
        (status = 501, description = "CAPTURE_DISABLED: no [traceability] section", body = sdk::wire::Problem)))]
pub async fn capture(
    State(state): State<Arc<AppState>>,
    Query(query): Query<CaptureQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(capture) = state.capture.clone() else {
        return Err(ApiError::new(
            501,
            "CAPTURE_DISABLED",
            "capture not configured",
            "this node has no [traceability] section",
        ));
    };
    let body = body.map_err(crate::api::body_error)?;
    // Parsing, validation and signing are CPU work: off the async runtime.
    let planning = state.clone();
    let key = capture.key.clone();
    let map = capture.map.current(&state, &capture.key).await?.map;
    let (mut planned, named) = tokio::task::spawn_blocking(move || {
        plan(&planning, &map, &capture.key, query.category.as_deref(), &body)
    })
    .await
    .map_err(|e| ApiError::internal(format!("capture task failed: {e}")))??;
    let mut problems = Vec::new();
    let mut alerts: Vec<(usize, RecallAlert)> = Vec::new();

    // Group by ledger; then duplicates (an event captured before makes the same
    // transaction), one read per ledger.
    let mut by_ledger: BTreeMap<String, (LedgerHandle, Vec<Planned>)> = BTreeMap::new();
    for (index, handle, tx, codes) in planned.drain(..) {
        by_ledger
            .entry(handle.name().to_owned())
            .or_insert_with(|| (handle.clone(), Vec::new()))
            .1
            .push((index, tx, codes));
    }
    for (handle, items) in by_ledger.values() {
        let algorithm = handle.settings().hash_algorithm;
        let hashes: Vec<(usize, engine::model::Hash32)> =
            items.iter().map(|(index, tx, _)| (*index, tx.hash(algorithm))).collect();
        let seen = read(handle, move |ledger| {
            let mut seen = Vec::new();
            for (index, hash) in hashes {
                if ledger.transaction(&hash)?.is_some() {
                    seen.push((index, hash));
                }
            }
            Ok(seen)
        })
        .await?;
        for (index, hash) in seen {
            problems.push(entry(
                Some(index),
                &format!("/epcisBody/eventList/{index}"),
                format!("captured before (transaction {})", hex::encode(hash)),
            ));
        }
    }
    if !problems.is_empty() {
        problems.sort_by_key(|p| p["event"].as_u64());
        return Err(refused(409, "DUPLICATE_EVENT", "events captured before", problems));
    }
    // Recalls of the items named, on any ledger of this node (a recall may sit on a
    // sibling or a parent of the event's ledger, as may the item's lot).
    let handles = state.ledgers().as_ref().clone();
    alerts.extend(
        tokio::task::spawn_blocking(move || {
            let readers = handles.iter().map(|h| h.reader()).collect::<Result<Vec<_>, _>>()?;
            let mut alerts = Vec::new();
            let mut recalls = crate::trace::RecallCache::default();
            for (index, codes, event) in named {
                for (gtin, lot, at, record) in
                    crate::trace::recalls_for(&readers, &mut recalls, &codes, &event)?
                {
                    let (reason, height) = (record.reason, record.height);
                    let ledger = handles[at].name().to_owned();
                    alerts.push((index, RecallAlert { gtin, lot, reason, ledger, height }));
                }
            }
            Ok::<_, ApiError>(alerts)
        })
        .await
        .map_err(|e| ApiError::internal(format!("recall check failed: {e}")))??,
    );

    // The event account, once per ledger.
    for (handle, _) in by_ledger.values() {
        ensure_event_account(handle, &key).await?;
    }

    let mut answer = Vec::new();
    for (name, (handle, items)) in by_ledger {
        let transactions: Vec<Transaction> = items.iter().map(|(_, tx, _)| tx.clone()).collect();
        let outcomes = commit(&handle, transactions).await?;
        for ((index, _, codes), outcome) in items.into_iter().zip(outcomes) {
            match outcome.status {
                TxStatus::Committed { height, result: ResultCode::Committed, .. } => {
                    let mut recall_alerts = Vec::new();
                    while let Some(at) = alerts.iter().position(|(i, _)| *i == index) {
                        recall_alerts.push(alerts.swap_remove(at).1);
                    }
                    answer.push(CapturedView {
                        index,
                        ledger: name.clone(),
                        hash: hex::encode(outcome.hash),
                        height,
                        codes,
                        recall_alerts,
                    });
                }
                TxStatus::Committed { result, .. } => {
                    return Err(ApiError::new(
                        409,
                        "EVENT_REJECTED",
                        "event rejected by the ledger",
                        format!("event {index} on {name}: {}", result.name()),
                    ));
                }
                other => {
                    return Err(ApiError::new(
                        503,
                        "NOT_FINAL",
                        "not final",
                        format!("event {index} on {name}: {other:?}"),
                    ));
                }
            }
        }
    }
    answer.sort_by_key(|view| view.index);
    Ok((StatusCode::CREATED, Json(CaptureAnswer { events: answer })).into_response())
}

/// Validates the document, routes every event and signs its transaction.
fn plan(
    state: &AppState,
    map: &ShardMap,
    key: &PrivateKey,
    category: Option<&str>,
    body: &[u8],
) -> Result<(Vec<Routed>, Vec<Named>), ApiError> {
    let document: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, "MALFORMED_JSON", "malformed JSON", e.to_string()))?;
    let events = validate_document(&document).map_err(|errors| {
        let errors = errors.iter().map(|e| entry(e.event, &e.pointer, e.reason.clone())).collect();
        refused(400, "INVALID_EPCIS", "invalid EPCIS document", errors)
    })?;

    // Route every event; build its transaction.
    let mut problems = Vec::new();
    let mut planned: Vec<Routed> = Vec::new();
    let mut named: Vec<Named> = Vec::new();
    for event in events {
        let pointer = format!("/epcisBody/eventList/{}", event.index);
        let gtin_code = event.codes.iter().find_map(|code| {
            Identifier::parse(code).ok().and_then(|id| id.gtin().map(|g| (g.to_owned(), code)))
        });
        // Else a key with a company prefix (the parent first: a pallet's SSCC).
        let company_code = event.parent.iter().chain(event.codes.iter()).find_map(|code| {
            Identifier::parse(code)
                .ok()
                .and_then(|id| id.company_digits().map(|d| (d.to_owned(), code)))
        });
        let (target, code) = match (category, &gtin_code, &company_code) {
            (Some(category), _, _) => (
                Target::Category(category),
                gtin_code.as_ref().map(|(_, c)| *c).or(event.codes.first()),
            ),
            (None, Some((gtin, code)), _) => (Target::Gtin(gtin), Some(*code)),
            (None, None, Some((digits, code))) => (Target::Company(digits), Some(*code)),
            (None, None, None) => {
                problems.push(entry(
                    Some(event.index),
                    &pointer,
                    "no GS1 key with a company prefix to route by; pass ?category=",
                ));
                continue;
            }
        };
        // Objects, else the place, else a shared topic.
        let history: Vec<String> = if event.codes.is_empty() {
            vec![event.location.clone().unwrap_or_else(|| "unidentified".into())]
        } else {
            event.codes.clone()
        };
        let code = code.unwrap_or(&history[0]);
        let ledger = match map.route(target, code) {
            Ok(ledger) => ledger.to_owned(),
            Err(error) => {
                problems.push(entry(Some(event.index), &pointer, error.to_string()));
                continue;
            }
        };
        let Ok(handle) = state.ledger(&ledger) else {
            problems.push(entry(
                Some(event.index),
                &pointer,
                format!("routes to ledger `{ledger}`, which this node does not host"),
            ));
            continue;
        };
        if history.len() > CODES_PER_EVENT_MAX
            || history.iter().any(|c| engine::model::check_name(c).is_err())
        {
            problems.push(entry(
                Some(event.index),
                &pointer,
                format!("at most {CODES_PER_EVENT_MAX} trace codes of at most 128 bytes"),
            ));
            continue;
        }
        let payload = serde_json::to_vec(&event.json).expect("JSON values serialise");
        let content = TransactionContent {
            ledger_id: handle.id(),
            nonce: u64::from_be_bytes(event.hash[..8].try_into().expect("8 bytes")),
            timestamp_ms: event.event_time_ms.max(0) as u64,
            operations: history
                .iter()
                .map(|code| Operation::PublishEvent {
                    account: EPCIS_ACCOUNT.into(),
                    topic: code.clone(),
                    payload: payload.clone(),
                })
                .collect(),
        };
        match Transaction::sign(content, &[key]) {
            Ok(tx) => {
                named.push((event.index, history.clone(), event.json));
                planned.push((event.index, handle.clone(), tx, history));
            }
            Err(reason) => problems.push(entry(Some(event.index), &pointer, reason)),
        }
    }
    if !problems.is_empty() {
        return Err(refused(400, "UNROUTABLE", "events cannot be routed", problems));
    }
    Ok((planned, named))
}

/// Submits and waits until final.
pub(crate) async fn commit(
    handle: &LedgerHandle,
    transactions: Vec<Transaction>,
) -> Result<Vec<actors::TxOutcome>, ApiError> {
    let submitted = handle.submit(transactions).await.map_err(crate::api::submit_error)?;
    tokio::time::timeout(CAPTURE_WAIT, submitted.wait())
        .await
        .map_err(|_| {
            ApiError::new(504, "TIMEOUT", "not final in time", "capture not final in 30 s")
        })?
        .map_err(|error| ApiError::new(503, "STOPPED", "ledger not running", error.to_string()))
}

/// Registers event account `epcis` (owned by the capture key) where it is missing.
async fn ensure_event_account(handle: &LedgerHandle, key: &PrivateKey) -> Result<(), ApiError> {
    let owner = read(handle, |ledger| Ok(ledger.event_account_owner(EPCIS_ACCOUNT)?)).await?;
    if owner.is_some() {
        return Ok(());
    }
    let content = TransactionContent {
        ledger_id: handle.id(),
        nonce: rand::random(),
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        operations: vec![Operation::RegisterEventAccount { name: EPCIS_ACCOUNT.into() }],
    };
    let tx = Transaction::sign(content, &[key]).map_err(ApiError::internal)?;
    let outcomes = commit(handle, vec![tx]).await?;
    match outcomes.first().map(|o| &o.status) {
        // Registered now, or by a capture running beside this one.
        Some(TxStatus::Committed {
            result: ResultCode::Committed | ResultCode::AccountExists,
            ..
        }) => Ok(()),
        other => Err(ApiError::new(
            503,
            "CAPTURE_SETUP",
            "cannot register the epcis event account",
            format!("{other:?}: is the capture key a registered user with publish permissions?"),
        )),
    }
}
