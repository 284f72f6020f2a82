//! Mesos's v1 executor HTTP API against a real agent, in JSON and in protobuf: a custom
//! executor speaking it (`tests/src/bin/http-executor.rs`, a separate OS process started by the
//! agent) makes every call (SUBSCRIBE, UPDATE, MESSAGE) and tells its framework each event it
//! sees (SUBSCRIBED, LAUNCH, LAUNCH_GROUP, ACKNOWLEDGED, MESSAGE, HEARTBEAT, KILL, SHUTDOWN). The cluster runs
//! on the paused clock, so the agent's 15 s heartbeat comes when the test advances it.

use std::time::Duration;

use bytes::Bytes;
use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use keel_testkit::AGENTS_UP;
use libactor::{Clock, Node};
use protos::v1::{
    executor_info, AgentId, CommandInfo, ExecutorId, ExecutorInfo, Filters, TaskId, TaskInfo,
    TaskState,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_executor_call_and_event_in_json() {
    every_call_and_event("json").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_executor_call_and_event_in_protobuf() {
    every_call_and_event("protobuf").await;
}

/// Waits for the executor to say `text`.
async fn said(framework: &mut TestFramework, text: &str) {
    framework
        .until(|e| match e {
            SchedulerEvent::Message(data) if data == text.as_bytes() => Some(()),
            _ => None,
        })
        .await;
}

async fn every_call_and_event(encoding: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::paused();
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.clock = Some(clock.clone());
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework =
        TestFramework::start(&node, cluster.master_pid(), framework_info("http-executor"));
    framework.registered().await;
    let offer = framework.offers().await.remove(0);
    let executor = ExecutorInfo {
        executor_id: Some(ExecutorId {
            value: "http".into(),
        }),
        command: Some(CommandInfo {
            value: env!("CARGO_BIN_EXE_http-executor").into(),
            arguments: vec![env!("CARGO_BIN_EXE_http-executor").into(), encoding.into()],
            shell: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    let task = TaskInfo {
        executor: Some(executor.clone()),
        command: None,
        ..command_task("h1", "unused", "cpus:0.5;mem:32")
    };
    let offer_id = offer.id.unwrap();
    framework
        .act(move |d| d.launch_tasks(&[offer_id], vec![task], Filters::default()))
        .await;

    // SUBSCRIBE → SUBSCRIBED; LAUNCH → UPDATE (RUNNING), acknowledged → ACKNOWLEDGED.
    said(&mut framework, "SUBSCRIBED").await;
    let running = framework.status("h1", TaskState::TaskRunning).await;
    assert_eq!(
        running.source(),
        protos::v1::task_status::Source::Executor,
        "{running:?}"
    );
    said(&mut framework, "LAUNCH h1").await;
    said(&mut framework, "ACKNOWLEDGED h1").await;

    // A task group on the same executor → one LAUNCH_GROUP, each task RUNNING. What the
    // first launch left is offered again once its 5 s decline filter has passed.
    clock.advance(Duration::from_secs(6));
    clock.settle().await.unwrap();
    let offer = framework.offers().await.remove(0);
    let group = ["g1", "g2"].map(|id| TaskInfo {
        command: None,
        ..command_task(id, "unused", "cpus:0.1;mem:8")
    });
    let (offer_id, group_executor) = (offer.id.unwrap(), executor.clone());
    framework
        .act(move |d| {
            let executor = ExecutorInfo {
                r#type: executor_info::Type::Custom as i32,
                ..group_executor
            };
            d.launch_task_group(&[offer_id], executor, group.to_vec(), Filters::default())
        })
        .await;
    said(&mut framework, "LAUNCH_GROUP g1,g2").await;
    for id in ["g1", "g2"] {
        framework.status(id, TaskState::TaskRunning).await;
    }

    // A framework message reaches it as MESSAGE; its MESSAGE call answers.
    let agent: AgentId = running.agent_id.clone().unwrap();
    let (to, on) = (
        ExecutorId {
            value: "http".into(),
        },
        agent.clone(),
    );
    framework
        .act(move |d| d.send_framework_message(&to, &on, Bytes::from_static(b"ping")))
        .await;
    said(&mut framework, "MESSAGE ping").await;

    // The agent's HEARTBEAT, 15 s on.
    clock.advance(Duration::from_secs(15));
    clock.settle().await.unwrap();
    said(&mut framework, "HEARTBEAT").await;

    // KILL → UPDATE (KILLED).
    framework
        .act(|d| d.kill_task(&TaskId { value: "h1".into() }))
        .await;
    framework.status("h1", TaskState::TaskKilled).await;
    said(&mut framework, "KILL h1").await;

    // The framework ends: the agent tells its executor SHUTDOWN, and it exits.
    framework.act(|d| d.stop()).await;
    eventually("the executor hears SHUTDOWN and exits", || async {
        told_to_shut_down(dir.path()).then_some(())
    })
    .await;
    node.shutdown().await;
    cluster.shutdown().await;
}

/// Whether an executor under `dir` wrote that it was told to shut down (its sandbox's stderr).
fn told_to_shut_down(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            told_to_shut_down(&path)
        } else {
            path.file_name().is_some_and(|n| n == "stderr")
                && std::fs::read_to_string(&path).is_ok_and(|s| s.contains("told to shut down"))
        }
    })
}
