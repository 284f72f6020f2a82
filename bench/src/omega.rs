//! `keel-bench omega`: shared-state placements per second through a real master to emulated
//! agents, with several counts of parallel batch schedulers (the Omega paper's scaling
//! experiment, on Keel's own master): each scheduler keeps its copy of the cell, commits
//! first-fit placements incrementally, and places conflicts again; then one scheduler with
//! [`PIPELINED`] transactions in flight. Beside it, in the same run, the offer path's launch
//! rate on the same fleet (`keel-bench launch`'s scheduler). Last, the latency from a decision
//! to TASK_RUNNING, one task at a time, by accepting an offer and by committing a transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frameworks::examples::batch::BatchEvent;
use frameworks::examples::omega_batch::{OmegaBatch, OmegaBatchSpec};
use frameworks::{shared_state, RetryPolicy, SchedulerOptions, SchedulingStats};
use libactor::Node;
use protos::v1::TaskState;
use resources::Resources;
use std::sync::atomic::Ordering;

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agents;
use crate::latency_probe::{median_p99, CommitProbe, OfferProbe, Samples};
use crate::master_child::MasterChild;
use crate::phase::wait_until;

/// Transactions in flight in the pipelined run.
pub const PIPELINED: usize = 4;

/// Runs `tasks` tasks (each running `task_duration` on its emulated agent) on `agents` emulated
/// agents through the offer path, then through
/// each count of parallel shared-state schedulers in `schedulers`; prints each rate, the
/// conflict fraction and the ratio to the offer path.
pub async fn run(
    agents: usize,
    tasks: u64,
    schedulers: &[usize],
    agent_resources: &str,
    task_resources: &str,
    task_duration: Duration,
) -> anyhow::Result<()> {
    let agent_resources: Resources = agent_resources.parse().context("--agent-resources")?;
    let task_resources: Resources = task_resources.parse().context("--task-resources")?;
    let offers = crate::launch::launch(
        agents,
        tasks,
        &agent_resources,
        &task_resources,
        task_duration,
        None,
        crate::launch::FrameworkKind::Driver,
    )
    .await?;
    println!("offers: {offers:.0} tasks/s (one offer-based framework; the baseline)");
    // Each count of schedulers with one transaction in flight each (the paper's schedulers),
    // then one scheduler pipelining four.
    let runs = schedulers
        .iter()
        .map(|&k| (k, 1))
        .chain(std::iter::once((1, PIPELINED)));
    for (k, in_flight) in runs {
        let (rate, stats) = shared(
            agents,
            tasks,
            k,
            &agent_resources,
            &task_resources,
            task_duration,
            in_flight,
        )
        .await?;
        println!(
            "omega: {k} schedulers, {in_flight} in flight each: {rate:.0} tasks/s; {} transactions, conflict fraction {:.3}, {} placements conflicted ({:.2} per task); omega / offers = {:.2}",
            stats.transactions,
            stats.conflict_fraction(),
            stats.conflicts,
            stats.conflicts as f64 / tasks as f64,
            rate / offers
        );
    }
    latency(100, LATENCY_SAMPLES, &task_resources).await
}

/// Launches timed one at a time on each path.
pub const LATENCY_SAMPLES: usize = 300;

/// Decision → TASK_RUNNING, one task at a time, on `agents` emulated agents: first by
/// accepting offers, then by committing transactions, on the same master and fleet.
async fn latency(agents: usize, samples: usize, task_resources: &Resources) -> anyhow::Result<()> {
    let master = MasterChild::start().await?;
    let counters = Arc::new(EmulationCounters::default());
    let agent_resources: Resources = "cpus:64;mem:65536".parse()?;
    let nodes = start_agents(
        agents,
        &master.pid,
        &agent_resources,
        Duration::ZERO,
        &counters,
        None,
    )?;
    wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;
    let node = Node::builder().start()?;
    let offers: Samples = Arc::default();
    let handle = frameworks::scheduler_driver::start(
        &node,
        master.pid.clone(),
        keel::example_runs::framework_info("latency-offers"),
        OfferProbe::new(samples, task_resources.clone(), offers.clone()),
        SchedulerOptions::default(),
    )?;
    handle.join().await;
    let commits: Samples = Arc::default();
    let handle = shared_state::start(
        &node,
        master.pid.clone(),
        keel::example_runs::framework_info("latency-commits"),
        CommitProbe::new(samples, task_resources.clone(), commits.clone()),
        SchedulerOptions::default(),
    )?;
    handle.join().await;
    let (offer_p50, offer_p99) = median_p99(&offers);
    let (commit_p50, commit_p99) = median_p99(&commits);
    println!(
        "latency, decision → TASK_RUNNING, {samples} tasks one at a time on {agents} emulated agents: accept p50 {offer_p50:.2?} p99 {offer_p99:.2?}; commit p50 {commit_p50:.2?} p99 {commit_p99:.2?}; commit / accept (p50) = {:.2}",
        commit_p50.as_secs_f64() / offer_p50.as_secs_f64().max(1e-9)
    );
    node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(())
}

/// One run with `k` shared-state batch schedulers sharing `tasks` between them, on a fresh
/// master and fleet; returns tasks per second (committed, run and finished) and the
/// schedulers' summed statistics.
async fn shared(
    agents: usize,
    tasks: u64,
    k: usize,
    agent_resources: &Resources,
    task_resources: &Resources,
    task_duration: Duration,
    in_flight: usize,
) -> anyhow::Result<(f64, SchedulingStats)> {
    let master = MasterChild::start().await?;
    let counters = Arc::new(EmulationCounters::default());
    let nodes = start_agents(
        agents,
        &master.pid,
        agent_resources,
        task_duration,
        &counters,
        None,
    )?;
    wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;
    let framework_node = Node::builder().start()?;
    let started = Instant::now();
    let mut runs = Vec::new();
    for i in 0..k {
        let share = tasks / k as u64 + u64::from((i as u64) < tasks % k as u64);
        let mut spec = OmegaBatchSpec::new(
            &format!("b{i}"),
            share as usize,
            "true",
            task_resources.clone(),
        );
        spec.start_at = i as f64 / k as f64;
        spec.retry = RetryPolicy {
            max_attempts: u32::MAX,
        };
        spec.max_in_flight = in_flight;
        let (scheduler, events) = OmegaBatch::new(spec);
        let stats = scheduler.stats();
        shared_state::start(
            &framework_node,
            master.pid.clone(),
            keel::example_runs::framework_info(&format!("omega-bench{i}")),
            scheduler,
            SchedulerOptions::default(),
        )?;
        runs.push((events, stats));
    }
    let mut total = SchedulingStats::default();
    let mut finished = 0;
    for (mut events, stats) in runs {
        while let Some(event) = events.recv().await {
            if let BatchEvent::Done(outcomes) = event {
                finished += outcomes
                    .iter()
                    .filter(|o| o.state == TaskState::TaskFinished)
                    .count();
                break;
            }
        }
        total.add(&stats.borrow());
    }
    let took = started.elapsed();
    let rate = tasks as f64 / took.as_secs_f64();
    // The master's side of each transaction, from its own metrics.
    if let Ok(m) = libactor::http_client::get_json(master.pid.address(), "/metrics/snapshot").await
    {
        println!(
            "  master: {} commits decided in p50 {} ms, p99 {} ms",
            m["omega/commit_time/count"],
            m["omega/commit_time/p50_ms"],
            m["omega/commit_time/p99_ms"]
        );
    }
    println!(
        "  {k} schedulers: {finished}/{tasks} tasks finished in {took:.2?} on {agents} emulated agents; master RSS {:.1} MiB",
        master.rss_bytes() as f64 / (1 << 20) as f64
    );
    framework_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok((rate, total))
}
