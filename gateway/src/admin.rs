//! Administration: online backup, ledgers created at run time. Answers only clients on
//! the node's own machine (loopback): a backup lands on the node's disk, and a new
//! ledger is this node's commitment to run it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use engine::model::LedgerSettings;
use sdk::wire::{BackupManifest, BackupRequest, CreateLedgerRequest, LedgerView, Problem};

use crate::{ApiError, AppState};

/// Makes a backup in a new directory (the node's store checkpoint plus what it holds).
pub type MakeBackup = dyn Fn(&Path) -> Result<BackupManifest, String> + Send + Sync;

/// Where backups go and how they are made.
#[derive(Clone)]
pub struct BackupTarget {
    /// The node's `backup_dir`.
    pub dir: PathBuf,
    /// Writes one backup into the directory it is given (which does not exist yet).
    pub make: Arc<MakeBackup>,
}

fn check_backup_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_parameter(
            "name",
            "1 to 128 letters, digits, '.', '_' or '-', not starting with '.'",
        ))
    }
}

/// Takes an online backup: a consistent snapshot of every ledger while commits go on.
#[utoipa::path(post, path = "/api/v1/admin/backup", tag = "admin",
    request_body = BackupRequest,
    responses((status = 200, body = BackupManifest),
        (status = 400, description = "BAD_PARAMETER", body = Problem),
        (status = 403, description = "FORBIDDEN: not from this machine", body = Problem),
        (status = 409, description = "BACKUP_EXISTS", body = Problem),
        (status = 501, description = "BACKUP_UNAVAILABLE: no backup_dir, or storage without checkpoints", body = Problem)))]
pub async fn backup(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Json<BackupManifest>, ApiError> {
    loopback_only(peer)?;
    let Json(request) = request.map_err(|e| ApiError::bad_parameter("body", e.body_text()))?;
    let Some(target) = state.backup.clone() else {
        return Err(ApiError::new(
            501,
            "BACKUP_UNAVAILABLE",
            "backup unavailable",
            "this node has no backup_dir (memory:// storage)",
        ));
    };
    let name = request.name.unwrap_or_else(|| format!("backup-{}", sdk::builder::now_ms()));
    check_backup_name(&name)?;
    let dir = target.dir.join(&name);
    if dir.exists() {
        return Err(ApiError::new(
            409,
            "BACKUP_EXISTS",
            "backup exists",
            format!("{} exists", dir.display()),
        ));
    }
    let manifest = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&target.dir)
            .map_err(|e| format!("creating {}: {e}", target.dir.display()))?;
        (target.make)(&dir)
    })
    .await
    .map_err(|e| ApiError::internal(format!("backup task failed: {e}")))?
    .map_err(|reason| ApiError::new(500, "BACKUP_FAILED", "backup failed", reason))?;
    tracing::info!(path = %manifest.path, ledgers = manifest.ledgers.len(), "online backup taken");
    Ok(Json(manifest))
}

pub(crate) fn loopback_only(
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<(), ApiError> {
    if peer.is_some_and(|Extension(ConnectInfo(address))| address.ip().is_loopback()) {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            "FORBIDDEN",
            "forbidden",
            "administration is only answered on loopback",
        ))
    }
}

/// Creates a ledger on this node at run time (a new category, a split's or merge's
/// child): its genesis from the canonical settings bytes, so every participant that
/// is given the same bytes creates the same ledger (same id) and the group forms as
/// they do. It is recorded in the node's catalog and reopened at every start. A parent
/// this node hosts must be sealed at exactly the height and block the settings name.
#[utoipa::path(post, path = "/api/v1/admin/ledgers", tag = "admin",
    request_body = CreateLedgerRequest,
    responses((status = 201, body = LedgerView),
        (status = 400, description = "BAD_SETTINGS", body = Problem),
        (status = 403, description = "FORBIDDEN: not from this machine", body = Problem),
        (status = 409, description = "LEDGER_EXISTS, LINEAGE_MISMATCH (a hosted parent is not sealed there)", body = Problem),
        (status = 501, description = "CREATE_UNAVAILABLE", body = Problem)))]
pub async fn create_ledger(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    request: Result<Json<CreateLedgerRequest>, JsonRejection>,
) -> Result<(axum::http::StatusCode, Json<LedgerView>), ApiError> {
    loopback_only(peer)?;
    let Json(request) = request.map_err(|e| ApiError::bad_parameter("body", e.body_text()))?;
    let bad = |reason: String| ApiError::new(400, "BAD_SETTINGS", "bad settings", reason);
    let bytes =
        hex::decode(&request.settings_hex).map_err(|e| bad(format!("settings_hex: {e}")))?;
    let settings = LedgerSettings::decode(&bytes).map_err(|e| bad(e.to_string()))?;
    settings.check().map_err(bad)?;
    for parent in &settings.parents {
        let Some(handle) = state.ledgers().iter().find(|h| h.id() == parent.ledger_id).cloned()
        else {
            continue;
        };
        let sealed_there = handle.sealed().is_some_and(|seal| seal.height == parent.height)
            && crate::api::read(&handle, {
                let height = parent.height;
                move |ledger| Ok(ledger.block(height)?)
            })
            .await?
            .is_some_and(|block| block.hash == parent.block_hash);
        if !sealed_there {
            return Err(ApiError::new(
                409,
                "LINEAGE_MISMATCH",
                "parent not sealed there",
                format!(
                    "parent {} is not sealed at height {} with block {}",
                    handle.name(),
                    parent.height,
                    hex::encode(parent.block_hash)
                ),
            ));
        }
    }
    let handle = state.ledgers.create(settings).map_err(|error| match error {
        actors::NodeError::Exists(name) => ApiError::new(
            409,
            "LEDGER_EXISTS",
            "ledger exists",
            format!("ledger {name} exists on this node"),
        ),
        error @ actors::NodeError::CreateUnavailable => {
            ApiError::new(501, "CREATE_UNAVAILABLE", "cannot create ledgers", error.to_string())
        }
        other => ApiError::new(400, "BAD_SETTINGS", "bad settings", other.to_string()),
    })?;
    crate::streams::register_metrics(std::slice::from_ref(&handle));
    tracing::info!(ledger = handle.name(), id = %hex::encode(handle.id().0), "ledger created at run time");
    Ok((axum::http::StatusCode::CREATED, Json(crate::api::ledger_view(&handle))))
}
