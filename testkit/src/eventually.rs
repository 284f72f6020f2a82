//! Waiting for a state no event announces (a master's tables, an agent's task count): check it
//! again every few milliseconds, bounded by [`EVENTUALLY`]; never a fixed sleep.

use std::future::Future;
use std::time::Duration;

/// How long [`eventually`] waits before failing the test.
pub const EVENTUALLY: Duration = Duration::from_secs(30);

/// Returns once `check` yields `Some`, with its value; panics naming `what` after
/// [`EVENTUALLY`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {EVENTUALLY:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
