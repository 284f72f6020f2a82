//! Bad input against a live cluster: malformed registrations, impostors and garbage are
//! refused and counted, and the cluster keeps working for everyone else.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use libactor::Node;
use protos::internal::{
    RegisterFrameworkMessage, RegisterSlaveMessage, ReregisterSlaveMessage, StatusUpdate,
    StatusUpdateMessage,
};
use protos::v1::value::{Scalar, Type};
use protos::v1::{AgentInfo, Filters, Resource, TaskId, TaskState, TaskStatus};

fn master_metric(cluster: &LocalCluster, name: &str) -> f64 {
    cluster
        .master_node
        .metrics()
        .snapshot()
        .get(name)
        .copied()
        .unwrap_or(0.0)
}

fn invalid_count(cluster: &LocalCluster) -> f64 {
    master_metric(cluster, "master/invalid_messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_impostor_messages_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(1, dir.path()))
        .await
        .unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("good"));
    let framework_id = framework.registered().await;
    let offer = framework.offers().await.remove(0).id.unwrap();
    framework
        .act(move |d| {
            d.launch_tasks(
                &[offer],
                vec![command_task("precious", "sleep 300", "cpus:0.5;mem:16")],
                Filters::default(),
            )
        })
        .await;
    framework.status("precious", TaskState::TaskRunning).await;

    let impostor = Node::builder().single_threaded().start().unwrap();
    let master = cluster.master_pid().clone();
    let before = invalid_count(&cluster);
    let negative = Resource {
        name: "cpus".into(),
        r#type: Type::Scalar as i32,
        scalar: Some(Scalar { value: -4.0 }),
        ..Default::default()
    };
    // Negative resources, no hostname, no resources at all.
    for slave in [
        AgentInfo {
            hostname: "h".into(),
            resources: vec![negative],
            ..Default::default()
        },
        AgentInfo {
            hostname: String::new(),
            ..Default::default()
        },
        AgentInfo {
            hostname: "h".into(),
            ..Default::default()
        },
    ] {
        impostor.send(
            &master,
            RegisterSlaveMessage {
                slave: Some(slave),
                version: "x".into(),
            },
        );
    }
    // A re-registration without an id, a framework without a name.
    impostor.send(&master, ReregisterSlaveMessage::default());
    impostor.send(&master, RegisterFrameworkMessage { framework: None });
    // A forged TASK_FINISHED for the running task, from a process that is not its agent.
    impostor.send(
        &master,
        StatusUpdateMessage {
            update: Some(StatusUpdate {
                framework_id: Some(framework_id.clone()),
                status: Some(TaskStatus {
                    task_id: Some(TaskId {
                        value: "precious".into(),
                    }),
                    state: TaskState::TaskFinished as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pid: String::new(),
        },
    );
    // Garbage bytes under a real message name, posted over HTTP like any libprocess peer.
    let garbage = libactor::http_client::request(
        master.address(),
        "POST",
        "/master/keel.internal.RegisterSlaveMessage",
        &[("libprocess-from", "impostor@127.0.0.1:1".to_owned())],
        bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0x01]),
    )
    .await
    .unwrap();
    assert_eq!(
        garbage.status, 202,
        "accepted for delivery; the decode fails at the process"
    );

    // Wait (bounded) until all six refusals are counted.
    eventually("all six refusals are counted", || async {
        let counted = invalid_count(&cluster) >= before + 6.0
            && master_metric(&cluster, "libactor/dropped/undecodable_body") >= 1.0;
        counted.then_some(())
    })
    .await;
    assert_eq!(
        cluster.registered_agents().await,
        1,
        "no impostor agent was admitted"
    );
    let state = cluster
        .master
        .master
        .call(|m, _| (m.framework_count(), m.task_count()))
        .await
        .unwrap();
    assert_eq!(
        state,
        (1, 1),
        "no impostor framework; the task was not ended by a forged update"
    );

    // The real framework still works: the forged FINISHED never reached it, a kill does.
    framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "precious".into(),
            })
        })
        .await;
    let killed = framework.status("precious", TaskState::TaskKilled).await;
    assert_eq!(killed.task_id.unwrap().value, "precious");
    impostor.shutdown().await;
    node.shutdown().await;
    cluster.shutdown().await;
}
