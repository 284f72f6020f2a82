//! Agent recovery with real processes: `keel-master` and `keel-slave` run as daemons, tasks are
//! real OS processes. The agent is SIGKILLed with tasks running and started again with the same
//! work dir: the running task is taken back (same process, never started twice) and can still
//! be killed; a task that ended while no agent watched is reported with its real exit status.
//! A custom executor is asked back by the restarted agent and serves on. An agent that does not
//! come back has its executors ended after `--recovery-timeout-seconds`.

use std::path::{Path, PathBuf};

use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::{Node, Upid};
use protos::v1::{ExecutorId, ExecutorInfo, TaskId, TaskState};

const MASTER_BIN: &str = env!("CARGO_BIN_EXE_keel-master");
const SLAVE_BIN: &str = env!("CARGO_BIN_EXE_keel-slave");
/// Its `executor hold` mode is a custom executor whose tasks run until killed.
const LOCAL_BIN: &str = env!("CARGO_BIN_EXE_keel-local");

/// A master on a free port; returns it with its pid.
async fn master() -> (Daemon, Upid) {
    let (daemon, pid) = Daemon::start(MASTER_BIN, &["--ip", "127.0.0.1", "--port", "0"]).await;
    (daemon, pid.parse().expect("master pid"))
}

/// An agent of `master` on a free port with `work_dir`; returns it with its pid.
async fn agent(master: &Upid, work_dir: &Path, recovery_timeout: &str) -> (Daemon, Upid) {
    let (daemon, pid) = Daemon::start(
        SLAVE_BIN,
        &[
            "--master",
            master.as_str(),
            "--ip",
            "127.0.0.1",
            "--port",
            "0",
            "--work-dir",
            work_dir.to_str().unwrap(),
            "--resources",
            "cpus:2;mem:512",
            "--recovery-timeout-seconds",
            recovery_timeout,
        ],
    )
    .await;
    (daemon, pid.parse().expect("agent pid"))
}

/// Executor `id` as agent `agent` reports it in its state, if listed.
async fn executor_state(agent: &Upid, id: &str) -> Option<serde_json::Value> {
    let path = format!("/{}/state", agent.id());
    let state = libactor::http_client::get_json(agent.address(), &path)
        .await
        .ok()?;
    state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["executors"].as_array().into_iter().flatten())
        .find(|e| e["id"] == id)
        .cloned()
}

/// The sandbox of task `task` (a command task: its executor has the task's id).
async fn sandbox_of(agent: &Upid, task: &str) -> PathBuf {
    let executor = executor_state(agent, task)
        .await
        .expect("the task's executor is listed");
    PathBuf::from(executor["directory"].as_str().expect("a directory"))
}

/// The memory cgroup directory of process `pid` when an agent's cgroups isolate it.
fn memory_cgroup(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    // Under the agent's own cgroup: `{own}/keel/agent-{key}/{container}`.
    path.contains("/keel/agent-")
        .then(|| Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')))
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    // A zombie (ended, not yet reaped by its parent) does not count.
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    exists && !zombie
}

/// The pids a task wrote, one per start, to `pids` in its sandbox.
fn starts(sandbox: &Path) -> Vec<i32> {
    std::fs::read_to_string(sandbox.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits until the task in `sandbox` wrote its pid; returns it.
async fn started(sandbox: &Path) -> i32 {
    eventually("the task writes its pid", || async {
        starts(sandbox).first().copied()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_takes_its_running_tasks_back() {
    let work = tempfile::tempdir().unwrap();
    let (_master, master_pid) = master().await;
    let (agent1, agent_pid) = agent(&master_pid, work.path(), "600").await;
    let node = Node::builder().start().unwrap();
    let mut framework = TestFramework::start(&node, &master_pid, framework_info("recovering"));
    framework.registered().await;
    // `long` runs on across the restart; `short` ends (status 3) while no agent is there.
    framework
        .launch_on_first_offer(command_task(
            "long",
            "echo $$ >> pids; exec sleep 300",
            "cpus:0.5;mem:32",
        ))
        .await;
    framework
        .launch_on_first_offer(command_task(
            "short",
            "echo $$ >> pids; while [ ! -e go ]; do sleep 0.05; done; exit 3",
            "cpus:0.5;mem:32",
        ))
        .await;
    let running = framework.status("long", TaskState::TaskRunning).await;
    framework.status("short", TaskState::TaskRunning).await;
    let agent_id = running.agent_id.clone().expect("agent id");
    let long_sandbox = sandbox_of(&agent_pid, "long").await;
    let short_sandbox = sandbox_of(&agent_pid, "short").await;
    let long_pid = started(&long_sandbox).await;
    let short_pid = started(&short_sandbox).await;

    agent1.crash().await;
    assert!(alive(long_pid), "a task outlives its agent");
    std::fs::write(short_sandbox.join("go"), b"").unwrap();
    eventually("the short task ends while no agent runs", || async {
        (!alive(short_pid)).then_some(())
    })
    .await;

    let (agent2, agent2_pid) = agent(&master_pid, work.path(), "600").await;
    assert_ne!(agent2_pid, agent_pid, "a new agent process on another port");
    let failed = framework.status("short", TaskState::TaskFailed).await;
    assert!(
        failed.message.contains("status 3"),
        "the real exit status: {}",
        failed.message
    );
    assert_eq!(
        failed.agent_id.as_ref(),
        Some(&agent_id),
        "the same agent id"
    );

    // The long task is the same process, started once, and still the agent's.
    let reconciled = framework.reconcile("long", Some(agent_id.clone())).await;
    assert_eq!(reconciled.state(), TaskState::TaskRunning);
    assert_eq!(starts(&long_sandbox), vec![long_pid], "never started twice");
    assert!(alive(long_pid));
    let agent_state = libactor::http_client::get_json(
        agent2_pid.address(),
        &format!("/{}/state", agent2_pid.id()),
    )
    .await
    .unwrap();
    assert_eq!(agent_state["id"], agent_id.value.as_str());
    assert_eq!(agent_state["registration"], "Registered");

    framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "long".into(),
            })
        })
        .await;
    framework.status("long", TaskState::TaskKilled).await;
    eventually("the killed task's process ends", || async {
        (!alive(long_pid)).then_some(())
    })
    .await;
    let others: Vec<SchedulerEvent> = framework
        .drain()
        .into_iter()
        .filter(|e| matches!(e, SchedulerEvent::Status(s) if s.state().is_terminal()))
        .collect();
    assert!(others.is_empty(), "no other terminal update: {others:?}");
    // Stopped as an operator would: it ends its watchdog too.
    agent2.stop().await;
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_end_when_their_agent_does_not_come_back() {
    let work = tempfile::tempdir().unwrap();
    let (_master, master_pid) = master().await;
    let (agent, agent_pid) = agent(&master_pid, work.path(), "1").await;
    let node = Node::builder().start().unwrap();
    let mut framework = TestFramework::start(&node, &master_pid, framework_info("abandoned"));
    framework.registered().await;
    framework
        .launch_on_first_offer(command_task(
            "orphan",
            "echo $$ >> pids; exec sleep 300",
            "cpus:0.5;mem:32",
        ))
        .await;
    framework.status("orphan", TaskState::TaskRunning).await;
    let sandbox = sandbox_of(&agent_pid, "orphan").await;
    let pid = started(&sandbox).await;
    let agent_cgroup = memory_cgroup(pid).and_then(|c| c.parent().map(Path::to_owned));
    // `--isolation auto` takes cgroups wherever v1's memory hierarchy is mounted.
    if Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() {
        assert!(agent_cgroup.is_some(), "the task is in a keel cgroup");
    }
    if let Some(dir) = &agent_cgroup {
        assert!(dir.exists(), "{}", dir.display());
    }
    agent.crash().await;
    // The watchdog notices within a second, waits the 1 s recovery timeout, then ends it.
    eventually("the executor of a dead agent ends", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    // And the cgroups the dead agent made go with it (where it isolated with cgroups).
    if let Some(dir) = agent_cgroup {
        eventually("the dead agent's cgroup is removed", || async {
            (!dir.exists()).then_some(())
        })
        .await;
    }
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_reconnects_its_custom_executor() {
    let work = tempfile::tempdir().unwrap();
    let (_master, master_pid) = master().await;
    let (agent1, agent_pid) = agent(&master_pid, work.path(), "600").await;
    let node = Node::builder().start().unwrap();
    let mut framework = TestFramework::start(&node, &master_pid, framework_info("held"));
    framework.registered().await;
    let mut task = command_task("held", "unused", "cpus:0.5;mem:32");
    task.command = None;
    task.executor = Some(ExecutorInfo {
        executor_id: Some(ExecutorId {
            value: "holder".into(),
        }),
        command: Some(keel::example_runs::executor_command(
            Path::new(LOCAL_BIN),
            "hold",
        )),
        ..Default::default()
    });
    framework.launch_on_first_offer(task).await;
    let running = framework.status("held", TaskState::TaskRunning).await;
    let agent_id = running.agent_id.clone().expect("agent id");
    let before = executor_state(&agent_pid, "holder").await.expect("listed");
    let os_pid = before["os_pid"].as_i64().expect("os pid") as i32;

    agent1.crash().await;
    assert!(alive(os_pid), "the executor outlives its agent");
    let (agent2, agent2_pid) = agent(&master_pid, work.path(), "600").await;
    let after = eventually("the executor re-registers with the new agent", || async {
        executor_state(&agent2_pid, "holder")
            .await
            .filter(|e| e["state"] == "Running" && e["pid"].is_string())
    })
    .await;
    assert_eq!(
        after["os_pid"].as_i64(),
        Some(i64::from(os_pid)),
        "the same process"
    );
    assert_eq!(
        after["pid"], before["pid"],
        "the same executor re-registered"
    );
    assert_eq!(
        framework
            .reconcile("held", Some(agent_id.clone()))
            .await
            .state(),
        TaskState::TaskRunning
    );

    // The kill goes through the new agent to the same executor, which answers it.
    framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "held".into(),
            })
        })
        .await;
    let killed = framework.status("held", TaskState::TaskKilled).await;
    assert_eq!(killed.message, "killed by the holding executor");
    assert!(alive(os_pid), "the executor serves on");
    agent2.stop().await;
    node.shutdown().await;
}
