//! `/metrics`: per-ledger gauges and counters read at scrape time, in the Prometheus text
//! format. Names follow `polyledger_*` in base units, labelled by ledger name (never by
//! anything unbounded such as a trace code).

use std::sync::Arc;

use actors::LedgerHandle;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Prometheus text exposition of every ledger's counters.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
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
        for handle in &state.ledgers {
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
