//! `keel-bench soak`: task churn for a long while against a real `keel-master` and
//! `keel-slave` (OS processes, real containers), driven by real `keelctl execute` runs, each a
//! framework that registers, runs its job and leaves: jobs of short tasks that finish, jobs
//! whose tasks fail, and jobs of long tasks whose framework is stopped while they run (so
//! they are killed). Every sample prints what must stay flat once warmed up: the master's and
//! the agent's RSS, threads and open files, the agent's cgroups, and its sandboxes on disk
//! (kept `--gc-delay` seconds, so their steady state is that long's worth of churn).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use keel_testkit::daemon::Daemon;
use libactor::Upid;

/// What one soak run does.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long the churn runs.
    pub duration: Duration,
    /// Between samples.
    pub sample_every: Duration,
    /// The agent's `--gc-delay-seconds`.
    pub gc_delay: Duration,
    /// Tasks per job.
    pub instances: usize,
}

/// One sample of the daemons' footprint.
#[derive(Debug, Clone, Default)]
struct Sample {
    at: Duration,
    tasks_ended: f64,
    master: Footprint,
    agent: Footprint,
    cgroups: usize,
    sandboxes: usize,
    sandbox_bytes: u64,
}

/// A process's resident memory, threads and open files.
#[derive(Debug, Clone, Copy, Default)]
struct Footprint {
    rss_kib: u64,
    threads: u64,
    fds: usize,
}

impl Footprint {
    fn of(pid: u32) -> Footprint {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Footprint {
            rss_kib: field("VmRSS:"),
            threads: field("Threads:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count()),
        }
    }
}

/// Runs the soak and prints a row per sample, then the growth after warm-up.
pub async fn run(config: SoakConfig) -> anyhow::Result<()> {
    let bin = |name: &str| -> anyhow::Result<String> {
        Ok(std::env::current_exe()?
            .with_file_name(name)
            .to_string_lossy()
            .into_owned())
    };
    let dir = std::env::temp_dir().join(format!("keel-bench-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cgroups_root = format!("keel-soak-{}", std::process::id());
    let (master, master_pid) =
        Daemon::start(&bin("keel-master")?, &["--ip", "127.0.0.1", "--port", "0"]).await;
    let gc = config.gc_delay.as_secs().to_string();
    let work_dir = dir.to_string_lossy().into_owned();
    let (agent, _) = Daemon::start(
        &bin("keel-slave")?,
        &[
            "--master",
            &master_pid,
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--work-dir",
            &work_dir,
            "--resources",
            "cpus:8;mem:8192",
            "--gc-delay-seconds",
            &gc,
            "--cgroups-root",
            &cgroups_root,
        ],
    )
    .await;
    let master_upid: Upid = master_pid.parse().context("master pid")?;
    let (master_os, agent_os) = (
        master.os_pid().context("master os pid")?,
        agent.os_pid().context("agent os pid")?,
    );
    let cgroup_dir = cgroup_root_of(agent_os, &cgroups_root);
    println!(
        "soak: {:?} of churn, {} tasks per job, --gc-delay-seconds {gc}; master {master_pid}, agent work dir {work_dir}",
        config.duration, config.instances
    );
    println!("  minute  tasks ended  master rss MiB thr fds  agent rss MiB thr fds  cgroups  sandboxes  sandbox MiB");

    let keelctl = bin("keelctl")?;
    let jobs = Arc::new(AtomicU64::new(0));
    let churn = tokio::spawn(churn(
        keelctl,
        master_pid.clone(),
        config.clone(),
        jobs.clone(),
    ));
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < config.duration {
        tokio::time::sleep(config.sample_every.min(config.duration - start.elapsed())).await;
        let (sandboxes, sandbox_bytes) = sandboxes(&dir);
        let sample = Sample {
            at: start.elapsed(),
            tasks_ended: tasks_ended(&master_upid).await,
            master: Footprint::of(master_os),
            agent: Footprint::of(agent_os),
            cgroups: cgroup_dir.as_deref().map_or(0, count_dirs),
            sandboxes,
            sandbox_bytes,
        };
        print_row(&sample);
        samples.push(sample);
    }
    churn.abort();
    summarize(&samples, jobs.load(Ordering::Relaxed));
    agent.stop().await;
    master.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    remove_cgroup_root(Path::new("/sys/fs/cgroup"), &cgroups_root, 4);
    Ok(())
}

/// Removes the (empty, once the agent stopped) `--cgroups-root` directories this run's agent
/// made, wherever they are in the hierarchies below `dir`.
fn remove_cgroup_root(dir: &Path, root: &str, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name() == root {
            let _ = std::fs::remove_dir(entry.path());
        } else if depth > 0 {
            remove_cgroup_root(&entry.path(), root, depth - 1);
        }
    }
}

fn print_row(s: &Sample) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "  {:>6.1}  {:>11}  {:>14.1} {:>3} {:>3}  {:>13.1} {:>3} {:>3}  {:>7}  {:>9}  {:>11.1}",
        s.at.as_secs_f64() / 60.0,
        s.tasks_ended,
        mib(s.master.rss_kib),
        s.master.threads,
        s.master.fds,
        mib(s.agent.rss_kib),
        s.agent.threads,
        s.agent.fds,
        s.cgroups,
        s.sandboxes,
        s.sandbox_bytes as f64 / (1024.0 * 1024.0),
    );
}

/// Growth from the end of warm-up (the first quarter) to the last sample, per 1,000 tasks.
fn summarize(samples: &[Sample], jobs: u64) {
    let (Some(last), Some(warm)) = (samples.last(), samples.get(samples.len() / 4)) else {
        return;
    };
    let tasks = (last.tasks_ended - warm.tasks_ended).max(1.0);
    let per_k = |a: u64, b: u64| (b as f64 - a as f64) / tasks * 1000.0;
    println!(
        "soak: {jobs} jobs, {} tasks ended; after warm-up ({:.0} min, {} tasks) to the end:",
        last.tasks_ended,
        warm.at.as_secs_f64() / 60.0,
        warm.tasks_ended
    );
    println!(
        "  master rss {:+} KiB ({:+.2} KiB per 1000 tasks), threads {:+}, fds {:+}",
        last.master.rss_kib as i64 - warm.master.rss_kib as i64,
        per_k(warm.master.rss_kib, last.master.rss_kib),
        last.master.threads as i64 - warm.master.threads as i64,
        last.master.fds as i64 - warm.master.fds as i64
    );
    println!(
        "  agent rss {:+} KiB ({:+.2} KiB per 1000 tasks), threads {:+}, fds {:+}, cgroups {:+}, sandboxes {:+}, sandbox bytes {:+}",
        last.agent.rss_kib as i64 - warm.agent.rss_kib as i64,
        per_k(warm.agent.rss_kib, last.agent.rss_kib),
        last.agent.threads as i64 - warm.agent.threads as i64,
        last.agent.fds as i64 - warm.agent.fds as i64,
        last.cgroups as i64 - warm.cgroups as i64,
        last.sandboxes as i64 - warm.sandboxes as i64,
        last.sandbox_bytes as i64 - warm.sandbox_bytes as i64,
    );
}

/// Runs jobs until aborted: mostly short tasks that finish, every 5th job's tasks fail, every
/// 7th job runs long tasks and its framework is stopped once they run; counts jobs in `jobs`.
async fn churn(keelctl: String, master: String, config: SoakConfig, jobs: Arc<AtomicU64>) {
    let instances = config.instances.to_string();
    loop {
        let job = jobs.fetch_add(1, Ordering::Relaxed) + 1;
        let command = match job {
            n if n % 7 == 0 => "exec sleep 60",
            n if n % 5 == 0 => "exit 3",
            _ => "true",
        };
        let mut run = tokio::process::Command::new(&keelctl);
        run.args(["--master", &master, "execute", "--command", command])
            .args(["--instances", &instances, "--cpus", "0.01", "--mem", "8"])
            .env("KEEL_INSECURE", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let Ok(mut child) = run.spawn() else {
            return;
        };
        if command.starts_with("exec sleep") {
            // Long enough for its tasks to start; then its framework goes away.
            tokio::time::sleep(Duration::from_secs(3)).await;
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on our own child.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
        }
        let _ = child.wait().await;
    }
}

/// Tasks the master saw end (finished, failed, killed, lost).
async fn tasks_ended(master: &Upid) -> f64 {
    let Ok(m) = libactor::http_client::get_json(master.address(), "/metrics/snapshot").await else {
        return 0.0;
    };
    ["finished", "failed", "killed", "lost"]
        .iter()
        .filter_map(|s| m[format!("master/tasks_{s}")].as_f64())
        .sum()
}

/// The agent's cgroups root in the cpu hierarchy (`{own cgroup}/{root}`), if it uses cgroups.
fn cgroup_root_of(agent: u32, root: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{agent}/cgroup")).ok()?;
    let own = text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == "cpu").then_some(path)
    })?;
    let dir = Path::new("/sys/fs/cgroup/cpu")
        .join(own.trim_start_matches('/'))
        .join(root);
    dir.exists().then_some(dir)
}

/// Directories below `dir` (the agent's and its containers').
fn count_dirs(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| 1 + count_dirs(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Executor run sandboxes under `work_dir`, and the bytes of disk everything there takes.
fn sandboxes(work_dir: &Path) -> (usize, u64) {
    use std::os::unix::fs::MetadataExt;
    fn walk(dir: &Path, bytes: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.filter_map(Result::ok) {
            if let Ok(meta) = entry.metadata() {
                *bytes += meta.blocks() * 512;
                if meta.is_dir() {
                    walk(&entry.path(), bytes);
                }
            }
        }
    }
    let mut bytes = 0;
    walk(&work_dir.join("slaves"), &mut bytes);
    (slave::sandbox_gc::run_dirs(work_dir).len(), bytes)
}
