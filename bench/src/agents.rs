//! `keel-bench agents`: many emulated agents registered and pinged; a framework's job of short
//! tasks and how much longer than one task it takes; the master's memory per agent and per
//! task.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use frameworks::{scheduler_driver, SchedulerOptions};
use libactor::Node;
use resources::Resources;

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agents;
use crate::launch_scheduler::{LaunchCounters, LaunchScheduler};
use crate::master_child::MasterChild;
use crate::phase::wait_until;

/// Runs the scale benchmark: `agents` agents, a job of `job_tasks` tasks of `task_seconds`,
/// then `memory_tasks` long-running tasks to weigh the master's memory per task.
pub async fn run(
    agents: usize,
    job_tasks: u64,
    task_duration: Duration,
    memory_tasks: u64,
    ping_round: bool,
) -> anyhow::Result<()> {
    let agent_resources: Resources = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]".parse()?;
    let master = MasterChild::start().await?;
    let rss_empty = master.rss_bytes();
    let counters = Arc::new(EmulationCounters::default());
    let task_seconds = task_duration.as_secs_f64();
    let start = Instant::now();
    let nodes = start_agents(
        agents,
        &master.pid,
        &agent_resources,
        task_duration,
        &counters,
        None,
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
            None,
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
