//! `keel-bench launch`: end-to-end task launches per second through a real master to emulated
//! agents (accept → RunTask → RUNNING, FINISHED → acknowledgements), against the same number of
//! libactor messages between two bare nodes in the same run.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use frameworks::{scheduler_driver, SchedulerOptions};
use libactor::{Context, Node, Process, Upid};
use protos::libactor::examples::Note;
use resources::Resources;

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agents;
use crate::launch_scheduler::{LaunchCounters, LaunchScheduler};
use crate::master_child::MasterChild;
use crate::phase::wait_until;

/// Launches `tasks` tasks of `task_resources` on `agents` emulated agents offering
/// `agent_resources` each; prints the rate beside the bare-libactor baseline.
pub async fn run(
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
