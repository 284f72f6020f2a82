//! Chaos with real processes: a real ZooKeeper, three `keel-master`s contending in it, three
//! `keel-slave`s following it (OS processes with posix isolation, each with its own work dir),
//! and `keelctl execute` jobs following the `zk://` URL, two at a time, back to back. Faults
//! drawn from a seed hit the cluster one after another: SIGKILL of the leader, of a standby,
//! of an agent (each restarted at once, an agent with its work dir), SIGSTOP of the leader
//! (shorter than it may ride out) and of an agent, a ZooKeeper restart, SIGKILL of a
//! framework (a running `keelctl`), SIGKILL of a running task's processes, an agent's disk
//! full for a few seconds (each work dir is a small tmpfs of its own). After each fault the
//! cluster must settle (a leader with every agent registered); at the end every job not hit
//! must have ended with all its tasks FINISHED (a job whose task was killed, with that task
//! FAILED), every task must have started at most once (exactly once in those jobs), and the
//! killed frameworks must be gone from the master and the agents.
//!
//! `KEEL_CHAOS_SEED` picks the faults (a failure prints the seed to replay it);
//! `KEEL_CHAOS_FAULTS` how many (20 by default: the short form CI runs; RELIABILITY.md
//! records long runs); `KEEL_CHAOS_ONLY` (a kind, such as `FillAgentDisk`) draws that kind
//! alone.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coordination::{Detector, ZkUrl};
use keel_testkit::daemon::Daemon;
use keel_testkit::leader::leader_other_than;
use keel_testkit::small_disk::SmallDisk;
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
const JOB_LOOPS: usize = 2;
/// How long a new leader waits for the registry's agents and frameworks: a framework whose
/// `keelctl` was killed across a failover is removed after this.
const REREGISTER_SECONDS: &str = "20";

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
    /// SIGKILL of the `keelctl` running in job loop `i`.
    KillFramework(usize),
    /// SIGKILL of the processes of a running task (the `n`th found, modulo how many run).
    KillTask(u64),
    /// Every byte of agent `i`'s work dir taken for [`DISK_FULL`]: launches, checkpoints and
    /// status update records on it fail meanwhile.
    FillAgentDisk(usize),
}

/// How long a full disk lasts.
const DISK_FULL: Duration = Duration::from_secs(3);
/// The size of each agent's work dir (a tmpfs).
const AGENT_DISK_BYTES: usize = 256 << 20;

impl Fault {
    /// Its kind's name, as counted and as `KEEL_CHAOS_ONLY` names it.
    fn kind(&self) -> String {
        let name = format!("{self:?}");
        name.split('(').next().unwrap_or_default().to_owned()
    }

    fn draw(rng: &mut Rng) -> Fault {
        match rng.below(9) {
            0 => Fault::KillLeader,
            1 => Fault::KillStandby,
            2 => Fault::PauseLeader,
            3 => Fault::KillAgent(rng.below(AGENTS as u64) as usize),
            4 => Fault::PauseAgent(rng.below(AGENTS as u64) as usize),
            5 => Fault::KillFramework(rng.below(JOB_LOOPS as u64) as usize),
            6 => Fault::KillTask(rng.below(1 << 16)),
            7 => Fault::FillAgentDisk(rng.below(AGENTS as u64) as usize),
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
    /// Each agent's pid (`slave(1)@…`), for its metrics.
    agent_pids: Vec<String>,
    /// Each agent's work dir, unmounted after the agents are gone.
    disks: Vec<SmallDisk>,
    dir: PathBuf,
    /// The pid of the `keelctl` each job loop runs now, if any.
    frameworks: Vec<RunningJob>,
    /// Jobs whose tasks a fault killed, and how many.
    tasks_killed_in: HashMap<String, usize>,
}

/// The OS pid of a job loop's running `keelctl`.
type RunningJob = Arc<Mutex<Option<u32>>>;

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
            "--agent-reregister-timeout-seconds",
            REREGISTER_SECONDS,
        ],
    )
    .await
}

/// An agent on `work_dir`, and its pid.
async fn start_agent(zk_url: &str, work_dir: &Path) -> (Daemon, String) {
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
        let mut disks = Vec::new();
        let mut agent_pids = Vec::new();
        for i in 0..AGENTS {
            let work_dir = dir.join(format!("agent-{i}"));
            disks.push(SmallDisk::mount_on(&work_dir, AGENT_DISK_BYTES).expect("a tmpfs (root)"));
            let (agent, pid) = start_agent(&zk_url, &work_dir).await;
            agents.push(Some(agent));
            agent_pids.push(pid);
        }
        Cluster {
            zk,
            zk_url,
            detector,
            masters,
            agents,
            agent_pids,
            disks,
            dir: dir.to_owned(),
            frameworks: (0..JOB_LOOPS).map(|_| RunningJob::default()).collect(),
            tasks_killed_in: HashMap::new(),
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
                let (agent, pid) = start_agent(&self.zk_url, &work_dir).await;
                self.agents[i] = Some(agent);
                self.agent_pids[i] = pid;
            }
            Fault::PauseAgent(i) => {
                if let Some(agent) = &self.agents[i] {
                    pause(agent, Duration::from_secs(3)).await;
                }
            }
            Fault::KillFramework(i) => {
                if let Some(pid) = *self.frameworks[i].lock().expect("running job") {
                    // SAFETY: kill(2) with a pid this test spawned and has not reaped.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
            }
            Fault::KillTask(n) => {
                let mut running = task_shells(&self.dir);
                if running.is_empty() {
                    return;
                }
                running.sort();
                let (pid, job) = running.swap_remove(n as usize % running.len());
                // SAFETY: getpgid(2) and kill(2) on a process of this test's cluster; its
                // group is killed only if the task leads it (never this test's own group).
                unsafe {
                    let group = libc::getpgid(pid);
                    if group == pid && group != libc::getpgrp() {
                        libc::kill(-group, libc::SIGKILL);
                    } else {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                println!("chaos: killed task process {pid} of {job}");
                *self.tasks_killed_in.entry(job).or_default() += 1;
            }
            Fault::FillAgentDisk(i) => {
                let disk = &self.disks[i];
                disk.fill().expect("the agent's disk fills");
                // The outage itself is the fault.
                tokio::time::sleep(DISK_FULL).await;
                disk.free().expect("the agent's disk has room again");
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
            // What was last seen, for the failure message.
            let seen = match self.leader() {
                None => "no leader detected".to_owned(),
                Some(leader) => {
                    let address = leader.split('@').nth(1).unwrap_or_default().to_owned();
                    match libactor::http_client::get_json(&address, "/master/state").await {
                        Err(e) => format!("leader {leader}: /master/state failed: {e}"),
                        Ok(state) => {
                            let agents: Vec<String> = state["slaves"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|a| format!("{} active={}", a["pid"], a["active"]))
                                .collect();
                            if agents.iter().filter(|a| a.ends_with("active=true")).count()
                                == AGENTS
                            {
                                return;
                            }
                            format!("leader {leader}: agents {agents:?}")
                        }
                    }
                }
            };
            let masters: Vec<&str> = self.masters.iter().map(|(_, pid)| pid.as_str()).collect();
            assert!(
                Instant::now() < deadline,
                "the cluster did not settle within {SETTLE:?} after {what}: {seen}; masters: {masters:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// How a job ended.
#[derive(Debug, Clone)]
enum JobEnd {
    /// Every task FINISHED and `keelctl` exited 0.
    Finished,
    /// Its `keelctl` was killed (a fault).
    Killed,
    /// Anything else, and why.
    Failed(String),
}

/// Each job's name and how it ended.
type JobResults = Arc<Mutex<Vec<(String, JobEnd)>>>;

impl Cluster {
    /// Waits until the leader holds no framework and no agent runs an executor: every job's
    /// framework ended, the killed ones removed by the master (their scheduler gone, with no
    /// failover timeout) and their executors shut down on the agents.
    async fn killed_frameworks_are_gone(&mut self, what: &str) {
        let bound = SETTLE + Duration::from_secs(REREGISTER_SECONDS.parse().unwrap_or(20));
        let deadline = Instant::now() + bound;
        // What was last seen, for the failure message.
        let mut left = String::from("no leader detected");
        loop {
            self.replace_exited_masters().await;
            if let Some(leader) = self.leader() {
                let address = leader.split('@').nth(1).unwrap_or_default().to_owned();
                if let Ok(state) = libactor::http_client::get_json(&address, "/master/state").await
                {
                    let frameworks = state["frameworks"].as_array().map_or(usize::MAX, Vec::len);
                    let mut executors = 0;
                    left = format!("frameworks on the leader: {}", state["frameworks"]);
                    for agent in state["slaves"].as_array().into_iter().flatten() {
                        let pid = agent["pid"].as_str().unwrap_or_default();
                        let at = pid.split('@').nth(1).unwrap_or_default();
                        let path =
                            format!("/{}/state", pid.split('@').next().unwrap_or("slave(1)"));
                        if let Ok(s) = libactor::http_client::get_json(at, &path).await {
                            executors += s["frameworks"].as_array().map_or(0, Vec::len);
                            left.push_str(&format!("; on {pid}: {}", s["frameworks"]));
                        }
                    }
                    if frameworks == 0 && executors == 0 {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{what}: frameworks or executors left {bound:?} after the last job: {left}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Cluster {
    /// Checkpoints the agents failed to write since each last started (on a full disk).
    async fn checkpoint_failures(&self) -> f64 {
        let mut sum = 0.0;
        for pid in &self.agent_pids {
            let address = pid.split('@').nth(1).unwrap_or_default();
            if let Ok(m) = libactor::http_client::get_json(address, "/metrics/snapshot").await {
                sum += m["slave/checkpoint_failures"].as_f64().unwrap_or(0.0);
            }
        }
        sum
    }
}

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
    running: RunningJob,
    stop: Arc<AtomicBool>,
    results: JobResults,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("job-{loop_id}-{n}");
        let command = format!(
            // The sandbox without its run names the framework and the task: a second start of
            // the same task would write the same line again. The job's name leads, so that a
            // fault killing the task knows whose it was.
            "echo \"{name} ${{MESOS_SANDBOX%/runs/*}}\" >> {}; sleep {}",
            starts.display(),
            1 + (n % 3)
        );
        // Its output goes to a file, to show what it saw if it does not finish.
        let log = starts.with_file_name(format!("{name}.log"));
        let output = std::fs::File::create(&log).expect("a job log");
        let started = Instant::now();
        let child = tokio::process::Command::new(KEELCTL_BIN)
            .env("KEEL_INSECURE", "true")
            .env("RUST_LOG", "info")
            .args(["--master", &zk_url, "execute", "--name", &name])
            .args(["--command", &command, "--cpus", "0.1", "--mem", "16"])
            .args(["--instances", &TASKS_PER_JOB.to_string()])
            .stdout(output.try_clone().expect("a job log"))
            .stderr(output)
            .kill_on_drop(true)
            .spawn();
        let end = match child {
            Err(e) => JobEnd::Failed(format!("keelctl did not run: {e}")),
            Ok(mut child) => {
                *running.lock().expect("running job") = child.id();
                let end = match tokio::time::timeout(JOB_BOUND, child.wait()).await {
                    Ok(Ok(status)) if status.success() => JobEnd::Finished,
                    Ok(Ok(status)) if status.signal() == Some(libc::SIGKILL) => JobEnd::Killed,
                    Ok(Ok(status)) => JobEnd::Failed(format!("{status}")),
                    Ok(Err(e)) => JobEnd::Failed(format!("keelctl was lost: {e}")),
                    Err(_) => JobEnd::Failed(format!("not done within {JOB_BOUND:?}")),
                };
                *running.lock().expect("running job") = None;
                end
            }
        };
        let end = match end {
            JobEnd::Failed(why) => JobEnd::Failed(format!(
                "{why} (started {:?} into the run); keelctl said:\n{}",
                started.duration_since(run_start()),
                std::fs::read_to_string(&log).unwrap_or_default()
            )),
            done => {
                let _ = std::fs::remove_file(&log);
                done
            }
        };
        results.lock().expect("results").push((name, end));
    }
}

/// The running task shells of the jobs under `dir` (their command names the run's `starts`
/// file), with the job each belongs to (the command's first word after `echo "`).
fn task_shells(dir: &Path) -> Vec<(libc::pid_t, String)> {
    let starts = dir.join("starts").display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: libc::pid_t = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let script = match args.as_slice() {
                [sh, c, script, ..] if sh.ends_with("sh") && c == "-c" => script,
                _ => return None,
            };
            if !script.contains(&starts) {
                return None;
            }
            let job = script.strip_prefix("echo \"")?.split(' ').next()?;
            Some((pid, job.to_owned()))
        })
        .collect()
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
    let loops: Vec<_> = (0..JOB_LOOPS)
        .map(|i| {
            tokio::spawn(job_loop(
                cluster.zk_url.clone(),
                starts.clone(),
                i,
                cluster.frameworks[i].clone(),
                stop.clone(),
                results.clone(),
            ))
        })
        .collect();

    let only = std::env::var("KEEL_CHAOS_ONLY").ok();
    let mut rng = Rng(seed.max(1));
    let mut drawn: HashMap<String, u32> = HashMap::new();
    for i in 0..faults {
        // The schedule: each fault lands a drawn while after the cluster settled.
        tokio::time::sleep(Duration::from_millis(500 + rng.below(2500))).await;
        let (fault, kind) = loop {
            let fault = Fault::draw(&mut rng);
            let kind = fault.kind();
            if only.as_deref().is_none_or(|only| only == kind) {
                break (fault, kind);
            }
        };
        *drawn.entry(kind).or_default() += 1;
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
    // A job whose task a fault killed ends with that task FAILED, and keelctl says so.
    let failed: Vec<_> = results
        .iter()
        .filter(|(name, end)| match end {
            JobEnd::Failed(why) => {
                !(cluster.tasks_killed_in.contains_key(name) && why.contains("TASK_FAILED"))
            }
            _ => false,
        })
        .collect();
    assert!(
        failed.is_empty(),
        "seed {seed}: jobs that did not finish: {failed:#?}"
    );
    let killed: Vec<&str> = results
        .iter()
        .filter(|(_, end)| matches!(end, JobEnd::Killed))
        .map(|(name, _)| name.as_str())
        .collect();
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
    // Each line names its job: every task of a job that ran to its end started once (a task
    // killed may have died before it wrote its line), a job whose keelctl was killed started
    // at most all of its tasks.
    let mut starts_by_job: HashMap<&str, usize> = HashMap::new();
    for line in seen.keys() {
        let job = line.split(' ').next().unwrap_or_default();
        *starts_by_job.entry(job).or_default() += 1;
    }
    for (name, _) in &results {
        let started = starts_by_job.get(name.as_str()).copied().unwrap_or(0);
        let hit = cluster.tasks_killed_in.get(name).copied().unwrap_or(0);
        let fewest = if killed.contains(&name.as_str()) {
            0
        } else {
            TASKS_PER_JOB.saturating_sub(hit)
        };
        assert!(
            (fewest..=TASKS_PER_JOB).contains(&started),
            "seed {seed}: {name}: {started} task starts ({hit} tasks killed)"
        );
    }
    cluster
        .killed_frameworks_are_gone(&format!("seed {seed}"))
        .await;
    // A task killed just as it ended leaves its job FINISHED; the others failed it.
    let failed_by_kills = results
        .iter()
        .filter(|(name, end)| {
            cluster.tasks_killed_in.contains_key(name) && matches!(end, JobEnd::Failed(_))
        })
        .count();
    println!(
        "chaos: seed {seed}: {} jobs ({} killed, {failed_by_kills} of {} with a task killed ended with it FAILED), {} tasks, each started at most once; {} checkpoints failed on full disks (since each agent last started); faults {drawn:?}",
        results.len(),
        killed.len(),
        cluster.tasks_killed_in.len(),
        seen.len(),
        cluster.checkpoint_failures().await,
    );
}
