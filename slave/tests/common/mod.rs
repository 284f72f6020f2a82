//! What the agent's process tests share: a FIFO a task writes `ready` to, so that a test waits
//! for the task's event instead of for time.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A FIFO in `dir` (created if needed) the task writes `ready` to.
pub fn fifo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("ready");
    let c = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    path
}

/// Waits (at most `timeout`) for the task to write `ready` to the FIFO at `path`.
pub async fn wait_ready(path: PathBuf, timeout: Duration) {
    let read = tokio::task::spawn_blocking(move || std::fs::read_to_string(path));
    let text = tokio::time::timeout(timeout, read)
        .await
        .expect("the task got ready in time")
        .unwrap()
        .unwrap();
    assert_eq!(text.trim(), "ready");
}
