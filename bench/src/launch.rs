//! `keel-bench launch`: end-to-end task launches per second through a real master to emulated
//! agents (accept → RunTask → RUNNING, FINISHED → acknowledgements), against the same number of
//! libactor messages between two bare nodes in the same run.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use authentication::roles;
use frameworks::{scheduler_driver, SchedulerOptions};
use libactor::tls::ca::{CertRequest, ClusterCa};
use libactor::{Context, Node, Process, TlsConfig, Upid};
use protos::http_api::Encoding;
use protos::libactor::examples::Note;
use resources::Resources;

use crate::emulated_agent::EmulationCounters;
use crate::emulated_fleet::start_agents;
use crate::launch_scheduler::{LaunchCounters, LaunchScheduler};
use crate::master_child::MasterChild;
use crate::phase::wait_until;

/// Which framework launches: the scheduler driver, or a framework speaking the v1 scheduler
/// HTTP API in an encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameworkKind {
    /// Keel's scheduler driver (the libprocess-style protocol).
    Driver,
    /// The v1 scheduler HTTP API.
    Http(Encoding),
}

/// Launches `tasks` tasks of `task_resources` on `agents` emulated agents offering
/// `agent_resources` each; prints the rate beside the bare-libactor baseline. With `tls` it
/// runs the same launches again on a secure cluster (master, agents and framework on mutual
/// TLS) and prints the ratio of the two rates; with `http`, again with an HTTP framework in
/// protobuf and in JSON, and prints their ratios to the driver's.
pub async fn run(
    agents: usize,
    tasks: u64,
    agent_resources: &str,
    task_resources: &str,
    tls: bool,
    http: bool,
) -> anyhow::Result<()> {
    let agent_resources: Resources = agent_resources.parse().context("--agent-resources")?;
    let task_resources: Resources = task_resources.parse().context("--task-resources")?;
    let rate = launch(
        agents,
        tasks,
        &agent_resources,
        &task_resources,
        Duration::ZERO,
        None,
        FrameworkKind::Driver,
    )
    .await?;

    // The baseline: per task the cluster moves 9 messages (RunTask, 2 updates and 2 acks, each
    // crossing the master); time as many bare round trips (2 messages each).
    let round_trips = tasks * 9 / 2;
    let base = baseline(round_trips, 10_000).await?;
    let base_rate = tasks as f64 / base.as_secs_f64();
    println!(
        "baseline: {round_trips} bare libactor round trips (the same 9 messages per task) in {base:.2?}: {base_rate:.0} task-equivalents/s; Keel / baseline = {:.2}",
        rate / base_rate
    );
    if tls {
        let secure = BenchCa::new()?;
        let tls_rate = launch(
            agents,
            tasks,
            &agent_resources,
            &task_resources,
            Duration::ZERO,
            Some(&secure),
            FrameworkKind::Driver,
        )
        .await?;
        println!(
            "tls: {tls_rate:.0} tasks/s on mutual TLS vs {rate:.0} plaintext: TLS / plaintext = {:.2}",
            tls_rate / rate
        );
    }
    if http {
        for encoding in [Encoding::Protobuf, Encoding::Json] {
            let kind = FrameworkKind::Http(encoding);
            let http_rate = launch(
                agents,
                tasks,
                &agent_resources,
                &task_resources,
                Duration::ZERO,
                None,
                kind,
            )
            .await?;
            println!(
                "http ({}): {http_rate:.0} tasks/s vs the driver's {rate:.0}: HTTP / driver = {:.2}",
                encoding.content_type(),
                http_rate / rate
            );
        }
    }
    Ok(())
}

/// A CA for one secure run: the master's TLS directory, and certificates for the emulated
/// agents' and the framework's nodes.
pub(crate) struct BenchCa {
    dir: tempfile::TempDir,
    agents: TlsConfig,
    framework: TlsConfig,
}

impl BenchCa {
    fn new() -> anyhow::Result<BenchCa> {
        let ca = ClusterCa::generate("keel-bench")?;
        let dir = tempfile::tempdir()?;
        let host = ["127.0.0.1"];
        let master = ca.issue(&CertRequest::new("master", &[roles::MASTER], &host))?;
        libactor::tls::dir::write(dir.path(), ca.cert_pem(), &master)?;
        let tls = |principal: &str, role: &str| -> anyhow::Result<TlsConfig> {
            let cert = ca.issue(&CertRequest::new(principal, &[role], &host))?;
            Ok(TlsConfig::from_pem(
                ca.cert_pem(),
                &cert.cert_pem,
                &cert.key_pem,
            )?)
        };
        Ok(BenchCa {
            agents: tls("bench-agents", roles::AGENT)?,
            framework: tls("keel-bench", roles::FRAMEWORK)?,
            dir,
        })
    }
}

/// One launch run against a fresh master (secure with `ca`), each task running `task_duration`
/// on its emulated agent; returns tasks per second.
pub(crate) async fn launch(
    agents: usize,
    tasks: u64,
    agent_resources: &Resources,
    task_resources: &Resources,
    task_duration: Duration,
    ca: Option<&BenchCa>,
    framework: FrameworkKind,
) -> anyhow::Result<f64> {
    let master = match ca {
        None => MasterChild::start().await?,
        Some(ca) => {
            let dir = ca.dir.path().to_str().context("a UTF-8 temp dir")?;
            MasterChild::start_draining(&["--tls-dir", dir]).await?
        }
    };
    let counters = Arc::new(EmulationCounters::default());
    let nodes = start_agents(
        agents,
        &master.pid,
        agent_resources,
        task_duration,
        &counters,
        ca.map(|c| &c.agents),
    )?;
    wait_until("agent registration", || {
        counters.registered.load(Ordering::Relaxed) == agents as u64
    })
    .await?;

    let mut builder = Node::builder();
    if let Some(ca) = ca {
        builder = builder.tls(ca.framework.clone());
    }
    let framework_node = builder.start()?;
    let launched = Arc::new(LaunchCounters::default());
    let running = match framework {
        FrameworkKind::Driver => Running::Driver(scheduler_driver::start(
            &framework_node,
            master.pid.clone(),
            keel::example_runs::framework_info("keel-bench"),
            LaunchScheduler::new(tasks, task_resources.clone(), launched.clone()),
            SchedulerOptions::default(),
        )?),
        FrameworkKind::Http(encoding) => {
            let (address, resources) = (master.pid.address().to_owned(), task_resources.clone());
            let counters = launched.clone();
            Running::Http(tokio::spawn(async move {
                crate::http_launch::run_framework(&address, encoding, tasks, resources, counters)
                    .await
            }))
        }
    };
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
        // An HTTP framework that fails ends the wait: its error is the run's.
        let gave_up = matches!(&running, Running::Http(task) if task.is_finished());
        gave_up
            || launched.finished.load(Ordering::Relaxed) + launched.failed.load(Ordering::Relaxed)
                >= tasks
    })
    .await?;
    match running {
        Running::Driver(handle) => {
            handle.join().await;
        }
        Running::Http(task) => task.await??,
    }
    let failed = launched.failed.load(Ordering::Relaxed);
    let rate = tasks as f64 / took.as_secs_f64();
    let how = match (ca.is_some(), framework) {
        (true, _) => " (mutual TLS)".to_owned(),
        (false, FrameworkKind::Driver) => String::new(),
        (false, FrameworkKind::Http(e)) => format!(" (HTTP framework, {})", e.content_type()),
    };
    println!(
        "launch{how}: {tasks} tasks on {agents} emulated agents in {took:.2?}: {rate:.0} tasks/s ({failed} failed); master RSS after the run: {:.1} MiB",
        master.rss_bytes() as f64 / (1 << 20) as f64
    );
    framework_node.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(rate)
}

/// A framework under way.
enum Running {
    Driver(frameworks::scheduler_driver::SchedulerHandle<LaunchScheduler>),
    Http(tokio::task::JoinHandle<anyhow::Result<()>>),
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
