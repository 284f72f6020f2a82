//! keel-local: a whole Keel cluster in one command (see `keel::keel_local`).

use clap::Parser;
use keel::keel_local::LocalFlags;

keel::global_allocator!();

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel::keel_local::run(LocalFlags::parse()).await
}
