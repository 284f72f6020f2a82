//! Links: a supervisor on one node hears `exited` when a worker on another node terminates,
//! and again when a whole node goes away (libprocess's `link` and `ExitedEvent`).
//!
//! ```text
//! cargo run -p libactor --example links
//! ```

use libactor::{Context, Node, Process, Upid};
use tokio::sync::mpsc;

/// Does nothing; exists to be watched.
struct Worker;

impl Process for Worker {}

/// Links to every worker it is given and reports each one that ends.
struct Supervisor {
    workers: Vec<Upid>,
    ended: mpsc::UnboundedSender<Upid>,
}

impl Process for Supervisor {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        for worker in &self.workers {
            ctx.link(worker);
        }
    }

    fn exited(&mut self, _ctx: &mut Context<Self>, pid: &Upid) {
        let _ = self.ended.send(pid.clone());
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (here, there) = (Node::builder().start()?, Node::builder().start()?);
    let first = there.spawn("worker(1)", Worker)?;
    let second = there.spawn("worker(2)", Worker)?;
    let (tx, mut ended) = mpsc::unbounded_channel();
    here.spawn(
        "supervisor",
        Supervisor {
            workers: vec![first.clone(), second.clone()],
            ended: tx,
        },
    )?;
    // A process terminating while its node stays up is reported...
    there.terminate(&first);
    println!("exited: {}", ended.recv().await.expect("an exit"));
    // ...and so is every process of a node that goes away.
    there.shutdown().await;
    println!("exited: {}", ended.recv().await.expect("an exit"));
    here.shutdown().await;
    Ok(())
}
