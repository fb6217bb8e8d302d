//! Administration: online backup. Answers only clients on the node's own machine
//! (loopback): the backup lands on the node's disk, and taking one costs I/O.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use sdk::wire::{BackupManifest, BackupRequest, Problem};

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
    if !peer.is_some_and(|Extension(ConnectInfo(address))| address.ip().is_loopback()) {
        return Err(ApiError::new(
            403,
            "FORBIDDEN",
            "forbidden",
            "administration is only answered on loopback",
        ));
    }
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
