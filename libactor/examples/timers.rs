//! Timers on the pausable clock: a process that retries with backoff, driven by a test-style
//! paused clock so that minutes of backoff pass in no time.
//!
//! ```text
//! cargo run -p libactor --example timers
//! ```

use std::time::Duration;

use libactor::{Clock, Context, Node, Process};
use tokio::sync::mpsc;

/// Tries every `backoff`, doubling it each time (as agents register with a master).
struct Retrier {
    backoff: Duration,
    tries: mpsc::UnboundedSender<Duration>,
}

impl Retrier {
    fn attempt(&mut self, ctx: &mut Context<Self>) {
        let _ = self.tries.send(self.backoff);
        self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
        // Re-armed from the clock's time now: one advance fires it at most once.
        ctx.delay(self.backoff, |r: &mut Retrier, ctx| r.attempt(ctx));
    }
}

impl Process for Retrier {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        self.attempt(ctx);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clock = Clock::paused();
    let node = Node::builder().clock(clock.clone()).start()?;
    let (tx, mut tries) = mpsc::unbounded_channel();
    node.spawn(
        "retrier",
        Retrier {
            backoff: Duration::from_secs(1),
            tries: tx,
        },
    )?;
    let mut elapsed = Duration::ZERO;
    for _ in 0..8 {
        let backoff = tries.recv().await.expect("a try");
        // The try is reported before its handler re-arms the timer: settle until it has.
        clock.settle().await?;
        let step = (backoff * 2).min(Duration::from_secs(60));
        println!("try after {elapsed:?} on the paused clock (next in {step:?})");
        clock.advance(step);
        elapsed += step;
    }
    node.shutdown().await;
    Ok(())
}
