//! Whole clusters in one test process: a master and real agents (each on its own loopback
//! port, real TCP between them) running tasks as real OS processes, driven by a framework the
//! test steers by hand.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::Node;
use protos::v1::task_status::Reason;
use protos::v1::{Filters, TaskId, TaskState, TaskStatus};

const AGENTS_UP: Duration = Duration::from_secs(30);

struct Setup {
    cluster: LocalCluster,
    node: Node,
    framework: TestFramework,
    _dir: tempfile::TempDir,
}

async fn setup(agents: usize) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = LocalCluster::start(LocalClusterConfig::new(agents, dir.path()))
        .await
        .expect("cluster starts");
    cluster
        .wait_for_agents(AGENTS_UP)
        .await
        .expect("agents register");
    let node = Node::builder()
        .single_threaded()
        .start()
        .expect("framework node");
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("test"));
    framework.registered().await;
    Setup {
        cluster,
        node,
        framework,
        _dir: dir,
    }
}

impl Setup {
    async fn stop(self) {
        // Invariant: the master and its allocator never disagreed about who holds what.
        let refusals = self
            .cluster
            .master_node
            .metrics()
            .snapshot()
            .get("master/allocator_refusals")
            .copied()
            .unwrap_or(0.0);
        assert_eq!(
            refusals, 0.0,
            "the allocator refused the master's bookkeeping"
        );
        self.node.shutdown().await;
        self.cluster.shutdown().await;
    }

    /// Launches `tasks` on the first offer, declining the rest.
    async fn launch(&mut self, tasks: Vec<protos::v1::TaskInfo>) {
        let offers = self.framework.offers().await;
        let first = offers[0].id.clone().expect("offer id");
        let rest: Vec<_> = offers[1..].iter().filter_map(|o| o.id.clone()).collect();
        self.framework
            .act(move |d| {
                d.launch_tasks(&[first], tasks, Filters::default());
                for id in rest {
                    d.decline_offer(&id, Filters::default());
                }
            })
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_as_processes_and_finish_with_their_output_captured() {
    let mut s = setup(2).await;
    s.launch(vec![
        command_task(
            "t1",
            "echo out-$KEEL_EXECUTOR_ID; echo err >&2",
            "cpus:0.1;mem:16",
        ),
        command_task("t2", "true", "cpus:0.1;mem:16"),
    ])
    .await;
    let running = s.framework.status("t1", TaskState::TaskRunning).await;
    assert_eq!(running.source(), protos::v1::task_status::Source::Executor);
    let done = s.framework.status("t1", TaskState::TaskFinished).await;
    assert_eq!(done.message, "Command exited with status 0");
    s.framework.status("t2", TaskState::TaskFinished).await;

    // The sandbox holds what the task printed.
    let agent = done.agent_id.clone().expect("agent id").value;
    let sandbox = s
        ._dir
        .path()
        .read_dir()
        .unwrap()
        .flat_map(|d| walk(&d.unwrap().path()))
        .find(|p| p.ends_with("stdout") && p.to_string_lossy().contains("/executors/t1/"))
        .expect("t1's sandbox stdout");
    assert!(sandbox.to_string_lossy().contains(&agent));
    assert_eq!(std::fs::read_to_string(&sandbox).unwrap(), "out-t1\n");
    let stderr = sandbox.with_file_name("stderr");
    assert_eq!(std::fs::read_to_string(stderr).unwrap(), "err\n");
    s.stop().await;
}

/// Whether `pid` runs (exists and is not a zombie).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn walk(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    if path.is_dir() {
        path.read_dir()
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|e| walk(&e.path()))
            .collect()
    } else {
        vec![path.to_owned()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_is_failed_with_its_exit_code() {
    let mut s = setup(1).await;
    s.launch(vec![command_task("bad", "exit 7", "cpus:0.1;mem:16")])
        .await;
    let failed = s.framework.status("bad", TaskState::TaskFailed).await;
    assert_eq!(failed.message, "Command exited with status 7");
    assert_eq!(failed.reason(), Reason::CommandExecutorFailed);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_task_is_killed_with_its_whole_process_group() {
    let mut s = setup(1).await;
    // The task starts a child of its own; the kill must reach it too.
    s.launch(vec![command_task(
        "sleeper",
        "sleep 300 & echo $! > child.pid; wait",
        "cpus:0.1;mem:16",
    )])
    .await;
    let running = s.framework.status("sleeper", TaskState::TaskRunning).await;
    let agent = running.agent_id.clone().unwrap().value;
    // RUNNING is reported once the shell is started; wait (bounded) until it has started its
    // child and written the child's pid.
    let child: i32 = eventually("the task starts its child", || async {
        walk(s._dir.path())
            .into_iter()
            .find(|p| p.ends_with("child.pid"))
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| t.trim().parse().ok())
    })
    .await;
    s.framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "sleeper".into(),
            })
        })
        .await;
    let killed = s.framework.status("sleeper", TaskState::TaskKilled).await;
    assert_eq!(killed.agent_id.unwrap().value, agent);
    // The group got the signal; give the child a bounded moment to die (a zombie whose
    // reaper is slow counts as dead).
    eventually("the task's child dies with the kill", || async {
        (!alive(child)).then_some(())
    })
    .await;
    s.stop().await;
}

/// A task asking for -1 CPUs (the text form refuses to say that, so build the proto).
fn negative_task() -> protos::v1::TaskInfo {
    let mut task = command_task("negative", "true", "cpus:1;mem:16");
    for r in &mut task.resources {
        if r.name == "cpus" {
            if let Some(s) = r.scalar.as_mut() {
                s.value = -1.0;
            }
        }
    }
    task
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_launches_are_refused_with_task_error_and_a_reason() {
    let mut s = setup(1).await;
    // Each agent offers cpus:2.
    s.launch(vec![
        command_task("greedy", "true", "cpus:64;mem:16"),
        command_task("twin", "sleep 30", "cpus:0.1;mem:16"),
        command_task("twin", "true", "cpus:0.1;mem:16"),
        negative_task(),
    ])
    .await;
    let mut refused = Vec::new();
    while refused.len() < 3 {
        let status = s
            .framework
            .until(|e| match e {
                SchedulerEvent::Status(st) if st.state() == TaskState::TaskError => {
                    Some(st.clone())
                }
                _ => None,
            })
            .await;
        assert_eq!(status.reason(), Reason::TaskInvalid);
        refused.push((status.task_id.unwrap().value, status.message));
    }
    refused.sort();
    assert_eq!(refused[0].0, "greedy");
    assert!(refused[0].1.contains("exceed"), "{}", refused[0].1);
    assert_eq!(refused[1].0, "negative");
    assert_eq!(refused[2].0, "twin");
    assert!(refused[2].1.contains("already in use"), "{}", refused[2].1);
    // The first twin was valid and runs.
    s.framework.status("twin", TaskState::TaskRunning).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_reports_the_latest_state_explicitly_and_implicitly() {
    let mut s = setup(1).await;
    s.launch(vec![command_task("long", "sleep 300", "cpus:0.1;mem:16")])
        .await;
    let running = s.framework.status("long", TaskState::TaskRunning).await;

    let asked = |id: &str| TaskStatus {
        task_id: Some(TaskId { value: id.into() }),
        ..Default::default()
    };
    let statuses = vec![asked("long"), asked("never-launched")];
    s.framework.act(move |d| d.reconcile_tasks(statuses)).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let st = s
            .framework
            .until(|e| match e {
                SchedulerEvent::Status(st) if st.reason() == Reason::Reconciliation => {
                    Some(st.clone())
                }
                _ => None,
            })
            .await;
        let state = st.state();
        got.push((st.task_id.unwrap().value, state));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("long".to_owned(), TaskState::TaskRunning),
            ("never-launched".to_owned(), TaskState::TaskLost)
        ]
    );

    s.framework.act(|d| d.reconcile_tasks(Vec::new())).await;
    let implicit = s
        .framework
        .until(|e| match e {
            SchedulerEvent::Status(st) if st.reason() == Reason::Reconciliation => Some(st.clone()),
            _ => None,
        })
        .await;
    assert_eq!(implicit.state(), TaskState::TaskRunning);
    assert_eq!(implicit.task_id.unwrap().value, "long");

    // A task the master does not know, said to run on a registered agent (a launch a failed
    // master sent that never arrived): the agent answers, LOST as unknown to it — the proof
    // a scheduler needs to launch it again.
    let on_agent = TaskStatus {
        agent_id: running.agent_id.clone(),
        ..asked("lost-in-failover")
    };
    s.framework
        .act(move |d| d.reconcile_tasks(vec![on_agent]))
        .await;
    let lost = s
        .framework
        .status("lost-in-failover", TaskState::TaskLost)
        .await;
    assert_eq!(lost.reason(), Reason::TaskUnknown, "{lost:?}");
    assert_eq!(lost.agent_id, running.agent_id);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tearing_a_framework_down_kills_its_tasks_and_frees_its_resources() {
    let mut s = setup(1).await;
    s.launch(vec![command_task("victim", "sleep 300", "cpus:1;mem:16")])
        .await;
    s.framework.status("victim", TaskState::TaskRunning).await;
    let agent = s.cluster.agents[0].slave.clone();
    assert_eq!(agent.call(|a, _| a.live_tasks()).await.unwrap(), 1);

    s.framework.act(|d| d.stop()).await;
    s.framework.handle.join().await;
    // The agent kills the task; a second framework is then offered the whole agent again.
    let mut other = TestFramework::start(&s.node, s.cluster.master_pid(), framework_info("other"));
    other.registered().await;
    loop {
        let offers = other.offers().await;
        let cpus: f64 = offers
            .iter()
            .map(|o| {
                resources::Resources::from_proto(&o.resources)
                    .unwrap()
                    .scalar("cpus")
            })
            .sum();
        if cpus == 2.0 {
            break;
        }
        let ids: Vec<_> = offers.iter().filter_map(|o| o.id.clone()).collect();
        other
            .act(move |d| {
                for id in ids {
                    d.decline_offer(
                        &id,
                        Filters {
                            refuse_seconds: Some(0.0),
                        },
                    );
                }
            })
            .await;
    }
    // The master frees a removed framework's resources at once (as Mesos does); the agent's
    // kill completes when the process has ended.
    eventually("the task ends with its framework", || async {
        (agent.call(|a, _| a.live_tasks()).await.ok()? == 0).then_some(())
    })
    .await;
    // No one will acknowledge the TASK_KILLED of a framework that is gone: the agent drops
    // it rather than resending it for ever.
    let metrics = s.cluster.agents[0].node.metrics();
    eventually("the removed framework's updates are dropped", || async {
        (metrics.snapshot()["slave/status_updates/pending"] == 0.0).then_some(())
    })
    .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_framework_relaunches_instances_that_end() {
    use frameworks::examples::service::{ServiceScheduler, ServiceSpec};
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(1, dir.path()))
        .await
        .unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    // Two instances that keep running, one that keeps crashing.
    let start = |name: &str, command: &str, instances| {
        let (scheduler, progress) = ServiceScheduler::new(ServiceSpec {
            name: name.into(),
            command: command.into(),
            instances,
            task_resources: "cpus:0.1;mem:16".parse().unwrap(),
        });
        let handle = frameworks::scheduler_driver::start(
            &node,
            cluster.master_pid().clone(),
            framework_info(name),
            scheduler,
            Default::default(),
        )
        .unwrap();
        (handle, progress)
    };
    let (steady, mut steady_progress) = start("steady", "sleep 300", 2);
    let (crashy, mut crashy_progress) = start("crashy", "exit 1", 1);
    tokio::time::timeout(Duration::from_secs(30), async {
        steady_progress.wait_for(|p| p.running == 2).await.unwrap();
        crashy_progress
            .wait_for(|p| p.relaunches >= 3)
            .await
            .unwrap();
    })
    .await
    .expect("two instances running and three relaunches of the crashing one");
    assert_eq!(steady_progress.borrow().relaunches, 0);
    steady.stop();
    crashy.stop();
    node.shutdown().await;
    cluster.shutdown().await;
}
