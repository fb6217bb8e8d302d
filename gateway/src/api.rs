//! The `/api/v1` handlers. Reads go to the ledger's committed state through
//! `LedgerHandle::reader` on the blocking pool (storage reads may touch disk); writes go
//! through `LedgerHandle::submit` (signatures checked in one batch, the mempool bound
//! answers `BUSY`).

use std::sync::Arc;
use std::time::Duration;

use actors::{LedgerHandle, SubmitError, TxStatus};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::ledger::Ledger;
use engine::model::{Address, Hash32, Transaction};
use engine::state::StateKey;
use engine::store::KvStore;
use sdk::wire::{
    Accepted, AccountView, BlockTxPage, BlockTxView, BlockView, HistoryPage, LedgerView, Outcome,
    Outcomes, ParticipantView, ProofDocument, ProofVerdict, SettingsView, SubmitJson, TxStatusView,
    UserView, ValueView, parse_hash,
};
use serde::Deserialize;

use crate::{ApiError, AppState, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, WAIT_MAX_MS};

pub(crate) type Reader = Ledger<Arc<dyn KvStore>>;
type ApiResult<T> = Result<Json<T>, ApiError>;

/// Runs `read` against the ledger's committed state on the blocking pool.
pub(crate) async fn read<T: Send + 'static>(
    handle: &LedgerHandle,
    read: impl FnOnce(&Reader) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let handle = handle.clone();
    tokio::task::spawn_blocking(move || read(&handle.reader()?))
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
}

pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|rejection| ApiError::bad_parameter("query", rejection.body_text()))
}

fn hash_param(field: &str, text: &str) -> Result<Hash32, ApiError> {
    parse_hash(field, text).map_err(|e| ApiError::bad_parameter(&e.field, e.reason))
}

pub(crate) fn limit_param(limit: Option<u32>) -> Result<usize, ApiError> {
    match limit.unwrap_or(PAGE_LIMIT_DEFAULT) {
        0 => Err(ApiError::bad_parameter("limit", "must be at least 1")),
        n if n > PAGE_LIMIT_MAX => {
            Err(ApiError::bad_parameter("limit", format!("at most {PAGE_LIMIT_MAX}")))
        }
        n => Ok(n as usize),
    }
}

/// The answer when no route matches (a problem, like every other error).
pub async fn no_route() -> ApiError {
    ApiError::not_found("NO_ROUTE", "no such route; see /api/v1/openapi.json")
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: every ledger is loaded, not halted, and knows its consensus leader.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "ready", body = Vec<LedgerView>),
    (status = 503, description = "NOT_READY: which ledgers and why", body = sdk::wire::Problem)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Vec<LedgerView>>, ApiError> {
    let not_ready: Vec<String> = state
        .ledgers()
        .iter()
        .filter_map(|handle| match (handle.halted(), handle.leader_known()) {
            (Some(reason), _) => Some(format!("{}: halted ({reason})", handle.name())),
            (None, _) if handle.store_unavailable().is_some() => Some(format!(
                "{}: storage unavailable ({})",
                handle.name(),
                handle.store_unavailable().unwrap_or_default()
            )),
            (None, false) => Some(format!("{}: no consensus leader known yet", handle.name())),
            (None, true) => None,
        })
        .collect();
    if state.ledgers().is_empty() {
        return Err(ApiError::new(503, "NOT_READY", "not ready", "no ledgers configured"));
    }
    if !not_ready.is_empty() {
        return Err(
            ApiError::new(503, "NOT_READY", "not ready", not_ready.join("; ")).retry_after(1)
        );
    }
    Ok(Json(state.ledgers().iter().map(ledger_view).collect()))
}

pub(crate) fn ledger_view(handle: &LedgerHandle) -> LedgerView {
    let head = handle.head();
    LedgerView {
        id: hex::encode(handle.id().0),
        name: handle.name().to_owned(),
        height: head.height,
        block_hash: hex::encode(head.block_hash),
        state_root: hex::encode(head.state_root),
        leader: handle.is_leader(),
        leader_known: handle.leader_known(),
        halted: handle.halted(),
        transactions_committed: handle.transactions_committed(),
        pending: handle.pending() as u64,
        voters: handle.voters(),
        sealed: handle.sealed().map(|seal| sdk::wire::SealView {
            height: seal.height,
            tx_hash: hex::encode(seal.tx_hash),
            note: seal.note,
        }),
    }
}

/// The ledgers this node hosts, with their heads.
#[utoipa::path(get, path = "/api/v1/ledgers", tag = "ledgers",
    responses((status = 200, body = Vec<LedgerView>)))]
pub async fn list_ledgers(State(state): State<Arc<AppState>>) -> Json<Vec<LedgerView>> {
    Json(state.ledgers().iter().map(ledger_view).collect())
}

/// One ledger (by id in hex, or by name).
#[utoipa::path(get, path = "/api/v1/ledgers/{id}", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name")),
    responses((status = 200, body = LedgerView),
        (status = 404, description = "UNKNOWN_LEDGER", body = sdk::wire::Problem)))]
pub async fn get_ledger(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<LedgerView> {
    Ok(Json(ledger_view(&state.ledger(&id)?)))
}

/// A ledger's genesis settings.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/settings", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name")),
    responses((status = 200, body = SettingsView),
        (status = 404, description = "UNKNOWN_LEDGER", body = sdk::wire::Problem)))]
pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<SettingsView> {
    Ok(Json(SettingsView::new(state.ledger(&id)?.settings())))
}

/// A ledger's consensus participants: the genesis ones, then every one admitted since,
/// removed ones with their removal height (the history).
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/participants", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name")),
    responses((status = 200, body = Vec<ParticipantView>),
        (status = 404, description = "UNKNOWN_LEDGER", body = sdk::wire::Problem)))]
pub async fn get_participants(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Vec<ParticipantView>> {
    let handle = &state.ledger(&id)?;
    let algorithm = handle.settings().hash_algorithm;
    let participants = read(handle, move |ledger| Ok(ledger.participants()?)).await?;
    Ok(Json(participants.iter().map(|p| ParticipantView::of(p, algorithm)).collect()))
}

/// Query of a submission.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct SubmitQuery {
    /// `commit`: hold the answer until every transaction is final.
    wait: Option<String>,
    /// With `wait=commit`: give up after this many ms (1..=60000, default 10000).
    timeout_ms: Option<u64>,
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Transaction>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .unwrap_or_default();
    match content_type.as_str() {
        "application/json" => {
            let submission: SubmitJson = serde_json::from_slice(body).map_err(|e| {
                ApiError::new(400, "MALFORMED_JSON", "malformed JSON", e.to_string())
            })?;
            let list = match submission {
                SubmitJson::Batch { transactions } => transactions,
                SubmitJson::One(transaction) => vec![transaction],
            };
            list.iter()
                .enumerate()
                .map(|(i, tx)| {
                    tx.to_transaction().map_err(|e| {
                        ApiError::bad_parameter(&format!("transactions[{i}].{}", e.field), e.reason)
                    })
                })
                .collect()
        }
        "application/vnd.polyledger.transaction" => {
            Transaction::decode(body).map(|tx| vec![tx]).map_err(|e| {
                ApiError::new(400, "MALFORMED_BODY", "malformed transaction", e.to_string())
            })
        }
        "" | "application/octet-stream" | "application/vnd.polyledger.batch" => {
            engine::model::decode_transactions(body).map_err(|e| {
                ApiError::new(400, "MALFORMED_BODY", "malformed transactions", e.to_string())
            })
        }
        other => Err(ApiError::new(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "unsupported content type",
            format!(
                "`{other}`: use application/vnd.polyledger.batch, \
                 application/vnd.polyledger.transaction or application/json"
            ),
        )),
    }
}

/// The answer to an unreadable request body (413 over the limit).
pub(crate) fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            413,
            "BODY_TOO_LARGE",
            "body too large",
            format!("at most {} bytes", crate::BODY_LIMIT_BYTES),
        )
    } else {
        ApiError::new(
            rejection.status().as_u16(),
            "BAD_BODY",
            "unreadable body",
            rejection.body_text(),
        )
    }
}

/// The answer to a submission the ledger did not take.
pub(crate) fn submit_error(error: SubmitError) -> ApiError {
    match error {
        SubmitError::Busy { retry_after } => {
            ApiError::new(503, "BUSY", "ledger busy", error.to_string())
                .retry_after(retry_after.as_secs().max(1) as u32)
        }
        SubmitError::InvalidBatch(detail) => {
            ApiError::new(400, "BAD_BATCH", "invalid batch", detail)
        }
        SubmitError::Stopped => {
            ApiError::new(503, "STOPPED", "ledger not running", error.to_string())
        }
        SubmitError::Sealed { .. } => {
            ApiError::new(409, "LEDGER_SEALED", "ledger sealed", error.to_string())
        }
    }
}

/// Submits one transaction or a batch. Answers the hashes at once (202), or with
/// `wait=commit` every transaction's outcome once final (200). Bad transactions in a
/// batch are rejected one by one (their outcome says why); the others go on.
#[utoipa::path(post, path = "/api/v1/ledgers/{id}/transactions", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name"), SubmitQuery),
    request_body(content = SubmitJson, description = "JSON, or binary \
        (application/vnd.polyledger.batch: docs/FORMAT.md §13; \
        application/vnd.polyledger.transaction: one transaction)"),
    responses(
        (status = 202, description = "accepted", body = Accepted),
        (status = 200, description = "final (wait=commit)", body = Outcomes),
        (status = 400, description = "MALFORMED_BODY, MALFORMED_JSON, BAD_PARAMETER, BAD_BATCH", body = sdk::wire::Problem),
        (status = 401, description = "UNAUTHENTICATED (tokens configured)", body = sdk::wire::Problem),
        (status = 403, description = "TOKEN_USER_MISMATCH: the token's user did not sign first", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER", body = sdk::wire::Problem),
        (status = 413, description = "BODY_TOO_LARGE", body = sdk::wire::Problem),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = sdk::wire::Problem),
        (status = 503, description = "BUSY (with Retry-After), STOPPED", body = sdk::wire::Problem),
        (status = 504, description = "TIMEOUT: not final in time", body = sdk::wire::Problem)))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    submit_query: Result<Query<SubmitQuery>, QueryRejection>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_error)?;
    let handle = &state.ledger(&id)?;
    let submit_query = query(submit_query)?;
    let wait = match submit_query.wait.as_deref() {
        None => false,
        Some("commit") => true,
        Some(other) => {
            return Err(ApiError::bad_parameter("wait", format!("`{other}` (only `commit`)")));
        }
    };
    let timeout_ms = submit_query.timeout_ms.unwrap_or(10_000);
    if timeout_ms == 0 || timeout_ms > WAIT_MAX_MS {
        return Err(ApiError::bad_parameter("timeout_ms", format!("1..={WAIT_MAX_MS}")));
    }
    let transactions = decode_body(&headers, &body)?;
    if let Some(axum::Extension(crate::auth::Caller { name, user: Some(user) })) = &caller {
        // A token bound to a user submits only that user's transactions.
        if let Some(i) = transactions
            .iter()
            .position(|tx| tx.endorsements.first().map(|e| &e.public_key) != Some(user))
        {
            return Err(ApiError::new(
                403,
                "TOKEN_USER_MISMATCH",
                "not the token's user",
                format!("transaction {i} is not signed first by the user of token `{name}`"),
            ));
        }
    }
    let submitted = handle.submit(transactions).await.map_err(submit_error)?;
    let hashes: Vec<String> = submitted.hashes.iter().map(hex::encode).collect();
    if !wait {
        return Ok((StatusCode::ACCEPTED, Json(Accepted { hashes })).into_response());
    }
    let outcomes = tokio::time::timeout(Duration::from_millis(timeout_ms), submitted.wait())
        .await
        .map_err(|_| {
            ApiError::new(
                504,
                "TIMEOUT",
                "not final in time",
                format!("not final within {timeout_ms} ms; query the hashes later"),
            )
        })?
        .map_err(|error| ApiError::new(503, "STOPPED", "ledger not running", error.to_string()))?;
    let outcomes = outcomes
        .into_iter()
        .map(|outcome| match outcome.status {
            TxStatus::Committed { height, index, result } => Outcome {
                hash: hex::encode(outcome.hash),
                status: "committed".into(),
                height: Some(height),
                index: Some(index),
                result: Some(result.name().into()),
                reason: None,
            },
            TxStatus::Rejected(rejection) => Outcome {
                hash: hex::encode(outcome.hash),
                status: "rejected".into(),
                height: None,
                index: None,
                result: Some(rejection.code().into()),
                reason: Some(rejection.to_string()),
            },
        })
        .collect();
    Ok(Json(Outcomes { outcomes }).into_response())
}

/// A transaction's status: committed (with the transaction) or pending; 404 unknown.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/transactions/{hash}", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("hash" = String, Path, description = "transaction hash (hex)")),
    responses((status = 200, body = TxStatusView),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_TRANSACTION", body = sdk::wire::Problem)))]
pub async fn get_transaction(
    State(state): State<Arc<AppState>>,
    Path((id, hash)): Path<(String, String)>,
) -> ApiResult<TxStatusView> {
    let handle = &state.ledger(&id)?;
    let tx_hash = hash_param("hash", &hash)?;
    // The reader is at the published head: a transaction in a block written above it
    // and not yet durable (`block.pipelined_commit`) reads as pending until reported.
    let record = read(handle, move |ledger| Ok(ledger.transaction(&tx_hash)?)).await?;
    let record = match record {
        Some(record) => Some(record),
        None if handle.is_pending(tx_hash).await => {
            return Ok(Json(TxStatusView {
                hash: hex::encode(tx_hash),
                status: "pending".into(),
                height: None,
                index: None,
                result: None,
                transaction: None,
            }));
        }
        // Committed between the read and the question: the ledger actor answers the
        // question only after it reported the block (the published head includes it),
        // so a second read finds every transaction that was pending at the first.
        None => read(handle, move |ledger| Ok(ledger.transaction(&tx_hash)?)).await?,
    };
    if let Some(record) = record {
        return Ok(Json(TxStatusView {
            hash: hex::encode(tx_hash),
            status: "committed".into(),
            height: Some(record.height),
            index: Some(record.index),
            result: Some(record.result.name().into()),
            transaction: Some(sdk::wire::TransactionJson::from_transaction(&record.transaction)),
        }));
    }
    Err(ApiError::not_found("UNKNOWN_TRANSACTION", format!("no transaction {hash} on this node")))
}

pub(crate) fn block_view(block: &engine::ledger::StoredBlock) -> BlockView {
    BlockView::new(&block.header, &block.hash, block.transactions.len())
}

/// The view of `block` with its commit certificate, if the ledger keeps one (`bft`).
fn certified_view<S: engine::store::KvStore>(
    ledger: &engine::ledger::Ledger<S>,
    block: Option<engine::ledger::StoredBlock>,
) -> Result<Option<BlockView>, engine::ledger::EngineError> {
    let Some(block) = block else { return Ok(None) };
    let mut view = block_view(&block);
    view.certificate_hex = ledger.certificate(block.header.height)?.map(hex::encode);
    Ok(Some(view))
}

/// The latest committed block.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/blocks/latest", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name")),
    responses((status = 200, body = BlockView),
        (status = 404, description = "UNKNOWN_LEDGER", body = sdk::wire::Problem)))]
pub async fn latest_block(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<BlockView> {
    let handle = &state.ledger(&id)?;
    let height = handle.head().height;
    let block =
        read(handle, move |ledger| Ok(certified_view(ledger, ledger.block(height)?)?)).await?;
    block.map(Json).ok_or_else(|| ApiError::internal("head block missing"))
}

/// The block at a height.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/blocks/{height}", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("height" = u64, Path, description = "block height (0 = genesis)")),
    responses((status = 200, body = BlockView),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_BLOCK", body = sdk::wire::Problem)))]
pub async fn block_by_height(
    State(state): State<Arc<AppState>>,
    Path((id, height)): Path<(String, String)>,
) -> ApiResult<BlockView> {
    let handle = &state.ledger(&id)?;
    let height: u64 =
        height.parse().map_err(|_| ApiError::bad_parameter("height", "not a block height"))?;
    let block =
        read(handle, move |ledger| Ok(certified_view(ledger, ledger.block(height)?)?)).await?;
    block
        .map(Json)
        .ok_or_else(|| ApiError::not_found("UNKNOWN_BLOCK", format!("no block at height {height}")))
}

/// The block with a hash.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/blocks/hash/{hash}", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("hash" = String, Path, description = "block hash (hex)")),
    responses((status = 200, body = BlockView),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_BLOCK", body = sdk::wire::Problem)))]
pub async fn block_by_hash(
    State(state): State<Arc<AppState>>,
    Path((id, hash)): Path<(String, String)>,
) -> ApiResult<BlockView> {
    let handle = &state.ledger(&id)?;
    let block_hash = hash_param("hash", &hash)?;
    let block =
        read(handle, move |ledger| Ok(certified_view(ledger, ledger.block_by_hash(&block_hash)?)?))
            .await?;
    block
        .map(Json)
        .ok_or_else(|| ApiError::not_found("UNKNOWN_BLOCK", format!("no block with hash {hash}")))
}

/// A page query.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// First position (default 0).
    from: Option<u32>,
    /// Page size (1..=1000, default 100).
    limit: Option<u32>,
}

/// A page of a block's transactions (hash and result, in block order).
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/blocks/{height}/transactions", tag = "ledgers",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("height" = u64, Path, description = "block height"), PageQuery),
    responses((status = 200, body = BlockTxPage),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_BLOCK", body = sdk::wire::Problem)))]
pub async fn block_transactions(
    State(state): State<Arc<AppState>>,
    Path((id, height)): Path<(String, String)>,
    page: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<BlockTxPage> {
    let handle = &state.ledger(&id)?;
    let height: u64 =
        height.parse().map_err(|_| ApiError::bad_parameter("height", "not a block height"))?;
    let page = query(page)?;
    let limit = limit_param(page.limit)?;
    let from = page.from.unwrap_or(0) as usize;
    let block = read(handle, move |ledger| Ok(ledger.block(height)?)).await?.ok_or_else(|| {
        ApiError::not_found("UNKNOWN_BLOCK", format!("no block at height {height}"))
    })?;
    let transactions: Vec<BlockTxView> = block
        .transactions
        .iter()
        .enumerate()
        .skip(from)
        .take(limit)
        .map(|(index, (hash, result))| BlockTxView {
            index: index as u32,
            hash: hex::encode(hash),
            result: result.name().into(),
        })
        .collect();
    let end = from + transactions.len();
    let next_from = (end < block.transactions.len()).then_some(end as u32);
    Ok(Json(BlockTxPage { height, transactions, next_from }))
}

/// A user account by address.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/users/{address}", tag = "state",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("address" = String, Path, description = "user address (hex)")),
    responses((status = 200, body = UserView),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_USER", body = sdk::wire::Problem)))]
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    Path((id, address)): Path<(String, String)>,
) -> ApiResult<UserView> {
    let handle = &state.ledger(&id)?;
    let user = Address(hash_param("address", &address)?);
    if read(handle, move |ledger| Ok(ledger.user_exists(&user)?)).await? {
        Ok(Json(UserView { address: hex::encode(user.0), registered: true }))
    } else {
        Err(ApiError::not_found("UNKNOWN_USER", format!("no user {address}")))
    }
}

/// A data account by name.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/accounts/{name}", tag = "state",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("name" = String, Path, description = "data account name")),
    responses((status = 200, body = AccountView),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_ACCOUNT", body = sdk::wire::Problem)))]
pub async fn get_account(
    State(state): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<AccountView> {
    let handle = &state.ledger(&id)?;
    let account = name.clone();
    let owner = read(handle, move |ledger| Ok(ledger.data_account_owner(&account)?)).await?;
    owner
        .map(|owner| Json(AccountView { name: name.clone(), owner: hex::encode(owner.0) }))
        .ok_or_else(|| ApiError::not_found("UNKNOWN_ACCOUNT", format!("no data account `{name}`")))
}

/// Query of the key routes.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct KeyQuery {
    /// `utf8` (default) or `hex`: how `{key}` is written.
    key_encoding: Option<String>,
}

/// Query of the history route.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// `utf8` (default) or `hex`: how `{key}` is written.
    key_encoding: Option<String>,
    /// First version (default 0).
    from_version: Option<u64>,
    /// Page size (1..=1000, default 100).
    limit: Option<u32>,
}

/// Query of a key proof.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ProveKeyQuery {
    /// `utf8` (default) or `hex`: how `{key}` is written.
    key_encoding: Option<String>,
    /// The block at whose end the value is proven (default: the latest).
    height: Option<u64>,
}

fn key_param(key: &str, encoding: Option<&str>) -> Result<Vec<u8>, ApiError> {
    match encoding.unwrap_or("utf8") {
        "utf8" => Ok(key.as_bytes().to_vec()),
        "hex" => {
            hex::decode(key).map_err(|e| ApiError::bad_parameter("key", format!("not hex: {e}")))
        }
        other => Err(ApiError::bad_parameter("key_encoding", format!("`{other}` (utf8 or hex)"))),
    }
}

/// The latest value of a key.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/accounts/{name}/keys/{key}", tag = "state",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("name" = String, Path, description = "data account name"),
        ("key" = String, Path, description = "the key (percent-encoded UTF-8, or hex with key_encoding=hex)"),
        KeyQuery),
    responses((status = 200, body = ValueView),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_KEY", body = sdk::wire::Problem)))]
pub async fn get_value(
    State(state): State<Arc<AppState>>,
    Path((id, name, key)): Path<(String, String, String)>,
    key_query: Result<Query<KeyQuery>, QueryRejection>,
) -> ApiResult<ValueView> {
    let handle = &state.ledger(&id)?;
    let key_query = query(key_query)?;
    let key = key_param(&key, key_query.key_encoding.as_deref())?;
    let (account, key_bytes) = (name.clone(), key.clone());
    let value = read(handle, move |ledger| Ok(ledger.latest(&account, &key_bytes)?)).await?;
    value.map(|v| Json(ValueView::new(&name, &key, &v))).ok_or_else(|| {
        ApiError::not_found("UNKNOWN_KEY", format!("no key {} in `{name}`", hex::encode(&key)))
    })
}

/// A page of a key's version history, oldest first.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/accounts/{name}/keys/{key}/history", tag = "state",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("name" = String, Path, description = "data account name"),
        ("key" = String, Path, description = "the key (percent-encoded UTF-8, or hex with key_encoding=hex)"),
        HistoryQuery),
    responses((status = 200, body = HistoryPage),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_KEY", body = sdk::wire::Problem)))]
pub async fn get_history(
    State(state): State<Arc<AppState>>,
    Path((id, name, key)): Path<(String, String, String)>,
    history_query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<HistoryPage> {
    let handle = &state.ledger(&id)?;
    let history_query = query(history_query)?;
    let key = key_param(&key, history_query.key_encoding.as_deref())?;
    let limit = limit_param(history_query.limit)?;
    let from = history_query.from_version.unwrap_or(0);
    let (account, key_bytes) = (name.clone(), key.clone());
    let (versions, exists) = read(handle, move |ledger| {
        // One more than the page, to know whether a next page exists.
        let versions = ledger.history(&account, &key_bytes, from, limit + 1)?;
        let exists = !versions.is_empty() || ledger.latest(&account, &key_bytes)?.is_some();
        Ok((versions, exists))
    })
    .await?;
    if !exists {
        return Err(ApiError::not_found(
            "UNKNOWN_KEY",
            format!("no key {} in `{name}`", hex::encode(&key)),
        ));
    }
    let next_from_version = (versions.len() > limit).then(|| versions[limit].version);
    let versions = versions.iter().take(limit).map(|v| ValueView::new(&name, &key, v)).collect();
    Ok(Json(HistoryPage { versions, next_from_version }))
}

/// Proof that a transaction, with its result, is in its block.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/proofs/transactions/{hash}", tag = "proofs",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("hash" = String, Path, description = "transaction hash (hex)")),
    responses((status = 200, body = ProofDocument),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_TRANSACTION", body = sdk::wire::Problem)))]
pub async fn prove_transaction(
    State(state): State<Arc<AppState>>,
    Path((id, hash)): Path<(String, String)>,
) -> ApiResult<ProofDocument> {
    let handle = &state.ledger(&id)?;
    let tx_hash = hash_param("hash", &hash)?;
    let algorithm = handle.settings().hash_algorithm;
    let document = read(handle, move |ledger| {
        let Some(proof) = ledger.prove_transaction(&tx_hash)? else { return Ok(None) };
        let mut document = sdk::proof::tx_document(algorithm, &proof);
        document.certificate_hex = ledger.certificate(proof.header.height)?.map(hex::encode);
        Ok(Some(document))
    })
    .await?;
    document.map(Json).ok_or_else(|| {
        ApiError::not_found("UNKNOWN_TRANSACTION", format!("no committed transaction {hash}"))
    })
}

/// Proof of a key's value and version at a block — or of its absence.
#[utoipa::path(get, path = "/api/v1/ledgers/{id}/proofs/accounts/{name}/keys/{key}", tag = "proofs",
    params(("id" = String, Path, description = "ledger id (hex) or name"),
        ("name" = String, Path, description = "data account name"),
        ("key" = String, Path, description = "the key (percent-encoded UTF-8, or hex with key_encoding=hex)"),
        ProveKeyQuery),
    responses((status = 200, body = ProofDocument),
        (status = 400, description = "BAD_PARAMETER", body = sdk::wire::Problem),
        (status = 404, description = "UNKNOWN_LEDGER, UNKNOWN_BLOCK", body = sdk::wire::Problem)))]
pub async fn prove_key(
    State(state): State<Arc<AppState>>,
    Path((id, name, key)): Path<(String, String, String)>,
    prove_query: Result<Query<ProveKeyQuery>, QueryRejection>,
) -> ApiResult<ProofDocument> {
    let handle = &state.ledger(&id)?;
    let prove_query = query(prove_query)?;
    let key = key_param(&key, prove_query.key_encoding.as_deref())?;
    if engine::model::check_name(&name).is_err() {
        return Err(ApiError::bad_parameter("name", "not a data account name"));
    }
    let head = handle.head().height;
    let height = prove_query.height.unwrap_or(head);
    if height > head {
        return Err(ApiError::not_found("UNKNOWN_BLOCK", format!("no block at height {height}")));
    }
    let algorithm = handle.settings().hash_algorithm;
    let account = name.clone();
    let document = read(handle, move |ledger| {
        let state_key = StateKey::Data { account: account.clone(), key: key.clone() };
        let proof = ledger.prove_state(&state_key, height)?;
        let value = match &proof.leaf_value {
            None => None,
            Some(leaf) => {
                let version = leaf
                    .get(..8)
                    .and_then(|bytes| bytes.try_into().ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| ApiError::internal("state leaf shorter than a version"))?;
                let stored = ledger.version(&account, &key, version)?.ok_or_else(|| {
                    ApiError::internal(format!("version {version} missing from the history"))
                })?;
                Some((version, stored.value))
            }
        };
        let mut document = sdk::proof::state_document(
            algorithm,
            &proof,
            &account,
            &key,
            value.as_ref().map(|(version, bytes)| (*version, &bytes[..])),
        );
        document.certificate_hex = ledger.certificate(height)?.map(hex::encode);
        Ok(document)
    })
    .await?;
    Ok(Json(document))
}

/// Checks a proof document (as `sdk::proof::verify` does offline), and whether this node
/// holds the block it ends at.
#[utoipa::path(post, path = "/api/v1/proofs/verify", tag = "proofs",
    request_body = ProofDocument,
    responses((status = 200, body = ProofVerdict),
        (status = 400, description = "MALFORMED_JSON", body = sdk::wire::Problem)))]
pub async fn verify_proof(
    State(state): State<Arc<AppState>>,
    body: Bytes,
) -> ApiResult<ProofVerdict> {
    let document: ProofDocument = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(400, "MALFORMED_JSON", "malformed JSON", e.to_string()))?;
    let verified = match sdk::proof::verify(&document) {
        Ok(verified) => verified,
        Err(error) => {
            return Ok(Json(ProofVerdict {
                valid: false,
                error: Some(error.to_string()),
                block_hash: None,
                matches_node: false,
            }));
        }
    };
    let matches_node = match state.ledger(&document.ledger_id) {
        Ok(handle) => {
            let height = verified.height;
            read(&handle, move |ledger| Ok(ledger.block(height)?))
                .await?
                .is_some_and(|block| block.hash == verified.block_hash)
        }
        Err(_) => false,
    };
    Ok(Json(ProofVerdict {
        valid: true,
        error: None,
        block_hash: Some(hex::encode(verified.block_hash)),
        matches_node,
    }))
}
