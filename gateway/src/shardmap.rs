//! The shard map every capture routes by: the configuration file's, or — with
//! `[traceability] map_ledger` — the one recorded on that (system) ledger, so every node
//! routes identically and every change is an auditable, provable version:
//! data account `shard-map`, key `map`, value = the map's canonical JSON; version `n`
//! of the key is the map of epoch `n + 1`.
//!
//! The file's map is recorded first (by the capture key, when the key has no version);
//! `PUT /api/v1/admin/shard-map` records a successor (epoch + 1, validated here), e.g.
//! after a split; `GET /api/v1/shard-map` serves the current one, so a client routes
//! offline exactly as the nodes do (`sdk::routing`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use engine::model::{Operation, ResultCode, Transaction, TransactionContent};
use parking_lot::RwLock;
use sdk::wire::{Problem, ShardMapView};
use sharding::ShardMap;

use crate::{ApiError, AppState};

/// The data account of the recorded map.
pub const MAP_ACCOUNT: &str = "shard-map";
/// Its key.
pub const MAP_KEY: &[u8] = b"map";

/// Where the current map comes from.
#[derive(Clone)]
pub struct MapSource {
    /// The configuration file's map (the first epoch when recorded on a ledger).
    file: Arc<ShardMap>,
    /// The ledger that records it, if any.
    ledger: Option<String>,
    /// The last map read from the ledger, with its version.
    cache: Arc<RwLock<Option<Cached>>>,
}

/// A map read from the ledger, with the key's version it was read at.
type Cached = (u64, Arc<ShardMap>);

/// The current map and where it was read.
pub struct Current {
    /// The map.
    pub map: Arc<ShardMap>,
    /// (ledger, version, height) when recorded on a ledger.
    pub recorded: Option<(String, u64, u64)>,
}

impl MapSource {
    /// The file's map, used as is.
    pub fn file(map: ShardMap) -> Self {
        MapSource { file: Arc::new(map), ledger: None, cache: Arc::new(RwLock::new(None)) }
    }

    /// The map recorded on `ledger`, starting from the file's.
    pub fn on_ledger(map: ShardMap, ledger: String) -> Self {
        MapSource { ledger: Some(ledger), ..Self::file(map) }
    }

    /// The current map: one read of the key's latest version (parsed again only when
    /// it changed); the file's map is recorded first when the ledger has none.
    pub async fn current(
        &self,
        state: &AppState,
        key: &crypto_parallel::PrivateKey,
    ) -> Result<Current, ApiError> {
        let Some(name) = &self.ledger else {
            return Ok(Current { map: self.file.clone(), recorded: None });
        };
        let handle = state.ledger(name)?;
        let read_latest =
            || crate::api::read(&handle, |ledger| Ok(ledger.latest(MAP_ACCOUNT, MAP_KEY)?));
        let latest = match read_latest().await? {
            Some(latest) => latest,
            None => {
                record(&handle, key, &self.file, -1).await?;
                read_latest().await?.ok_or_else(|| {
                    ApiError::internal(format!(
                        "data account {MAP_ACCOUNT} on {name} holds no map and none can be \
                         recorded (registered by someone else?)"
                    ))
                })?
            }
        };
        if let Some((version, map)) = self.cache.read().as_ref()
            && *version == latest.version
        {
            return Ok(Current {
                map: map.clone(),
                recorded: Some((name.clone(), latest.version, latest.height)),
            });
        }
        let text = String::from_utf8_lossy(&latest.value);
        let map = Arc::new(ShardMap::from_json(&text).map_err(|e| {
            ApiError::internal(format!("the shard map recorded on {name} is invalid: {e}"))
        })?);
        *self.cache.write() = Some((latest.version, map.clone()));
        Ok(Current { map, recorded: Some((name.clone(), latest.version, latest.height)) })
    }
}

/// Writes `map` as the next version of the key (`expected`: the current version, −1
/// for none), registering the account first when needed.
async fn record(
    handle: &actors::LedgerHandle,
    key: &crypto_parallel::PrivateKey,
    map: &ShardMap,
    expected: i64,
) -> Result<(), ApiError> {
    let exists =
        crate::api::read(handle, |ledger| Ok(ledger.data_account_owner(MAP_ACCOUNT)?.is_some()))
            .await?;
    let mut operations = Vec::new();
    if !exists {
        operations.push(Operation::RegisterDataAccount { name: MAP_ACCOUNT.into() });
    }
    operations.push(Operation::WriteKv {
        account: MAP_ACCOUNT.into(),
        key: MAP_KEY.to_vec(),
        value: map.to_canonical_json().into_bytes(),
        expected_version: expected,
    });
    let content = TransactionContent {
        ledger_id: handle.id(),
        nonce: rand::random(),
        timestamp_ms: sdk::builder::now_ms(),
        operations,
    };
    let tx = Transaction::sign(content, &[key]).map_err(ApiError::internal)?;
    let outcomes = crate::capture::commit(handle, vec![tx]).await?;
    match outcomes.first().map(|o| &o.status) {
        Some(actors::TxStatus::Committed { result: ResultCode::Committed, .. }) => Ok(()),
        // Another node (or request) recorded one first: the caller reads it.
        Some(actors::TxStatus::Committed {
            result: ResultCode::VersionConflict | ResultCode::AccountExists,
            ..
        }) if expected < 0 => Ok(()),
        Some(actors::TxStatus::Committed { result: ResultCode::VersionConflict, .. }) => {
            Err(ApiError::new(
                409,
                "MAP_CHANGED",
                "shard map changed",
                "another change was recorded first; read the map again",
            ))
        }
        other => Err(ApiError::new(
            503,
            "MAP_NOT_RECORDED",
            "shard map not recorded",
            format!("{other:?}: is the capture key a registered user of the map ledger?"),
        )),
    }
}

fn view(current: &Current) -> ShardMapView {
    ShardMapView {
        epoch: current.map.epoch,
        digest: hex::encode(current.map.digest()),
        map: serde_json::to_value(current.map.as_ref()).expect("maps serialise"),
        ledger: current.recorded.as_ref().map(|(name, _, _)| name.clone()),
        version: current.recorded.as_ref().map(|(_, version, _)| *version),
        height: current.recorded.as_ref().map(|(_, _, height)| *height),
    }
}

fn capture_of(state: &AppState) -> Result<crate::capture::Capture, ApiError> {
    state.capture.clone().ok_or_else(|| {
        ApiError::new(
            501,
            "CAPTURE_DISABLED",
            "capture not configured",
            "this node has no [traceability] section",
        )
    })
}

/// The shard map captures are routed by now.
#[utoipa::path(get, path = "/api/v1/shard-map", tag = "epcis",
    responses((status = 200, body = ShardMapView),
        (status = 501, description = "CAPTURE_DISABLED", body = Problem)))]
pub async fn get_map(State(state): State<Arc<AppState>>) -> Result<Json<ShardMapView>, ApiError> {
    let capture = capture_of(&state)?;
    let current = capture.map.current(&state, &capture.key).await?;
    Ok(Json(view(&current)))
}

/// Records a new shard map (the next epoch) on the map ledger, e.g. after a split: it
/// must be valid and its epoch one above the current; every ledger it names must be
/// hosted here.
#[utoipa::path(put, path = "/api/v1/admin/shard-map", tag = "admin",
    request_body(content = String, description = "the shard map's JSON (sharding::map)"),
    responses((status = 200, body = ShardMapView),
        (status = 400, description = "BAD_MAP: invalid, not the next epoch, names a ledger not hosted here", body = Problem),
        (status = 403, description = "FORBIDDEN: not from this machine", body = Problem),
        (status = 409, description = "MAP_CHANGED", body = Problem),
        (status = 501, description = "CAPTURE_DISABLED, MAP_NOT_ON_LEDGER", body = Problem)))]
pub async fn put_map(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    body: Bytes,
) -> Result<Json<ShardMapView>, ApiError> {
    crate::admin::loopback_only(peer)?;
    let capture = capture_of(&state)?;
    let Some(name) = capture.map.ledger.clone() else {
        return Err(ApiError::new(
            501,
            "MAP_NOT_ON_LEDGER",
            "the shard map is the configuration file's",
            "set [traceability] map_ledger to record the map on a ledger",
        ));
    };
    let bad = |reason: String| ApiError::new(400, "BAD_MAP", "bad shard map", reason);
    let text = std::str::from_utf8(&body).map_err(|e| bad(e.to_string()))?;
    let next = ShardMap::from_json(text).map_err(|e| bad(e.to_string()))?;
    let current = capture.map.current(&state, &capture.key).await?;
    current.map.successor(&next).map_err(|e| bad(e.to_string()))?;
    let hosted = state.ledgers();
    for ledger in next.categories.values().flatten() {
        if !hosted.iter().any(|h| h.name() == ledger) {
            return Err(bad(format!("ledger `{ledger}` is not hosted on this node")));
        }
    }
    let version = current.recorded.as_ref().map_or(-1, |(_, version, _)| *version as i64);
    record(&state.ledger(&name)?, &capture.key, &next, version).await?;
    let current = capture.map.current(&state, &capture.key).await?;
    tracing::info!(epoch = current.map.epoch, ledger = %name, "shard map recorded");
    Ok(Json(view(&current)))
}
