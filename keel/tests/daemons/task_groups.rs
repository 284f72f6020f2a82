//! Task groups (LAUNCH_GROUP) on the agent's default executor, `keel-default-executor`, a
//! separate OS process the agent starts from its launcher dir (this crate's binaries): each
//! task runs as its own process in its own sandbox, and a group lives and dies together.
//! One group that the master refuses runs no task at all.

use authentication::roles;
use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use keel_testkit::AGENTS_UP;
use libactor::Node;
use protos::v1::task_status::Reason;
use protos::v1::{
    executor_info, ExecutorId, ExecutorInfo, Filters, Offer, TaskId, TaskInfo, TaskState,
};

/// A cluster of one agent and a framework holding its first offer.
struct Setup {
    _dir: tempfile::TempDir,
    cluster: LocalCluster,
    node: Node,
    framework: TestFramework,
    offer: Offer,
}

async fn setup(name: &str) -> Setup {
    setup_with(name, false).await
}

/// As [`setup`], on a secure cluster (mutual TLS, executors proving themselves) when `secure`.
async fn setup_with(name: &str, secure: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let launcher = slave::slave::default_launcher_dir().join(slave::slave::DEFAULT_EXECUTOR);
    assert_eq!(
        launcher,
        std::path::Path::new(env!("CARGO_BIN_EXE_keel-default-executor")),
        "the agent looks for the default executor beside this crate's binaries"
    );
    let mut config = LocalClusterConfig::new(1, dir.path());
    if secure {
        config = config.secure().unwrap();
    }
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let mut node = Node::builder().single_threaded();
    if let Some(tls) = cluster.issue(name, &[roles::FRAMEWORK]).unwrap() {
        node = node.tls(tls);
    }
    let node = node.start().unwrap();
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info(name));
    framework.registered().await;
    let offer = framework.offers().await.remove(0);
    Setup {
        _dir: dir,
        cluster,
        node,
        framework,
        offer,
    }
}

impl Setup {
    /// Launches `tasks` as one group on a DEFAULT executor called `executor`.
    async fn launch(&mut self, executor: &str, tasks: Vec<TaskInfo>) {
        let executor = ExecutorInfo {
            r#type: executor_info::Type::Default as i32,
            executor_id: Some(ExecutorId {
                value: executor.into(),
            }),
            resources: "cpus:0.1;mem:32"
                .parse::<resources::Resources>()
                .unwrap()
                .to_proto(),
            ..Default::default()
        };
        let offer = self.offer.id.clone().unwrap();
        self.framework
            .act(move |d| d.launch_task_group(&[offer], executor, tasks, Filters::default()))
            .await;
    }

    async fn shutdown(self) {
        self.framework.act(|d| d.stop()).await;
        self.node.shutdown().await;
        self.cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_task_of_a_group_runs_in_its_own_sandbox_on_the_default_executor() {
    let mut s = setup("groups-finish").await;
    // Each task sees its own sandbox and id, and leaves a file there.
    let check = |id: &str| {
        command_task(
            id,
            &format!(
                "test \"$MESOS_TASK_ID\" = {id} && test \"$(basename \"$MESOS_SANDBOX\")\" = {id} \
                 && test \"$PWD\" = \"$MESOS_SANDBOX\" && echo {id} > out \
                 && test -z \"$MESOS_EXECUTOR_AUTHENTICATION_TOKEN\""
            ),
            "cpus:0.1;mem:16",
        )
    };
    s.launch("pod", vec![check("a"), check("b")]).await;
    for id in ["a", "b"] {
        let running = s.framework.status(id, TaskState::TaskRunning).await;
        assert_eq!(
            running.executor_id.as_ref().map(|e| e.value.as_str()),
            Some("pod")
        );
    }
    for id in ["a", "b"] {
        let finished = s.framework.status(id, TaskState::TaskFinished).await;
        assert_eq!(
            finished.source(),
            protos::v1::task_status::Source::Executor,
            "{finished:?}"
        );
    }
    let outs = find_files(s._dir.path(), "out");
    let mut seen: Vec<String> = outs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap().trim().to_owned())
        .collect();
    seen.sort();
    assert_eq!(seen, ["a", "b"], "{outs:?}");
    assert!(
        outs.iter()
            .all(|p| p.parent().unwrap().parent().unwrap().ends_with("tasks")),
        "task sandboxes are tasks/<id> in the executor's: {outs:?}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_group_runs_on_a_secure_cluster() {
    // The default executor reaches its agent's executor API over TLS with the certificate the
    // agent issued it, as keel-local's (secure by default) does.
    let mut s = setup_with("groups-secure", true).await;
    s.launch("pod", vec![command_task("s1", "true", "cpus:0.1;mem:16")])
        .await;
    s.framework.status("s1", TaskState::TaskRunning).await;
    s.framework.status("s1", TaskState::TaskFinished).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_kills_the_rest_of_its_group() {
    let mut s = setup("groups-fail").await;
    let tasks = vec![
        command_task("fails", "exit 3", "cpus:0.1;mem:16"),
        command_task("holds", "sleep 600", "cpus:0.1;mem:16"),
    ];
    s.launch("pod", tasks).await;
    s.framework.status("holds", TaskState::TaskRunning).await;
    let failed = s.framework.status("fails", TaskState::TaskFailed).await;
    assert_eq!(failed.message, "Command exited with status 3");
    let killed = s.framework.status("holds", TaskState::TaskKilled).await;
    assert_eq!(killed.message, "killed with its task group");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_task_kills_its_whole_group() {
    let mut s = setup("groups-kill").await;
    let tasks = vec![
        command_task("one", "sleep 600", "cpus:0.1;mem:16"),
        command_task("two", "sleep 600", "cpus:0.1;mem:16"),
    ];
    s.launch("pod", tasks).await;
    for id in ["one", "two"] {
        s.framework.status(id, TaskState::TaskRunning).await;
    }
    s.framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "one".into(),
            })
        })
        .await;
    for id in ["one", "two"] {
        s.framework.status(id, TaskState::TaskKilled).await;
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_one_bad_task_runs_none_of_them() {
    let mut s = setup("groups-invalid").await;
    let tasks = vec![
        command_task("fits", "sleep 600", "cpus:0.1;mem:16"),
        command_task("too-big", "sleep 600", "cpus:1000;mem:16"),
    ];
    s.launch("pod", tasks).await;
    for id in ["fits", "too-big"] {
        let error = s.framework.status(id, TaskState::TaskError).await;
        assert_eq!(error.reason(), Reason::TaskGroupInvalid, "{error:?}");
        assert!(
            error.message.starts_with("task too-big: "),
            "the refusal names the task at fault: {error:?}"
        );
    }
    // Everything offered comes back: nothing of the group was booked.
    let again = s.framework.offers().await.remove(0);
    let offered = |o: &Offer| resources::Resources::from_proto(&o.resources).unwrap();
    assert_eq!(offered(&again), offered(&s.offer));
    s.shutdown().await;
}

/// Files called `name` under `dir`.
fn find_files(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find_files(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}
