//! `keel-bench failover`: two `keel-master`s contending in a real ZooKeeper; emulated agents
//! with their tasks registered with the leader, which is then SIGKILLed: the time from the new
//! leader's election until every agent has re-registered, beside the same agents' first
//! registration in the same run.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frameworks::{scheduler_driver, SchedulerOptions};
use libactor::Node;

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agent_refs;
use crate::launch_scheduler::{LaunchCounters, LaunchScheduler};
use crate::master_child::{wait_for_line, MasterChild};
use crate::phase::{wait_until, PHASE_TIMEOUT};

/// Runs the failover benchmark with `agents` agents of `tasks_per_agent` running tasks each.
pub async fn run(
    agents: usize,
    tasks_per_agent: u64,
    zk_session_timeout: Duration,
) -> anyhow::Result<()> {
    let zk = keel_testkit::zookeeper_server::ZooKeeperServer::start()?;
    let url = zk.url("/keel");
    let timeout = zk_session_timeout.as_secs_f64().to_string();
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
        None,
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
    // A cluster in its steady state: every agent has had a ping since the last one joined,
    // and with it the master's advice for its first registration retry, sized to the whole
    // cluster (the earliest agents registered when it was small).
    let pings_before = counters.pings.load(Ordering::Relaxed);
    wait_until("a round of pings", || {
        counters.pings.load(Ordering::Relaxed) >= pings_before + agents as u64
    })
    .await?;
    eprintln!("  {total} tasks running, every agent pinged; killing the leader");

    let detector = coordination::Detector::start(url.parse()?, zk_session_timeout);
    let mut leader = detector.leader();
    let new_leader = second.pid.to_string();
    first.kill()?; // SIGKILL: no goodbye to ZooKeeper or the agents
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
        "failover: {agents} agents, {total} tasks: elected {:.2?} after the kill (session timeout {zk_session_timeout:?}); the new master ran {:.2?} after its election (registry recovered); every agent re-registered {reregistered:.2?} after the election ({attempts} attempts)",
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
        libactor::http_client::get_json(second.pid.address(), "/metrics/snapshot").await
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
