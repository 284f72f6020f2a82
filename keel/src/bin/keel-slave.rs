//! keel-slave: runs an agent that registers with the master and runs its tasks in sandboxes
//! under `--work-dir` (see [`keel::agent_daemon`]).

use clap::Parser;
use keel::agent_daemon::AgentFlags;

keel::global_allocator!();

#[derive(Debug, Parser)]
#[command(name = "keel-slave", version, about = "Run a Keel agent.")]
struct Cli {
    #[command(flatten)]
    agent: AgentFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    keel::logging::init("info");
    keel::agent_daemon::run(cli.agent).await
}
