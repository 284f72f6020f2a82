//! keel-bench: cluster-scale benchmarks of a Keel master; each subcommand is a module of the
//! `keel_bench` library (see its docs), which this binary only dispatches to.

use std::time::Duration;

use clap::{Parser, Subcommand};
use keel::duration_flag::{between, positive_up_to_a_day, Seconds};

keel::global_allocator!();

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
        /// Also run the launches on a secure cluster (mutual TLS everywhere) and report the
        /// ratio.
        #[arg(long)]
        tls: bool,
        /// Also run them with a framework on the v1 scheduler HTTP API, in protobuf and in
        /// JSON, and report their ratios to the driver's.
        #[arg(long)]
        http: bool,
    },
    /// `/master/health` latency while thousands of connections that never finish their
    /// handshake are held against the master, beside the same requests with none held.
    Flood {
        /// Connections to hold (bounded by the open-file limit).
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Health requests timed, each phase.
        #[arg(long, default_value_t = 200)]
        requests: usize,
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
        #[arg(long, default_value = "10s", value_parser = positive_up_to_a_day())]
        task_seconds: Seconds,
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
        #[arg(long, default_value = "2s", value_parser = between(Duration::from_secs(1), Duration::from_secs(600)))]
        zk_session_timeout_seconds: Seconds,
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
        #[arg(long, default_value = "1s", value_parser = between(Duration::from_millis(1), Duration::from_secs(3600)))]
        probation_seconds: Seconds,
        /// Seconds between each machine's watchdog reports.
        #[arg(long, default_value = "250ms", value_parser = between(Duration::from_millis(1), Duration::from_secs(3600)))]
        report_interval_seconds: Seconds,
    },
    /// Omega: shared-state placements per second with parallel batch schedulers (each count in
    /// turn, on a fresh master and fleet), beside the offer path's launch rate on the same
    /// fleet.
    Omega {
        /// Emulated agents.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Tasks in each run.
        #[arg(long, default_value_t = 100_000)]
        tasks: u64,
        /// Parallel schedulers, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
        schedulers: Vec<usize>,
        /// What each agent offers.
        #[arg(long, default_value = "cpus:8;mem:16384")]
        agent_resources: String,
        /// What each task takes.
        #[arg(long, default_value = "cpus:1;mem:128")]
        task_resources: String,
        /// How long each task runs on its emulated agent (long enough to fill the cell, so
        /// that schedulers compete for what is free).
        #[arg(long, default_value = "2s", value_parser = between(Duration::ZERO, Duration::from_secs(3600)))]
        task_seconds: Seconds,
    },
    /// Omega's simulator against the real master: one seeded batch workload through
    /// `keel-sim` and through a real master with emulated agents, side by side, for each
    /// count of schedulers and each conflict detection.
    OmegaValidation {
        /// Machines (emulated agents).
        #[arg(long, default_value_t = 20)]
        machines: usize,
        /// Seconds of arrivals; each real run lasts as long.
        #[arg(long, default_value = "60s", value_parser = between(Duration::from_secs(1), Duration::from_secs(3600)))]
        horizon_seconds: Seconds,
        /// Parallel batch schedulers, one pair of runs each.
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        schedulers: Vec<usize>,
        /// Conflict detections, one pair of runs each: fine, coarse.
        #[arg(long, value_delimiter = ',', default_value = "fine,coarse", value_parser = conflicts)]
        conflicts: Vec<keel_sim::simulation::Conflicts>,
        /// The workload's seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// `/master/state` and the operator API's GET_STATE on a large cluster; launches/s while a
    /// reader polls state (against none polling); one SUBSCRIBE stream keeping up.
    State {
        /// Emulated agents.
        #[arg(long, default_value_t = 40_000)]
        agents: usize,
        /// Long-running tasks in the cluster.
        #[arg(long, default_value_t = 400_000)]
        tasks: u64,
        /// Tasks launched in each timed phase.
        #[arg(long, default_value_t = 50_000)]
        launches: u64,
        /// How often the reader polls /master/state.
        #[arg(long, default_value = "100ms", value_parser = between(Duration::from_millis(1), Duration::from_secs(60)))]
        poll_seconds: Seconds,
    },
    /// Task churn against a real master and agent (OS processes, real containers) driven by
    /// real `keelctl execute` runs, sampling what must stay flat: RSS, threads, open files,
    /// cgroups and sandbox bytes.
    Soak {
        /// How long the churn runs.
        #[arg(long, default_value = "3600s", value_parser = positive_up_to_a_day())]
        duration_seconds: Seconds,
        /// Between samples.
        #[arg(long, default_value = "60s", value_parser = positive_up_to_a_day())]
        sample_seconds: Seconds,
        /// The agent's --gc-delay-seconds.
        #[arg(long, default_value = "300s", value_parser = between(Duration::ZERO, Duration::from_secs(86_400)))]
        gc_delay_seconds: Seconds,
        /// Tasks per job.
        #[arg(long, default_value_t = 20)]
        instances: usize,
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

fn conflicts(s: &str) -> Result<keel_sim::simulation::Conflicts, String> {
    match s {
        "fine" => Ok(keel_sim::simulation::Conflicts::Fine),
        "coarse" => Ok(keel_sim::simulation::Conflicts::Coarse),
        other => Err(format!("{other}: expected fine or coarse")),
    }
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
            tls,
            http,
        } => {
            keel_bench::launch::run(agents, tasks, &agent_resources, &task_resources, tls, http)
                .await
        }
        Bench::Omega {
            agents,
            tasks,
            schedulers,
            agent_resources,
            task_resources,
            task_seconds,
        } => {
            keel_bench::omega::run(
                agents,
                tasks,
                &schedulers,
                &agent_resources,
                &task_resources,
                task_seconds.0,
            )
            .await
        }
        Bench::OmegaValidation {
            machines,
            horizon_seconds,
            schedulers,
            conflicts,
            seed,
        } => {
            let v = keel_bench::omega_validation::Validation {
                machines,
                horizon: horizon_seconds.0.as_secs_f64(),
                seed,
                ..Default::default()
            };
            keel_bench::omega_validation::run(&v, &schedulers, &conflicts).await
        }
        Bench::Flood {
            connections,
            requests,
        } => keel_bench::flood::run(connections, requests).await,
        Bench::State {
            agents,
            tasks,
            launches,
            poll_seconds,
        } => keel_bench::state::run(agents, tasks, launches, poll_seconds.0).await,
        Bench::Agents {
            agents,
            job_tasks,
            task_seconds,
            memory_tasks,
            ping_round,
        } => {
            keel_bench::agents::run(agents, job_tasks, task_seconds.0, memory_tasks, ping_round)
                .await
        }
        Bench::Failover {
            agents,
            tasks_per_agent,
            zk_session_timeout_seconds,
        } => keel_bench::failover::run(agents, tasks_per_agent, zk_session_timeout_seconds.0).await,
        Bench::AutopilotRollout {
            machines,
            unit_size,
            probation_seconds,
            report_interval_seconds,
        } => {
            keel_bench::autopilot::run_rollout(
                machines,
                unit_size,
                probation_seconds.0,
                report_interval_seconds.0,
            )
            .await
        }
        Bench::Soak {
            duration_seconds,
            sample_seconds,
            gc_delay_seconds,
            instances,
        } => {
            keel_bench::soak::run(keel_bench::soak::SoakConfig {
                duration: duration_seconds.0,
                sample_every: sample_seconds.0,
                gc_delay: gc_delay_seconds.0,
                instances,
            })
            .await
        }
        Bench::AutopilotRepairs { machines, failing } => {
            keel_bench::autopilot::run_repairs(machines, failing).await
        }
        Bench::Containers {
            tasks,
            latency_tasks,
            isolation,
            task_resources,
        } => keel_bench::containers::run(tasks, latency_tasks, isolation, task_resources).await,
    }
}
