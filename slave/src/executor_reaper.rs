//! The executor reaper: executors outlive their agent so that a restarted agent can recover
//! them, but not forever. Each agent run starts one small detached shell
//! ([`REAPER_SCRIPT`]) that waits for the agent process to die, then waits the recovery
//! timeout, then ends (SIGTERM, 5 s, SIGKILL) every executor still checkpointed under the work
//! dir. An agent that comes back in time ends the previous run's reaper before it starts its
//! own, so the executors it recovers live on.
//!
//! One process per agent, checking once a second with shell builtins, costs nothing per
//! executor; its pid is kept in `meta/watchdog.pid`.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::checkpoint::{write_atomic, MetaDir};

/// `$1` the agent's pid, `$2` the recovery timeout in seconds, `$3` the `meta/executors`
/// directory, then the agent's cgroup directories. An executor is ended only if its
/// supervisor's command line still names its checkpoint directory (its pid was not reused). A
/// work dir removed meanwhile (an agent decommissioned, a test's temporary dir) names no
/// executor to end. Last, the agent's cgroups go: each container's once its processes are
/// gone, then the agent's own (a cgroup with processes left refuses `rmdir` and stays).
pub const REAPER_SCRIPT: &str = r#"agent=$1; timeout=$2; dir=$3; shift 3
while [ -e /proc/$agent/exe ]; do sleep 1; done
while [ "$timeout" -gt 0 ] && [ -d "$dir" ]; do sleep 1; timeout=$((timeout - 1)); done
if [ -d "$dir" ]; then
  for signal in TERM KILL; do
    for d in "$dir"/*; do
      pid=$(cat "$d/pid" 2>/dev/null) || continue
      case " $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)" in
        *" $d "*) kill -$signal -$pid 2>/dev/null ;;
      esac
    done
    [ $signal = TERM ] && sleep 5
  done
fi
for attempt in 1 2 3 4 5; do
  left=0
  for cgroup in "$@"; do
    [ -d "$cgroup" ] || continue
    for container in "$cgroup"/*/; do
      [ -d "$container" ] && { rmdir "$container" 2>/dev/null || left=1; }
    done
    rmdir "$cgroup" 2>/dev/null || left=1
  done
  [ $left = 0 ] && exit 0
  sleep 1
done"#;

/// The word the reaper's command line carries (its `$0`), to recognise it again; kept as
/// agents already in the field name it, so that a new agent recognises an older one's reaper.
const NAME: &str = "keel-executor-watchdog";

/// This agent run's reaper.
#[derive(Debug)]
pub struct Reaper {
    child: std::process::Child,
    pid_file: std::path::PathBuf,
}

impl Reaper {
    /// Its OS pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends it (the agent stops cleanly and ends its executors itself).
    pub fn stop(mut self) {
        // SAFETY: killpg(2) on the group the reaper leads (its `sleep` too).
        unsafe {
            libc::killpg(self.child.id() as libc::pid_t, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.pid_file);
    }
}

/// Ends the reaper of an earlier run of the agent (it came back in time), then starts this
/// run's, which ends the executors `timeout` after this process dies and then removes
/// `cgroups` (the agent's cgroup directories).
pub fn start(
    meta: &MetaDir,
    timeout: Duration,
    cgroups: &[std::path::PathBuf],
) -> std::io::Result<Reaper> {
    stop_previous(meta);
    let executors = meta.executors();
    std::fs::create_dir_all(&executors)?;
    let child = Command::new("/bin/sh")
        .arg("-c")
        .arg(REAPER_SCRIPT)
        .arg(NAME)
        .arg(std::process::id().to_string())
        .arg(timeout.as_secs().max(1).to_string())
        .arg(&executors)
        .args(cgroups)
        // Nothing of the agent's: a test harness reading the agent's output must not wait for
        // the reaper, and a signal to the agent's group must not reach it.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    let reaper = Reaper {
        child,
        pid_file: meta.reaper_pid(),
    };
    write_atomic(&reaper.pid_file, pid.to_string().as_bytes()).map_err(std::io::Error::other)?;
    tracing::info!(
        pid,
        timeout_secs = timeout.as_secs(),
        "executor reaper started"
    );
    Ok(reaper)
}

/// Ends the reaper named in `meta/watchdog.pid`, if that process is one (an earlier run's,
/// orphaned when that run died).
pub fn stop_previous(meta: &MetaDir) {
    let path = meta.reaper_pid();
    let Some(pid) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    if is_reaper(pid, &meta.executors()) {
        // SAFETY: killpg(2) on the group the reaper leads (its `sleep` too).
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
        tracing::info!(pid, "ended the executor reaper of the agent's earlier run");
    }
    let _ = std::fs::remove_file(path);
}

fn is_reaper(pid: i32, executors: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&NAME.as_bytes()) && args.contains(&executors.as_os_str().as_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaper_is_recognised_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaDir::new(dir.path());
        let first = start(&meta, Duration::from_secs(600), &[]).unwrap();
        let pid = first.pid() as i32;
        // Right after the spawn the kernel may not show its command line yet.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !is_reaper(pid, &meta.executors()) {
            assert!(std::time::Instant::now() < deadline, "reaper not seen");
            std::thread::yield_now();
        }
        assert!(!is_reaper(pid, Path::new("/elsewhere")));
        // Its agent "died" (the handle is lost): the next start ends it.
        std::mem::forget(first);
        let second = start(&meta, Duration::from_secs(600), &[]).unwrap();
        // kill(2) returns before the target is gone: wait for it (it is this test's child, never
        // reaped), which also tells how it ended.
        let mut status = 0;
        // SAFETY: waitpid(2) on this process's own unreaped child, with a valid status pointer.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL,
            "the first one was ended by the second start (status {status:#x})"
        );
        assert!(meta.reaper_pid().exists());
        second.stop();
        assert!(!meta.reaper_pid().exists());
    }
}
