//! The agent's checkpoints under `{work_dir}/meta`: what a restarted agent needs to find the
//! executors its earlier run left running, and the updates it had not delivered.
//!
//! ```text
//! meta/agent                          AgentCheckpoint (id, last run number)
//! meta/status_updates                 the status update manager's log
//! meta/watchdog.pid                   the executor reaper of the agent's current run
//! meta/executors/{container}/executor ExecutorCheckpoint (framework, executor, tasks, sandbox)
//! meta/executors/{container}/pid      written by the executor's supervisor shell when it starts
//! meta/executors/{container}/exit_status   written by it when its command ended
//! ```
//!
//! Every file the agent writes goes to a temporary name and is renamed over the old one, so a
//! reader sees the old or the new content, never half of one. The writes are not fsynced: what
//! they protect against is the agent process dying (SIGKILL, a crash, an upgrade), where the
//! page cache survives; a machine that loses power loses its executors too, and the master's
//! reconciliation settles those tasks.

use std::path::{Path, PathBuf};

use prost::Message;

use crate::task_process::Termination;

/// A checkpoint file larger than this is refused as corrupt rather than read.
pub const MAX_CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// To which file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file holds no valid checkpoint.
    #[error("corrupt checkpoint {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Maps an I/O error on `path` while doing `action` to a [`CheckpointError`].
pub(crate) fn io(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_owned();
    move |source| CheckpointError::Io {
        action,
        path,
        source,
    }
}

/// The agent's `meta` directory.
#[derive(Debug, Clone)]
pub struct MetaDir {
    root: PathBuf,
}

impl MetaDir {
    /// The meta directory of the agent whose work dir is `work_dir`.
    pub fn new(work_dir: &Path) -> Self {
        MetaDir {
            root: work_dir.join("meta"),
        }
    }

    /// The directory itself (the executor CA lives here).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `meta/agent`.
    pub fn agent(&self) -> PathBuf {
        self.root.join("agent")
    }

    /// `meta/status_updates`.
    pub fn status_updates(&self) -> PathBuf {
        self.root.join("status_updates")
    }

    /// `meta/watchdog.pid`: the executor reaper's pid (the file's name is what agents already
    /// in the field wrote).
    pub fn reaper_pid(&self) -> PathBuf {
        self.root.join("watchdog.pid")
    }

    /// `meta/executors`: one directory per executor run, named by its container id.
    pub fn executors(&self) -> PathBuf {
        self.root.join("executors")
    }

    /// `meta/executors/{container}`.
    pub fn executor(&self, container: &str) -> ExecutorDir {
        ExecutorDir {
            container: container.to_owned(),
            path: self.executors().join(container),
        }
    }

    /// Every executor run directory an earlier run of the agent left.
    pub fn executor_dirs(&self) -> Vec<ExecutorDir> {
        let Ok(entries) = std::fs::read_dir(self.executors()) else {
            return Vec::new();
        };
        let mut dirs: Vec<ExecutorDir> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| self.executor(&e.file_name().to_string_lossy()))
            .collect();
        dirs.sort_by(|a, b| a.container.cmp(&b.container));
        dirs
    }
}

/// One executor run's checkpoint directory.
#[derive(Debug, Clone)]
pub struct ExecutorDir {
    /// The run's container id (the directory's name).
    pub container: String,
    /// The directory.
    pub path: PathBuf,
}

impl ExecutorDir {
    /// `executor`: the ExecutorCheckpoint.
    pub fn checkpoint(&self) -> PathBuf {
        self.path.join("executor")
    }

    /// `pid`: the supervisor's pid, written by the supervisor itself.
    pub fn pid_file(&self) -> PathBuf {
        self.path.join("pid")
    }

    /// `exit_status`: the command's exit status, written by the supervisor.
    pub fn exit_status_file(&self) -> PathBuf {
        self.path.join("exit_status")
    }

    /// The supervisor's pid if that process still runs: the pid file names it and the
    /// process's command line names this directory (so a reused pid is never taken for it).
    pub fn live_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let needle = self.path.as_os_str().as_encoded_bytes();
        cmdline
            .windows(needle.len())
            .any(|w| w == needle)
            .then_some(pid)
    }

    /// Whether a supervisor recorded its pid (an empty file is a claim, or a supervisor whose
    /// write failed on a full disk: it then ran nothing).
    pub fn pid_recorded(&self) -> bool {
        std::fs::read_to_string(self.pid_file()).is_ok_and(|pid| pid.trim().parse::<u32>().is_ok())
    }

    /// Whether the supervisor ever started (it writes its pid first thing).
    pub fn started(&self) -> bool {
        self.pid_file().exists()
    }

    /// Makes sure a supervisor that has not started never will: takes the pid file first
    /// (created only if absent; the supervisor creates it the same way, `set -C`, and exits
    /// if it cannot). `Ok(true)`: claimed, the command can never run; `Ok(false)`: the
    /// supervisor got there first and runs.
    pub fn claim_unstarted(&self) -> std::io::Result<bool> {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.pid_file())
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How the command ended, as the supervisor recorded it (a shell status: above 128 is a
    /// signal).
    pub fn exit_status(&self) -> Option<Termination> {
        let status: i32 = std::fs::read_to_string(self.exit_status_file())
            .ok()?
            .trim()
            .parse()
            .ok()?;
        Some(if status > 128 {
            Termination::Signaled(status - 128)
        } else {
            Termination::Exited(status)
        })
    }

    /// Removes the directory (the run ended and its updates are in the status update log).
    pub fn remove(&self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dir = %self.path.display(), error = %e, "executor checkpoint not removed");
            }
        }
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory, then rename),
/// creating the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp"));
    if let Err(e) = std::fs::write(&temp, bytes) {
        // A full disk leaves part of it: give the room back.
        let _ = std::fs::remove_file(&temp);
        return Err(io("write", &temp)(e));
    }
    std::fs::rename(&temp, path).map_err(io("rename into place", path))
}

/// Writes `message` to `path` atomically.
pub fn write_message<M: Message>(path: &Path, message: &M) -> Result<(), CheckpointError> {
    write_atomic(path, &message.encode_to_vec())
}

/// Reads the message at `path`; `None` when there is no such file.
pub fn read_message<M: Message + Default>(path: &Path) -> Result<Option<M>, CheckpointError> {
    let len = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("stat", path)(e)),
    };
    if len > MAX_CHECKPOINT_BYTES {
        return Err(CheckpointError::Corrupt {
            path: path.to_owned(),
            reason: format!("{len} bytes, more than {MAX_CHECKPOINT_BYTES}"),
        });
    }
    let bytes = std::fs::read(path).map_err(io("read", path))?;
    M::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| CheckpointError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protos::internal::AgentCheckpoint;

    #[test]
    fn messages_round_trip_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(dir.path());
        assert!(read_message::<AgentCheckpoint>(&meta.agent())
            .unwrap()
            .is_none());
        let agent = AgentCheckpoint {
            agent_id: "S1".into(),
            next_run: 7,
        };
        write_message(&meta.agent(), &agent).unwrap();
        assert_eq!(
            read_message::<AgentCheckpoint>(&meta.agent()).unwrap(),
            Some(agent)
        );
        std::fs::write(meta.agent(), b"\xff\xff\xff").unwrap();
        let err = read_message::<AgentCheckpoint>(&meta.agent()).unwrap_err();
        assert!(err.to_string().contains("corrupt checkpoint"), "{err}");
    }

    #[test]
    fn exit_statuses_and_pids_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(dir.path());
        let run = meta.executor("c1");
        assert!(!run.started() && run.exit_status().is_none());
        write_atomic(&run.exit_status_file(), b"3\n").unwrap();
        assert_eq!(run.exit_status(), Some(Termination::Exited(3)));
        write_atomic(&run.exit_status_file(), b"137\n").unwrap();
        assert_eq!(run.exit_status(), Some(Termination::Signaled(9)));
        // This test's own pid: alive, but its command line does not name the directory.
        write_atomic(&run.pid_file(), std::process::id().to_string().as_bytes()).unwrap();
        assert!(run.started());
        assert_eq!(run.live_pid(), None);
        assert_eq!(meta.executor_dirs().len(), 1);
        run.remove();
        assert!(meta.executor_dirs().is_empty());
    }

    /// Runs the supervisor of `run` on `touch marker`, as the agent starts it.
    fn supervise(run: &ExecutorDir, marker: &Path) -> std::process::ExitStatus {
        std::fs::create_dir_all(&run.path).unwrap();
        std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(crate::task_process::SUPERVISOR_SCRIPT)
            .arg("supervisor")
            .arg("0")
            .arg(&run.path)
            .args(["touch", marker.to_str().unwrap()])
            .status()
            .unwrap()
    }

    /// A run a restarted agent claimed never starts its command, and a started one cannot be
    /// claimed.
    #[test]
    fn a_claimed_run_never_starts_its_command() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(dir.path());
        let claimed = meta.executor("claimed");
        std::fs::create_dir_all(&claimed.path).unwrap();
        assert!(claimed.claim_unstarted().unwrap());
        let marker = dir.path().join("ran-claimed");
        assert_eq!(supervise(&claimed, &marker).code(), Some(125));
        assert!(!marker.exists(), "a claimed run ran its command");
        assert_eq!(claimed.live_pid(), None);
        // Unclaimed, it runs; a later claim finds it started.
        let free = meta.executor("free");
        let marker = dir.path().join("ran-free");
        assert!(supervise(&free, &marker).success());
        assert!(marker.exists());
        assert!(!free.claim_unstarted().unwrap());
        assert_eq!(free.exit_status(), Some(Termination::Exited(0)));
        assert!(free.pid_recorded());
    }

    /// On a full disk the supervisor cannot record its pid, so it runs nothing and exits 125
    /// leaving no pid: the agent can tell the command never ran.
    #[test]
    fn a_supervisor_that_cannot_record_its_pid_runs_nothing() {
        let disk = keel_testkit::small_disk::SmallDisk::mount(64 * 1024).expect("a tmpfs (root)");
        let meta = MetaDir::new(disk.path());
        let run = meta.executor("full");
        std::fs::create_dir_all(&run.path).unwrap();
        disk.fill().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let marker = outside.path().join("ran");
        assert_eq!(supervise(&run, &marker).code(), Some(125));
        assert!(!marker.exists(), "the command ran");
        assert!(!run.pid_recorded());
    }
}
