//! A benchmark's phases: each waits for a condition the run's counters show, bounded so that a
//! stuck run fails instead of hanging.

use std::time::{Duration, Instant};

use anyhow::bail;

/// Longest any phase may take before the run gives up.
pub const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// Returns how long it took until `done` held, checking every millisecond; fails naming
/// `what` after [`PHASE_TIMEOUT`].
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > PHASE_TIMEOUT {
            bail!("{what} did not happen within {PHASE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}
