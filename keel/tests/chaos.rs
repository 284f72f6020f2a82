//! Chaos with real processes: a real ZooKeeper, three `keel-master`s contending in it, three
//! `keel-slave`s following it (OS processes with posix isolation, each with its own work dir),
//! and `keelctl execute` jobs following the `zk://` URL, two at a time, back to back. Faults
//! drawn from a seed hit the cluster one after another: SIGKILL of the leader, of a standby,
//! of an agent (each restarted at once, an agent with its work dir), SIGSTOP of the leader
//! (shorter than it may ride out) and of an agent, a ZooKeeper restart. After each fault the
//! cluster must settle (a leader with every agent registered); at the end every job must
//! have ended with all its tasks FINISHED, and every task must have started exactly once.
//!
//! `KEEL_CHAOS_SEED` picks the faults (a failure prints the seed to replay it);
//! `KEEL_CHAOS_FAULTS` how many (20 by default: the short form CI runs; RELIABILITY.md
//! records long runs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coordination::{Detector, ZkUrl};
use keel_testkit::daemon::Daemon;
use keel_testkit::leader::leader_other_than;
use keel_testkit::zookeeper_server::ZooKeeperServer;

const MASTER_BIN: &str = env!("CARGO_BIN_EXE_keel-master");
const SLAVE_BIN: &str = env!("CARGO_BIN_EXE_keel-slave");
const KEELCTL_BIN: &str = env!("CARGO_BIN_EXE_keelctl");
const ZK_SESSION_SECONDS: &str = "3";
/// How long the cluster may take to settle after a fault.
const SETTLE: Duration = Duration::from_secs(90);
/// How long one job may take, faults and all.
const JOB_BOUND: Duration = Duration::from_secs(240);
const AGENTS: usize = 3;
const TASKS_PER_JOB: usize = 3;

/// A seeded xorshift generator: the same seed, the same faults.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillLeader,
    KillStandby,
    PauseLeader,
    KillAgent(usize),
    PauseAgent(usize),
    RestartZooKeeper,
}

impl Fault {
    fn draw(rng: &mut Rng) -> Fault {
        match rng.below(6) {
            0 => Fault::KillLeader,
            1 => Fault::KillStandby,
            2 => Fault::PauseLeader,
            3 => Fault::KillAgent(rng.below(AGENTS as u64) as usize),
            4 => Fault::PauseAgent(rng.below(AGENTS as u64) as usize),
            _ => Fault::RestartZooKeeper,
        }
    }
}

struct Cluster {
    zk: ZooKeeperServer,
    zk_url: String,
    detector: Detector,
    masters: Vec<(Daemon, String)>,
    agents: Vec<Option<Daemon>>,
    dir: PathBuf,
}

async fn start_master(zk_url: &str) -> (Daemon, String) {
    Daemon::start(
        MASTER_BIN,
        &[
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--zk",
            zk_url,
            "--zk-session-timeout-seconds",
            ZK_SESSION_SECONDS,
        ],
    )
    .await
}

async fn start_agent(zk_url: &str, work_dir: &Path) -> Daemon {
    Daemon::start(
        SLAVE_BIN,
        &[
            "--master",
            zk_url,
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--work-dir",
            work_dir.to_str().expect("a UTF-8 path"),
            "--resources",
            "cpus:4;mem:1024",
            "--isolation",
            "posix",
        ],
    )
    .await
    .0
}

impl Cluster {
    async fn start(dir: &Path) -> Cluster {
        let zk = ZooKeeperServer::start().expect("zookeeper");
        let zk_url = zk.url("/keel");
        let url: ZkUrl = zk_url.parse().expect("a zk url");
        let detector = Detector::start(url, Duration::from_secs(2));
        let mut masters = Vec::new();
        for _ in 0..3 {
            masters.push(start_master(&zk_url).await);
        }
        let mut agents = Vec::new();
        for i in 0..AGENTS {
            agents.push(Some(
                start_agent(&zk_url, &dir.join(format!("agent-{i}"))).await,
            ));
        }
        Cluster {
            zk,
            zk_url,
            detector,
            masters,
            agents,
            dir: dir.to_owned(),
        }
    }

    fn leader(&self) -> Option<String> {
        self.detector
            .leader()
            .borrow()
            .as_ref()
            .map(|l| l.pid.clone())
    }

    /// Masters that exited on their own (a leader that lost its session steps down by
    /// exiting, as Mesos's does) are started again, as a service manager would.
    async fn replace_exited_masters(&mut self) {
        for i in 0..self.masters.len() {
            if self.masters[i].0.has_exited() {
                self.masters[i] = start_master(&self.zk_url).await;
            }
        }
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::KillLeader | Fault::KillStandby | Fault::PauseLeader => {
                let Some(leader) = self.leader() else { return };
                let leading = self.masters.iter().position(|(_, p)| *p == leader);
                let index = match (fault, leading) {
                    (Fault::KillStandby, Some(l)) => (l + 1) % self.masters.len(),
                    (_, Some(l)) => l,
                    (_, None) => return,
                };
                if let Fault::PauseLeader = fault {
                    // Shorter than the 2/3 of the session a leader rides out.
                    pause(&self.masters[index].0, Duration::from_millis(1500)).await;
                    return;
                }
                let (daemon, _) = self.masters.remove(index);
                daemon.crash().await;
                if let Fault::KillLeader = fault {
                    leader_other_than(&self.detector, Some(&leader)).await;
                }
                self.masters.push(start_master(&self.zk_url).await);
            }
            Fault::KillAgent(i) => {
                if let Some(agent) = self.agents[i].take() {
                    agent.crash().await;
                }
                let work_dir = self.dir.join(format!("agent-{i}"));
                self.agents[i] = Some(start_agent(&self.zk_url, &work_dir).await);
            }
            Fault::PauseAgent(i) => {
                if let Some(agent) = &self.agents[i] {
                    pause(agent, Duration::from_secs(3)).await;
                }
            }
            Fault::RestartZooKeeper => {
                self.zk.kill().expect("zookeeper stops");
                // The outage itself is the fault: a second, shorter than any session.
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.zk.resume().expect("zookeeper restarts");
            }
        }
    }

    /// Waits until a leader serves its state with every agent registered and active.
    async fn settle(&mut self, what: &str) {
        let deadline = Instant::now() + SETTLE;
        loop {
            self.replace_exited_masters().await;
            if let Some(leader) = self.leader() {
                let address = leader.split('@').nth(1).unwrap_or_default().to_owned();
                if let Ok(state) = libactor::http_client::get_json(&address, "/master/state").await
                {
                    let active = state["slaves"].as_array().map_or(0, |agents| {
                        agents.iter().filter(|a| a["active"] == true).count()
                    });
                    if active == AGENTS {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle within {SETTLE:?} after {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Each job's name and how it ended (an error says why it did not finish).
type JobResults = Arc<Mutex<Vec<(String, Result<(), String>)>>>;

/// SIGSTOP, then SIGCONT after `d`.
async fn pause(daemon: &Daemon, d: Duration) {
    daemon.signal(libc::SIGSTOP);
    tokio::time::sleep(d).await;
    daemon.signal(libc::SIGCONT);
}

/// Runs jobs back to back until `stop`: each a `keelctl execute` of tasks that record their
/// start in `starts` and run a while. Returns each job's name and whether it succeeded.
async fn job_loop(
    zk_url: String,
    starts: PathBuf,
    loop_id: usize,
    stop: Arc<AtomicBool>,
    results: JobResults,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("job-{loop_id}-{n}");
        let command = format!(
            // The sandbox without its run names the framework and the task: a second start of
            // the same task would write the same line again.
            "echo \"${{MESOS_SANDBOX%/runs/*}}\" >> {}; sleep {}",
            starts.display(),
            1 + (n % 3)
        );
        // Its output goes to a file, to show what it saw if it does not finish.
        let log = starts.with_file_name(format!("{name}.log"));
        let output = std::fs::File::create(&log).expect("a job log");
        let started = Instant::now();
        let run = tokio::process::Command::new(KEELCTL_BIN)
            .env("KEEL_INSECURE", "true")
            .env("RUST_LOG", "info")
            .args(["--master", &zk_url, "execute", "--name", &name])
            .args(["--command", &command, "--cpus", "0.1", "--mem", "16"])
            .args(["--instances", &TASKS_PER_JOB.to_string()])
            .stdout(output.try_clone().expect("a job log"))
            .stderr(output)
            .kill_on_drop(true)
            .status();
        let result = match tokio::time::timeout(JOB_BOUND, run).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("{status}")),
            Ok(Err(e)) => Err(format!("keelctl did not run: {e}")),
            Err(_) => Err(format!("not done within {JOB_BOUND:?}")),
        };
        let result = result.map_err(|why| {
            format!(
                "{why} (started {:?} into the run); keelctl said:\n{}",
                started.duration_since(run_start()),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        if result.is_ok() {
            let _ = std::fs::remove_file(&log);
        }
        results.lock().expect("results").push((name, result));
    }
}

/// When the run began, to place jobs and faults on one timeline.
fn run_start() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_finish_exactly_once_through_seeded_faults() {
    let seed = env_number("KEEL_CHAOS_SEED", 0xc4a05);
    let faults = env_number("KEEL_CHAOS_FAULTS", 20);
    println!("chaos: seed {seed}, {faults} faults (KEEL_CHAOS_SEED={seed} replays the draw)");
    run_start();
    let dir = tempfile::tempdir().expect("a temp dir");
    let starts = dir.path().join("starts");
    let mut cluster = Cluster::start(dir.path()).await;
    cluster.settle("start").await;

    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::new()));
    let loops: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(job_loop(
                cluster.zk_url.clone(),
                starts.clone(),
                i,
                stop.clone(),
                results.clone(),
            ))
        })
        .collect();

    let mut rng = Rng(seed.max(1));
    let mut drawn: HashMap<String, u32> = HashMap::new();
    for i in 0..faults {
        // The schedule: each fault lands a drawn while after the cluster settled.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2500))).await;
        let fault = Fault::draw(&mut rng);
        *drawn.entry(format!("{fault:?}")).or_default() += 1;
        println!(
            "chaos: fault {}/{faults} at {:?}: {fault:?}",
            i + 1,
            run_start().elapsed()
        );
        cluster.inject(fault).await;
        cluster
            .settle(&format!("fault {} ({fault:?}) of seed {seed}", i + 1))
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        tokio::time::timeout(JOB_BOUND + SETTLE, l)
            .await
            .expect("the last jobs end")
            .expect("a job loop does not panic");
    }

    let results = results.lock().expect("results").clone();
    let failed: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "seed {seed}: jobs that did not finish: {failed:#?}"
    );
    let text = std::fs::read_to_string(&starts).unwrap_or_default();
    let mut seen: HashMap<&str, u32> = HashMap::new();
    for line in text.lines() {
        *seen.entry(line).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "seed {seed}: tasks started twice: {twice:?}"
    );
    assert_eq!(
        seen.len(),
        results.len() * TASKS_PER_JOB,
        "seed {seed}: every task of every job started once"
    );
    println!(
        "chaos: seed {seed}: {} jobs, {} tasks, each started once; faults {drawn:?}",
        results.len(),
        seen.len()
    );
}
