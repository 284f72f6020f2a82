//! A task's OS process, as the command executor runs it: `sh -c COMMAND` (or an argv) in the
//! task's sandbox directory, stdout and stderr captured to files there, in a process group of
//! its own so that a kill reaches everything it started.
//!
//! Killing follows Mesos: SIGTERM to the group, the task's grace period on the agent's clock,
//! then SIGKILL to the group.
//!
//! A checkpointed executor runs under a small supervisor shell ([`SUPERVISOR_SCRIPT`]) that
//! leads the group, writes its pid into the executor's checkpoint directory, runs the command
//! as its child and writes the command's exit status there when it ends. The executor is then
//! no child that dies with the agent: a restarted agent [adopts](TaskProcess::adopt) it, hears
//! of its end through a pidfd and reads how it ended from that file.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use libactor::Clock;
use protos::v1::CommandInfo;

use crate::checkpoint::ExecutorDir;
use crate::run_as::RunAs;

/// Joins the cgroups named by its arguments, then runs the rest: `$1` is how many
/// `cgroup.procs` files follow, then the program and its arguments. Exit 125 if a join fails.
const JOIN_SCRIPT: &str = r#"n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done
exec "$@""#;

/// The supervisor of a checkpointed executor: `$1` is how many `cgroup.procs` files follow
/// `$2`, the checkpoint directory; then the program and its arguments. It records its pid
/// (creating the file, never overwriting it: a restarted agent that found no pid file has
/// claimed the run, and the supervisor then exits 125 without running anything),
/// joins the cgroups, runs the program as its child and records the program's exit status
/// (a shell status: 128 + N for signal N), then ends the way the program did, so that an agent
/// waiting on it sees the program's own termination.
///
/// SIGTERM to the group reaches the program; the supervisor only notes it (`trap :`) and keeps
/// waiting, so the status is still written. The trap is set only once the program is started:
/// a shell's child keeps its parent's trap until it execs, so a SIGTERM landing in between (a
/// kill right after the launch) would be caught by the child and lost, and the kill would wait
/// out its whole grace period. A SIGTERM before the trap ends the supervisor, and the program with it
/// (there is then no status to find, as after a SIGKILL to the group, which ends both).
pub const SUPERVISOR_SCRIPT: &str = r#"n=$1; dir=$2; shift 2
set -C; echo $$ > "$dir/pid" || exit 125; set +C
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done
"$@" &
child=$!
trap : TERM
while :; do
  wait $child; st=$?
  [ $st -gt 128 ] && kill -0 $child 2>/dev/null || break
done
echo $st > "$dir/exit_status"
if [ $st -gt 128 ]; then trap - TERM; kill -$((st - 128)) $$; fi
exit $st"#;

/// Default kill grace period (Mesos's command executor: 3 s).
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);

/// Why a task process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The command is empty.
    #[error("task has no command to run")]
    EmptyCommand,
    /// The sandbox or its output files could not be created.
    #[error("cannot prepare sandbox {path}: {source}")]
    Sandbox {
        /// The sandbox directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The container's isolation could not be set up.
    #[error("cannot isolate the container: {0}")]
    Isolation(#[from] crate::containerizer::ContainerError),
    /// The agent is stopping and starts no more containers.
    #[error("the agent is stopping")]
    Stopping,
    /// The thread starting the container failed.
    #[error("the launch was aborted: {0}")]
    Aborted(String),
    /// The OS refused to start the process.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// What was started.
        program: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// How a task process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It exited with this status code.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
}

impl Termination {
    /// Whether the task succeeded (exit status 0).
    pub fn success(self) -> bool {
        self == Termination::Exited(0)
    }

    fn from_status(status: std::process::ExitStatus) -> Termination {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Termination::Exited(code),
            (None, Some(signal)) => Termination::Signaled(signal),
            // Neither a code nor a signal: report it as a failure rather than invent one.
            (None, None) => Termination::Exited(-1),
        }
    }
}

impl std::fmt::Display for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Termination::Exited(code) => write!(f, "exited with status {code}"),
            Termination::Signaled(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// How the agent learns that a task process ended.
#[derive(Debug)]
enum Watch {
    /// The agent started it: it is the agent's child.
    Child(tokio::process::Child),
    /// An earlier run of the agent started it: a pidfd says when it ends (none: it had ended
    /// already), its supervisor's status file says how.
    Adopted {
        pidfd: Option<PidFd>,
        checkpoint: ExecutorDir,
    },
}

/// A running task process.
#[derive(Debug)]
pub struct TaskProcess {
    watch: Watch,
    pid: u32,
    sandbox: PathBuf,
    ended: Option<Termination>,
}

impl TaskProcess {
    /// Starts `command` in `sandbox` (created if needed) with `env` added to the environment.
    pub fn spawn(
        command: &CommandInfo,
        sandbox: &Path,
        env: &[(String, String)],
    ) -> Result<TaskProcess, LaunchError> {
        TaskProcess::spawn_joined(command, sandbox, env, Vec::new(), None, None)
    }

    /// Like [`TaskProcess::spawn`], joining the cgroups whose `cgroup.procs` files are
    /// `cgroup_procs` before the command's first instruction, so everything it allocates is
    /// charged there. A tiny `/bin/sh` writes its own pid to each file and then `exec`s the
    /// command: unlike a `pre_exec` hook this lets the agent start it with `posix_spawn`
    /// (no fork of the whole agent), which is what makes launches cheap.
    ///
    /// With `checkpoint`, the process is the [`SUPERVISOR_SCRIPT`] recording its pid and the
    /// command's exit status in that directory (which must exist).
    ///
    /// With `run_as`, the sandbox is given to that user and the command (only it: not the
    /// cgroup join nor the supervisor) runs as that user.
    pub fn spawn_joined(
        command: &CommandInfo,
        sandbox: &Path,
        env: &[(String, String)],
        cgroup_procs: Vec<PathBuf>,
        checkpoint: Option<&Path>,
        run_as: Option<&RunAs>,
    ) -> Result<TaskProcess, LaunchError> {
        if command.value.trim().is_empty() {
            return Err(LaunchError::EmptyCommand);
        }
        let sandbox_err = |source| LaunchError::Sandbox {
            path: sandbox.to_owned(),
            source,
        };
        std::fs::create_dir_all(sandbox).map_err(sandbox_err)?;
        let stdout = std::fs::File::create(sandbox.join("stdout")).map_err(sandbox_err)?;
        let stderr = std::fs::File::create(sandbox.join("stderr")).map_err(sandbox_err)?;
        let mut argv: Vec<&str> = if command.shell.unwrap_or(true) {
            vec!["/bin/sh", "-c", &command.value]
        } else {
            std::iter::once(command.value.as_str())
                .chain(command.arguments.iter().skip(1).map(String::as_str))
                .collect()
        };
        let prefix = run_as.map(RunAs::command_prefix).unwrap_or_default();
        if let Some(user) = run_as {
            user.own(sandbox).map_err(sandbox_err)?;
            argv.splice(0..0, prefix.iter().map(String::as_str));
        }
        let (program, args) = (argv[0], &argv[1..]);
        let mut cmd = if let Some(dir) = checkpoint {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(SUPERVISOR_SCRIPT)
                .arg("keel-executor")
                .arg(cgroup_procs.len().to_string())
                .arg(dir)
                .args(&cgroup_procs)
                .arg(program)
                .args(args);
            cmd
        } else if cgroup_procs.is_empty() {
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args);
            cmd
        } else {
            let mut cmd = tokio::process::Command::new("/bin/sh");
            cmd.arg("-c")
                .arg(JOIN_SCRIPT)
                .arg("keel-join")
                .arg(cgroup_procs.len().to_string())
                .args(&cgroup_procs)
                .arg(program)
                .args(args);
            cmd
        };
        cmd.current_dir(sandbox)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            .kill_on_drop(false);
        for (name, value) in run_as.iter().flat_map(|user| user.env()) {
            cmd.env(name, value);
        }
        for var in command.environment.iter().flat_map(|e| &e.variables) {
            cmd.env(&var.name, &var.value);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: command.value.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or_default();
        Ok(TaskProcess {
            watch: Watch::Child(child),
            pid,
            sandbox: sandbox.to_owned(),
            ended: None,
        })
    }

    /// Takes over the supervised process an earlier run of the agent started, whose checkpoint
    /// directory is `checkpoint`: `pid` if it still runs (see [`ExecutorDir::live_pid`]), or
    /// `None` if it ended while no agent watched; then [`TaskProcess::wait`] reads how it
    /// ended from the supervisor's status file.
    pub fn adopt(pid: Option<u32>, checkpoint: ExecutorDir, sandbox: &Path) -> TaskProcess {
        // A pidfd turns readable when the process ends, child of ours or not (Linux 5.3).
        let pidfd = pid.and_then(|pid| match pidfd_open(pid) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!(pid, error = %e, "cannot watch an adopted executor; taking it as ended");
                None
            }
        });
        TaskProcess {
            pid: if pidfd.is_some() { pid.unwrap_or(0) } else { 0 },
            watch: Watch::Adopted { pidfd, checkpoint },
            sandbox: sandbox.to_owned(),
            ended: None,
        }
    }

    /// The OS process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The sandbox directory, holding `stdout` and `stderr`.
    pub fn sandbox(&self) -> &Path {
        &self.sandbox
    }

    /// Waits for the process to end.
    pub async fn wait(&mut self) -> std::io::Result<Termination> {
        if let Some(t) = self.ended {
            return Ok(t);
        }
        let t = match &mut self.watch {
            Watch::Child(child) => Termination::from_status(child.wait().await?),
            Watch::Adopted { pidfd, checkpoint } => {
                if let Some(fd) = pidfd.as_mut() {
                    fd.ended().await?;
                }
                let status = checkpoint.exit_status();
                // Gone: nothing to signal any more, whatever the status file says.
                self.pid = 0;
                status.ok_or_else(|| {
                    std::io::Error::other(
                        "the executor ended while the agent was down and left no exit status",
                    )
                })?
            }
        };
        self.ended = Some(t);
        Ok(t)
    }

    /// Sends `signal` to the whole process group.
    pub fn signal_group(&self, signal: i32) {
        if self.ended.is_none() && self.pid > 0 {
            // SAFETY: killpg(2) on the group this process leads; no memory is involved.
            unsafe {
                libc::killpg(self.pid as libc::pid_t, signal);
            }
        }
    }

    /// SIGTERM to the group, up to `grace` on `clock` for the process to end, then SIGKILL.
    pub async fn kill(&mut self, grace: Duration, clock: &Clock) -> std::io::Result<Termination> {
        if let Some(t) = self.ended {
            return Ok(t);
        }
        self.signal_group(libc::SIGTERM);
        match clock.timeout(grace, self.wait()).await {
            Ok(ended) => ended,
            Err(_) => {
                self.signal_group(libc::SIGKILL);
                self.wait().await
            }
        }
    }
}

/// A pidfd, registered with the runtime the first time it is awaited (adoption may happen
/// outside one); kept registered, so that a wait cancelled midway can be resumed.
#[derive(Debug)]
enum PidFd {
    Open(std::os::fd::OwnedFd),
    Registered(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    /// Registration failed; nothing left to wait on.
    Broken,
}

impl PidFd {
    /// Resolves once the process has ended.
    async fn ended(&mut self) -> std::io::Result<()> {
        *self = match std::mem::replace(self, PidFd::Broken) {
            // SAFETY: the AsyncFd owns the descriptor for as long as it is registered.
            PidFd::Open(fd) => PidFd::Registered(unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            }?),
            other => other,
        };
        match self {
            PidFd::Registered(fd) => fd.readable().await.map(|_| ()),
            _ => Err(std::io::Error::other("pidfd not registered")),
        }
    }
}

/// `pidfd_open(2)`: a descriptor that turns readable when process `pid` ends.
fn pidfd_open(pid: u32) -> std::io::Result<PidFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is owned by nothing else.
    Ok(PidFd::Open(unsafe {
        std::os::fd::OwnedFd::from_raw_fd(fd as i32)
    }))
}

impl Drop for TaskProcess {
    /// A task process never outlives its handle by accident: whatever is left of the group is
    /// killed.
    fn drop(&mut self) {
        self.signal_group(libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::SUPERVISOR_SCRIPT;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::time::{Duration, Instant};

    /// A SIGTERM to the group as soon as the supervisor has started (a kill right after the
    /// launch) ends the program whenever it lands: before the supervisor's trap, between the
    /// trap and the program's start, or after.
    #[test]
    fn a_term_right_after_the_start_ends_the_program() {
        for round in 0..100 {
            let dir = tempfile::tempdir().unwrap();
            let mut child = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(SUPERVISOR_SCRIPT)
                .arg("supervisor")
                .arg("0")
                .arg(dir.path())
                .args(["sleep", "1000"])
                .process_group(0)
                .spawn()
                .unwrap();
            let group = child.id() as libc::pid_t;
            // The pid file is the supervisor's first act; the signal follows it at once.
            let started = Instant::now();
            while !dir.path().join("pid").exists() {
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the supervisor started"
                );
                std::thread::yield_now();
            }
            // SAFETY: kill(2) on the process group this test just made.
            unsafe { libc::kill(-group, libc::SIGTERM) };
            let (tx, rx) = std::sync::mpsc::channel();
            let waiter = std::thread::spawn(move || {
                let _ = tx.send(child.wait());
            });
            let ended = rx.recv_timeout(Duration::from_secs(10));
            if ended.is_err() {
                // SAFETY: as above.
                unsafe { libc::kill(-group, libc::SIGKILL) };
            }
            waiter.join().unwrap();
            let status = ended
                .unwrap_or_else(|_| panic!("round {round}: the program outlived a SIGTERM"))
                .unwrap();
            assert_eq!(status.signal(), Some(libc::SIGTERM), "round {round}");
        }
    }
}
