//! The node's HTTP API (`/api/v1`), modelled on JD Chain's gateway paths. The OpenAPI 3
//! document is generated from the handlers (`utoipa`) and served at
//! `/api/v1/openapi.json`; the routes and the document come from the same registration
//! (`utoipa_axum::routes!`), so they cannot disagree.
//!
//! | method, path | answer |
//! |---|---|
//! | `GET /` | the explorer page |
//! | `GET /healthz` · `GET /readyz` · `GET /metrics` | alive · ledgers loaded and consensus connected · Prometheus text |
//! | `GET /api/v1/ledgers[/{id}[/settings\|/participants]]` | ledgers with heads; one; genesis settings; members |
//! | `POST /api/v1/ledgers/{id}/transactions[?wait=commit&timeout_ms=N]` | a batch (`application/vnd.polyledger.batch`, `docs/FORMAT.md` §13), one binary transaction (`application/vnd.polyledger.transaction`) or JSON (one transaction or `{"transactions": [...]}`); `202 {hashes}`, or with `wait=commit` `200 {outcomes}` |
//! | `GET /api/v1/ledgers/{id}/transactions/{hash}` | committed (height, index, result, the transaction) or pending; 404 unknown |
//! | `GET /api/v1/ledgers/{id}/blocks/latest\|/{height}\|/hash/{hash}` | a block header |
//! | `GET /api/v1/ledgers/{id}/blocks/{height}/transactions?from&limit` | a page of its transactions |
//! | `GET /api/v1/ledgers/{id}/users/{address}` · `/accounts/{name}` | a user; a data account |
//! | `GET /api/v1/ledgers/{id}/accounts/{name}/keys/{key}[/history?from_version&limit]` | latest value; history, oldest first |
//! | `GET /api/v1/ledgers/{id}/proofs/transactions/{hash}` · `/proofs/accounts/{name}/keys/{key}?height` | proof documents (`docs/FORMAT.md` §14) |
//! | `POST /api/v1/proofs/verify` | checks a proof document |
//! | `POST /api/v1/admin/backup` | online backup into the node's `backup_dir` (loopback clients only) |
//! | `GET /api/v1/ledgers/{id}/events?from&limit&account&topic&type&bizStep&epc` · `/events/{account}/{topic}?from&limit` | a page of events (commit order); of one topic (sequence order) |
//! | `GET /api/v1/ledgers/{id}/stream/blocks\|/stream/events\|/stream/events/{account}/{topic}` | Server-Sent Events, resumable (`from`, `Last-Event-ID`) |
//! | `GET /api/v1/ledgers/{id}/ws/blocks\|/ws/events\|/ws/events/{account}/{topic}` | the same streams over WebSocket |
//! | `POST /epcis/capture[?category=C]` | an EPCIS 2.0 document onto its category ledgers, all or nothing (`[traceability]`; 201 with each event's ledger, tx and height) |
//! | `GET /api/v1/stream/system?from=LEDGER=N,…` | SSE: the system events (`$system`: recalls) of every ledger on the node; each id is the whole cursor |
//!
//! With `[[gateway.tokens]]` configured, every route but `/`, `/healthz`, `/readyz` and
//! `/metrics` needs `Authorization: Bearer <token>` (401 `UNAUTHENTICATED` otherwise;
//! [`auth`]); with `[gateway] tls_cert_file` the API is served over HTTPS ([`tls`]).
//!
//! Keys in paths are UTF-8, percent-encoded; `?key_encoding=hex` takes them as hex.
//! Errors are RFC 7807 `application/problem+json` with a stable `code`.

mod admin;
mod api;
pub mod auth;
pub mod capture;
mod explorer;
mod metrics;
mod problem;
pub mod shardmap;
mod streams;
pub mod tls;
pub mod trace;
pub mod webhooks;

use std::sync::Arc;

use actors::LedgerHandle;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use admin::{BackupTarget, MakeBackup};
pub use problem::ApiError;

/// Largest request body (413 above it).
pub const BODY_LIMIT_BYTES: usize = 16 << 20;
/// Longest `timeout_ms` a client may ask for.
pub const WAIT_MAX_MS: u64 = 60_000;
/// Largest page (`limit`) of a listing.
pub const PAGE_LIMIT_MAX: u32 = 1000;
/// Page size when `limit` is not given.
pub const PAGE_LIMIT_DEFAULT: u32 = 100;

/// What every handler reads: the node's ledgers.
pub struct AppState {
    ledgers: actors::node::LedgerSet,
    backup: Option<BackupTarget>,
    capture: Option<capture::Capture>,
}

/// What the gateway serves besides the ledgers.
#[derive(Clone, Default)]
pub struct GatewayOptions {
    /// Online backups (`POST /api/v1/admin/backup`); `None` answers 501.
    pub backup: Option<BackupTarget>,
    /// Bearer tokens; none: the API is open.
    pub tokens: auth::Tokens,
    /// EPCIS capture (`POST /epcis/capture`); `None` answers 501.
    pub capture: Option<capture::Capture>,
}

impl AppState {
    /// The node's ledgers, as of now.
    fn ledgers(&self) -> Arc<Vec<LedgerHandle>> {
        self.ledgers.all()
    }

    fn ledger(&self, id: &str) -> Result<LedgerHandle, ApiError> {
        let wanted = sdk::wire::parse_hash("id", id).ok();
        self.ledgers()
            .iter()
            .find(|handle| Some(handle.id().0) == wanted || handle.name() == id)
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found("UNKNOWN_LEDGER", format!("no ledger {id} on this node"))
            })
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "polyledger gateway",
        description = "Submit transactions with finality, query blocks, transactions, values \
                       and histories, and fetch proofs anyone can verify offline. Errors are \
                       RFC 7807 problems with a stable `code`."
    ),
    tags(
        (name = "ledgers", description = "Ledgers, blocks, transactions"),
        (name = "state", description = "Users, data accounts, values and histories"),
        (name = "proofs", description = "Proof documents and their verification"),
        (name = "admin", description = "Administration (loopback only): online backup"),
        (name = "events", description = "Events, and resumable streams of blocks and events"),
        (name = "epcis", description = "EPCIS 2.0 capture onto the category ledgers"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
struct ApiDoc;

fn api_router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::healthz))
        .routes(routes!(api::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(api::list_ledgers))
        .routes(routes!(api::get_ledger))
        .routes(routes!(api::get_settings))
        .routes(routes!(api::get_participants))
        .routes(routes!(api::submit))
        .routes(routes!(api::get_transaction))
        .routes(routes!(api::latest_block))
        .routes(routes!(api::block_by_height))
        .routes(routes!(api::block_by_hash))
        .routes(routes!(api::block_transactions))
        .routes(routes!(api::get_user))
        .routes(routes!(api::get_account))
        .routes(routes!(api::get_value))
        .routes(routes!(api::get_history))
        .routes(routes!(api::prove_transaction))
        .routes(routes!(api::prove_key))
        .routes(routes!(api::verify_proof))
        .routes(routes!(streams::list_events))
        .routes(routes!(streams::list_topic))
        .routes(routes!(streams::stream_blocks))
        .routes(routes!(streams::stream_events))
        .routes(routes!(streams::stream_topic))
        .routes(routes!(streams::stream_system))
        .routes(routes!(admin::backup))
        .routes(routes!(admin::create_ledger))
        .routes(routes!(capture::capture))
        .routes(routes!(trace::get_trace))
        .routes(routes!(trace::list_events))
        .routes(routes!(shardmap::get_map))
        .routes(routes!(shardmap::put_map))
}

/// The OpenAPI document of every route (what `/api/v1/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// The routes over the node's ledgers.
pub fn router(ledgers: Vec<LedgerHandle>) -> Router {
    router_with(actors::node::LedgerSet::fixed(ledgers), GatewayOptions::default())
}

/// The routes over the node's ledgers, with `options`.
pub fn router_with(ledgers: actors::node::LedgerSet, options: GatewayOptions) -> Router {
    streams::register_metrics(&ledgers.all());
    let (routes, document) = api_router().split_for_parts();
    let document = Arc::new(document);
    routes
        .route("/", get(explorer::page))
        // The consumer page: the code may be a Digital Link URI with its slashes.
        .route("/trace/{*code}", get(trace::trace_page))
        // WebSocket streams (OpenAPI 3 cannot describe them; the SSE routes document
        // the messages).
        .route("/api/v1/ledgers/{id}/ws/blocks", get(streams::ws_blocks))
        .route("/api/v1/ledgers/{id}/ws/events", get(streams::ws_events))
        .route("/api/v1/ledgers/{id}/ws/events/{account}/{topic}", get(streams::ws_topic))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document.as_ref().clone()) }
            }),
        )
        .fallback(api::no_route)
        .layer(axum::middleware::from_fn_with_state(options.tokens, auth::require_token))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(Arc::new(AppState {
            ledgers,
            backup: options.backup,
            capture: options.capture,
        }))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Connection info lets administration answer loopback clients only.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}
