//! A bare libactor node as a separate OS process (the `actor-node` test binary), for tests of
//! the wire between processes that share nothing.

use std::process::Stdio;
use std::time::Duration;

use libactor::Upid;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::pid_line::read_pid_line;
use tokio::process::{Child, Command};

/// How long a child node may take to print its address.
pub const CHILD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A libactor node running as a separate OS process (the `actor-node` binary), with an `echo`
/// process that answers Pings with Pongs and Notes with Notes.
pub struct ChildNode {
    child: Child,
    echo: Upid,
}

impl ChildNode {
    /// Starts `binary` and waits for it to print `READY <echo pid>`.
    pub async fn start(binary: &str) -> anyhow::Result<ChildNode> {
        let mut child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("child has no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let pid = read_pid_line(&mut lines, Some("READY"), CHILD_START_TIMEOUT).await?;
        Ok(ChildNode {
            echo: pid.parse()?,
            child,
        })
    }

    /// The child's echo process.
    pub fn echo_pid(&self) -> &Upid {
        &self.echo
    }

    /// The child's OS process id.
    pub fn os_pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the child with SIGKILL: no chance to close its sockets gracefully.
    pub fn kill(&self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
    }

    /// Waits for the child to exit.
    pub async fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait().await
    }
}
