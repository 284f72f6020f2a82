//! Running an outside program with a time limit and a bound on what is kept of its output:
//! custom watchdogs and the `command` repair driver both do.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

/// Why a program gave no exit status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// It could not be started.
    #[error("did not start: {0}")]
    Start(std::io::Error),
    /// Waiting for it failed.
    #[error("failed: {0}")]
    Wait(std::io::Error),
    /// It ran past its time limit and was killed.
    #[error("hung; killed after {0:?}")]
    Hung(Duration),
}

/// Runs `command` (stdin and stderr closed, stdout captured) for at most `timeout`, killing it
/// then; returns its exit status and the first `max_output` bytes of its trimmed stdout.
pub async fn run_bounded(
    mut command: tokio::process::Command,
    timeout: Duration,
    max_output: usize,
) -> Result<(ExitStatus, String), RunError> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(RunError::Start)?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| RunError::Hung(timeout))?
        .map_err(RunError::Wait)?;
    let text =
        crate::bounded_text::bounded(String::from_utf8_lossy(&output.stdout).trim(), max_output);
    Ok((output.status, text))
}
