//! keel-bench: cluster-scale benchmarks against a real `keel-master` child process (so that
//! its memory is measured alone), with emulated agents in this process over real TCP.
//!
//! - `launch`: end-to-end task launches per second (accept → RunTask → RUNNING, FINISHED →
//!   acknowledgements), against the same number of libactor messages between two bare nodes.
//! - `agents`: N emulated agents registered and pinged; a framework's job of 10-second tasks and
//!   how much longer than 10 s it takes; master memory per agent and per task.
//! - `containers`: one real agent starting N isolated containers (cgroups, then posix as the
//!   baseline): time until all are RUNNING, launch → RUNNING latency, teardown.
//! - `failover`: two `keel-master`s contending in a real ZooKeeper; N emulated agents with
//!   their tasks registered with the leader, which is then SIGKILLed: time from the new
//!   leader's election until every agent has re-registered, beside the same agents' first
//!   registration in the same run.

use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use frameworks::{scheduler_driver, SchedulerOptions};
use keel::bench_scheduler::{LaunchCounters, LaunchScheduler};
use keel::container_bench::{quantile, raw_spawn, ContainerLaunchScheduler, ContainerLaunches};
use keel::emulated_agent::{EmulatedAgent, EmulationCounters};
use libactor::{Context, Node, Process, ProcessRef, Upid};
use protos::libactor::examples::Note;
use resources::Resources;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Emulated agents per libactor node.
const AGENTS_PER_NODE: usize = 25_000;
/// Longest any phase may take before the run gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Parser)]
#[command(
    name = "keel-bench",
    version,
    about = "Cluster-scale benchmarks of a Keel master."
)]
struct Flags {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Task launches per second through master → emulated agents.
    Launch {
        /// Emulated agents.
        #[arg(long, default_value_t = 10)]
        agents: usize,
        /// Tasks to launch.
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        /// What each agent offers.
        #[arg(long, default_value = "cpus:10000;mem:10000000")]
        agent_resources: String,
        /// What each task takes.
        #[arg(long, default_value = "cpus:0.01;mem:1")]
        task_resources: String,
    },
    /// Many emulated agents: registration, pings, a job's overhead, memory per agent and task.
    Agents {
        /// Emulated agents.
        #[arg(long, default_value_t = 100_000)]
        agents: usize,
        /// Tasks of the framework's job.
        #[arg(long, default_value_t = 1000)]
        job_tasks: u64,
        /// How long each job task runs.
        #[arg(long, default_value_t = 10.0)]
        task_seconds: f64,
        /// Long-running tasks launched to measure memory per task.
        #[arg(long, default_value_t = 100_000)]
        memory_tasks: u64,
        /// Wait one full ping round (15 s) and check every agent answered.
        #[arg(long)]
        ping_round: bool,
    },
    /// One real agent starting isolated containers: a burst of N `sleep` tasks until all are
    /// RUNNING, then launch → RUNNING latency one task at a time; per isolation, so that
    /// cgroups is measured beside plain process groups (posix) in the same run.
    Containers {
        /// Tasks in the burst.
        #[arg(long, default_value_t = 1000)]
        tasks: u64,
        /// Tasks launched one at a time for the latency figures.
        #[arg(long, default_value_t = 200)]
        latency_tasks: u64,
        /// Isolations to measure, in order.
        #[arg(long, value_delimiter = ',', default_value = "cgroups,posix")]
        isolation: Vec<slave::containerizer::IsolationMode>,
        /// What each task takes (its container's limits).
        #[arg(long, default_value = "cpus:0.01;mem:32")]
        task_resources: String,
    },
    /// Master failover through ZooKeeper: the leader is killed; time from the standby's
    /// election until every emulated agent has re-registered with its tasks.
    Failover {
        /// Emulated agents.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Running tasks per agent.
        #[arg(long, default_value_t = 10)]
        tasks_per_agent: u64,
        /// The masters' ZooKeeper session timeout (how soon after the kill the standby is
        /// elected; not part of the figure).
        #[arg(long, default_value_t = 2.0)]
        zk_session_timeout_seconds: f64,
    },
    /// Autopilot: a manifest rolled out to emulated machines by scale units (wall time against
    /// units × probation; CPU against the same fleet idle).
    AutopilotRollout {
        /// Emulated machines.
        #[arg(long, default_value_t = 1000)]
        machines: usize,
        /// Machines per scale unit.
        #[arg(long, default_value_t = 100)]
        unit_size: u32,
        /// Probation per unit, seconds.
        #[arg(long, default_value_t = 1.0)]
        probation_seconds: f64,
        /// Seconds between each machine's watchdog reports.
        #[arg(long, default_value_t = 0.25)]
        report_interval_seconds: f64,
    },
    /// Autopilot: repair decisions per second with many machines reporting (against the same
    /// reports with no decision to make).
    AutopilotRepairs {
        /// Machines reporting.
        #[arg(long, default_value_t = 10_000)]
        machines: usize,
        /// Machines failing at once.
        #[arg(long, default_value_t = 1000)]
        failing: usize,
    },
}

/// The `keel-master` binary next to this one, started on a free port.
struct MasterChild {
    child: tokio::process::Child,
    pid: Upid,
}

/// A master's stdout after its first line.
type MasterOutput = tokio::io::Lines<BufReader<tokio::process::ChildStdout>>;

impl MasterChild {
    async fn start() -> anyhow::Result<MasterChild> {
        Ok(MasterChild::start_with(&[]).await?.0)
    }

    /// Starts a master with extra flags; returns it and the rest of its stdout.
    async fn start_with(flags: &[&str]) -> anyhow::Result<(MasterChild, MasterOutput)> {
        let binary = std::env::current_exe()?.with_file_name("keel-master");
        let mut child = tokio::process::Command::new(&binary)
            .args(["--port", "0"])
            .args(flags)
            .env(
                "RUST_LOG",
                std::env::var("KEEL_MASTER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("master stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = lines.next_line().await?.context("master printed nothing")?;
        let pid = line
            .strip_prefix("master ")
            .context("unexpected first line")?
            .parse()?;
        Ok((MasterChild { child, pid }, lines))
    }

    /// The master's resident memory, bytes.
    fn rss_bytes(&self) -> u64 {
        let Some(pid) = self.child.id() else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > PHASE_TIMEOUT {
            bail!("{what} did not happen within {PHASE_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(start.elapsed())
}

/// Starts `n` emulated agents on nodes of [`AGENTS_PER_NODE`] each.
fn start_agents(
    n: usize,
    master: &Upid,
    resources: &Resources,
    task_duration: Duration,
    counters: &Arc<EmulationCounters>,
) -> anyhow::Result<Vec<Node>> {
    Ok(start_agent_refs(n, master, resources, task_duration, counters)?.0)
}

/// [`start_agents`], also returning each agent's process.
fn start_agent_refs(
    n: usize,
    master: &Upid,
    resources: &Resources,
    task_duration: Duration,
    counters: &Arc<EmulationCounters>,
) -> anyhow::Result<(Vec<Node>, Vec<ProcessRef<EmulatedAgent>>)> {
    let mut nodes = Vec::new();
    let mut agents = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(AGENTS_PER_NODE) {
        let node = Node::builder().single_threaded().start()?;
        let count = AGENTS_PER_NODE.min(n - chunk * AGENTS_PER_NODE);
        for i in 0..count {
            let agent = node.spawn_ref(
                &format!("agent{i}"),
                EmulatedAgent::new(
                    master.clone(),
                    resources.clone(),
                    task_duration,
                    counters.clone(),
                ),
            )?;
            agents.push(agent);
        }
        nodes.push(node);
    }
    Ok((nodes, agents))
}

/// Echoes every Note back: the baseline's far end.
struct Echo;

impl Process for Echo {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |_: &mut Echo, ctx: &mut Context<Echo>, from: Upid, n: Note| {
                ctx.send(&from, n);
            },
        );
    }
}

/// Counts Notes coming back.
struct Sink(Arc<std::sync::atomic::AtomicU64>);

impl Process for Sink {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(|s: &mut Sink, _: &mut Context<Sink>, _: Upid, _: Note| {
            s.0.fetch_add(1, Ordering::Relaxed);
        });
    }
}

/// Baseline: `messages` round trips of ~100-byte messages between two bare libactor nodes
/// over TCP, sent in windows of `window` (the master has as many launches in flight).
async fn baseline(messages: u64, window: u64) -> anyhow::Result<Duration> {
    let a = Node::builder().start()?;
    let b = Node::builder().start()?;
    let echo = b.spawn("echo", Echo)?;
    let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sink = a.spawn("sink", Sink(got.clone()))?;
    let start = Instant::now();
    let mut sent = 0;
    while sent < messages {
        let burst = window.min(messages - sent);
        for _ in 0..burst {
            a.send_from(
                &sink,
                &echo,
                Note {
                    text: "x".repeat(100),
                },
            );
            sent += 1;
        }
        let want = sent;
        wait_until("baseline echoes", || {
            got.load(Ordering::Relaxed) >= want.saturating_sub(window / 2)
        })
        .await?;
    }
    wait_until("baseline echoes", || {
        got.load(Ordering::Relaxed) >= messages
    })
    .await?;
    let took = start.elapsed();
    a.shutdown().await;
    b.shutdown().await;
    Ok(took)
}

/// Runs the container benchmark with one isolation on a fresh one-agent cluster.
async fn containers(
    mode: slave::containerizer::IsolationMode,
    tasks: u64,
    latency_tasks: u64,
    task_resources: &Resources,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("keel-bench-containers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = keel::local_cluster::LocalClusterConfig::new(1, &dir);
    // The agent offers room for the whole burst; the limits are what the kernel enforces.
    config.agent_resources = "cpus:1000;mem:10000000;disk:1000".parse()?;
    config.containerizer.isolation = mode;
    config.containerizer.cgroups_root = format!("keel-bench-{}", std::process::id());
    let cluster = keel::local_cluster::LocalCluster::start(config).await?;
    cluster.wait_for_agents(Duration::from_secs(30)).await?;
    let isolation = cluster.agents[0]
        .slave
        .call(|s, _| s.isolation().to_owned())
        .await?;
    println!("containers: isolation {isolation}");
    let framework_node = Node::builder().start()?;

    for (phase, count, window) in [("burst", tasks, tasks), ("one at a time", latency_tasks, 1)] {
        if count == 0 {
            continue;
        }
        let results = Arc::new(std::sync::Mutex::new(ContainerLaunches::default()));
        let handle = scheduler_driver::start(
            &framework_node,
            cluster.master_pid().clone(),
            keel::example_runs::framework_info("keel-bench-containers"),
            ContainerLaunchScheduler::new(count, window, task_resources.clone(), results.clone()),
            SchedulerOptions::default(),
        )?;
        let mut last_report = Instant::now();
        wait_until("every container RUNNING", || {
            let r = results.lock().unwrap_or_else(|p| p.into_inner());
            let done = r.latencies.len() as u64 + r.failed;
            if last_report.elapsed() > Duration::from_secs(2) {
                last_report = Instant::now();
                eprintln!("  {phase}: {done}/{count} running");
            }
            done >= count
        })
        .await?;
        let r = std::mem::take(&mut *results.lock().unwrap_or_else(|p| p.into_inner()));
        let mut latencies = r.latencies.clone();
        latencies.sort_unstable();
        let all = match (r.first_launch, r.last_running) {
            (Some(a), Some(b)) => b - a,
            _ => Duration::ZERO,
        };
        println!(
            "  {phase}: {} of {count} RUNNING in {all:.2?} ({} failed{}); launch -> RUNNING p50 {:.1?} p99 {:.1?} max {:.1?}",
            latencies.len(),
            r.failed,
            r.first_failure.map(|f| format!(": {f}")).unwrap_or_default(),
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            quantile(&latencies, 1.0),
        );
        // Teardown: the agent kills every container and destroys its cgroup.
        let stopping = Instant::now();
        handle.stop();
        handle.join().await;
        let slave = cluster.agents[0].slave.clone();
        let mut live = usize::MAX;
        let start = Instant::now();
        while live > 0 {
            live = slave.call(|s, _| s.live_tasks()).await?;
            if start.elapsed() > PHASE_TIMEOUT {
                bail!("{live} containers still live after teardown");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "  {phase}: teardown of {count} containers in {:.2?}",
            stopping.elapsed()
        );
    }
    framework_node.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    keel::logging::init("warn,libactor::transport=error");
    match Flags::parse().command {
        Bench::Launch {
            agents,
            tasks,
            agent_resources,
            task_resources,
        } => launch(agents, tasks, &agent_resources, &task_resources).await,
        Bench::Agents {
            agents,
            job_tasks,
            task_seconds,
            memory_tasks,
            ping_round,
        } => scale(agents, job_tasks, task_seconds, memory_tasks, ping_round).await,
        Bench::Failover {
            agents,
            tasks_per_agent,
            zk_session_timeout_seconds,
        } => failover(agents, tasks_per_agent, zk_session_timeout_seconds).await,
        Bench::AutopilotRollout {
            machines,
            unit_size,
            probation_seconds,
            report_interval_seconds,
        } => {
            let seconds = |name: &str, v: f64| {
                anyhow::ensure!(
                    v.is_finite() && v > 0.0 && v <= 3600.0,
                    "--{name} must be in (0, 3600]"
                );
                Ok(std::time::Duration::from_secs_f64(v))
            };
            let probation = seconds("probation-seconds", probation_seconds)?;
            let interval = seconds("report-interval-seconds", report_interval_seconds)?;
            anyhow::ensure!(
                machines > 0 && unit_size > 0,
                "--machines and --unit-size must be at least 1"
            );
            let f =
                keel::autopilot_bench::rollout(machines, unit_size, probation, interval).await?;
            let over = f.cpu.saturating_sub(f.baseline_cpu);
            println!(
                "autopilot rollout: {} machines in {} units of {unit_size}, probation {probation:?}: {:.2?} (floor {:.2?}, {:.2}x); CPU {:.2?} vs {:.2?} for the fleet reporting alone over as long: {:.2?} for the rollout ({:.2} ms per machine)",
                f.machines,
                f.units,
                f.wall,
                f.floor,
                f.wall.as_secs_f64() / f.floor.as_secs_f64(),
                f.cpu,
                f.baseline_cpu,
                over,
                over.as_secs_f64() * 1000.0 / f.machines as f64,
            );
            Ok(())
        }
        Bench::AutopilotRepairs { machines, failing } => {
            anyhow::ensure!(
                failing > 0 && failing <= machines,
                "--failing must be in 1..=--machines"
            );
            let f = keel::autopilot_bench::repairs(machines, failing).await?;
            let reports_rate = f.machines as f64 / f.reports_time.as_secs_f64();
            let decisions = f.decisions_time.saturating_sub(f.reports_time);
            println!(
                "autopilot repairs: {} machines reporting: a round of OK reports in {:.2?} ({:.0} reports/s, baseline); the same round with {} failing in {:.2?}: {:.0} repair decisions/s beyond the baseline ({:.1} µs each), {:.2}x the round's time",
                f.machines,
                f.reports_time,
                reports_rate,
                f.failing,
                f.decisions_time,
                f.failing as f64 / decisions.as_secs_f64().max(1e-9),
                decisions.as_secs_f64() * 1e6 / f.failing as f64,
                f.decisions_time.as_secs_f64() / f.reports_time.as_secs_f64(),
            );
            Ok(())
        }
        Bench::Containers {
            tasks,
            latency_tasks,
            isolation,
            task_resources,
        } => {
            let task_resources: Resources = task_resources.parse().context("--task-resources")?;
            let threads = slave::containerizer::launcher::Launcher::default_slots();
            let raw = tokio::task::spawn_blocking(move || raw_spawn(tasks, threads)).await??;
            println!(
                "containers: baseline: {tasks} bare `sh -c 'exec sleep 600'` posix_spawned from {threads} threads in {raw:.2?} ({:.2?} each)",
                raw / tasks.max(1) as u32
            );
            for mode in isolation {
                containers(mode, tasks, latency_tasks, &task_resources).await?;
            }
            Ok(())
        }
    }
}

async fn launch(
    agents: usize,
    tasks: u64,
    agent_resources: &str,
    task_resources: &str,
) -> anyhow::Result<()> {
    let agent_resources: Resources = agent_resources.parse().context("--agent-resources")?;
    let task_resources: Resources = task_resources.parse().context("--task-resources")?;
    let master = MasterChild::start().await?;
    let counters = Arc::new(EmulationCounters::default());
    let nodes = start_agents(
        agents,
        &master.pid,
        &agent_resources,
        Duration::ZERO,
        &counters,
    )?;
    wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;

    let framework_node = Node::builder().start()?;
    let launched = Arc::new(LaunchCounters::default());
    let handle = scheduler_driver::start(
        &framework_node,
        master.pid.clone(),
        keel::example_runs::framework_info("keel-bench"),
        LaunchScheduler::new(tasks, task_resources, launched.clone()),
        SchedulerOptions::default(),
    )?;
    let mut last_report = Instant::now();
    let took = wait_until("every task FINISHED", || {
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "  {} launched, {} finished",
                launched.launched.load(Ordering::Relaxed),
                launched.finished.load(Ordering::Relaxed)
            );
        }
        launched.finished.load(Ordering::Relaxed) + launched.failed.load(Ordering::Relaxed) >= tasks
    })
    .await?;
    handle.join().await;
    let failed = launched.failed.load(Ordering::Relaxed);
    let rate = tasks as f64 / took.as_secs_f64();

    // The baseline: per task the cluster moves 9 messages (RunTask, 2 updates and 2 acks, each
    // crossing the master); time as many bare round trips (2 messages each).
    let round_trips = tasks * 9 / 2;
    let base = baseline(round_trips, 10_000).await?;
    let base_rate = tasks as f64 / base.as_secs_f64();
    println!("launch: {tasks} tasks on {agents} emulated agents in {took:.2?}: {rate:.0} tasks/s ({failed} failed)");
    println!(
        "baseline: {round_trips} bare libactor round trips (the same 9 messages per task) in {base:.2?}: {base_rate:.0} task-equivalents/s; Keel / baseline = {:.2}",
        rate / base_rate
    );
    println!(
        "master RSS after the run: {:.1} MiB",
        master.rss_bytes() as f64 / (1 << 20) as f64
    );
    framework_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

async fn scale(
    agents: usize,
    job_tasks: u64,
    task_seconds: f64,
    memory_tasks: u64,
    ping_round: bool,
) -> anyhow::Result<()> {
    let agent_resources: Resources = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]".parse()?;
    let master = MasterChild::start().await?;
    let rss_empty = master.rss_bytes();
    let counters = Arc::new(EmulationCounters::default());
    let task_duration = Duration::from_secs_f64(task_seconds);
    let start = Instant::now();
    let nodes = start_agents(
        agents,
        &master.pid,
        &agent_resources,
        task_duration,
        &counters,
    )?;
    let spawned = start.elapsed();
    let took = wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;
    let rss_agents = master.rss_bytes();
    println!(
        "agents: {agents} emulated agents spawned in {spawned:.2?}, all registered {:.2?} after that",
        took
    );
    println!(
        "master RSS: {:.1} MiB empty, {:.1} MiB with the agents: {:.0} bytes per agent",
        rss_empty as f64 / (1 << 20) as f64,
        rss_agents as f64 / (1 << 20) as f64,
        rss_agents.saturating_sub(rss_empty) as f64 / agents as f64
    );
    if ping_round {
        let before = counters.pings.load(Ordering::Relaxed);
        let took = wait_until("a ping round", || {
            counters.pings.load(Ordering::Relaxed) >= before + agents as u64
        })
        .await?;
        println!("pings: every agent answered a ping within {took:.2?}");
    }

    // The job: tasks of `task_seconds`; what it takes beyond that is the cluster's overhead.
    let framework_node = Node::builder().start()?;
    let job = Arc::new(LaunchCounters::default());
    let start = Instant::now();
    let handle = scheduler_driver::start(
        &framework_node,
        master.pid.clone(),
        keel::example_runs::framework_info("job"),
        LaunchScheduler::new(job_tasks, "cpus:1;mem:128".parse()?, job.clone()),
        SchedulerOptions::default(),
    )?;
    wait_until("the job's tasks running", || {
        job.running.load(Ordering::Relaxed) >= job_tasks
    })
    .await?;
    let all_running = start.elapsed();
    wait_until("the job", || {
        job.finished.load(Ordering::Relaxed) >= job_tasks
    })
    .await?;
    let took = start.elapsed();
    handle.join().await;
    println!(
        "job: {job_tasks} tasks of {task_seconds} s on {agents} agents: all RUNNING after {all_running:.2?}, done after {took:.2?}; overhead {:.0} ms",
        (took.as_secs_f64() - task_seconds) * 1000.0
    );

    if memory_tasks > 0 {
        let rss_before = master.rss_bytes();
        let holders = Arc::new(LaunchCounters::default());
        // Tasks that outlive the measurement: the emulated agents finish them only after a day.
        let long_nodes = start_agents(
            (memory_tasks / 1000).max(1) as usize,
            &master.pid,
            &"cpus:1000;mem:1000000".parse()?,
            Duration::from_secs(86_400),
            &Arc::new(EmulationCounters::default()),
        )?;
        let handle = scheduler_driver::start(
            &framework_node,
            master.pid.clone(),
            keel::example_runs::framework_info("memory"),
            LaunchScheduler::new(memory_tasks, "cpus:1;mem:1".parse()?, holders.clone()),
            SchedulerOptions::default(),
        )?;
        wait_until("the long tasks running", || {
            holders.running.load(Ordering::Relaxed) >= memory_tasks
        })
        .await?;
        let rss_after = master.rss_bytes();
        println!(
            "tasks: {memory_tasks} live tasks add {:.1} MiB to the master: {:.0} bytes per task",
            rss_after.saturating_sub(rss_before) as f64 / (1 << 20) as f64,
            rss_after.saturating_sub(rss_before) as f64 / memory_tasks as f64
        );
        drop(handle);
        for node in long_nodes {
            node.shutdown().await;
        }
    }
    framework_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// The failover benchmark (see the module docs).
async fn failover(
    agents: usize,
    tasks_per_agent: u64,
    zk_session_timeout_seconds: f64,
) -> anyhow::Result<()> {
    let zk = keel::zookeeper_server::ZooKeeperServer::start()?;
    let url = zk.url("/keel");
    let timeout = zk_session_timeout_seconds.to_string();
    let flags = [
        "--zk",
        url.as_str(),
        "--zk-session-timeout-seconds",
        timeout.as_str(),
    ];
    let (mut first, mut first_out) = MasterChild::start_with(&flags).await?;
    wait_for_line(&mut first_out, "leading").await?;
    let (second, mut second_out) = MasterChild::start_with(&flags).await?;
    wait_for_line(&mut second_out, "contending").await?;

    let counters = Arc::new(EmulationCounters::default());
    let total = agents as u64 * tasks_per_agent;
    let resources = format!("cpus:{tasks_per_agent};mem:{}", tasks_per_agent * 16).parse()?;
    let (nodes, refs) = start_agent_refs(
        agents,
        &first.pid,
        &resources,
        Duration::from_secs(7 * 24 * 3600),
        &counters,
    )?;
    let registration = wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;
    eprintln!("  {agents} agents registered in {registration:.2?} (each admission written to the registry)");

    let framework_node = Node::builder().start()?;
    let launched = Arc::new(LaunchCounters::default());
    let _framework = scheduler_driver::start(
        &framework_node,
        first.pid.clone(),
        keel::example_runs::framework_info("keel-bench-failover"),
        LaunchScheduler::new(total, "cpus:1;mem:16".parse()?, launched.clone()),
        SchedulerOptions::default(),
    )?;
    let mut last_report = Instant::now();
    wait_until("every task RUNNING", || {
        if last_report.elapsed() > Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "  {} tasks running",
                launched.running.load(Ordering::Relaxed)
            );
        }
        launched.running.load(Ordering::Relaxed) >= total
    })
    .await?;
    eprintln!("  {total} tasks running; killing the leader");

    let detector = coordination::Detector::start(
        url.parse()?,
        Duration::from_secs_f64(zk_session_timeout_seconds),
    );
    let mut leader = detector.leader();
    let new_leader = second.pid.to_string();
    first.child.start_kill()?; // SIGKILL: no goodbye to ZooKeeper or the agents
    let killed = Instant::now();
    tokio::time::timeout(
        PHASE_TIMEOUT,
        leader.wait_for(|l| l.as_ref().is_some_and(|l| l.pid == new_leader)),
    )
    .await
    .context("no new leader")??;
    let elected = Instant::now();
    let leading = tokio::spawn(async move {
        wait_for_line(&mut second_out, "leading")
            .await
            .map(|_| Instant::now())
    });
    // Each real agent's detector sees the election; the run's one detector tells them all.
    for agent in &refs {
        let master = second.pid.clone();
        agent.dispatch(move |a, ctx| a.set_master(ctx, master));
    }
    let mut last_report = Instant::now();
    let reregistered = wait_until("every agent re-registered", || {
        let done = counters.reregistered.load(Ordering::Relaxed);
        if last_report.elapsed() > Duration::from_millis(500) {
            last_report = Instant::now();
            eprintln!(
                "  {:>6.2?} after the election: {done} re-registered, {} attempts",
                elected.elapsed(),
                counters.reregistration_attempts.load(Ordering::Relaxed)
            );
        }
        done == agents as u64
    })
    .await?;
    let leading = leading.await??;
    let attempts = counters.reregistration_attempts.load(Ordering::Relaxed);
    println!(
        "failover: {agents} agents, {total} tasks: elected {:.2?} after the kill (session timeout {zk_session_timeout_seconds} s); the new master ran {:.2?} after its election (registry recovered); every agent re-registered {reregistered:.2?} after the election ({attempts} attempts)",
        elected - killed,
        leading - elected,
    );
    println!(
        "baseline: the same agents' first registration (admissions written to the registry) took {registration:.2?}; failover / first registration = {:.2}",
        reregistered.as_secs_f64() / registration.as_secs_f64()
    );
    println!(
        "new master RSS: {:.1} MiB",
        second.rss_bytes() as f64 / (1 << 20) as f64
    );
    // Where the new master's time went: registry writes, refused or dropped messages.
    if let Ok(snapshot) =
        keel::http_client::get_json(second.pid.address(), "/metrics/snapshot").await
    {
        let picked: Vec<String> = snapshot
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| {
                (k.starts_with("registrar/")
                    || k.starts_with("allocator/cycle")
                    || k.contains("dropped")
                    || k.contains("invalid")
                    || k.contains("refused")
                    || k.contains("agents_registered"))
                    && v.as_f64().is_some_and(|v| v != 0.0)
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("new master metrics: {}", picked.join(" "));
    }
    drop(detector);
    framework_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// Reads a master's stdout until a line starting with `prefix`.
async fn wait_for_line(lines: &mut MasterOutput, prefix: &str) -> anyhow::Result<String> {
    tokio::time::timeout(PHASE_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with(prefix) {
                return Ok(line);
            }
        }
        bail!("the master exited before printing {prefix:?}")
    })
    .await
    .with_context(|| format!("no {prefix:?} line from the master"))?
}
