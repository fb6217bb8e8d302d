//! Traceability queries over captured EPCIS events (`capture.rs` writes them):
//!
//! - `GET /api/v1/trace/{code}`: a product's whole history across the node's ledgers,
//!   in time order, each event with its transaction and inclusion proof (verify offline
//!   with `sdk::trace::verify`); containers (pallets, cases) are followed for as long
//!   as they held the item; recalls of the item's GTIN and lot come with their proofs,
//!   and events committed after a recall carry `recall_alert`.
//! - `GET /trace/{code}`: the same trace as a consumer page (server-rendered HTML, no
//!   script): a timeline of stages, a recall banner, "verified on ledger … at height …".
//! - `GET /epcis/events`: captured events filtered by `MATCH_epc`, `EQ_bizStep`,
//!   `GE_eventTime`, `LT_eventTime`, paged by `nextPageToken`.
//!
//! A code's history is its topic on event account `epcis` of every ledger this node
//! hosts, so a history that spans a split (the parent's events, then a child's) comes
//! back whole when the node hosts the lineage.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use actors::LedgerHandle;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use engine::ledger::{EventRecord, RecallRecord};
use engine::model::Hash32;
use sdk::wire::{
    ContainmentView, EpcisEventView, EpcisEventsPage, RecallView, TraceEventView, TraceLedgerView,
    TraceSealView, TraceView,
};
use serde::Deserialize;
use serde_json::Value;
use sharding::epcis::parse_time;
use sharding::gs1::{Identifier, canonicalize};

use crate::api::Reader;
use crate::capture::EPCIS_ACCOUNT;
use crate::{ApiError, AppState};

/// Most events one trace answers (`truncated` beyond).
pub const TRACE_EVENTS_MAX: usize = 10_000;
/// How deep containers are followed (item in case in pallet in container …).
pub const CONTAINMENT_DEPTH_MAX: usize = 4;
/// Most ledger records one `/epcis/events` page reads before it answers (with a
/// `nextPageToken` to go on), so a selective filter cannot make one request scan a
/// whole ledger.
pub const QUERY_SCAN_MAX: usize = 20_000;
/// Page size of `/epcis/events` when `perPage` is not given, and its maximum.
const PER_PAGE_DEFAULT: usize = 100;
const PER_PAGE_MAX: usize = 1000;

/// An event found for a trace, before its proof.
struct Found {
    ledger: usize,
    record: EventRecord,
    json: Value,
    time_ms: i64,
    via: Option<String>,
}

fn text(json: &Value, field: &str) -> Option<String> {
    json.get(field).and_then(Value::as_str).map(str::to_owned)
}

fn canonical(text: &str) -> String {
    canonicalize(text).unwrap_or_else(|_| text.to_owned())
}

fn place(json: &Value) -> Option<String> {
    ["bizLocation", "readPoint"]
        .iter()
        .find_map(|field| json.get(*field).and_then(|v| v.get("id")).and_then(Value::as_str))
        .map(canonical)
}

/// The trace code of a path: a URN or Digital Link URI, or a Digital Link path alone
/// (`01/09521234543213/21/ABC`, as printed under a QR code on our own domain).
fn code_param(raw: &str) -> Result<String, ApiError> {
    let raw = raw.trim_start_matches('/');
    let full = if raw.starts_with("urn:") || raw.starts_with("http") {
        raw.to_owned()
    } else {
        format!("https://id.gs1.org/{raw}")
    };
    canonicalize(&full).map_err(|e| ApiError::bad_parameter("code", e))
}

/// A code's own events on every ledger within `window`, not yet seen.
fn topic_events(
    readers: &[(LedgerHandle, Reader)],
    topic: &str,
    budget: usize,
) -> Result<(Vec<(usize, EventRecord)>, bool), ApiError> {
    let mut found = Vec::new();
    let mut truncated = false;
    for (index, (_, reader)) in readers.iter().enumerate() {
        let left = budget.saturating_sub(found.len());
        let records = reader.topic_events(EPCIS_ACCOUNT, topic, 0, left + 1)?;
        if records.len() > left {
            truncated = true;
        }
        found.extend(records.into_iter().take(left).map(|record| (index, record)));
    }
    Ok((found, truncated))
}

/// When `parent` held `child`, from `child`'s aggregation events in time order: an
/// `ADD` opens, a `DELETE` naming the child (or naming no children) closes.
fn containments(child: &str, events: &[&Found]) -> Vec<ContainmentView> {
    let mut open: Vec<ContainmentView> = Vec::new();
    let mut closed = Vec::new();
    for found in events {
        if text(&found.json, "type").as_deref() != Some("AggregationEvent") {
            continue;
        }
        let Some(parent) = text(&found.json, "parentID").map(|p| canonical(&p)) else {
            continue;
        };
        let children: Vec<String> = found
            .json
            .get("childEPCs")
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).map(canonical).collect())
            .unwrap_or_default();
        let named = children.iter().any(|c| c == child);
        match text(&found.json, "action").as_deref() {
            Some("ADD") if named && !open.iter().any(|c| c.parent == parent) => {
                open.push(ContainmentView {
                    parent,
                    child: child.to_owned(),
                    from_ms: found.time_ms,
                    until_ms: None,
                });
            }
            Some("DELETE") if named || children.is_empty() => {
                if let Some(at) = open.iter().position(|c| c.parent == parent) {
                    let mut done = open.remove(at);
                    done.until_ms = Some(found.time_ms);
                    closed.push(done);
                }
            }
            _ => {}
        }
    }
    closed.extend(open);
    closed
}

/// A history to follow: topic, from and until (ms), the container it is inherited
/// through, depth.
type Follow = (String, i64, Option<i64>, Option<String>, usize);

/// Collects the item's events and those of its containers while they held it.
fn gather(
    readers: &[(LedgerHandle, Reader)],
    code: &str,
) -> Result<(Vec<Found>, Vec<ContainmentView>, bool), ApiError> {
    let mut found: Vec<Found> = Vec::new();
    let mut seen: HashSet<(usize, Hash32)> = HashSet::new();
    let mut containers = Vec::new();
    let mut truncated = false;
    let mut queue: Vec<Follow> = vec![(code.to_owned(), i64::MIN, None, None, 0)];
    while let Some((topic, from, until, via, depth)) = queue.pop() {
        let budget = TRACE_EVENTS_MAX - found.len();
        let (records, cut) = topic_events(readers, &topic, budget)?;
        truncated |= cut;
        // The topic's whole history: containment is read from all of it (a case may
        // have gone onto its pallet before the item went into the case), events are
        // kept only within the window it is followed for.
        let mut history: Vec<Found> = Vec::with_capacity(records.len());
        for (ledger, record) in records {
            let Ok(json) = serde_json::from_slice::<Value>(&record.payload) else {
                tracing::warn!(topic, number = record.number, "an epcis event is not JSON");
                continue;
            };
            let Some(time_ms) = text(&json, "eventTime").and_then(|t| parse_time(&t).ok()) else {
                continue;
            };
            history.push(Found { ledger, record, json, time_ms, via: via.clone() });
        }
        history.sort_by_key(|f| (f.time_ms, f.ledger, f.record.number));
        let held_by = if depth < CONTAINMENT_DEPTH_MAX {
            containments(&topic, &history.iter().collect::<Vec<_>>())
        } else {
            Vec::new()
        };
        for event in history {
            let inside = event.time_ms >= from && until.is_none_or(|until| event.time_ms <= until);
            if inside && seen.insert((event.ledger, event.record.tx_hash)) {
                found.push(event);
            }
        }
        for mut held in held_by {
            // Within the window this topic itself was followed for.
            held.from_ms = held.from_ms.max(from);
            held.until_ms = match (held.until_ms, until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let empty = held.until_ms.is_some_and(|until| until < held.from_ms);
            if empty
                || held.parent == code
                || containers.iter().any(|c: &ContainmentView| c == &held)
            {
                continue;
            }
            queue.push((
                held.parent.clone(),
                held.from_ms,
                held.until_ms,
                Some(held.parent.clone()),
                depth + 1,
            ));
            containers.push(held);
        }
    }
    Ok((found, containers, truncated))
}

/// The lots of an item: its own code's (an LGTIN), and any `lotNumber` in the master
/// data (`ilmd`) of its events; `true` when the code is a whole GTIN class (every lot).
fn item_lots<'a>(
    code: &Identifier,
    events: impl Iterator<Item = &'a Value>,
) -> (BTreeSet<String>, bool) {
    let mut lots = BTreeSet::new();
    let any_lot = match code {
        Identifier::Lgtin { lot, .. } => {
            lots.insert(lot.clone());
            false
        }
        Identifier::Gtin { .. } => true,
        _ => false,
    };
    for event in events {
        ilmd_lots(event, &mut lots);
    }
    (lots, any_lot)
}

/// Adds the `lotNumber`s in an event's master data (`ilmd`, any namespace prefix).
pub(crate) fn ilmd_lots(event: &Value, lots: &mut BTreeSet<String>) {
    if let Some(Value::Object(ilmd)) = event.get("ilmd") {
        for (key, value) in ilmd {
            if (key == "lotNumber" || key.ends_with(":lotNumber"))
                && let Some(lot) = value.as_str()
            {
                lots.insert(lot.to_owned());
            }
        }
    }
}

/// Recalls by GTIN across a capture's ledgers (ledger index, lot, recall), read once
/// per GTIN per document.
pub(crate) type RecallCache = std::collections::HashMap<String, Vec<(usize, String, RecallRecord)>>;

/// The recalls on any of `readers` that apply to an event about to be captured: for
/// each code it names with a GTIN that has any recall (`cache`: one seek per ledger and
/// GTIN per document; none is the common answer),
/// the code's lots (its own, the event's `ilmd`, its history's `ilmd` on every ledger)
/// against the recalled ones. Answers (GTIN, lot, recall's ledger index, recall).
pub(crate) fn recalls_for(
    readers: &[Reader],
    cache: &mut RecallCache,
    codes: &[String],
    event: &Value,
) -> Result<Vec<(String, String, usize, RecallRecord)>, ApiError> {
    let mut alerts: Vec<(String, String, usize, RecallRecord)> = Vec::new();
    for code in codes {
        let Ok(identifier) = Identifier::parse(code) else { continue };
        let Some(gtin) = identifier.gtin() else { continue };
        if !cache.contains_key(gtin) {
            let mut recalled = Vec::new();
            for (index, reader) in readers.iter().enumerate() {
                recalled.extend(reader.recalls_of(gtin)?.into_iter().map(|(l, r)| (index, l, r)));
            }
            cache.insert(gtin.to_owned(), recalled);
        }
        let recalled = &cache[gtin];
        if recalled.is_empty() {
            continue;
        }
        let mut history = vec![event.clone()];
        if matches!(identifier, Identifier::Sgtin { .. }) {
            for reader in readers {
                for earlier in reader.topic_events(EPCIS_ACCOUNT, code, 0, TRACE_EVENTS_MAX)? {
                    history.extend(serde_json::from_slice::<Value>(&earlier.payload).ok());
                }
            }
        }
        let (lots, any_lot) = item_lots(&identifier, history.iter());
        for (index, lot, record) in recalled {
            if (any_lot || lots.contains(lot))
                && !alerts.iter().any(|(g, l, _, _)| g == gtin && l == lot)
            {
                alerts.push((gtin.to_owned(), lot.clone(), *index, record.clone()));
            }
        }
    }
    Ok(alerts)
}

/// Builds the trace of `code` (canonical) over `readers`.
fn build(readers: &[(LedgerHandle, Reader)], code: &str) -> Result<TraceView, ApiError> {
    let (mut found, containers, truncated) = gather(readers, code)?;
    found.sort_by(|a, b| {
        (a.time_ms, readers[a.ledger].0.name(), a.record.number).cmp(&(
            b.time_ms,
            readers[b.ledger].0.name(),
            b.record.number,
        ))
    });

    // Recalls of the item's GTIN and lot, on any ledger.
    let identifier = Identifier::parse(code).map_err(|e| ApiError::bad_parameter("code", e))?;
    let gtin = identifier.gtin().map(str::to_owned);
    let own = found.iter().filter(|f| f.via.is_none()).map(|f| &f.json);
    let (lots, any_lot) = item_lots(&identifier, own);
    let mut recalls: Vec<(usize, String, RecallRecord)> = Vec::new();
    if let Some(gtin) = &gtin {
        for (index, (_, reader)) in readers.iter().enumerate() {
            for (lot, record) in reader.recalls_of(gtin)? {
                if any_lot || lots.contains(&lot) {
                    recalls.push((index, lot, record));
                }
            }
        }
    }

    // Proofs: per ledger, one pass over its blocks.
    let mut proofs: Vec<Option<(engine::ledger::TxRecord, engine::proof::TxProof)>> =
        (0..found.len()).map(|_| None).collect();
    let mut recall_proofs = Vec::new();
    for (index, (_, reader)) in readers.iter().enumerate() {
        let positions: Vec<usize> =
            (0..found.len()).filter(|i| found[*i].ledger == index).collect();
        let hashes: Vec<Hash32> = positions.iter().map(|i| found[*i].record.tx_hash).collect();
        for (position, proof) in positions.into_iter().zip(reader.prove_transactions(&hashes)?) {
            proofs[position] = proof;
        }
        for (ledger, lot, record) in recalls.iter().filter(|r| r.0 == index) {
            if let Some(Some((tx, proof))) = reader.prove_transactions(&[record.tx_hash])?.pop() {
                recall_proofs.push((*ledger, lot.clone(), record.clone(), tx, proof));
            }
        }
    }
    let recall_views: Vec<RecallView> = recall_proofs
        .into_iter()
        .map(|(ledger, lot, record, tx, proof)| {
            let handle = &readers[ledger].0;
            RecallView {
                gtin: gtin.clone().unwrap_or_default(),
                lot,
                reason: record.reason,
                regulator: hex::encode(record.regulator.0),
                ledger: handle.name().to_owned(),
                height: record.height,
                block_time_ms: proof.header.timestamp_ms,
                transaction_hex: hex::encode(tx.transaction.encode()),
                proof: sdk::proof::tx_document(handle.settings().hash_algorithm, &proof),
            }
        })
        .collect();

    let mut events = Vec::with_capacity(found.len());
    for (found, proof) in found.into_iter().zip(proofs) {
        let Some((tx, proof)) = proof else {
            return Err(ApiError::internal(format!(
                "event {} points at a transaction that is not committed",
                found.record.number
            )));
        };
        let handle = &readers[found.ledger].0;
        let block_time_ms = proof.header.timestamp_ms;
        let recall_alert = recall_views.iter().any(|recall| {
            if recall.ledger == handle.name() {
                found.record.height > recall.height
            } else {
                block_time_ms >= recall.block_time_ms
            }
        });
        events.push(TraceEventView {
            ledger: handle.name().to_owned(),
            ledger_id: hex::encode(handle.id().0),
            height: found.record.height,
            block_time_ms,
            event_number: found.record.number,
            topic: found.record.topic.clone(),
            via: found.via,
            event_type: text(&found.json, "type").unwrap_or_default(),
            event_time: text(&found.json, "eventTime").unwrap_or_default(),
            event_time_ms: found.time_ms,
            action: text(&found.json, "action"),
            biz_step: text(&found.json, "bizStep"),
            disposition: text(&found.json, "disposition"),
            location: place(&found.json),
            payload: String::from_utf8_lossy(&found.record.payload).into_owned(),
            transaction_hex: hex::encode(tx.transaction.encode()),
            recall_alert,
            proof: sdk::proof::tx_document(handle.settings().hash_algorithm, &proof),
        });
    }
    let mut involved: BTreeSet<usize> =
        events.iter().filter_map(|e| index_of(readers, &e.ledger)).collect();
    involved.extend(recall_views.iter().filter_map(|r| index_of(readers, &r.ledger)));
    let ledgers = lineage(readers, involved)?;
    Ok(TraceView {
        code: code.to_owned(),
        events,
        containers,
        recalls: recall_views,
        truncated,
        ledgers,
    })
}

fn index_of(readers: &[(LedgerHandle, Reader)], name: &str) -> Option<usize> {
    readers.iter().position(|(handle, _)| handle.name() == name)
}

/// The ledgers of a trace and, transitively, their hosted parents: genesis, settings,
/// seal with proof.
fn lineage(
    readers: &[(LedgerHandle, Reader)],
    mut pending: BTreeSet<usize>,
) -> Result<Vec<TraceLedgerView>, ApiError> {
    let mut done = BTreeSet::new();
    let mut views = Vec::new();
    while let Some(index) = pending.pop_first() {
        if !done.insert(index) {
            continue;
        }
        let (handle, reader) = &readers[index];
        let settings = handle.settings();
        for parent in &settings.parents {
            if let Some(at) = readers.iter().position(|(h, _)| h.id() == parent.ledger_id) {
                pending.insert(at);
            }
        }
        let genesis = reader.block(0)?.ok_or_else(|| ApiError::internal("no genesis block"))?;
        let sealed = match reader.sealed()? {
            Some(seal) => match reader.prove_transactions(&[seal.tx_hash])?.pop().flatten() {
                Some((tx, proof)) => Some(TraceSealView {
                    height: seal.height,
                    transaction_hex: hex::encode(tx.transaction.encode()),
                    proof: sdk::proof::tx_document(settings.hash_algorithm, &proof),
                }),
                None => return Err(ApiError::internal("the sealing transaction is missing")),
            },
            None => None,
        };
        views.push(TraceLedgerView {
            name: handle.name().to_owned(),
            ledger_id: hex::encode(handle.id().0),
            settings_hex: hex::encode(settings.encode()),
            genesis_header_hex: hex::encode(genesis.header.encode()),
            sealed,
        });
    }
    Ok(views)
}

/// Runs `build` on the blocking pool over every ledger's committed state.
async fn trace_of(state: &AppState, code: String) -> Result<TraceView, ApiError> {
    let handles = state.ledgers().as_ref().clone();
    tokio::task::spawn_blocking(move || {
        let readers = handles
            .into_iter()
            .map(|handle| {
                let reader = handle.reader()?;
                Ok((handle, reader))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        build(&readers, &code)
    })
    .await
    .map_err(|e| ApiError::internal(format!("trace task failed: {e}")))?
}

/// A product's history with proofs.
#[utoipa::path(get, path = "/api/v1/trace/{code}", tag = "epcis",
    params(("code" = String, Path, description = "trace code: EPC URN or GS1 Digital Link URI (percent-encoded)")),
    responses((status = 200, body = TraceView),
        (status = 400, description = "BAD_PARAMETER: not a GS1 identifier (check digit, syntax)", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_CODE: no event names it", body = sdk::wire::Problem)))]
pub async fn get_trace(
    State(state): State<Arc<AppState>>,
    Path(code): Path<String>,
) -> Result<Json<TraceView>, ApiError> {
    let code = code_param(&code)?;
    let trace = trace_of(&state, code).await?;
    if trace.events.is_empty() && trace.recalls.is_empty() {
        return Err(ApiError::not_found(
            "UNKNOWN_CODE",
            format!("no captured event names {}", trace.code),
        ));
    }
    Ok(Json(trace))
}

/// `GET /trace/{*code}`: the consumer page.
pub async fn trace_page(State(state): State<Arc<AppState>>, Path(code): Path<String>) -> Response {
    let (status, body) = match code_param(&code) {
        Err(error) => (400, page(&code, None, Some(error.detail()))),
        Ok(code) => match trace_of(&state, code.clone()).await {
            Ok(trace) if trace.events.is_empty() && trace.recalls.is_empty() => {
                (404, page(&code, None, Some("No record of this product on this ledger network.")))
            }
            Ok(trace) => (200, page(&code, Some(&trace), None)),
            Err(error) => (error.status(), page(&code, None, Some(error.detail()))),
        },
    };
    let mut response = body.into_response();
    *response.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A CBV vocabulary term's short name (`urn:epcglobal:cbv:bizstep:shipping`,
/// `https://ref.gs1.org/cbv/BizStep-shipping` and `shipping` are all `shipping`).
pub fn cbv_short(term: &str) -> &str {
    if let Some(at) = term.rfind('-').filter(|_| term.starts_with("https://ref.gs1.org/cbv/")) {
        return &term[at + 1..];
    }
    if term.starts_with("urn:epcglobal:cbv:") {
        return term.rsplit(':').next().unwrap_or(term);
    }
    term
}

fn stage(event: &TraceEventView) -> String {
    let step = event.biz_step.as_deref().map(cbv_short).unwrap_or("");
    let name = match step {
        "" => event.event_type.trim_end_matches("Event").to_owned(),
        step => step.replace('_', " "),
    };
    let mut chars = name.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn when(ms: i64) -> String {
    let (year, month, day, hour, minute, _) = sharding::epcis::civil_time(ms);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// The consumer page (self-contained: no script, no external resources).
fn page(code: &str, trace: Option<&TraceView>, error: Option<&str>) -> String {
    let mut html = String::with_capacity(8192);
    html.push_str(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Product history</title><style>\
         body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}\
         header{background:#0b3d2e;color:#fff;padding:16px 20px}\
         header h1{margin:0;font-size:20px}header p{margin:4px 0 0;font-size:13px;opacity:.85;word-break:break-all}\
         main{max-width:760px;margin:0 auto;padding:16px}\
         .recall{background:#b00020;color:#fff;padding:14px 16px;border-radius:8px;margin-bottom:16px}\
         .recall b{font-size:17px}\
         ol{list-style:none;padding:0;margin:0;border-left:3px solid #0b3d2e}\
         li{position:relative;margin:0 0 14px 18px;background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}\
         li:before{content:'';position:absolute;left:-27px;top:16px;width:12px;height:12px;border-radius:50%;background:#0b3d2e}\
         li.alert{border:2px solid #b00020}li.alert:before{background:#b00020}\
         .stage{font-weight:600;font-size:16px}.meta{font-size:13px;color:#444;margin-top:4px;word-break:break-all}\
         .proof{font-size:12px;color:#0b6b3a;margin-top:6px}.flag{color:#b00020;font-weight:600;font-size:13px}\
         .error{background:#fff3cd;padding:14px;border-radius:8px}\
         </style></head><body><header><h1>Product history</h1>",
    );
    let _ = write!(html, "<p>{}</p></header><main>", escape(code));
    if let Some(error) = error {
        let _ = write!(html, "<div class=\"error\">{}</div>", escape(error));
    }
    if let Some(trace) = trace {
        for recall in &trace.recalls {
            let _ = write!(
                html,
                "<div class=\"recall\" id=\"recall\"><b>RECALLED</b>: GTIN {} lot {} — {}<br>\
                 <small>recorded by regulator {}… on ledger {} at height {}</small></div>",
                escape(&recall.gtin),
                escape(&recall.lot),
                escape(&recall.reason),
                escape(&recall.regulator[..12.min(recall.regulator.len())]),
                escape(&recall.ledger),
                recall.height
            );
        }
        html.push_str("<ol>");
        for event in &trace.events {
            let who = serde_json::from_str::<Value>(&event.payload)
                .ok()
                .and_then(|json| {
                    json.get("sourceList")
                        .or_else(|| json.get("bizTransactionList"))
                        .and_then(Value::as_array)
                        .and_then(|list| list.first())
                        .and_then(|first| {
                            first.get("source").or_else(|| first.get("bizTransaction"))
                        })
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let _ = write!(
                html,
                "<li class=\"{}\"><div class=\"stage\">{}</div>\
                 <div class=\"meta\">{} · {}{}</div>",
                if event.recall_alert { "alert" } else { "" },
                escape(&stage(event)),
                escape(&when(event.event_time_ms)),
                escape(&event.event_type),
                event
                    .disposition
                    .as_deref()
                    .map(|d| format!(" · {}", escape(cbv_short(d))))
                    .unwrap_or_default(),
            );
            if let Some(location) = &event.location {
                let _ = write!(html, "<div class=\"meta\">where: {}</div>", escape(location));
            }
            if !who.is_empty() {
                let _ = write!(html, "<div class=\"meta\">who: {}</div>", escape(&who));
            }
            if let Some(via) = &event.via {
                let _ = write!(html, "<div class=\"meta\">while inside {}</div>", escape(via));
            }
            if event.recall_alert {
                html.push_str("<div class=\"flag\">recorded after a recall of this product</div>");
            }
            let _ = write!(
                html,
                "<div class=\"proof\">✔ verified on ledger {} at height {} (tx {}…)</div></li>",
                escape(&event.ledger),
                event.height,
                escape(event.proof.tx_hash.as_deref().map_or("", |h| &h[..12.min(h.len())]))
            );
        }
        html.push_str("</ol>");
        if trace.truncated {
            html.push_str("<p>History truncated: ask the API for the rest.</p>");
        }
    }
    html.push_str("</main></body></html>");
    html
}

/// `GET /epcis/events` parameters (EPCIS 2.0 query names).
#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventsQuery {
    /// Events naming this EPC (URN or Digital Link; any of its forms).
    #[serde(rename = "MATCH_epc")]
    match_epc: Option<String>,
    /// Events with this business step (CBV short name or URI).
    #[serde(rename = "EQ_bizStep")]
    eq_biz_step: Option<String>,
    /// Events at or after this time (RFC 3339 with offset).
    #[serde(rename = "GE_eventTime")]
    ge_event_time: Option<String>,
    /// Events before this time.
    #[serde(rename = "LT_eventTime")]
    lt_event_time: Option<String>,
    /// Page size (1..=1000, default 100).
    #[serde(rename = "perPage")]
    per_page: Option<usize>,
    /// From a previous page.
    #[serde(rename = "nextPageToken")]
    next_page_token: Option<String>,
}

/// Where a page starts: a ledger (by name) and a position in it (an event number, or
/// a topic sequence with `MATCH_epc`).
fn parse_token(token: &str) -> Result<(String, u64), ApiError> {
    let bad = || ApiError::bad_parameter("nextPageToken", "not a token this node issued");
    let (ledger, position) = token.rsplit_once('~').ok_or_else(bad)?;
    Ok((ledger.to_owned(), position.parse().map_err(|_| bad())?))
}

struct Filter {
    biz_step: Option<String>,
    from_ms: Option<i64>,
    before_ms: Option<i64>,
}

impl Filter {
    fn matches(&self, json: &Value) -> bool {
        if let Some(step) = &self.biz_step {
            let given = json.get("bizStep").and_then(Value::as_str).map(cbv_short);
            if given != Some(cbv_short(step)) {
                return false;
            }
        }
        if self.from_ms.is_some() || self.before_ms.is_some() {
            let Some(time) = text(json, "eventTime").and_then(|t| parse_time(&t).ok()) else {
                return false;
            };
            if self.from_ms.is_some_and(|from| time < from)
                || self.before_ms.is_some_and(|before| time >= before)
            {
                return false;
            }
        }
        true
    }
}

/// Captured events, filtered and paged.
#[utoipa::path(get, path = "/epcis/events", tag = "epcis",
    params(EventsQuery),
    responses((status = 200, body = EpcisEventsPage),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem)))]
pub async fn list_events(
    State(state): State<Arc<AppState>>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EpcisEventsPage>, ApiError> {
    let query = crate::api::query(query)?;
    let per_page = query.per_page.unwrap_or(PER_PAGE_DEFAULT);
    if !(1..=PER_PAGE_MAX).contains(&per_page) {
        return Err(ApiError::bad_parameter("perPage", format!("1 to {PER_PAGE_MAX}")));
    }
    let time = |field: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|t| parse_time(t).map_err(|e| ApiError::bad_parameter(field, e)))
            .transpose()
    };
    let filter = Filter {
        biz_step: query.eq_biz_step.clone(),
        from_ms: time("GE_eventTime", &query.ge_event_time)?,
        before_ms: time("LT_eventTime", &query.lt_event_time)?,
    };
    let epc = query
        .match_epc
        .as_deref()
        .map(|e| canonicalize(e).map_err(|error| ApiError::bad_parameter("MATCH_epc", error)))
        .transpose()?;
    let mut handles = state.ledgers().as_ref().clone();
    handles.sort_by(|a, b| a.name().cmp(b.name()));
    let (mut ledger_at, mut position) = (0, 0);
    if let Some(token) = &query.next_page_token {
        let (name, at) = parse_token(token)?;
        ledger_at = handles.iter().position(|h| h.name() == name).ok_or_else(|| {
            ApiError::bad_parameter("nextPageToken", format!("no ledger {name} on this node"))
        })?;
        position = at;
    }
    tokio::task::spawn_blocking(move || {
        let mut events = Vec::new();
        let mut scanned = 0;
        while ledger_at < handles.len() {
            let handle = &handles[ledger_at];
            let reader = handle.reader()?;
            // With MATCH_epc: the code's topic; else every event, where one captured
            // event appears once per code it names (consecutive numbers, one
            // transaction): each is shown once.
            let mut last_tx = match (&epc, position) {
                (None, p) if p > 0 => reader.event(p - 1)?.map(|e| e.tx_hash),
                _ => None,
            };
            loop {
                let chunk = 256.min(QUERY_SCAN_MAX - scanned).max(1);
                let records = match &epc {
                    Some(code) => reader.topic_events(EPCIS_ACCOUNT, code, position, chunk)?,
                    None => reader.events(position, chunk)?,
                };
                if records.is_empty() {
                    break;
                }
                for record in records {
                    scanned += 1;
                    position = match &epc {
                        Some(_) => record.sequence + 1,
                        None => record.number + 1,
                    };
                    if record.account != EPCIS_ACCOUNT || last_tx == Some(record.tx_hash) {
                        continue;
                    }
                    last_tx = Some(record.tx_hash);
                    let Ok(json) = serde_json::from_slice::<Value>(&record.payload) else {
                        continue;
                    };
                    if filter.matches(&json) {
                        events.push(EpcisEventView {
                            ledger: handle.name().to_owned(),
                            height: record.height,
                            tx_hash: hex::encode(record.tx_hash),
                            event: json,
                        });
                    }
                    if events.len() == per_page || scanned >= QUERY_SCAN_MAX {
                        let token = format!("{}~{position}", handle.name());
                        return Ok(EpcisEventsPage { events, next_page_token: Some(token) });
                    }
                }
            }
            ledger_at += 1;
            position = 0;
        }
        Ok(EpcisEventsPage { events, next_page_token: None })
    })
    .await
    .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
    .map(Json)
}
