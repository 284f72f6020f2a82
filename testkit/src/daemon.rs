//! A Keel binary (`keel-master`, `keel-slave`, …) run as a daemon by a test: started with its
//! arguments, ready once it prints its first stdout line `<word> <pid>`, stopped with SIGTERM
//! as an operator would, or SIGKILLed as a crash would; killed when dropped.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

use crate::pid_line::read_pid_line;

/// How long a daemon may take to start, or to stop after SIGTERM.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);

/// A running daemon binary.
pub struct Daemon {
    child: tokio::process::Child,
    /// The binary, for messages.
    binary: String,
    /// The rest of its stdout, for lines it prints later (`leading <pid>`, …).
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl Daemon {
    /// Starts `binary` with `args` and waits for its first stdout line, `<word> <pid>`;
    /// returns the daemon and the pid's text. Without `--tls-dir` among `args` the daemon runs
    /// `--insecure` (through `KEEL_INSECURE`): tests about security give it TLS. Its stderr is
    /// dropped unless `KEEL_TEST_DAEMON_STDERR` is set (then it is the test's, to debug).
    pub async fn start(binary: &str, args: &[&str]) -> (Daemon, String) {
        let insecure = !args.contains(&"--tls-dir");
        let mut child = tokio::process::Command::new(binary)
            .args(args)
            .env("KEEL_INSECURE", if insecure { "true" } else { "false" })
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("KEEL_TEST_DAEMON_STDERR").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout).lines();
        let pid = read_pid_line(&mut stdout, None, DAEMON_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{binary} did not start: {e}"));
        (
            Daemon {
                child,
                stdout,
                binary: binary.to_owned(),
            },
            pid,
        )
    }

    /// The OS process id.
    pub fn os_pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits (bounded) for the next stdout line that starts with `word`; returns the line.
    pub async fn line_starting(&mut self, word: &str, within: Duration) -> String {
        tokio::time::timeout(within, async {
            loop {
                match self.stdout.next_line().await {
                    Ok(Some(line)) if line.starts_with(word) => return line,
                    Ok(Some(_)) => continue,
                    other => panic!("stdout ended before a `{word}` line: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{word}` line within {within:?}"))
    }

    /// Sends `signal` (SIGSTOP to freeze it, SIGCONT to resume, …).
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on a child this test spawned and has not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Whether the daemon has exited (on its own or by a signal), without waiting.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (bounded) for the daemon to exit on its own; returns its exit code.
    pub async fn exited(&mut self, within: Duration) -> Option<i32> {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the daemon exits in time")
            .expect("wait for the daemon");
        status.code()
    }

    /// Stops the daemon as an operator would (SIGTERM), so that an agent cleans up its
    /// containers and cgroups; panics if it has not exited after [`DAEMON_TIMEOUT`].
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on a child this test spawned and has not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let pid = self.child.id();
        let exited = tokio::time::timeout(DAEMON_TIMEOUT, self.child.wait()).await;
        assert!(
            exited.is_ok(),
            "{} did not stop within {DAEMON_TIMEOUT:?} of SIGTERM; its threads: {}",
            self.binary,
            pid.map(threads_waiting).unwrap_or_default()
        );
    }

    /// Kills the daemon with SIGKILL (a crash) and reaps it.
    pub async fn crash(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(DAEMON_TIMEOUT, self.child.wait()).await;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What each thread of process `pid` waits in (`/proc/<pid>/task/*/{comm,wchan}`), to tell a
/// hung daemon's story.
fn threads_waiting(pid: u32) -> String {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return "gone".into();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let read = |name: &str| {
            std::fs::read_to_string(task.path().join(name))
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        out.push(format!("{}:{}", read("comm"), read("wchan")));
    }
    out.join(", ")
}
