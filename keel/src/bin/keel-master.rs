//! keel-master: runs the master process and its allocator on one node. Agents and frameworks
//! find it at `master@IP:PORT`.

use anyhow::Context as _;
use clap::Parser;
use keel::local_cluster::fresh_master_id;
use master::master::Master;

#[derive(Debug, Parser)]
#[command(name = "keel-master", version, about = "Run a Keel master.")]
struct Flags {
    /// Address to listen on.
    #[arg(long, env = "KEEL_IP", default_value = "127.0.0.1")]
    ip: std::net::IpAddr,
    /// Port to listen on (0: any free port; the chosen one is printed).
    #[arg(long, env = "KEEL_PORT", default_value_t = 5050)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    keel::logging::init("info");
    let node = libactor::Node::builder()
        .bind(std::net::SocketAddr::new(flags.ip, flags.port))
        .start()
        .with_context(|| format!("listening on {}:{}", flags.ip, flags.port))?;
    let handle = Master::spawn(&node, &fresh_master_id())?;
    // The first stdout line says where the master is, for scripts and tests.
    println!("master {}", handle.master.pid());
    tracing::info!(pid = %handle.master.pid(), "master started");
    keel::shutdown_signal::terminated().await;
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}
