//! `keel-bench flood`: `/master/health` latency while thousands of connections that never
//! finish a handshake are held against the master, beside the same requests with none held, in
//! the same run.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use libactor::http_client::request;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::master_child::MasterChild;

/// Holds `connections` idle connections against a fresh master (nine in ten silent, one in
/// ten having sent only the actor protocol's preamble) and times `requests` sequential
/// `GET /master/health`s, before and during.
pub async fn run(connections: usize, requests: usize) -> anyhow::Result<()> {
    let limit = keel_testkit::fd_limit::raise_fd_limit();
    let connections = connections.min(limit.saturating_sub(256) as usize);
    let master = MasterChild::start().await?;
    let address = master.pid.address().to_owned();
    let quiet = health_latencies(&address, requests).await?;

    let start = Instant::now();
    let mut held = Vec::with_capacity(connections);
    for i in 0..connections {
        let mut stream = TcpStream::connect(&address)
            .await
            .with_context(|| format!("connection {i}"))?;
        if i % 10 == 0 {
            let _ = stream.write_all(b"\0KEEL\x02").await;
        }
        held.push(stream);
    }
    let opened = start.elapsed();
    let flooded = health_latencies(&address, requests).await?;
    let metrics = libactor::http_client::get_json(&address, "/metrics/snapshot").await?;
    println!(
        "flood: {connections} idle connections opened in {opened:.2?} (open-file limit {limit}); master evicted {} of them, holds {} pending",
        metrics["libactor/transport/pending_evicted"], metrics["libactor/transport/pending_connections"]
    );
    report("health, quiet", &quiet);
    report("health, flooded", &flooded);
    println!(
        "flooded / quiet median = {:.2}",
        median(&flooded).as_secs_f64() / median(&quiet).as_secs_f64()
    );
    drop(held);
    Ok(())
}

/// Times `n` sequential `GET /master/health`s, each on a new connection (as a load balancer's
/// check would).
async fn health_latencies(address: &str, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let reply = request(address, "GET", "/master/health", &[], Default::default()).await?;
        anyhow::ensure!(reply.status == 200, "health answered {}", reply.status);
        took.push(start.elapsed());
    }
    took.sort();
    Ok(took)
}

fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn report(what: &str, sorted: &[Duration]) {
    let p99 = sorted
        .get(sorted.len() * 99 / 100)
        .copied()
        .unwrap_or_default();
    let max = sorted.last().copied().unwrap_or_default();
    println!(
        "{what}: median {:.2?}, p99 {p99:.2?}, max {max:.2?} over {} requests",
        median(sorted),
        sorted.len()
    );
}
