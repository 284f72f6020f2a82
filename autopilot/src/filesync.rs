//! Filesync (Autopilot, Isard 2007): brings a manifest's files onto the machine from the deployment server
//! and pre-loads them, without activating anything. Files already in place with the right
//! digest are kept; others are fetched in chunks into a `.part` file (a later attempt resumes
//! where it stopped), checked against their sha256 (a corrupt download is thrown away and
//! fetched again, up to [`FilesyncLimits::max_attempts`]), then renamed into place. At most
//! [`FilesyncLimits::max_concurrent`] files transfer at once from one machine, and a busy
//! server (503) is retried after a growing pause.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libactor::http_client;
use protos::autopilot::{Manifest, ManifestFile};
use tokio::sync::Semaphore;

use crate::manifest::{install_dir, relative_path, sha256_hex};

/// The deployment server's route for a chunk of a file (`?sha256=&transfer=&offset=&length=`).
pub const DEPLOYMENT_FILE_ROUTE: &str = "/deployment/file";

/// Bounds on one machine's fetching.
#[derive(Debug, Clone)]
pub struct FilesyncLimits {
    /// Files in transfer at once.
    pub max_concurrent: usize,
    /// Bytes asked for per request.
    pub chunk: u64,
    /// Downloads of one file that may fail their checksum before the sync fails.
    pub max_attempts: u32,
    /// How long a file may wait for a busy server in all.
    pub busy_patience: Duration,
}

impl Default for FilesyncLimits {
    fn default() -> Self {
        FilesyncLimits {
            max_concurrent: 2,
            chunk: 1024 * 1024,
            max_attempts: 5,
            busy_patience: Duration::from_secs(600),
        }
    }
}

/// What a sync counted, for metrics.
#[derive(Debug, Default)]
pub struct FilesyncCounters {
    /// Files fetched.
    pub fetched: AtomicU64,
    /// Files already in place.
    pub kept: AtomicU64,
    /// Downloads thrown away for a wrong checksum.
    pub checksum_failures: AtomicU64,
    /// Chunks refused by a busy server.
    pub busy: AtomicU64,
}

/// Why a manifest could not be synced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// A file kept failing its checksum.
    #[error("{path}: checksum still wrong after {attempts} downloads")]
    Checksum {
        /// The file.
        path: String,
        /// Downloads tried.
        attempts: u32,
    },
    /// The server would not serve it.
    #[error("{path}: {why}")]
    Fetch {
        /// The file.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// The local disk refused.
    #[error("{path}: {why}")]
    Disk {
        /// The file.
        path: String,
        /// What the OS said.
        why: String,
    },
}

/// Fetches and verifies every file of `manifest` from `server` (host:port) into its directory
/// under `work_dir`; returns that directory.
pub async fn preload(
    manifest: &Manifest,
    server: &str,
    work_dir: &Path,
    limits: &FilesyncLimits,
    counters: Arc<FilesyncCounters>,
) -> Result<PathBuf, SyncError> {
    let dir = install_dir(work_dir, manifest);
    let disk = |path: &str, e: std::io::Error| SyncError::Disk {
        path: path.to_owned(),
        why: e.to_string(),
    };
    tokio::fs::create_dir_all(dir.join(".part"))
        .await
        .map_err(|e| disk(".part", e))?;
    let slots = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for file in manifest.files.clone() {
        let (slots, dir, server, limits, counters) = (
            slots.clone(),
            dir.clone(),
            server.to_owned(),
            limits.clone(),
            counters.clone(),
        );
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            sync_file(
                &file,
                &server,
                DEPLOYMENT_FILE_ROUTE,
                &dir,
                &limits,
                &counters,
            )
            .await
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let result = done.unwrap_or_else(|e| {
            Err(SyncError::Fetch {
                path: String::new(),
                why: e.to_string(),
            })
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(dir),
    }
}

/// Whether every file of `manifest` under `dir` has its digest (the manifest integrity check);
/// the first that does not, if any.
pub async fn verify(manifest: &Manifest, dir: &Path) -> Result<(), String> {
    for file in &manifest.files {
        let path = dir.join(&file.path);
        match tokio::fs::read(&path).await {
            Ok(data) if sha256_hex(&data) == file.sha256 => {}
            Ok(_) => return Err(format!("{} does not match its sha256", file.path)),
            Err(e) => return Err(format!("{}: {e}", file.path)),
        }
    }
    Ok(())
}

/// Fetches the file whose digest is `sha256` from `source` (host:port), whose `route` serves
/// chunks as the deployment server does, into `dir/<sha256>`, checked against the digest.
pub async fn fetch_by_digest(
    sha256: &str,
    source: &str,
    route: &str,
    dir: &Path,
    limits: &FilesyncLimits,
    counters: &FilesyncCounters,
) -> Result<(), SyncError> {
    let file = ManifestFile {
        path: sha256.to_owned(),
        sha256: sha256.to_owned(),
        ..Default::default()
    };
    tokio::fs::create_dir_all(dir.join(".part"))
        .await
        .map_err(|e| SyncError::Disk {
            path: ".part".into(),
            why: e.to_string(),
        })?;
    sync_file(&file, source, route, dir, limits, counters).await
}

async fn sync_file(
    file: &ManifestFile,
    server: &str,
    route: &str,
    dir: &Path,
    limits: &FilesyncLimits,
    counters: &FilesyncCounters,
) -> Result<(), SyncError> {
    let disk = |e: std::io::Error| SyncError::Disk {
        path: file.path.clone(),
        why: e.to_string(),
    };
    let relative = relative_path(&file.path).ok_or_else(|| SyncError::Disk {
        path: file.path.clone(),
        why: "not a relative path".into(),
    })?;
    let target = dir.join(&relative);
    if let Ok(data) = tokio::fs::read(&target).await {
        if sha256_hex(&data) == file.sha256 {
            counters.kept.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
    }
    let part = dir.join(".part").join(&file.sha256);
    for attempt in 1..=limits.max_attempts.max(1) {
        fetch(file, server, route, &part, limits, counters).await?;
        let data = tokio::fs::read(&part).await.map_err(disk)?;
        if sha256_hex(&data) != file.sha256 {
            counters.checksum_failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(path = %file.path, attempt, "download does not match its sha256; fetching again");
            tokio::fs::remove_file(&part).await.map_err(disk)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(disk)?;
        }
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&part, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(disk)?;
        }
        tokio::fs::rename(&part, &target).await.map_err(disk)?;
        counters.fetched.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    Err(SyncError::Checksum {
        path: file.path.clone(),
        attempts: limits.max_attempts.max(1),
    })
}

/// Appends chunks to `part` from its current length until the server's size is reached.
async fn fetch(
    file: &ManifestFile,
    server: &str,
    route: &str,
    part: &Path,
    limits: &FilesyncLimits,
    counters: &FilesyncCounters,
) -> Result<(), SyncError> {
    use tokio::io::AsyncWriteExt;
    let fail = |why: String| SyncError::Fetch {
        path: file.path.clone(),
        why,
    };
    let transfer = format!(
        "{}-{}",
        std::process::id(),
        sha256_hex(part.to_string_lossy().as_bytes())
    );
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut offset = out.metadata().await.map_err(|e| fail(e.to_string()))?.len();
    let mut waited = Duration::ZERO;
    let mut pause = Duration::from_millis(50);
    loop {
        let path = format!(
            "{route}?sha256={}&transfer={transfer}&offset={offset}&length={}",
            file.sha256, limits.chunk
        );
        let reply = http_client::request(server, "GET", &path, &[], Default::default())
            .await
            .map_err(|e| fail(e.to_string()))?;
        match reply.status {
            200 => {}
            503 => {
                counters.busy.fetch_add(1, Ordering::Relaxed);
                if waited >= limits.busy_patience {
                    return Err(fail(format!("server busy for {waited:?}")));
                }
                tokio::time::sleep(pause).await;
                waited += pause;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
            status => {
                let text = String::from_utf8_lossy(&reply.body).trim().to_owned();
                return Err(fail(format!("server answered {status}: {text}")));
            }
        }
        let size: u64 = reply
            .header("x-file-size")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| fail("no x-file-size in the answer".into()))?;
        out.write_all(&reply.body)
            .await
            .map_err(|e| fail(e.to_string()))?;
        offset += reply.body.len() as u64;
        if offset >= size || reply.body.is_empty() {
            out.flush().await.map_err(|e| fail(e.to_string()))?;
            return Ok(());
        }
    }
}
