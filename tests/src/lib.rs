//! Helpers for Keel's cross-crate integration tests: start libactor nodes as separate OS
//! processes and talk to them over real TCP on 127.0.0.1, and drive a framework by hand
//! against a real cluster ([`recording_scheduler`]).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let child = keel_tests::ChildNode::start("target/debug/actor-node").await?;
//! println!("echo process at {}", child.echo_pid());
//! child.kill();
//! # Ok(()) }
//! ```

pub mod autopilot_daemons;
pub mod cluster;
pub mod daemon;
pub mod eventually;
pub mod leader;
pub mod machines;
pub mod manifests;
pub mod recording_scheduler;
pub mod watchdogs;
/// A real ZooKeeper server per test (it lives in `keel` so that `keel-bench` starts one too).
pub mod zookeeper {
    pub use keel::zookeeper_server::*;
}

use std::process::Stdio;
use std::time::Duration;

use libactor::Upid;
use tokio::io::{AsyncBufReadExt, BufReader};
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
        let line = tokio::time::timeout(CHILD_START_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| {
                anyhow::anyhow!("child node did not start within {CHILD_START_TIMEOUT:?}")
            })??
            .ok_or_else(|| anyhow::anyhow!("child node exited before printing its address"))?;
        let pid = line
            .strip_prefix("READY ")
            .ok_or_else(|| anyhow::anyhow!("unexpected first line from child: {line:?}"))?;
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
