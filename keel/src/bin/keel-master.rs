//! keel-master: a Keel master (see `keel::master_daemon` for what it runs and when it exits).

use clap::Parser;
use keel::master_daemon::MasterFlags;

keel::global_allocator!();

#[derive(Debug, Parser)]
#[command(name = "keel-master", version, about = "Run a Keel master.")]
struct Flags {
    #[command(flatten)]
    master: MasterFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    keel::logging::init("info");
    keel::master_daemon::run(flags.master).await
}
