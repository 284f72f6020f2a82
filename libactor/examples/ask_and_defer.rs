//! `ask` and `defer`: a process answers a request after blocking work done off its thread
//! (`spawn_blocking`, back through `defer`), while it keeps handling other messages; the asker
//! awaits the reply with a timeout, and an ask to a process that is not there fails at once.
//!
//! ```text
//! cargo run -p libactor --example ask_and_defer
//! ```

use std::time::Duration;

use libactor::{Context, Node, Process, Upid};
use protos::libactor::examples::{Ping, Pong};

/// Answers each Ping once a (pretend) slow computation on the blocking pool is done.
struct Slow;

impl Process for Slow {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(|_: &mut Slow, ctx, from: Upid, ping: Ping| {
            let work = tokio::task::spawn_blocking(move || ping.seq * 2);
            ctx.defer(work, move |_: &mut Slow, ctx, doubled| {
                let seq = doubled.unwrap_or_default();
                ctx.send(
                    &from,
                    Pong {
                        seq,
                        payload: Default::default(),
                    },
                );
            });
        });
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let node = Node::builder().start()?;
    let slow = node.spawn("slow", Slow)?;
    let ping = Ping {
        seq: 21,
        payload: Default::default(),
    };
    let pong: Pong = node
        .ask(&slow, ping.clone(), Duration::from_secs(5))
        .await?;
    println!("asked 21, got {}", pong.seq);
    let missing = node.pid("missing")?;
    let err = node
        .ask::<Ping, Pong>(&missing, ping, Duration::from_secs(5))
        .await
        .unwrap_err();
    println!("asked a missing process: {err}");
    node.shutdown().await;
    Ok(())
}
