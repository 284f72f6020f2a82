//! Pid records of the manifest processes an application manager runs, so that what it started
//! never outlives it unnoticed. An agent killed with SIGKILL (or crashed) leaves its manifest's
//! processes running; the next application manager on the same work dir, and the repair
//! driver before a Reboot, Reimage or Replace, stop them with [`stop_leftovers`], as a
//! machine's reboot would.
//!
//! Each process runs in its own process group (its pid is the group's id), and a record holds
//! the pid with the process's start time from `/proc/<pid>/stat`: a pid the kernel has since
//! given to another process is recognised and left alone.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Records kept at most (one per manifest process; more are ignored when stopping).
const MAX_RECORDS: usize = 1024;

/// Where the records of `work_dir`'s manifest processes live.
pub fn records_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("manifests").join("pids")
}

fn record_file(work_dir: &Path, name: &str) -> PathBuf {
    records_dir(work_dir).join(format!("{name}.pid"))
}

/// When `pid` started, in clock ticks since boot (field 22 of `/proc/<pid>/stat`); `None` once
/// it is gone.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Records that the process `name` of the active manifest runs as `pid` (its own group).
pub(crate) fn record(work_dir: &Path, name: &str, pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    let started = start_time(pid).ok_or_else(|| std::io::Error::other("process gone"))?;
    std::fs::create_dir_all(records_dir(work_dir))?;
    std::fs::write(record_file(work_dir, name), format!("{pid} {started}\n"))
}

/// Drops the record of `name` if it still names `pid` (a restart may have replaced it).
pub(crate) fn forget(work_dir: &Path, name: &str, pid: u32) {
    let path = record_file(work_dir, name);
    if read_record(&path).is_some_and(|(p, _)| i64::from(p) == i64::from(pid)) {
        let _ = std::fs::remove_file(path);
    }
}

fn read_record(path: &Path) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (pid, started) = text.trim().split_once(' ')?;
    let pid: i32 = pid.parse().ok()?;
    (pid > 1).then_some(())?;
    Some((pid, started.parse().ok()?))
}

/// Sends `signal` to the process group `pid` leads.
fn signal_group(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved. The
    // group was checked to be the recorded process's own (same start time) just before.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Waits until `pid` exits, at most `within`; whether it did. Uses a pidfd (readable once the
/// process exits), as the process is not this one's child and cannot be waited for.
async fn exited_within(pid: i32, within: Duration) -> bool {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(fd) = i32::try_from(fd) else {
        return start_time(pid).is_none();
    };
    if fd < 0 {
        // ESRCH: gone already.
        return start_time(pid).is_none();
    }
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the `OwnedFd` keeps the descriptor open, and the same, for as long as the
    // `AsyncFd` that owns it lives.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    };
    let Ok(fd) = registered else {
        return start_time(pid).is_none();
    };
    tokio::time::timeout(within, fd.readable()).await.is_ok()
}

/// Stops the manifest processes a previous application manager on `work_dir` left running:
/// SIGTERM to each one's process group, SIGKILL after `grace`. Records of processes that are
/// gone, or whose pid now belongs to another process, are dropped. Returns how many processes
/// were stopped.
pub async fn stop_leftovers(work_dir: &Path, grace: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(records_dir(work_dir)) else {
        return 0;
    };
    let mut stopped = 0;
    for entry in entries.flatten().take(MAX_RECORDS) {
        let path = entry.path();
        if let Some((pid, started)) = read_record(&path) {
            if start_time(pid) == Some(started) {
                tracing::warn!(pid, record = %path.display(), "stopping a manifest process left running by a previous agent");
                signal_group(pid, libc::SIGTERM);
                if !exited_within(pid, grace).await && start_time(pid) == Some(started) {
                    signal_group(pid, libc::SIGKILL);
                }
                stopped += 1;
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn spawn_group(script: &str) -> std::process::Child {
        std::process::Command::new("sh")
            .args(["-c", script])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("sh starts")
    }

    #[tokio::test]
    async fn a_recorded_process_and_its_children_are_stopped() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        // The shell's child would survive a signal to the shell alone.
        let mut child = spawn_group("sleep 600 & echo $!; wait");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let grandchild: i32 = line.trim().parse().unwrap();
        record(dir.path(), "app", child.id()).unwrap();
        assert_eq!(stop_leftovers(dir.path(), Duration::from_secs(5)).await, 1);
        let status = child.wait().unwrap();
        assert!(!status.success(), "stopped by a signal: {status:?}");
        assert!(
            exited_within(grandchild, Duration::from_secs(5)).await,
            "the group's sleep was stopped too"
        );
        assert!(std::fs::read_dir(records_dir(dir.path()))
            .unwrap()
            .next()
            .is_none());
    }

    #[tokio::test]
    async fn a_record_whose_pid_is_now_another_process_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_group("exec sleep 600");
        let pid = child.id() as i32;
        let started = start_time(pid).unwrap();
        std::fs::create_dir_all(records_dir(dir.path())).unwrap();
        std::fs::write(
            record_file(dir.path(), "app"),
            format!("{pid} {}\n", started + 1),
        )
        .unwrap();
        assert_eq!(stop_leftovers(dir.path(), Duration::from_secs(1)).await, 0);
        assert!(child.try_wait().unwrap().is_none(), "still running");
        assert!(
            !record_file(dir.path(), "app").exists(),
            "the stale record is dropped"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn forgetting_keeps_a_record_of_a_newer_pid() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), "app", std::process::id()).unwrap();
        forget(dir.path(), "app", std::process::id() + 1);
        assert!(record_file(dir.path(), "app").exists());
        forget(dir.path(), "app", std::process::id());
        assert!(!record_file(dir.path(), "app").exists());
    }
}
