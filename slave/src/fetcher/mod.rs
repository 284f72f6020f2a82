//! The fetcher: before an executor starts, every URI of its `CommandInfo` is brought into its
//! sandbox — a local path or `file://` copied, an `http://` URL downloaded (streamed to disk,
//! bounded in size and time) — checked against its sha256 when the framework gave one, made
//! executable or extracted (`.tar.gz`, `.tgz`, `.tar`, `.zip`) when asked, and kept in a
//! content-addressed cache shared by every task on the agent when `cache` is set.
//!
//! A failure fails the task with `REASON_FETCHER_FAILURE` and says which URI and why.

pub mod cache;
pub mod download;
pub mod extract;

use std::path::{Path, PathBuf};
use std::time::Duration;

use protos::v1::command_info::Uri;
use sha2::{Digest, Sha256};

use cache::FetchCache;

/// Largest file one URI may bring (a download past it is abandoned).
pub const MAX_FETCH_BYTES: u64 = 4 << 30;
/// Longest one download may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(600);
/// URIs one command may list.
pub const MAX_URIS: usize = 64;

/// Why a URI could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URI names nothing the fetcher can read.
    #[error("cannot fetch {uri}: {why}")]
    Unsupported {
        /// The URI.
        uri: String,
        /// What is wrong with it.
        why: String,
    },
    /// Reading, writing or copying failed.
    #[error("cannot fetch {uri}: {source}")]
    Io {
        /// The URI.
        uri: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The download failed.
    #[error("cannot download {uri}: {why}")]
    Download {
        /// The URI.
        uri: String,
        /// What went wrong.
        why: String,
    },
    /// The content is not what the framework said it would be.
    #[error("{uri}: sha256 mismatch: expected {expected}, got {actual}")]
    Checksum {
        /// The URI.
        uri: String,
        /// What the framework gave.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// An archive could not be extracted.
    #[error("cannot extract {uri}: {why}")]
    Extract {
        /// The URI.
        uri: String,
        /// What went wrong.
        why: String,
    },
    /// More URIs than [`MAX_URIS`].
    #[error("{count} URIs listed; at most {MAX_URIS} may be fetched for one command")]
    TooMany {
        /// How many were listed.
        count: usize,
    },
}

/// Fetches URIs into sandboxes, through a cache under the agent's work dir.
#[derive(Debug, Clone)]
pub struct Fetcher {
    cache: FetchCache,
    /// Where local paths and `file://` URIs may point (`--fetcher-allowed-paths`): `None`,
    /// anywhere; otherwise only files whose real path (symlinks resolved) lies under one.
    allowed_paths: Option<Vec<PathBuf>>,
}

impl Fetcher {
    /// A fetcher caching under `cache_dir`, holding at most `cache_bytes` there, that copies
    /// local files from anywhere.
    pub fn new(cache_dir: PathBuf, cache_bytes: u64) -> Fetcher {
        Fetcher {
            cache: FetchCache::new(cache_dir, cache_bytes),
            allowed_paths: None,
        }
    }

    /// The same fetcher, copying local files only from under `allowed` (`None`: anywhere).
    /// Each directory is resolved now, so a symlinked one still matches.
    pub fn with_allowed_paths(mut self, allowed: Option<Vec<PathBuf>>) -> Fetcher {
        self.allowed_paths = allowed.map(|dirs| {
            dirs.into_iter()
                .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
                .collect()
        });
        self
    }

    /// Brings every URI into `sandbox` (created if needed), in order; the first failure ends
    /// the fetch.
    pub async fn fetch_all(&self, uris: &[Uri], sandbox: &Path) -> Result<(), FetchError> {
        if uris.len() > MAX_URIS {
            return Err(FetchError::TooMany { count: uris.len() });
        }
        for uri in uris {
            self.fetch(uri, sandbox).await?;
        }
        Ok(())
    }

    /// Brings one URI into `sandbox`.
    pub async fn fetch(&self, uri: &Uri, sandbox: &Path) -> Result<(), FetchError> {
        let name = destination_name(uri)?;
        let io = |source| FetchError::Io {
            uri: uri.value.clone(),
            source,
        };
        tokio::fs::create_dir_all(sandbox).await.map_err(io)?;
        let dest = sandbox.join(&name);
        let expected = uri.sha256.trim().to_ascii_lowercase();
        let key = uri.cache.then(|| cache_key(&uri.value, &expected));
        let hit = match &key {
            Some(key) => self.cache.copy_out(key, &dest).await.map_err(io)?,
            None => false,
        };
        if !hit {
            bring(uri, &dest, self.allowed_paths.as_deref()).await?;
            let actual = sha256_file(&dest).await.map_err(io)?;
            if !expected.is_empty() && actual != expected {
                let _ = tokio::fs::remove_file(&dest).await;
                return Err(FetchError::Checksum {
                    uri: uri.value.clone(),
                    expected,
                    actual,
                });
            }
            if let Some(key) = &key {
                if let Err(e) = self.cache.store(key, &dest).await {
                    // The task still has its file; only later tasks miss the cache.
                    tracing::warn!(uri = %uri.value, error = %e, "fetched file not cached");
                }
            }
        }
        if uri.executable {
            set_executable(&dest).await.map_err(io)?;
        }
        if uri.extract.unwrap_or(true) && extract::is_archive(&name) {
            let (archive, into) = (dest.clone(), sandbox.to_owned());
            let extracted =
                tokio::task::spawn_blocking(move || extract::extract(&archive, &into)).await;
            match extracted {
                Ok(Ok(())) => {}
                Ok(Err(why)) => {
                    return Err(FetchError::Extract {
                        uri: uri.value.clone(),
                        why,
                    })
                }
                Err(e) => {
                    return Err(FetchError::Extract {
                        uri: uri.value.clone(),
                        why: e.to_string(),
                    })
                }
            }
        }
        tracing::info!(uri = %uri.value, dest = %dest.display(), cached = hit, "fetched");
        Ok(())
    }
}

/// Copies or downloads `uri` to `dest`; a local file only from under `allowed` when given.
async fn bring(uri: &Uri, dest: &Path, allowed: Option<&[PathBuf]>) -> Result<(), FetchError> {
    let value = uri.value.trim();
    if let Some(rest) = value.strip_prefix("http://") {
        return download::download(value, rest, dest, MAX_FETCH_BYTES, DOWNLOAD_TIMEOUT).await;
    }
    if value.starts_with("https://") {
        return Err(FetchError::Unsupported {
            uri: value.to_owned(),
            why: "https is not supported by this agent's fetcher; use http:// or a local path"
                .into(),
        });
    }
    let path = value.strip_prefix("file://").unwrap_or(value);
    if !path.starts_with('/') {
        return Err(FetchError::Unsupported {
            uri: value.to_owned(),
            why: "expected an absolute path, file:///path or http://host/path".into(),
        });
    }
    let io = |source| FetchError::Io {
        uri: value.to_owned(),
        source,
    };
    // The real path, so that neither `..` nor a symlink leads out of the allowed directories;
    // the file copied is the one checked.
    let path = tokio::fs::canonicalize(path).await.map_err(io)?;
    if let Some(allowed) = allowed {
        if !allowed.iter().any(|dir| path.starts_with(dir)) {
            return Err(FetchError::Unsupported {
                uri: value.to_owned(),
                why: format!(
                    "{} is outside the agent's --fetcher-allowed-paths {allowed:?}",
                    path.display()
                ),
            });
        }
    }
    let meta = tokio::fs::metadata(&path).await.map_err(io)?;
    if !meta.is_file() {
        return Err(FetchError::Unsupported {
            uri: value.to_owned(),
            why: "not a regular file".into(),
        });
    }
    if meta.len() > MAX_FETCH_BYTES {
        return Err(FetchError::Download {
            uri: value.to_owned(),
            why: format!(
                "{} bytes is over the {MAX_FETCH_BYTES}-byte limit",
                meta.len()
            ),
        });
    }
    tokio::fs::copy(&path, dest).await.map_err(io)?;
    Ok(())
}

/// The file name the URI lands under in the sandbox: `output_file`, or the URI's last path
/// component — never a path that leaves the sandbox.
pub fn destination_name(uri: &Uri) -> Result<String, FetchError> {
    let raw = if uri.output_file.is_empty() {
        let without_query = uri.value.split(['?', '#']).next().unwrap_or("");
        without_query.rsplit('/').next().unwrap_or("").to_owned()
    } else {
        uri.output_file.clone()
    };
    let ok =
        !raw.is_empty() && raw != "." && raw != ".." && !raw.contains('/') && !raw.contains('\0');
    if ok {
        Ok(raw)
    } else {
        Err(FetchError::Unsupported {
            uri: uri.value.clone(),
            why: format!("{raw:?} is not a file name inside the sandbox"),
        })
    }
}

/// The cache key: the content's sha256 when the framework gave one (the same bytes are shared
/// whatever URL they came from), otherwise a hash of the URI itself.
fn cache_key(uri: &str, sha256: &str) -> String {
    if sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("sha256-{sha256}")
    } else {
        format!("uri-{}", authentication::digest::sha256_hex(uri.as_bytes()))
    }
}

/// The sha256 of a file, hex.
pub async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(authentication::digest::hex(&hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

async fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut perms = tokio::fs::metadata(path).await?.permissions();
    perms.set_mode(perms.mode() | 0o755);
    tokio::fs::set_permissions(path, perms).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(value: &str, output: &str) -> Uri {
        Uri {
            value: value.into(),
            output_file: output.into(),
            ..Default::default()
        }
    }

    #[test]
    fn destinations_stay_in_the_sandbox() {
        assert_eq!(
            destination_name(&uri("http://h/a/b.tar.gz?x=1", "")).unwrap(),
            "b.tar.gz"
        );
        assert_eq!(
            destination_name(&uri("/srv/x", "renamed")).unwrap(),
            "renamed"
        );
        assert!(destination_name(&uri("/srv/x", "../escape")).is_err());
        assert!(destination_name(&uri("http://h/dir/", "")).is_err());
        assert!(destination_name(&uri("/srv/..", "")).is_err());
    }

    #[test]
    fn cache_keys_prefer_the_content_hash() {
        let sum = "ab".repeat(32);
        assert_eq!(cache_key("http://a/x", &sum), format!("sha256-{sum}"));
        assert_eq!(cache_key("http://a/x", &sum), cache_key("http://b/y", &sum));
        assert_ne!(cache_key("http://a/x", ""), cache_key("http://b/y", ""));
    }
}
