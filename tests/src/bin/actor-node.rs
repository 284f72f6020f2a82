//! A libactor node with one `echo` process, for tests that need a node in another OS process.
//! Prints `READY <echo pid>` once listening, then runs until its standard input closes.

use libactor::{Context, Node, Process, Upid};
use protos::libactor::examples::{Note, Ping, Pong};
use tokio::io::AsyncReadExt;

/// Answers Pings with Pongs and echoes Notes back to their sender.
struct Echo;

impl Process for Echo {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |_: &mut Echo, ctx: &mut Context<Echo>, from: Upid, p: Ping| {
                ctx.send(
                    &from,
                    Pong {
                        seq: p.seq,
                        payload: p.payload,
                    },
                );
            },
        );
        ctx.install(
            |_: &mut Echo, ctx: &mut Context<Echo>, from: Upid, n: Note| {
                ctx.send(&from, n);
            },
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let node = Node::builder().start()?;
    let echo = node.spawn("echo", Echo)?;
    println!("READY {echo}");
    let mut sink = Vec::new();
    tokio::io::stdin().read_to_end(&mut sink).await?;
    node.shutdown().await;
    Ok(())
}
