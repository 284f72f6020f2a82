//! Agents isolating their tasks in real cgroups inside a whole cluster: a task that outgrows
//! its memory is failed with `REASON_CONTAINER_LIMITATION_MEMORY` at the framework, a busy
//! task's usage shows at `/slave(N)/monitor/statistics`, and once the cluster stops no cgroup
//! and no task process is left. Skipped, with the reason printed, where the kernel offers no
//! writable cgroups.

use std::path::Path;

use keel::local_cluster::LocalClusterConfig;
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::command_task;
use keel_tests::cluster::ClusterWithFramework;
use protos::v1::task_status::Reason;
use protos::v1::{TaskId, TaskState};
use slave::containerizer::cgroup_layout::CgroupLayout;
use slave::containerizer::{self, ContainerizerConfig, IsolationMode};

struct Setup {
    c: ClusterWithFramework,
    root: String,
    _dir: tempfile::TempDir,
}

async fn setup(name: &str) -> Option<Setup> {
    let root = format!("keel-cluster-test-{}-{name}", std::process::id());
    let containerizer = ContainerizerConfig {
        isolation: IsolationMode::Cgroups,
        cgroups_root: root.clone(),
        cgroups_enable_cfs: false,
    };
    // Probe first: a machine without writable cgroups skips, saying why.
    match containerizer::create(&containerizer, "probe") {
        Ok(probe) => probe.containerizer.shutdown(),
        Err(e) => {
            eprintln!("skipping: {e}");
            return None;
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.containerizer = containerizer;
    Some(Setup {
        c: ClusterWithFramework::start(config).await,
        root,
        _dir: dir,
    })
}

impl Setup {
    fn agent_http(&self) -> (String, String) {
        let pid = self.c.cluster.agents[0].slave.pid();
        (pid.address().to_owned(), pid.id().to_owned())
    }

    /// Stops everything and checks that no cgroup of the test is left.
    async fn stop(self) {
        self.c.shutdown().await;
        let layout = CgroupLayout::detect().expect("cgroups still there");
        for (_, dir) in layout.dirs(Path::new(&self.root)) {
            std::fs::remove_dir(&dir).unwrap_or_else(|e| {
                panic!(
                    "{} should be empty after the cluster stopped: {e}",
                    dir.display()
                )
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outgrowing_its_memory_fails_with_the_memory_reason() {
    let Some(mut s) = setup("oom").await else {
        return;
    };
    s.c.launch_on_first_offer(command_task(
        "hog",
        "head -c 536870912 /dev/zero | tail",
        "cpus:0.1;mem:64",
    ))
    .await;
    let failed = s.c.framework.status("hog", TaskState::TaskFailed).await;
    assert_eq!(failed.reason(), Reason::ContainerLimitationMemory);
    assert!(
        failed
            .message
            .starts_with("Memory limit exceeded: requested 64 MiB"),
        "{}",
        failed.message
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_task_shows_at_monitor_statistics_and_leaves_nothing_behind() {
    let Some(mut s) = setup("stats").await else {
        return;
    };
    let (addr, slave) = s.agent_http();
    let state = libactor::http_client::get_json(&addr, &format!("/{slave}/state"))
        .await
        .unwrap();
    assert!(
        state["isolation"].as_str().unwrap().starts_with("cgroups"),
        "{state}"
    );
    s.c.launch_on_first_offer(command_task(
        "busy",
        "while :; do :; done",
        "cpus:0.5;mem:96",
    ))
    .await;
    s.c.framework.status("busy", TaskState::TaskRunning).await;
    let path = format!("/{slave}/monitor/statistics");
    let entry = eventually("the busy task is charged cpu time", || async {
        let all = libactor::http_client::get_json(&addr, &path).await.ok()?;
        all.as_array()?
            .iter()
            .find(|e| e["executor_id"] == "busy")
            .filter(|e| {
                e["statistics"]["cpus_user_time_secs"]
                    .as_f64()
                    .unwrap_or(0.0)
                    > 0.1
            })
            .cloned()
    })
    .await;
    assert_eq!(entry["isolation"], "cgroups");
    assert_eq!(entry["statistics"]["cpus_limit"], 0.5);
    assert_eq!(entry["statistics"]["mem_limit_bytes"], 96u64 << 20);
    // The task's command and the supervisor shell that records its exit status for recovery.
    assert_eq!(entry["statistics"]["processes"], 2);
    assert!(entry["container_id"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));

    let metrics = s.c.cluster.agents[0].node.metrics().snapshot();
    assert_eq!(metrics.get("slave/containers_running"), Some(&1.0));

    s.c.framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "busy".into(),
            })
        })
        .await;
    s.c.framework.status("busy", TaskState::TaskKilled).await;
    s.stop().await;
}
