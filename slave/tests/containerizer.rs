//! The cgroups containerizer on this machine's real kernel: limits written to the cgroup
//! files, the process inside its cgroup from its first instruction, a memory hog OOM-killed and
//! reported with the memory reason, statistics of a busy task, orphans of a dead agent
//! destroyed, and nothing left behind (no cgroup, no process). Where the kernel offers no
//! writable cgroups the tests say so and skip; CI's machine has them, so there they run.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libactor::Clock;
use protos::v1::task_status::Reason;
use protos::v1::CommandInfo;
use resources::Resources;
use slave::containerizer::cgroup_layout::CgroupLayout;
use slave::containerizer::{
    self, ChosenContainerizer, Container, ContainerSpec, ContainerizerConfig, IsolationMode,
};
use slave::task_process::Termination;
use tokio::sync::oneshot;

const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

/// One test's cgroups: a root of its own (so that tests running at once never meet) that must
/// be empty, and is removed, at the end.
struct Fixture {
    chosen: ChosenContainerizer,
    root: String,
    sandbox: PathBuf,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn fixture(name: &str, cfs: bool) -> Option<Fixture> {
    let root = format!(
        "keel-test-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let config = ContainerizerConfig {
        isolation: IsolationMode::Cgroups,
        cgroups_root: root.clone(),
        cgroups_enable_cfs: cfs,
    };
    match containerizer::create(&config, "agent") {
        Ok(chosen) => {
            let sandbox = std::env::temp_dir().join(&root);
            let _ = std::fs::remove_dir_all(&sandbox);
            Some(Fixture {
                chosen,
                root,
                sandbox,
            })
        }
        Err(e) => {
            eprintln!("skipping: {e}");
            None
        }
    }
}

impl Fixture {
    fn launch(&self, command: &str, resources: &str) -> Container {
        let resources: Resources = resources.parse().unwrap();
        let id = format!("c{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.chosen
            .containerizer
            .launch(ContainerSpec {
                id: &id,
                command: &CommandInfo {
                    value: command.into(),
                    ..Default::default()
                },
                sandbox: &self.sandbox.join(&id),
                env: &[],
                resources: &resources,
                checkpoint: None,
                run_as: None,
            })
            .expect("container starts")
    }

    /// The container's directory in each hierarchy.
    fn dirs(&self, id: &str) -> Vec<PathBuf> {
        let layout = CgroupLayout::detect().unwrap();
        layout
            .dirs(&Path::new(&self.root).join("agent").join(id))
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    /// Shuts the containerizer down and checks that nothing of the test is left.
    fn finish(self) {
        self.chosen.containerizer.shutdown();
        let layout = CgroupLayout::detect().unwrap();
        for (_, dir) in layout.dirs(Path::new(&self.root)) {
            std::fs::remove_dir(&dir)
                .unwrap_or_else(|e| panic!("{} is not empty or gone: {e}", dir.display()));
        }
        let _ = std::fs::remove_dir_all(&self.sandbox);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn limits_are_written_and_the_process_is_inside_from_its_start() {
    let Some(f) = fixture("limits", true) else {
        return;
    };
    let ready = common::fifo(&f.sandbox.join("probe"));
    // The task reports its own cgroups: proof that it joined before running anything.
    let script = format!(
        "cat /proc/self/cgroup > cgroups; echo ready > {}; exec sleep 1000",
        ready.display()
    );
    let container = f.launch(&script, "cpus:0.5;mem:64");
    let id = container.handle.id().to_owned();
    let pid = container.process.pid() as i32;
    common::wait_ready(ready, EVENT_TIMEOUT).await;
    let dirs = f.dirs(&id);
    for dir in &dirs {
        assert!(dir.is_dir(), "{} exists", dir.display());
        assert_eq!(read(&dir.join("cgroup.procs")), pid.to_string());
        let name = dir.to_string_lossy();
        if name.contains("/cpu/") {
            assert_eq!(read(&dir.join("cpu.shares")), "512");
            assert_eq!(read(&dir.join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read(&dir.join("cpu.cfs_period_us")), "100000");
        }
        if name.contains("/memory/") {
            assert_eq!(
                read(&dir.join("memory.limit_in_bytes")),
                (64u64 << 20).to_string()
            );
        }
    }
    let seen = std::fs::read_to_string(f.sandbox.join(&id).join("cgroups")).unwrap();
    let memory_line = seen
        .lines()
        .find(|l| l.contains(":memory:"))
        .unwrap_or(&seen);
    assert!(
        memory_line.ends_with(&format!("/{}/agent/{id}", f.root)),
        "the task's first view of its memory cgroup: {memory_line}"
    );

    let (kill, killed) = oneshot::channel();
    let supervising = tokio::spawn(containerizer::supervise(container, killed, Clock::new()));
    kill.send(Duration::from_secs(5)).unwrap();
    let exit = tokio::time::timeout(EVENT_TIMEOUT, supervising)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        exit.termination.unwrap(),
        Termination::Signaled(libc::SIGTERM)
    );
    assert_eq!(exit.limitation, None);
    assert!(!alive(pid));
    for dir in &dirs {
        assert!(
            !dir.exists(),
            "{} removed after the container ended",
            dir.display()
        );
    }
    f.finish();
}

#[tokio::test]
async fn a_memory_hog_is_oom_killed_and_reported_with_the_memory_reason() {
    let Some(f) = fixture("oom", false) else {
        return;
    };
    // `tail` keeps its whole newline-free input in memory: 512 MiB into a 64 MiB container.
    let container = f.launch(
        "head -c 536870912 /dev/zero | tail; echo survived",
        "cpus:0.1;mem:64",
    );
    let id = container.handle.id().to_owned();
    let (_kill, killed) = oneshot::channel();
    let exit = tokio::time::timeout(
        EVENT_TIMEOUT,
        containerizer::supervise(container, killed, Clock::new()),
    )
    .await
    .expect("the hog ends");
    let limitation = exit
        .limitation
        .expect("the OOM kill is reported as a limitation");
    assert_eq!(limitation.reason, Reason::ContainerLimitationMemory);
    assert!(
        limitation
            .message
            .contains("Memory limit exceeded: requested 64 MiB"),
        "{}",
        limitation.message
    );
    for dir in f.dirs(&id) {
        assert!(!dir.exists(), "{} removed", dir.display());
    }
    f.finish();
}

#[tokio::test]
async fn statistics_reflect_a_busy_task() {
    let Some(f) = fixture("stats", false) else {
        return;
    };
    let container = f.launch("while :; do :; done", "cpus:1;mem:128");
    let handle = container.handle.clone();
    let (kill, killed) = oneshot::channel();
    let supervising = tokio::spawn(containerizer::supervise(container, killed, Clock::new()));
    // Wait (bounded) until the kernel has charged the loop a measurable amount of cpu.
    let stats = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            let s = handle.statistics();
            if s.cpus_user_time_secs.unwrap_or(0.0) + s.cpus_system_time_secs.unwrap_or(0.0) > 0.2 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the busy loop is charged cpu time");
    assert_eq!(stats.processes, Some(1));
    assert_eq!(stats.cpus_limit, Some(1.0));
    assert_eq!(stats.mem_limit_bytes, Some(128 << 20));
    assert!(stats.mem_rss_bytes.is_some());
    assert_eq!(stats.mem_oom_kills, Some(0));
    kill.send(Duration::ZERO).unwrap();
    let exit = tokio::time::timeout(EVENT_TIMEOUT, supervising)
        .await
        .unwrap()
        .unwrap();
    assert!(exit.termination.is_ok());
    f.finish();
}

#[tokio::test]
async fn a_restarted_agent_destroys_the_containers_its_earlier_run_left() {
    let Some(f) = fixture("orphans", false) else {
        return;
    };
    let ready = common::fifo(&f.sandbox.join("probe"));
    // The child of the shell is what must not survive: the agent never knew its pid.
    let script = format!("sleep 1000 & echo ready > {}; wait", ready.display());
    let container = f.launch(&script, "cpus:0.1;mem:32");
    let id = container.handle.id().to_owned();
    common::wait_ready(ready, EVENT_TIMEOUT).await;
    let pids: Vec<i32> = f
        .dirs(&id)
        .iter()
        .flat_map(|d| {
            read(&d.join("cgroup.procs"))
                .lines()
                .map(|l| l.parse().unwrap())
                .collect::<Vec<i32>>()
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(pids.len(), 2, "the shell and its sleep");
    // The agent dies without cleaning up: its handle of the process is leaked, not dropped.
    std::mem::forget(container);
    let config = ContainerizerConfig {
        isolation: IsolationMode::Cgroups,
        cgroups_root: f.root.clone(),
        cgroups_enable_cfs: false,
    };
    let again = containerizer::create(&config, "agent").unwrap();
    let destroyed = again.containerizer.recover(&HashSet::new());
    assert_eq!(destroyed, vec![id.clone()]);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} of the orphan is gone");
    }
    for dir in f.dirs(&id) {
        assert!(!dir.exists(), "{} removed", dir.display());
    }
    f.finish();
}

#[test]
fn posix_is_chosen_when_asked_and_auto_says_what_it_chose() {
    let posix = containerizer::create(
        &ContainerizerConfig {
            isolation: IsolationMode::Posix,
            ..Default::default()
        },
        "agent",
    )
    .unwrap();
    assert_eq!(posix.containerizer.isolation(), "posix");
    let root = format!("keel-test-{}-auto", std::process::id());
    let auto = containerizer::create(
        &ContainerizerConfig {
            isolation: IsolationMode::Auto,
            cgroups_root: root.clone(),
            cgroups_enable_cfs: false,
        },
        "agent",
    )
    .unwrap();
    assert!(
        auto.description.starts_with(auto.containerizer.isolation()),
        "{}",
        auto.description
    );
    auto.containerizer.shutdown();
    if let Ok(layout) = CgroupLayout::detect() {
        for (_, dir) in layout.dirs(Path::new(&root)) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
