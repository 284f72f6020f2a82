//! `keel-bench containers`: one real agent starting isolated containers — a burst of `sleep`
//! tasks until all are RUNNING, then launch → RUNNING latency one task at a time — per
//! isolation (cgroups, then posix), beside the floor of bare `posix_spawn`s in the same run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use frameworks::{scheduler_driver, SchedulerOptions};
use libactor::Node;
use resources::Resources;
use slave::containerizer::IsolationMode;

use crate::container_scheduler::{
    quantile, raw_spawn, ContainerLaunchScheduler, ContainerLaunches,
};
use crate::phase::{wait_until, PHASE_TIMEOUT};

/// Runs the burst of `tasks` and `latency_tasks` single launches under each of `isolation`.
pub async fn run(
    tasks: u64,
    latency_tasks: u64,
    isolation: Vec<IsolationMode>,
    task_resources: String,
) -> anyhow::Result<()> {
    let task_resources: Resources = task_resources.parse().context("--task-resources")?;
    let threads = slave::containerizer::launcher::Launcher::default_slots();
    let raw = tokio::task::spawn_blocking(move || raw_spawn(tasks, threads)).await??;
    println!(
                "containers: baseline: {tasks} bare `sh -c 'exec sleep 600'` posix_spawned from {threads} threads in {raw:.2?} ({:.2?} each)",
                raw / tasks.max(1) as u32
            );
    for mode in isolation {
        one_isolation(mode, tasks, latency_tasks, &task_resources).await?;
    }
    Ok(())
}

/// Runs the container benchmark with one isolation on a fresh one-agent cluster.
async fn one_isolation(
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
