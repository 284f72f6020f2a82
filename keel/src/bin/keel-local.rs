//! keel-local: a whole Keel cluster in one command. Starts a master and N agents (each on its
//! own port on 127.0.0.1, over real TCP), runs an example framework on it with progress, and
//! prints a summary of the cluster at the end.
//!
//! `keel-local executor <name>` is the example executors' entry point (agents start this
//! binary that way); users never type it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use frameworks::examples::batch::{BatchEvent, BatchSpec};
use frameworks::examples::particles::ParticlesConfig;
use keel::example_runs::{executor_command, run_batch, run_executor, run_particles};
use keel::local_cluster::{LocalCluster, LocalClusterConfig, DEFAULT_AGENT_RESOURCES};
use resources::Resources;
use slave::containerizer::IsolationMode;

/// How long the agents have to register.
const AGENT_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Framework {
    /// Seed 004's particle trajectories, on a custom executor.
    Particles,
    /// `--tasks` copies of `--command`, as command tasks.
    Batch,
    /// No framework: keep the cluster up for keelctl until Ctrl-C.
    None,
}

#[derive(Debug, Parser)]
#[command(
    name = "keel-local",
    version,
    about = "Run a whole Keel cluster (a master and N agents) in one process, then an example framework on it."
)]
struct Flags {
    /// Agents to start.
    #[arg(long, env = "KEEL_AGENTS", default_value_t = 3)]
    agents: usize,
    /// The master's port on 127.0.0.1 (0: any free port).
    #[arg(long, env = "KEEL_MASTER_PORT", default_value_t = 5050)]
    master_port: u16,
    /// What each agent offers.
    #[arg(long, env = "KEEL_AGENT_RESOURCES", default_value = DEFAULT_AGENT_RESOURCES)]
    agent_resources: String,
    /// Where the agents' sandboxes go (default: a fresh directory under the system's temp dir).
    #[arg(long, env = "KEEL_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// The framework to run once the agents are up.
    #[arg(long, env = "KEEL_FRAMEWORK", value_enum, default_value_t = Framework::Particles)]
    framework: Framework,
    /// particles: particles in the cloud.
    #[arg(long, default_value_t = 200_000)]
    particles: u64,
    /// particles: particles per task.
    #[arg(long, default_value_t = 10_000)]
    batch_size: u64,
    /// particles: the cloud's seed.
    #[arg(long, default_value_t = 4)]
    seed: u64,
    /// batch: the command each task runs.
    #[arg(long, default_value = "echo hello from $KEEL_EXECUTOR_ID; sleep 0.2")]
    command: String,
    /// batch: how many tasks.
    #[arg(long, default_value_t = 6)]
    tasks: usize,
    /// Resources of each task.
    #[arg(long, default_value = "cpus:0.5;mem:64")]
    task_resources: String,
    /// Keep the cluster up after the framework ends, until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// How agents isolate executors: `auto` (cgroups where the kernel offers them), `cgroups`
    /// or `posix`.
    #[arg(long, env = "KEEL_ISOLATION", default_value = "auto")]
    isolation: IsolationMode,
    /// Let agents and frameworks register without authenticating (by default they prove a
    /// secret made up for this run).
    #[arg(long)]
    no_authentication: bool,
    #[command(subcommand)]
    command_: Option<Internal>,
}

#[derive(Debug, Subcommand)]
enum Internal {
    /// Run an example executor (agents start this; not for people).
    #[command(hide = true)]
    Executor {
        /// Which executor.
        name: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    if let Some(Internal::Executor { name }) = &flags.command_ {
        keel::logging::init("info");
        let status = run_executor(name).await?;
        tracing::info!(?status, "executor ended");
        return Ok(());
    }
    keel::logging::init("warn,libactor::transport=error");
    let agent_resources: Resources = flags.agent_resources.parse().context("--agent-resources")?;
    let task_resources: Resources = flags.task_resources.parse().context("--task-resources")?;
    if flags.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let work_dir = match &flags.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("keel-local-{}", std::process::id())),
    };

    let credential = (!flags.no_authentication).then(|| authentication::Credential {
        principal: "keel-local".into(),
        secret: hex(&authentication::nonce()),
    });
    let mut config = LocalClusterConfig::new(flags.agents, &work_dir);
    config.agent_resources = agent_resources.clone();
    config.master_port = flags.master_port;
    config.credential = credential.clone();
    config.containerizer.isolation = flags.isolation;
    println!(
        "starting a master and {} agents ({agent_resources} each), sandboxes under {}{}",
        flags.agents,
        work_dir.display(),
        if credential.is_some() {
            "; agents and frameworks authenticate as `keel-local`"
        } else {
            ""
        }
    );
    let cluster = LocalCluster::start(config)
        .await
        .context("starting the cluster")?;
    println!("master  {}", cluster.master_pid());
    cluster
        .wait_for_agents(AGENT_REGISTRATION_TIMEOUT)
        .await
        .context("waiting for the agents")?;
    for (i, agent) in cluster.agents.iter().enumerate() {
        let (id, isolation) = agent
            .slave
            .call(|s, _| (s.id().map(str::to_owned), s.isolation().to_owned()))
            .await?;
        println!(
            "agent   {} registered as {}",
            agent.slave.pid(),
            id.unwrap_or_default()
        );
        if i == 0 {
            println!("isolation {isolation}");
        }
    }
    println!(
        "cluster up: try `KEEL_MASTER={} keelctl state` in another terminal",
        cluster.master_node.address()
    );

    let framework_node = libactor::Node::builder()
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .single_threaded()
        .start()?;
    let master = cluster.master_pid().clone();
    let ok = match flags.framework {
        Framework::Particles => {
            let binary = std::env::current_exe().context("finding this binary for the executor")?;
            let config = ParticlesConfig {
                particles: flags.particles,
                batch_size: flags.batch_size,
                seed: flags.seed,
                task_resources,
                executor_command: executor_command(&binary, "particles"),
            };
            println!(
                "\nrunning `particles`: {} particles in batches of {}, one task per batch",
                flags.particles, flags.batch_size
            );
            let mut last = (u64::MAX, u64::MAX);
            let result = run_particles(&framework_node, &master, config, credential, |p| {
                if (p.done, p.running) != last {
                    last = (p.done, p.running);
                    println!(
                        "  particles: {:>3}/{} batches counted, {} running   left {:>8}  right {:>8}",
                        p.done, p.batches, p.running, p.negative, p.positive
                    );
                    let _ = std::io::stdout().flush();
                }
            })
            .await?;
            match &result.error {
                None => {
                    let matches = (result.negative, result.positive) == result.expected;
                    println!(
                        "particles finished: {} landed left of 0, {} right of 0 ({} retried tasks; {})",
                        result.negative,
                        result.positive,
                        result.failed_attempts,
                        if matches { "matches the cloud's construction" } else { "DOES NOT match the expected totals" }
                    );
                    matches
                }
                Some(why) => {
                    println!("particles failed: {why}");
                    false
                }
            }
        }
        Framework::Batch => {
            let spec = BatchSpec {
                task_prefix: "batch".into(),
                commands: vec![flags.command.clone(); flags.tasks],
                task_resources,
            };
            println!(
                "\nrunning `batch`: {} tasks of `{}`",
                flags.tasks, flags.command
            );
            let outcomes = run_batch(
                &framework_node,
                &master,
                "batch",
                spec,
                credential,
                |event| {
                    if let BatchEvent::Status {
                        task_id,
                        state,
                        agent,
                        message,
                    } = event
                    {
                        println!(
                            "  {task_id:<12} {:<14} on {agent} {message}",
                            state.as_str_name()
                        );
                    }
                },
            )
            .await?;
            let failed = outcomes
                .iter()
                .filter(|o| o.state != protos::v1::TaskState::TaskFinished)
                .count();
            println!(
                "batch finished: {} tasks, {failed} did not finish",
                outcomes.len()
            );
            failed == 0
        }
        Framework::None => true,
    };

    print_summary(&cluster).await;
    if flags.keep_running || matches!(flags.framework, Framework::None) {
        println!("\ncluster stays up; Ctrl-C to stop");
        keel::shutdown_signal::terminated().await;
    }
    framework_node.shutdown().await;
    cluster.shutdown().await;
    if !ok {
        bail!("the framework did not complete its job");
    }
    Ok(())
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What every agent ran, from the master's and the agents' metrics.
async fn print_summary(cluster: &LocalCluster) {
    println!("\ncluster summary");
    let m = cluster.master_node.metrics().snapshot();
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    println!(
        "  master: {} agents, offers sent {} / accepted {} / declined {} / rescinded {}, tasks launched {}",
        cluster.registered_agents().await,
        get("master/offers_sent"),
        get("master/offers_accepted"),
        get("master/offers_declined"),
        get("master/offers_rescinded"),
        get("master/tasks_launched"),
    );
    for agent in &cluster.agents {
        let s = agent.node.metrics().snapshot();
        let get = |k: &str| s.get(k).copied().unwrap_or(0.0);
        println!(
            "  {}: tasks launched {}, finished {}, failed {}, killed {}; executors started {}",
            agent.slave.pid(),
            get("slave/tasks_launched"),
            get("slave/tasks_finished"),
            get("slave/tasks_failed"),
            get("slave/tasks_killed"),
            get("slave/executors_launched"),
        );
    }
}
