//! Two libactor nodes on 127.0.0.1 exchanging Ping/Pong over TCP, printing each round trip.
//!
//! ```text
//! cargo run --release -p libactor --example ping_pong -- [ROUNDS]
//! ```

use std::time::{Duration, Instant};

use libactor::{Context, Node, Process, Upid};
use protos::libactor::examples::{Ping, Pong};
use tokio::sync::mpsc;

/// Answers every Ping with a Pong carrying the same sequence number.
struct Ponger;

impl Process for Ponger {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |_: &mut Ponger, ctx: &mut Context<Ponger>, from: Upid, ping: Ping| {
                ctx.send(
                    &from,
                    Pong {
                        seq: ping.seq,
                        payload: ping.payload,
                    },
                );
            },
        );
    }
}

/// Sends Pings to the ponger one at a time and reports each round trip.
struct Pinger {
    ponger: Upid,
    rounds: u64,
    sent_at: Instant,
    report: mpsc::UnboundedSender<(u64, Duration)>,
}

impl Pinger {
    fn pong(&mut self, ctx: &mut Context<Self>, _from: Upid, pong: Pong) {
        let _ = self.report.send((pong.seq, self.sent_at.elapsed()));
        if pong.seq < self.rounds {
            self.ping(ctx, pong.seq + 1);
        } else {
            ctx.terminate();
        }
    }

    fn ping(&mut self, ctx: &mut Context<Self>, seq: u64) {
        self.sent_at = Instant::now();
        ctx.send(
            &self.ponger,
            Ping {
                seq,
                payload: vec![0u8; 100].into(),
            },
        );
    }
}

impl Process for Pinger {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::pong);
        self.ping(ctx, 1);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|e| anyhow::anyhow!("ROUNDS must be a number: {e}"))?,
        None => 10,
    };
    let a = Node::builder().start()?;
    let b = Node::builder().start()?;
    let ponger = b.spawn("ponger", Ponger)?;
    println!(
        "node A listens on {}, node B on {}",
        a.address(),
        b.address()
    );
    println!("ponger is {ponger}");

    let (report, mut reports) = mpsc::unbounded_channel();
    let pinger = a.spawn(
        "pinger",
        Pinger {
            ponger,
            rounds,
            sent_at: Instant::now(),
            report,
        },
    )?;
    let mut total = Duration::ZERO;
    let mut samples = Vec::new();
    while let Some((seq, rtt)) = reports.recv().await {
        if rounds <= 20 || seq % (rounds / 10) == 0 {
            println!(
                "pong {seq:>6} from B: round trip {:>8.1} µs",
                rtt.as_secs_f64() * 1e6
            );
        }
        total += rtt;
        samples.push(rtt);
        if seq == rounds {
            break;
        }
    }
    a.wait(&pinger).await;
    samples.sort();
    let median = samples[samples.len() / 2];
    println!(
        "{rounds} round trips over TCP: mean {:.1} µs, median {:.1} µs",
        total.as_secs_f64() * 1e6 / rounds as f64,
        median.as_secs_f64() * 1e6
    );
    let snapshot = a.metrics().snapshot();
    println!(
        "node A metrics: {} frames sent in {} socket writes, {} received",
        snapshot["libactor/transport/frames_sent"],
        snapshot["libactor/transport/write_batches"],
        snapshot["libactor/messages_received"]
    );
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}
