//! Waiting for the operator (Ctrl-C) or the system (SIGTERM) to ask a binary to stop.
//!
//! Once any listener exists, the process no longer dies of SIGTERM, and tokio tells a signal
//! only to the listeners that existed when it came. A daemon that listens in turns (while it
//! stands by, then once it leads) would lose a SIGTERM that came between them, and run on; a
//! daemon listens once, from its start, with [`StopRequests`].

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;

/// Resolves on SIGINT or SIGTERM.
pub async fn terminated() {
    match signal(SignalKind::terminate()) {
        Ok(term) => until_signalled(term).await,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn until_signalled(mut term: Signal) {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Whether the binary was asked to stop, listened for from the moment it is made: every clone
/// hears a request that came at any time after.
#[derive(Debug, Clone)]
pub struct StopRequests(watch::Receiver<bool>);

impl StopRequests {
    /// Starts listening (on the current tokio runtime).
    pub fn listen() -> StopRequests {
        let (asked, requests) = watch::channel(false);
        // Made now, not when first polled: a signal that comes before is not lost.
        let term = signal(SignalKind::terminate());
        tokio::spawn(async move {
            match term {
                Ok(term) => until_signalled(term).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            let _ = asked.send(true);
        });
        StopRequests(requests)
    }

    /// Resolves once a stop was asked (at once if it already was).
    pub async fn requested(&mut self) {
        let _ = self.0.wait_for(|asked| *asked).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_asked_between_two_waits_is_heard_by_the_second() {
        let mut first = StopRequests::listen();
        // The daemon's first wait (standing by) ends without a signal; then SIGTERM comes
        // before its second wait (leading) begins.
        assert!(!*first.0.borrow(), "no stop asked yet");
        // SAFETY: raise(3) on this process, which listens for SIGTERM (it does not die of it).
        unsafe { libc::raise(libc::SIGTERM) };
        tokio::time::timeout(std::time::Duration::from_secs(10), first.requested())
            .await
            .expect("the stop is heard");
        let mut second = first.clone();
        tokio::time::timeout(std::time::Duration::from_secs(10), second.requested())
            .await
            .expect("the later wait hears the stop asked before it began");
    }
}
