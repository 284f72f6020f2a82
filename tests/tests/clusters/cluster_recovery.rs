//! Whole-cluster behaviour across failures and between frameworks: the DRF paper's example
//! through the real master and drivers, a master restart that agents and frameworks recover
//! from, and a custom executor that dies under its tasks.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_bench::emulated_agent::EmulatedAgent;
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::Node;
use master::master::Master;
use protos::v1::task_status::Reason;
use protos::v1::{
    CommandInfo, ExecutorId, ExecutorInfo, Filters, Offer, TaskId, TaskInfo, TaskState,
};
use resources::Resources;

/// Launches one task of `demand` if the offer fits it, otherwise declines for good. Returns
/// whether the framework is done (nothing fits any more).
async fn take_one(framework: &TestFramework, offer: Offer, demand: &Resources, n: usize) -> bool {
    let id = offer.id.clone().unwrap();
    let have = Resources::from_proto(&offer.resources).unwrap();
    if have.contains(demand) {
        let mut task = command_task(&format!("t{n}"), "true", "cpus:1");
        task.resources = demand.to_proto();
        framework
            .act(move |d| {
                d.launch_tasks(
                    &[id],
                    vec![task],
                    Filters {
                        refuse_seconds: Some(0.0),
                    },
                )
            })
            .await;
        false
    } else {
        framework
            .act(move |d| {
                d.decline_offer(
                    &id,
                    Filters {
                        refuse_seconds: Some(3600.0),
                    },
                )
            })
            .await;
        true
    }
}

/// Seed 000's example: 100 CPUs and 100 GB; F1's tasks need 4 CPUs and 1 GB, F2's 1 CPU and
/// 8 GB. Each framework takes one task per offer; DRF decides who is offered next. F1 ends with
/// 20 tasks, F2 with 10: dominant shares equal, 80 % of the CPUs for F1 and 80 % of the memory
/// for F2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drf_example_through_the_real_master() {
    let master_node = Node::builder().single_threaded().start().unwrap();
    let master = Master::spawn(&master_node, "drf").unwrap();
    let agent_node = Node::builder().single_threaded().start().unwrap();
    agent_node
        .spawn(
            "agent",
            EmulatedAgent::new(
                master.master.pid().clone(),
                "cpus:100;mem:100".parse().unwrap(),
                Duration::from_secs(86_400),
                Default::default(),
            ),
        )
        .unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let mut f1 = TestFramework::start(&node, master.master.pid(), framework_info("f1"));
    let mut f2 = TestFramework::start(&node, master.master.pid(), framework_info("f2"));
    f1.registered().await;
    f2.registered().await;
    let (d1, d2): (Resources, Resources) = (
        "cpus:4;mem:1".parse().unwrap(),
        "cpus:1;mem:8".parse().unwrap(),
    );
    let (mut n1, mut n2, mut done1, mut done2) = (0, 0, false, false);
    while !(done1 && done2) {
        tokio::select! {
            offers = f1.offers(), if !done1 => {
                for offer in offers {
                    done1 = take_one(&f1, offer, &d1, n1).await;
                    if !done1 { n1 += 1; }
                }
            }
            offers = f2.offers(), if !done2 => {
                for offer in offers {
                    done2 = take_one(&f2, offer, &d2, n2).await;
                    if !done2 { n2 += 1; }
                }
            }
        }
    }
    assert_eq!(
        (n1, n2),
        (20, 10),
        "DRF equalizes dominant shares: 80 % CPU vs 80 % memory"
    );
    node.shutdown().await;
    agent_node.shutdown().await;
    master_node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_frameworks_recover_from_a_master_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = LocalCluster::start(LocalClusterConfig::new(2, dir.path()))
        .await
        .unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework =
        TestFramework::start(&node, cluster.master_pid(), framework_info("survivor"));
    let framework_id = framework.registered().await;
    framework
        .launch_on_first_offer(command_task("long", "sleep 300", "cpus:1;mem:16"))
        .await;
    framework.status("long", TaskState::TaskRunning).await;

    cluster.restart_master().await.unwrap();
    // The agents find the new master and bring their ids and tasks; the framework re-registers
    // under its id.
    cluster
        .wait_for_master_agents(2, Duration::from_secs(60))
        .await
        .unwrap();
    framework
        .until(|e| matches!(e, SchedulerEvent::Reregistered).then_some(()))
        .await;
    let (frameworks, tasks) = cluster
        .master
        .master
        .call(|m, _| (m.framework_count(), m.task_count()))
        .await
        .unwrap();
    assert_eq!(
        (frameworks, tasks),
        (1, 1),
        "the new master learned the framework and its task"
    );

    // The new master answers for the task and can kill it.
    let reconciled = framework.reconcile("long", None).await;
    assert_eq!(reconciled.state(), TaskState::TaskRunning);
    framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "long".into(),
            })
        })
        .await;
    framework.status("long", TaskState::TaskKilled).await;
    assert_eq!(
        framework
            .handle
            .call(|_, d| d.framework_id().cloned())
            .await
            .unwrap(),
        Some(framework_id)
    );
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_custom_executor_fails_its_tasks_and_is_reported_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(1, dir.path()))
        .await
        .unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("doomed"));
    framework.registered().await;
    let offer = framework.offers().await.remove(0).id.unwrap();
    // An "executor" that never registers and exits with status 3 after a moment.
    let task = TaskInfo {
        executor: Some(ExecutorInfo {
            executor_id: Some(ExecutorId {
                value: "flaky".into(),
            }),
            command: Some(CommandInfo {
                value: "sleep 0.2; exit 3".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        command: None,
        ..command_task("work", "unused", "cpus:0.5;mem:16")
    };
    framework
        .act(move |d| d.launch_tasks(&[offer], vec![task], Filters::default()))
        .await;
    // Both arrive, in either order: the agent tells the master of the exit directly, and the
    // task's update through its status update manager.
    let (mut failed, mut lost) = (None, None);
    while failed.is_none() || lost.is_none() {
        match framework.next().await {
            SchedulerEvent::Status(s) if s.state() == TaskState::TaskFailed => failed = Some(s),
            SchedulerEvent::ExecutorLost(id, status) => lost = Some((id.value, status)),
            _ => {}
        }
    }
    let failed = failed.unwrap();
    assert_eq!(failed.task_id.as_ref().unwrap().value, "work");
    assert_eq!(failed.reason(), Reason::ExecutorTerminated);
    assert!(
        failed.message.contains("exited with status 3"),
        "{}",
        failed.message
    );
    assert_eq!(lost, Some(("flaky".to_owned(), 3)));
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_executor_runs_tasks_and_relays_framework_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(1, dir.path()))
        .await
        .unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("echo"));
    framework.registered().await;
    let offer = framework.offers().await.remove(0).id.unwrap();
    let task = TaskInfo {
        executor: Some(ExecutorInfo {
            executor_id: Some(ExecutorId {
                value: "echo".into(),
            }),
            command: Some(CommandInfo {
                value: env!("CARGO_BIN_EXE_echo-executor").into(),
                shell: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        }),
        command: None,
        ..command_task("e1", "unused", "cpus:0.5;mem:16")
    };
    // Two tasks for the one executor (one OS process, in one container).
    let second = TaskInfo {
        task_id: Some(TaskId { value: "e2".into() }),
        ..task.clone()
    };
    framework
        .act(move |d| d.launch_tasks(&[offer], vec![task, second], Filters::default()))
        .await;
    let running = framework.status("e1", TaskState::TaskRunning).await;
    assert_eq!(running.source(), protos::v1::task_status::Source::Executor);
    let other = framework.status("e2", TaskState::TaskRunning).await;
    assert_eq!(
        other.executor_id, running.executor_id,
        "both on the one executor"
    );
    let agent = running.agent_id.clone().unwrap();

    // scheduler → master → agent → executor, and back.
    framework
        .act(move |d| {
            d.send_framework_message(
                &ExecutorId {
                    value: "echo".into(),
                },
                &agent,
                bytes::Bytes::from_static(b"ping"),
            )
        })
        .await;
    let echoed = framework
        .until(|e| match e {
            SchedulerEvent::Message(data) => Some(data.clone()),
            _ => None,
        })
        .await;
    assert_eq!(echoed, b"ping");

    // A kill goes through the executor, which reports it.
    framework
        .act(|d| d.kill_task(&TaskId { value: "e1".into() }))
        .await;
    let killed = framework.status("e1", TaskState::TaskKilled).await;
    assert_eq!(killed.message, "killed by the echo executor");

    // Ending the framework shuts the executor down: its OS process exits on its own (the agent
    // would kill it after the shutdown grace period, which the real clock does not reach here).
    framework.act(|d| d.stop()).await;
    let metrics = cluster.agents[0].node.metrics().clone();
    let exited = || {
        metrics
            .snapshot()
            .get("slave/executors_exited")
            .copied()
            .unwrap_or(0.0)
    };
    eventually("the executor exits when asked", || async {
        (exited() >= 1.0).then_some(())
    })
    .await;
    node.shutdown().await;
    cluster.shutdown().await;
}
