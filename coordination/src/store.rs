//! The durable store behind the registrar and Autopilot's ground truth: a few named
//! values, each with a version, written only by compare-and-set. Three backends:
//!
//! - [`ZkStore`]: one persistent znode per key under `{path}-registry`; the znode's version is
//!   the value's, so a write that loses a version race means another master wrote meanwhile
//!   (another leader exists: the writer must step down);
//! - [`FileStore`]: one file per key in a directory, replaced atomically (write a temporary
//!   file, fsync, rename, fsync the directory), for single-master runs without ZooKeeper;
//! - [`MemoryStore`]: in this process's memory, for simulations.
//!
//! Keys are plain names (`[A-Za-z0-9._-]`, at most [`MAX_KEY_LEN`]); values are bytes of at
//! most [`MAX_VALUE_LEN`] (ZooKeeper's own limit is 1 MiB per znode).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zookeeper_client as zk;

use crate::session;
use crate::ZkUrl;

/// Longest key.
pub const MAX_KEY_LEN: usize = 128;
/// Largest value (under ZooKeeper's 1 MiB znode limit, with room for its framing).
pub const MAX_VALUE_LEN: usize = 1000 * 1024;

/// A stored value and its version (bumped by every write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub data: Vec<u8>,
    /// Its version: what a write must name to replace it.
    pub version: u64,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key is not a plain name.
    #[error("bad key {0:?}: use [A-Za-z0-9._-], at most {MAX_KEY_LEN} bytes")]
    BadKey(String),
    /// The value is too large.
    #[error("value of {len} bytes for {key} exceeds {MAX_VALUE_LEN}")]
    TooLarge {
        /// The key.
        key: String,
        /// Its size.
        len: usize,
    },
    /// Someone else wrote the key since the version the writer read.
    #[error("{key} changed: expected version {expected:?}, found {found:?}")]
    Conflict {
        /// The key.
        key: String,
        /// The version the writer named (`None`: it expected no value).
        expected: Option<u64>,
        /// The version found, when known (`None`: no value).
        found: Option<u64>,
    },
    /// The backend failed.
    #[error("store {action} {key}: {message}")]
    Backend {
        /// What was being done.
        action: &'static str,
        /// On which key.
        key: String,
        /// What the backend said.
        message: String,
    },
}

impl StoreError {
    fn backend(action: &'static str, key: &str, e: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            action,
            key: key.to_owned(),
            message: e.to_string(),
        }
    }
}

/// A versioned key–value store written by compare-and-set.
pub trait Store: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;

    /// Writes `data` to `key` if its version is still `expected` (`None`: only if `key` has
    /// no value); returns the new version, or [`StoreError::Conflict`].
    fn put(
        &self,
        key: &str,
        data: &[u8],
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

fn check(key: &str, data: Option<&[u8]>) -> Result<(), StoreError> {
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(plain) || key.starts_with('.')
    {
        return Err(StoreError::BadKey(key.to_owned()));
    }
    match data {
        Some(d) if d.len() > MAX_VALUE_LEN => Err(StoreError::TooLarge {
            key: key.to_owned(),
            len: d.len(),
        }),
        _ => Ok(()),
    }
}

/// The store in ZooKeeper: `{path}-registry/{key}`, beside the election path `{path}` (whose
/// children Mesos clients such as pymesos take for masters).
#[derive(Debug, Clone)]
pub struct ZkStore {
    client: zk::Client,
    base: String,
}

impl ZkStore {
    /// Opens the store for `url` on `client` (creating `{path}-registry`). A store left by an
    /// older Keel at `{path}/registry` is moved there first, key by key, then removed; only the
    /// elected master opens the store, so no one writes the old one meanwhile.
    pub async fn open(client: zk::Client, url: &ZkUrl) -> Result<ZkStore, StoreError> {
        let base = url.sibling("registry");
        session::ensure_path(&client, &base)
            .await
            .map_err(|e| StoreError::backend("create", &base, e))?;
        let store = ZkStore { client, base };
        store.migrate_from(&url.child("registry")).await?;
        Ok(store)
    }

    /// Moves every key of a store at `old` here (keys already here win), then deletes `old`.
    async fn migrate_from(&self, old: &str) -> Result<(), StoreError> {
        let keys = match self.client.list_children(old).await {
            Ok(keys) => keys,
            Err(zk::Error::NoNode) => return Ok(()),
            Err(e) => return Err(StoreError::backend("list", old, e)),
        };
        tracing::info!(from = old, to = %self.base, keys = keys.len(), "moving the registry beside the election path");
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        for key in &keys {
            let from = format!("{old}/{key}");
            let data = match self.client.get_data(&from).await {
                Ok((data, _)) => data,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(StoreError::backend("read", &from, e)),
            };
            match self.client.create(&self.path(key), &data, &options).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(StoreError::backend("write", key, e)),
            }
            match self.client.delete(&from, None).await {
                Ok(()) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(StoreError::backend("delete", &from, e)),
            }
        }
        match self.client.delete(old, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(e) => Err(StoreError::backend("delete", old, e)),
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }
}

impl Store for ZkStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        check(key, None)?;
        match self.client.get_data(&self.path(key)).await {
            Ok((data, stat)) => Ok(Some(Entry {
                data,
                version: stat.version as u64,
            })),
            Err(zk::Error::NoNode) => Ok(None),
            Err(e) => Err(StoreError::backend("read", key, e)),
        }
    }

    async fn put(&self, key: &str, data: &[u8], expected: Option<u64>) -> Result<u64, StoreError> {
        check(key, Some(data))?;
        let path = self.path(key);
        let conflict = |found| StoreError::Conflict {
            key: key.to_owned(),
            expected,
            found,
        };
        match expected {
            None => {
                let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                match self.client.create(&path, data, &options).await {
                    Ok(_) => Ok(0),
                    Err(zk::Error::NodeExists) => {
                        let found = self.get(key).await?.map(|e| e.version);
                        Err(conflict(found))
                    }
                    Err(e) => Err(StoreError::backend("create", key, e)),
                }
            }
            Some(version) => {
                let version = i32::try_from(version).map_err(|_| conflict(None))?;
                match self.client.set_data(&path, data, Some(version)).await {
                    Ok(stat) => Ok(stat.version as u64),
                    Err(zk::Error::BadVersion) => {
                        let found = self.get(key).await?.map(|e| e.version);
                        Err(conflict(found))
                    }
                    Err(zk::Error::NoNode) => Err(conflict(None)),
                    Err(e) => Err(StoreError::backend("write", key, e)),
                }
            }
        }
    }
}

/// The store in a local directory: one file per key, `version (8 bytes, LE) ‖ value`.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    /// One operation at a time on the directory in this process, shared by every store
    /// opened on it: compare-and-set is read-check-write, and an operation holds the lock
    /// until its file work is done, even if its caller is gone — as a crashed master's last
    /// write lands or not before a new master (in the same process: a test's) reads.
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// The lock of each directory opened in this process.
fn directory_lock(dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    let mut locks = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    locks.entry(dir.to_path_buf()).or_default().clone()
}

impl FileStore {
    /// Opens (creating) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::backend("create", &dir.display().to_string(), e))?;
        let dir = dir.canonicalize().unwrap_or(dir);
        let lock = directory_lock(&dir);
        Ok(FileStore { dir, lock })
    }

    fn read(dir: &Path, key: &str) -> Result<Option<Entry>, StoreError> {
        let bytes = match std::fs::read(dir.join(key)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::backend("read", key, e)),
        };
        let Some((version, data)) = bytes.split_first_chunk::<8>() else {
            return Err(StoreError::backend(
                "read",
                key,
                "file shorter than its header",
            ));
        };
        Ok(Some(Entry {
            data: data.to_vec(),
            version: u64::from_le_bytes(*version),
        }))
    }

    fn write(dir: &Path, key: &str, data: &[u8], version: u64) -> std::io::Result<()> {
        use std::io::Write;
        let temp = dir.join(format!(".{key}.tmp"));
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&version.to_le_bytes())?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, dir.join(key))?;
        // The rename is durable only once the directory is.
        std::fs::File::open(dir)?.sync_all()
    }
}

impl Store for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        check(key, None)?;
        let held = self.lock.clone().lock_owned().await;
        let (dir, key) = (self.dir.clone(), key.to_owned());
        tokio::task::spawn_blocking(move || {
            let _held = held;
            FileStore::read(&dir, &key)
        })
        .await
        .map_err(|e| StoreError::backend("read", "", e))?
    }

    async fn put(&self, key: &str, data: &[u8], expected: Option<u64>) -> Result<u64, StoreError> {
        check(key, Some(data))?;
        let held = self.lock.clone().lock_owned().await;
        let (dir, key, data) = (self.dir.clone(), key.to_owned(), data.to_vec());
        tokio::task::spawn_blocking(move || {
            let _held = held;
            let found = FileStore::read(&dir, &key)?.map(|e| e.version);
            if found != expected {
                return Err(StoreError::Conflict {
                    key,
                    expected,
                    found,
                });
            }
            let version = found.map_or(0, |v| v + 1);
            FileStore::write(&dir, &key, &data, version)
                .map_err(|e| StoreError::backend("write", &key, e))?;
            Ok(version)
        })
        .await
        .map_err(|e| StoreError::backend("write", "", e))?
    }
}

/// Decides, at each operation, whether a [`MemoryStore`] clone may still be used, and why not:
/// in a simulation, whether its writer's ZooKeeper session lives and reaches the ensemble (as
/// [`ZkStore`]'s operations go through the leader's own session).
pub type Fence = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The store in memory, shared by its clones: what survives a master's restart inside one
/// process (a seeded simulation, where disk and ZooKeeper I/O would not replay). Every
/// operation completes at once, with the same compare-and-set rules as the others.
#[derive(Clone, Default)]
pub struct MemoryStore {
    entries: Arc<parking_lot::Mutex<std::collections::BTreeMap<String, Entry>>>,
    fence: Option<Fence>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("keys", &self.entries.lock().len())
            .field("fenced", &self.fence.is_some())
            .finish()
    }
}

impl MemoryStore {
    /// A clone that shares this store's entries but fails every operation `fence` refuses
    /// (with [`StoreError::Backend`], as a ZooKeeper operation fails without a session).
    pub fn fenced(&self, fence: Fence) -> MemoryStore {
        MemoryStore {
            entries: self.entries.clone(),
            fence: Some(fence),
        }
    }

    fn pass_fence(&self, action: &'static str, key: &str) -> Result<(), StoreError> {
        match &self.fence {
            Some(fence) => fence().map_err(|why| StoreError::backend(action, key, why)),
            None => Ok(()),
        }
    }
}

impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        check(key, None)?;
        self.pass_fence("read", key)?;
        Ok(self.entries.lock().get(key).cloned())
    }

    async fn put(&self, key: &str, data: &[u8], expected: Option<u64>) -> Result<u64, StoreError> {
        check(key, Some(data))?;
        self.pass_fence("write", key)?;
        let mut entries = self.entries.lock();
        let found = entries.get(key).map(|e| e.version);
        if found != expected {
            return Err(StoreError::Conflict {
                key: key.to_owned(),
                expected,
                found,
            });
        }
        let version = found.map_or(0, |v| v + 1);
        entries.insert(
            key.to_owned(),
            Entry {
                data: data.to_vec(),
                version,
            },
        );
        Ok(version)
    }
}

/// Any backend, chosen at run time (`--zk`, a local directory, or memory in a simulation);
/// what the registrar holds.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// In ZooKeeper.
    ZooKeeper(ZkStore),
    /// In a local directory.
    File(FileStore),
    /// In this process's memory.
    Memory(MemoryStore),
}

impl Store for AnyStore {
    async fn get(&self, key: &str) -> Result<Option<Entry>, StoreError> {
        match self {
            AnyStore::ZooKeeper(s) => s.get(key).await,
            AnyStore::File(s) => s.get(key).await,
            AnyStore::Memory(s) => s.get(key).await,
        }
    }

    async fn put(&self, key: &str, data: &[u8], expected: Option<u64>) -> Result<u64, StoreError> {
        match self {
            AnyStore::ZooKeeper(s) => s.put(key, data, expected).await,
            AnyStore::File(s) => s.put(key, data, expected).await,
            AnyStore::Memory(s) => s.put(key, data, expected).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_on_one_directory_take_turns_even_with_a_caller_gone() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileStore::open(dir.path()).unwrap();
        // The same directory by another spelling: the same lock.
        let second = FileStore::open(dir.path().join(".")).unwrap();
        assert!(Arc::ptr_eq(&first.lock, &second.lock));
        // An operation in progress (its lock held) keeps the other store's read waiting.
        let held = first.lock.clone().lock_owned().await;
        let read = tokio::spawn(async move { second.get("registry").await });
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(!read.is_finished());
        drop(held);
        assert!(read.await.unwrap().unwrap().is_none());
    }

    #[tokio::test]
    async fn memory_store_compares_and_sets_across_its_clones() {
        let store = MemoryStore::default();
        assert_eq!(store.put("agents", b"one", None).await.unwrap(), 0);
        let clone = store.clone();
        assert!(matches!(
            clone.put("agents", b"stale", None).await,
            Err(StoreError::Conflict { found: Some(0), .. })
        ));
        assert_eq!(clone.put("agents", b"two", Some(0)).await.unwrap(), 1);
        assert_eq!(store.get("agents").await.unwrap().unwrap().data, b"two");
        assert!(matches!(
            store.get("no/such").await,
            Err(StoreError::BadKey(_))
        ));
    }

    #[tokio::test]
    async fn a_fenced_memory_store_fails_once_its_fence_closes() {
        let store = MemoryStore::default();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let fenced = store.fenced({
            let open = open.clone();
            Arc::new(move || {
                if open.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("session expired".to_owned())
                }
            })
        });
        assert_eq!(fenced.put("agents", b"one", None).await.unwrap(), 0);
        open.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            fenced.put("agents", b"two", Some(0)).await,
            Err(StoreError::Backend {
                action: "write",
                ..
            })
        ));
        assert!(matches!(
            fenced.get("agents").await,
            Err(StoreError::Backend { action: "read", .. })
        ));
        // The unfenced store still holds what the fenced clone wrote before.
        assert_eq!(store.get("agents").await.unwrap().unwrap().data, b"one");
    }

    #[tokio::test]
    async fn file_store_compares_and_sets_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        assert_eq!(store.get("agents").await.unwrap(), None);
        assert_eq!(store.put("agents", b"one", None).await.unwrap(), 0);
        assert!(matches!(
            store.put("agents", b"again", None).await,
            Err(StoreError::Conflict { found: Some(0), .. })
        ));
        assert_eq!(store.put("agents", b"two", Some(0)).await.unwrap(), 1);
        assert!(matches!(
            store.put("agents", b"stale", Some(0)).await,
            Err(StoreError::Conflict {
                expected: Some(0),
                found: Some(1),
                ..
            })
        ));
        let reopened = FileStore::open(dir.path()).unwrap();
        assert_eq!(
            reopened.get("agents").await.unwrap(),
            Some(Entry {
                data: b"two".to_vec(),
                version: 1
            })
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("agents")]);
    }

    #[tokio::test]
    async fn bad_keys_and_oversized_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path()).unwrap();
        for key in ["", "../x", "a/b", ".hidden", &"k".repeat(MAX_KEY_LEN + 1)] {
            assert!(
                matches!(store.get(key).await, Err(StoreError::BadKey(_))),
                "{key}"
            );
        }
        let big = vec![0u8; MAX_VALUE_LEN + 1];
        assert!(matches!(
            store.put("big", &big, None).await,
            Err(StoreError::TooLarge { .. })
        ));
    }
}
