//! keel-local, a whole Keel cluster in one command (the `keel-local` binary parses
//! [`LocalFlags`] and calls [`run`]). Starts a master and N agents (each on its
//! own port on 127.0.0.1, over real TCP), runs an example framework on it with progress, and
//! prints a summary of the cluster at the end.
//!
//! `keel-local executor <name>` is the example executors' entry point (agents start this
//! binary that way); users never type it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::agent_daemon::AgentFlags;
use crate::autopilot_services::AutopilotFlags;
use crate::example_runs::{executor_command, run_batch, run_executor, run_particles};
use crate::local_autopilot::{AgentProcesses, LocalMachines};
use crate::local_cluster::{
    LocalAutopilot, LocalCluster, LocalClusterConfig, DEFAULT_AGENT_RESOURCES,
};
use crate::operator_client::OperatorAuth;
use anyhow::{bail, Context as _};
use authentication::roles;
use autopilot::health::HealthPolicy;
use clap::{Parser, Subcommand, ValueEnum};
use frameworks::examples::batch::{BatchEvent, BatchSpec};
use frameworks::examples::particles::ParticlesConfig;
use libactor::http_client::get_json;
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
    /// Omega beside offers: two shared-state batch schedulers (`--tasks` tasks each), a slow
    /// shared-state service scheduler placing gangs, and an offer-based batch framework.
    Omega,
    /// No framework: keep the cluster up for keelctl until Ctrl-C.
    None,
}

/// keel-local's flags.
#[derive(Debug, Parser)]
#[command(
    name = "keel-local",
    version,
    about = "Run a whole Keel cluster (a master and N agents) in one process, then an example framework on it."
)]
pub struct LocalFlags {
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
    /// With --insecure: let agents and frameworks register without authenticating (by default
    /// they prove a secret made up for this run).
    #[arg(long)]
    no_authentication: bool,
    /// Run every node without TLS (by default a CA made for this run gives the master, each
    /// agent, the framework and the repair service certificates, and every connection is
    /// mutual TLS).
    #[arg(long)]
    insecure: bool,
    /// Run Autopilot: the device manager beside the master, agents as OS processes with
    /// watchdogs, and a repair service that really restarts, reimages or removes them.
    #[arg(long, env = "KEEL_AUTOPILOT")]
    autopilot: bool,
    /// With --autopilot: make this agent's disk watchdog fail once the cluster is up (it fails
    /// until the machine is reimaged), to watch Autopilot drain and repair it.
    #[arg(long, requires = "autopilot")]
    fail_agent: Option<usize>,
    #[command(flatten)]
    autopilot_flags: AutopilotFlags,
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
    /// Run an agent (keel-local --autopilot starts its agents this way; not for people).
    #[command(hide = true)]
    Agent(Box<AgentFlags>),
}

/// Runs keel-local as its flags say (or one of its internal subcommands).
pub async fn run(flags: LocalFlags) -> anyhow::Result<()> {
    match flags.command_ {
        Some(Internal::Executor { name }) => {
            crate::logging::init("info");
            let status = run_executor(&name).await?;
            tracing::info!(?status, "executor ended");
            return Ok(());
        }
        Some(Internal::Agent(agent)) => {
            crate::logging::init("info");
            return crate::agent_daemon::run(*agent).await;
        }
        None => {}
    }
    crate::logging::init("warn,libactor::transport=error");
    let agent_resources: Resources = flags.agent_resources.parse().context("--agent-resources")?;
    let task_resources: Resources = flags.task_resources.parse().context("--task-resources")?;
    if flags.agents == 0 {
        bail!("--agents must be at least 1");
    }
    let work_dir = match &flags.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("keel-local-{}", std::process::id())),
    };

    // With TLS the connections prove everyone; a shared secret is the insecure run's proof.
    let credential =
        (flags.insecure && !flags.no_authentication).then(|| authentication::Credential {
            principal: "keel-local".into(),
            secret: authentication::digest::hex(&authentication::nonce()),
        });
    // With Autopilot the agents are processes of their own, started once the master runs.
    let in_process_agents = if flags.autopilot { 0 } else { flags.agents };
    let mut config = LocalClusterConfig::new(in_process_agents, &work_dir);
    if flags.autopilot {
        let device_manager = flags
            .autopilot_flags
            .config(&DEMO_HEALTH)
            .map_err(anyhow::Error::msg)?;
        config.autopilot = Some(LocalAutopilot {
            device_manager,
            watchdog_interval: DEMO_WATCHDOG_INTERVAL,
            watchdog_root: None,
            filesync: Default::default(),
            collector: Default::default(),
        });
    }
    if !flags.insecure {
        config = config.secure().context("making this run's CA")?;
    }
    config.agent_resources = agent_resources.clone();
    config.master_port = flags.master_port;
    config.credential = credential.clone();
    config.containerizer.isolation = flags.isolation;
    // As a real agent does: each task runs as its framework's user (the demo's is $USER).
    config.switch_user = true;
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
    println!(
        "{}",
        if flags.insecure {
            "INSECURE (--insecure): plaintext connections, no sender is proven"
        } else {
            "secure: mutual TLS on every connection, certificates from a CA made for this run"
        }
    );
    let cluster = LocalCluster::start(config)
        .await
        .context("starting the cluster")?;
    println!("master  {}", cluster.master_pid());
    let mut stop_on_signal = None;
    let mut repair_node = None;
    let machines = if flags.autopilot {
        let repair_tls = cluster.issue("keel-local-repair", &[roles::REPAIR])?;
        let node = crate::security_flags::secure(libactor::Node::builder(), repair_tls)
            .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .single_threaded()
            .start()?;
        let machines =
            start_agent_processes(&cluster, &node, &flags, &work_dir, credential.as_ref()).await?;
        repair_node = Some(node);
        stop_on_signal = Some(stop_agents_on_signal(&machines));
        cluster
            .wait_for_master_agents(flags.agents, AGENT_REGISTRATION_TIMEOUT)
            .await
            .context("waiting for the agents")?;
        println!(
            "autopilot: cockpit http://{}/cockpit; device manager {}; repairs restart the agent processes",
            cluster.master_node.address(),
            cluster
                .device_manager
                .as_ref()
                .map(|d| d.process.pid().to_string())
                .unwrap_or_default()
        );
        Some(machines)
    } else {
        cluster
            .wait_for_agents(AGENT_REGISTRATION_TIMEOUT)
            .await
            .context("waiting for the agents")?;
        None
    };
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

    let audit = machines
        .as_ref()
        .map(|_| crate::local_autopilot::print_audit(cluster.master_pid().clone()));
    if machines.is_some() {
        // A rollout covers the machines the device manager knows: wait for all of them.
        if !crate::local_autopilot::wait_for_machines(
            cluster.master_pid(),
            flags.agents,
            AGENT_REGISTRATION_TIMEOUT,
        )
        .await
        {
            bail!("not every agent's watchdogs reported within {AGENT_REGISTRATION_TIMEOUT:?}");
        }
        let dir = work_dir.join("demo-manifest");
        let operator = OperatorAuth {
            credential: credential.clone(),
            tls: cluster.issue("keel-local-operator", &[roles::OPERATOR])?,
        };
        crate::local_autopilot::start_demo_rollout(cluster.master_pid(), &dir, &operator)
            .await
            .map_err(anyhow::Error::msg)
            .context("starting the demo rollout")?;
        println!("autopilot: rolling out manifest `hello` 1 (a heartbeat process), one agent per scale unit");
    }

    let framework_tls = cluster.issue("keel-local-framework", &[roles::FRAMEWORK])?;
    let framework_node = crate::security_flags::secure(libactor::Node::builder(), framework_tls)
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
                None,
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
        Framework::Omega => {
            let demo = crate::omega_demo::OmegaDemo {
                batch_schedulers: 2,
                batch_tasks: flags.tasks,
                batch_command: flags.command.clone(),
                service_jobs: 2,
                tasks_per_job: flags.agents.clamp(1, 3),
                decision_time: Duration::from_millis(500),
                offer_tasks: flags.tasks,
                task_resources,
            };
            println!(
                "\nrunning `omega`: 2 shared-state batch schedulers ({} tasks each), a shared-state service scheduler ({} gangs of {}), and an offer-based batch framework ({} tasks), at once",
                demo.batch_tasks, demo.service_jobs, demo.tasks_per_job, demo.offer_tasks
            );
            // With Autopilot, services go to the machines with the best records.
            let follower = machines.as_ref().map(|_| {
                crate::machine_reliability::MachineReliability::follow(
                    cluster.master_node.address().to_owned(),
                )
            });
            let reliability = follower.as_ref().map(|f| f.reliability());
            let report = crate::omega_demo::run_omega(
                &framework_node,
                &master,
                credential,
                &demo,
                reliability,
                |line| println!("{line}"),
            )
            .await?;
            for (i, s) in report.batch.iter().enumerate() {
                println!(
                    "  omega-batch{i}: {} transactions, {} placements committed, {} conflicted (conflict fraction {:.2})",
                    s.transactions, s.committed, s.conflicts, s.conflict_fraction()
                );
            }
            println!(
                "  omega-service: {} transactions, {} conflicted; {} of {} gangs running",
                report.service.transactions,
                report.service.conflicted_transactions,
                report.jobs_running,
                demo.service_jobs
            );
            println!(
                "omega finished: {} shared-state batch tasks and {} offer-based tasks finished",
                report.batch_finished, report.offer_finished
            );
            report.complete(&demo)
        }
        Framework::None => true,
    };

    if machines.is_some() {
        let state =
            crate::local_autopilot::wait_for_rollout(cluster.master_pid(), REPAIR_WAIT).await;
        println!(
            "autopilot: rollout of `hello` {}",
            state.as_deref().unwrap_or("still running")
        );
    }
    if let (Some(machines), Some(n)) = (&machines, flags.fail_agent) {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let host = machines.inject_fault(n)?;
        println!("autopilot: {host}'s disk watchdog now fails until the machine is reimaged");
        wait_until_healthy(cluster.master_pid(), host, since).await;
    }
    print_summary(&cluster).await;
    if machines.is_some() {
        if let Ok(v) = get_json(cluster.master_node.address(), "/device-manager/machines").await {
            println!("\nmachines (Autopilot)");
            print!("{}", crate::machine_tables::machines(&v));
        }
    }
    // From here on a stop signal ends the run the orderly way, below.
    if let Some(watcher) = stop_on_signal {
        watcher.abort();
    }
    if flags.keep_running || matches!(flags.framework, Framework::None) {
        println!("\ncluster stays up; Ctrl-C to stop");
        crate::shutdown_signal::terminated().await;
    }
    if let Some(audit) = audit {
        audit.abort();
    }
    framework_node.shutdown().await;
    if let Some(machines) = &machines {
        machines.stop().await;
    }
    if let Some(node) = repair_node {
        node.shutdown().await;
    }
    cluster.shutdown().await;
    if !ok {
        bail!("the framework did not complete its job");
    }
    Ok(())
}

/// keel-local's status when a stop signal ended its run: 128 + SIGTERM, as a shell reports a
/// process that SIGTERM ended.
const EXIT_ON_SIGTERM: i32 = 143;

/// Until the run reaches its orderly end, a stop signal (Ctrl-C, a `timeout`, a service
/// manager) must not leave the agent processes running without keel-local: this stops them
/// as an operator would (SIGTERM, then SIGKILL after their grace), then ends keel-local with
/// the status of a process ended by SIGTERM.
fn stop_agents_on_signal(machines: &LocalMachines) -> tokio::task::JoinHandle<()> {
    let driver = machines.driver.clone();
    tokio::spawn(async move {
        crate::shutdown_signal::terminated().await;
        eprintln!("keel-local: stopping its agent processes");
        driver.stop_all().await;
        std::process::exit(EXIT_ON_SIGTERM);
    })
}

/// The demo's health policy: quick enough to watch a whole repair in a minute.
const DEMO_HEALTH: HealthPolicy = HealthPolicy {
    error_threshold: 2,
    error_window: Duration::from_secs(30),
    probation: Duration::from_secs(5),
    quiet_after: Duration::from_secs(24 * 3600),
};
/// Time between watchdog rounds on the demo's agents.
const DEMO_WATCHDOG_INTERVAL: Duration = Duration::from_secs(1);
/// How long keel-local waits for a failed machine to be Healthy again before its summary.
const REPAIR_WAIT: Duration = Duration::from_secs(180);

/// Starts the agents as OS processes under the process repair driver.
async fn start_agent_processes(
    cluster: &LocalCluster,
    repair_node: &libactor::Node,
    flags: &LocalFlags,
    work_dir: &std::path::Path,
    credential: Option<&authentication::Credential>,
) -> anyhow::Result<LocalMachines> {
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let credential_file = match credential {
        Some(c) => {
            let path = work_dir.join("agent-credential");
            write_private(&path, &format!("{} {}\n", c.principal, c.secret))?;
            Some(path)
        }
        None => None,
    };
    let tls_root = work_dir.join("tls");
    let mut secure = false;
    for i in 0..flags.agents {
        let host = format!("local-agent-{i}");
        secure = cluster.issue_dir(&host, &[roles::AGENT], &tls_root.join(&host))?;
    }
    let spec = AgentProcesses {
        binary: std::env::current_exe().context("finding this binary for the agents")?,
        master: cluster.master_pid().clone(),
        work_dir: work_dir.to_owned(),
        resources: flags.agent_resources.clone(),
        isolation: flags.isolation,
        credential: credential_file,
        watchdog_interval: DEMO_WATCHDOG_INTERVAL,
        tls_root: secure.then_some(tls_root),
    };
    let machines = LocalMachines::start(repair_node, flags.agents, &spec)
        .await
        .context("starting the agent processes")?;
    for host in &machines.hosts {
        let pid = machines.driver.pid(host).await.unwrap_or(0);
        println!(
            "agent   {host} (OS pid {pid}), log in {}",
            work_dir.join(format!("{host}.log")).display()
        );
    }
    Ok(machines)
}

/// Writes `text` to a file only its owner may read.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Waits (bounded, showing the audit meanwhile) until `host` is Healthy again after a repair.
async fn wait_until_healthy(master: &libactor::Upid, host: &str, since: f64) {
    println!("\nwaiting up to {REPAIR_WAIT:?} for {host} to be repaired and Healthy again");
    let path = format!("/device-manager/machine?id={host}");
    let deadline = tokio::time::Instant::now() + REPAIR_WAIT;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while tokio::time::Instant::now() < deadline {
        tick.tick().await;
        let Ok(m) = get_json(master.address(), &path).await else {
            continue;
        };
        // Repaired: a Failure since the fault was injected, then Healthy again.
        let repaired = m["history"].as_array().is_some_and(|h| {
            h.iter()
                .any(|e| e["state"] == "Failure" && e["at"].as_f64().is_some_and(|at| at >= since))
        });
        if repaired && m["state"] == "Healthy" {
            println!("{host} is Healthy again");
            return;
        }
    }
    println!("{host} is not Healthy yet; see `keelctl machine {host}`");
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
