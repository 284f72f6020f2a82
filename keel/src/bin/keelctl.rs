//! keelctl: the operator's command line (see `keel::keelctl`).

use std::process::ExitCode;

use clap::Parser;
use keel::keelctl::KeelctlFlags;

keel::global_allocator!();

#[tokio::main]
async fn main() -> ExitCode {
    let flags = KeelctlFlags::parse();
    keel::logging::init("error");
    match keel::keelctl::run(flags).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keelctl: {e:#}");
            ExitCode::from(2)
        }
    }
}
