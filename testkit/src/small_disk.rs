//! A small disk for tests of what a full disk does: a tmpfs of a given size mounted on a
//! directory (root only, as the agent's tests run), which a test fills and frees at will.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A tmpfs mounted on a directory until dropped (then unmounted, lazily if still busy).
#[derive(Debug)]
pub struct SmallDisk {
    dir: PathBuf,
    // Dropped after the unmount in `drop`.
    _owned: Option<tempfile::TempDir>,
}

/// Why a small disk could not be mounted.
#[derive(Debug, thiserror::Error)]
pub enum SmallDiskError {
    /// `mount` did not run, or refused (it needs root).
    #[error("mounting a tmpfs on {dir}: {why}")]
    Mount {
        /// Where.
        dir: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The directory could not be made.
    #[error("making {0}: {1}")]
    Dir(PathBuf, std::io::Error),
}

/// The file [`SmallDisk::fill`] takes the free space with.
const FILLER: &str = ".filler";

impl SmallDisk {
    /// A tmpfs of `bytes` on a new temporary directory.
    pub fn mount(bytes: usize) -> Result<SmallDisk, SmallDiskError> {
        let owned = tempfile::tempdir().map_err(|e| SmallDiskError::Dir("a temp dir".into(), e))?;
        let mut disk = SmallDisk::mount_on(owned.path(), bytes)?;
        disk._owned = Some(owned);
        Ok(disk)
    }

    /// A tmpfs of `bytes` on `dir` (made if missing).
    pub fn mount_on(dir: &Path, bytes: usize) -> Result<SmallDisk, SmallDiskError> {
        std::fs::create_dir_all(dir).map_err(|e| SmallDiskError::Dir(dir.to_owned(), e))?;
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status();
        match status {
            Ok(s) if s.success() => Ok(SmallDisk {
                dir: dir.to_owned(),
                _owned: None,
            }),
            Ok(s) => Err(SmallDiskError::Mount {
                dir: dir.to_owned(),
                why: format!("mount exited with {s} (it needs root)"),
            }),
            Err(e) => Err(SmallDiskError::Mount {
                dir: dir.to_owned(),
                why: e.to_string(),
            }),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Takes every free byte with one file (until a write fails), so that any further write
    /// on the disk fails with `ENOSPC`.
    pub fn fill(&self) -> std::io::Result<()> {
        let mut file = File::create(self.dir.join(FILLER))?;
        let block = [0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        Ok(())
    }

    /// Gives back what [`SmallDisk::fill`] took.
    pub fn free(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(FILLER)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process of the test (an agent's task) may still hold a file in it.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
