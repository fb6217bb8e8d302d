//! The node's HTTP API. This first slice serves what a client needs to drive a node from
//! another process: the hosted ledgers with their heads, batch submission with finality
//! (`?wait=commit`), and health. Errors are RFC 7807 `application/problem+json` with a
//! stable `code`.
//!
//! | method, path | answer |
//! |---|---|
//! | `GET /healthz` | `200 ok` |
//! | `GET /metrics` | Prometheus text exposition (per-ledger gauges and counters) |
//! | `GET /api/v1/ledgers` | `[{id, name, height, block_hash, leader, halted}]` |
//! | `POST /api/v1/ledgers/{id}/transactions[?wait=commit&timeout_ms=N]` | body: `count u32 ‖ (len u32 ‖ Transaction bytes)*` (`docs/FORMAT.md` §13, kind 0x02); `202 {hashes}`, or with `wait=commit` `200 {outcomes}` |

use std::time::Duration;

use actors::{LedgerHandle, Rejection, SubmitError, TxStatus};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

/// Largest request body (413 above it).
pub const BODY_LIMIT_BYTES: usize = 16 << 20;
/// Longest `timeout_ms` a client may ask for.
pub const WAIT_MAX_MS: u64 = 60_000;

/// The routes over the node's ledgers.
pub fn router(ledgers: Vec<LedgerHandle>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/v1/ledgers", get(list_ledgers))
        .route("/api/v1/ledgers/{id}/transactions", post(submit))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(ledgers)
}

/// An RFC 7807 problem with a stable code.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Short summary.
    pub title: &'static str,
    /// What exactly was wrong.
    pub detail: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        response
    }
}

fn problem(status: u16, code: &'static str, title: &'static str, detail: String) -> Problem {
    Problem { status, code, title, detail }
}

#[derive(Serialize)]
struct LedgerView {
    id: String,
    name: String,
    height: u64,
    block_hash: String,
    leader: bool,
    halted: Option<String>,
}

async fn list_ledgers(State(ledgers): State<Vec<LedgerHandle>>) -> axum::Json<Vec<LedgerView>> {
    axum::Json(
        ledgers
            .iter()
            .map(|handle| {
                let head = handle.head();
                LedgerView {
                    id: hex::encode(handle.id().0),
                    name: handle.name().to_owned(),
                    height: head.height,
                    block_hash: hex::encode(head.block_hash),
                    leader: handle.is_leader(),
                    halted: handle.halted(),
                }
            })
            .collect(),
    )
}

/// Per-ledger metrics, read from the ledgers' counters at scrape time. Names follow
/// `polyledger_*` in base units, labelled by ledger name (never by trace code).
async fn metrics(State(ledgers): State<Vec<LedgerHandle>>) -> Response {
    use std::fmt::Write as _;
    type Read = fn(&LedgerHandle) -> u64;
    let families: [(&str, &str, &str, Read); 5] = [
        (
            "polyledger_ledger_height",
            "gauge",
            "Height of the ledger's latest committed block on this node.",
            |h| h.head().height,
        ),
        (
            "polyledger_ledger_halted",
            "gauge",
            "1 when this node halted the ledger (divergence or a failed write; see the error log).",
            |h| u64::from(h.halted().is_some()),
        ),
        (
            "polyledger_mempool_transactions",
            "gauge",
            "Transactions accepted and not yet final.",
            |h| h.pending() as u64,
        ),
        (
            "polyledger_blocks_committed_total",
            "counter",
            "Blocks committed since the node started.",
            LedgerHandle::blocks_committed,
        ),
        (
            "polyledger_transactions_committed_total",
            "counter",
            "Transactions in those blocks.",
            LedgerHandle::transactions_committed,
        ),
    ];
    let mut text = String::new();
    for (name, kind, help, read) in families {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for handle in &ledgers {
            let label = handle.name().replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(text, "{name}{{ledger=\"{label}\"}} {}", read(handle));
        }
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

#[derive(Deserialize)]
struct SubmitQuery {
    wait: Option<String>,
    timeout_ms: Option<u64>,
}

#[derive(Serialize)]
struct Outcome {
    hash: String,
    status: &'static str,
    height: Option<u64>,
    index: Option<u32>,
    result: Option<&'static str>,
    reason: Option<String>,
}

fn rejection_code(rejection: &Rejection) -> &'static str {
    match rejection {
        Rejection::BadSignature => "BAD_SIGNATURE",
        Rejection::WrongLedger => "WRONG_LEDGER",
        Rejection::AlreadyPending => "ALREADY_PENDING",
        Rejection::AlreadyCommitted { .. } => "ALREADY_COMMITTED",
        Rejection::Halted(_) => "LEDGER_HALTED",
        Rejection::ShuttingDown => "SHUTTING_DOWN",
    }
}

async fn submit(
    State(ledgers): State<Vec<LedgerHandle>>,
    Path(id): Path<String>,
    Query(query): Query<SubmitQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(|rejection| {
        let status = rejection.status().as_u16();
        if status == 413 {
            problem(
                413,
                "BODY_TOO_LARGE",
                "body too large",
                format!("at most {BODY_LIMIT_BYTES} bytes"),
            )
        } else {
            problem(status, "BAD_BODY", "unreadable body", rejection.body_text())
        }
    })?;
    let handle = ledgers
        .iter()
        .find(|handle| hex::encode(handle.id().0) == id.to_ascii_lowercase())
        .ok_or_else(|| {
            problem(404, "UNKNOWN_LEDGER", "unknown ledger", format!("no ledger {id} on this node"))
        })?;
    let wait = match query.wait.as_deref() {
        None => false,
        Some("commit") => true,
        Some(other) => {
            return Err(problem(
                400,
                "BAD_PARAMETER",
                "bad parameter",
                format!("wait: `{other}` (only `commit`)"),
            ));
        }
    };
    let timeout_ms = query.timeout_ms.unwrap_or(10_000);
    if timeout_ms == 0 || timeout_ms > WAIT_MAX_MS {
        return Err(problem(
            400,
            "BAD_PARAMETER",
            "bad parameter",
            format!("timeout_ms: 1..={WAIT_MAX_MS}"),
        ));
    }
    let transactions = actors::proposal::decode_transactions(&body).map_err(|error| {
        problem(400, "MALFORMED_BODY", "malformed transactions", error.to_string())
    })?;
    let submitted = handle.submit(transactions).await.map_err(|error| match error {
        SubmitError::Busy { .. } => problem(503, "BUSY", "ledger busy", error.to_string()),
        SubmitError::InvalidBatch(detail) => problem(400, "BAD_BATCH", "invalid batch", detail),
        SubmitError::Stopped => problem(503, "STOPPED", "ledger not running", error.to_string()),
    });
    let submitted = match submitted {
        Ok(submitted) => submitted,
        Err(problem) if problem.code == "BUSY" => {
            let mut response = problem.into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Ok(response);
        }
        Err(problem) => return Err(problem),
    };
    let hashes: Vec<String> = submitted.hashes.iter().map(hex::encode).collect();
    if !wait {
        return Ok((StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "hashes": hashes })))
            .into_response());
    }
    let outcomes = tokio::time::timeout(Duration::from_millis(timeout_ms), submitted.wait())
        .await
        .map_err(|_| {
            problem(
                504,
                "TIMEOUT",
                "not final in time",
                format!("not final within {timeout_ms} ms; query the hashes later"),
            )
        })?
        .map_err(|error| problem(503, "STOPPED", "ledger not running", error.to_string()))?;
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|outcome| match outcome.status {
            TxStatus::Committed { height, index, result } => Outcome {
                hash: hex::encode(outcome.hash),
                status: "committed",
                height: Some(height),
                index: Some(index),
                result: Some(result.name()),
                reason: None,
            },
            TxStatus::Rejected(rejection) => Outcome {
                hash: hex::encode(outcome.hash),
                status: "rejected",
                height: None,
                index: None,
                result: Some(rejection_code(&rejection)),
                reason: Some(rejection.to_string()),
            },
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "outcomes": outcomes })).into_response())
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
