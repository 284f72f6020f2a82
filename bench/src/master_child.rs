//! The `keel-master` binary beside `keel-bench`, run as a child process so that its memory and
//! CPU are measured alone, and followed through its stdout (`master <pid>`, `leading …`).

use std::process::Stdio;

use anyhow::{bail, Context as _};
use keel_testkit::pid_line::read_pid_line;
use libactor::Upid;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::phase::PHASE_TIMEOUT;

/// The `keel-master` binary next to this one, started on a free port.
pub struct MasterChild {
    child: tokio::process::Child,
    /// The master's pid.
    pub pid: Upid,
}

/// A master's stdout after its first line.
pub type MasterOutput = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

impl MasterChild {
    /// Starts a master with no extra flags.
    pub async fn start() -> anyhow::Result<MasterChild> {
        MasterChild::start_draining(&[]).await
    }

    /// Starts a master with extra flags, reading its later stdout lines away (a master whose
    /// stdout nobody reads would fill the pipe).
    pub async fn start_draining(flags: &[&str]) -> anyhow::Result<MasterChild> {
        let (master, mut lines) = MasterChild::start_with(flags).await?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(master)
    }

    /// Starts a master with extra flags; returns it and the rest of its stdout. Without
    /// `--tls-dir` among them it runs `--insecure`.
    pub async fn start_with(flags: &[&str]) -> anyhow::Result<(MasterChild, MasterOutput)> {
        let binary = std::env::current_exe()?.with_file_name("keel-master");
        let secure = flags.contains(&"--tls-dir");
        let mut child = tokio::process::Command::new(&binary)
            .args(["--port", "0"])
            .args(flags)
            .env("KEEL_INSECURE", (!secure).to_string())
            .env(
                "RUST_LOG",
                std::env::var("KEEL_MASTER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("master stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let pid = read_pid_line(&mut lines, Some("master"), PHASE_TIMEOUT)
            .await?
            .parse()?;
        Ok((MasterChild { child, pid }, lines))
    }

    /// Kills the master with SIGKILL: no goodbye to ZooKeeper or its agents.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.start_kill()
    }

    /// The master's resident memory, bytes.
    pub fn rss_bytes(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }
}

/// Reads a master's stdout until a line starting with `prefix`.
pub async fn wait_for_line(lines: &mut MasterOutput, prefix: &str) -> anyhow::Result<String> {
    tokio::time::timeout(PHASE_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
        bail!("the master exited before printing {prefix:?}")
    })
    .await
    .with_context(|| format!("no {prefix:?} line from the master"))?
}
