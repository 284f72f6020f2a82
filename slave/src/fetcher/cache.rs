//! The fetcher's cache: files by key (`sha256-<hex>` or `uri-<hex>`) under the agent's work
//! dir, shared by every task on the agent, written atomically (temp file, rename) so that two
//! tasks fetching the same URI at once never see half a file, and bounded in bytes: the least
//! recently used entries go first.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Default bound on the cache's size (Mesos's `--fetcher_cache_size`: 2 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 2 << 30;

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A directory of cached fetches.
#[derive(Debug, Clone)]
pub struct FetchCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl FetchCache {
    /// A cache in `dir` holding at most `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> FetchCache {
        FetchCache { dir, max_bytes }
    }

    /// Copies the entry `key` to `dest` if the cache has it; marks it recently used.
    pub async fn copy_out(&self, key: &str, dest: &Path) -> std::io::Result<bool> {
        let entry = self.dir.join(key);
        match tokio::fs::copy(&entry, dest).await {
            Ok(_) => {
                touch(&entry);
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stores `file` as `key`, then evicts the least recently used entries over the bound.
    pub async fn store(&self, key: &str, file: &Path) -> std::io::Result<()> {
        tokio::fs::create_dir_all(&self.dir).await?;
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .dir
            .join(format!(".{key}.{}.{seq}.tmp", std::process::id()));
        tokio::fs::copy(file, &temp).await?;
        tokio::fs::rename(&temp, self.dir.join(key)).await?;
        let (dir, max) = (self.dir.clone(), self.max_bytes);
        tokio::task::spawn_blocking(move || evict(&dir, max))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Removes the oldest-used entries until the directory holds at most `max_bytes`.
fn evict(dir: &Path, max_bytes: u64) -> std::io::Result<()> {
    let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = std::fs::read_dir(dir)?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((meta.modified().ok()?, meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
    entries.sort();
    for (_, len, path) in entries {
        if total <= max_bytes {
            break;
        }
        std::fs::remove_file(&path)?;
        total -= len;
        tracing::debug!(entry = %path.display(), "evicted from the fetch cache");
    }
    Ok(())
}

/// Marks `path` used now (its modification time orders eviction).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_round_trip_and_the_oldest_are_evicted_over_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FetchCache::new(dir.path().join("cache"), 10);
        let src = dir.path().join("src");
        std::fs::write(&src, b"123456").unwrap();
        cache.store("a", &src).await.unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .append(true)
            .open(dir.path().join("cache/a"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        cache.store("b", &src).await.unwrap();
        let out = dir.path().join("out");
        assert!(cache.copy_out("b", &out).await.unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), b"123456");
        assert!(!cache.copy_out("a", &out).await.unwrap(), "a was evicted");
        assert!(!cache.copy_out("missing", &out).await.unwrap());
    }
}
