//! Failover with the registry: a scheduler killed and restarted within or beyond its
//! `failover_timeout`, and a master restarted with its registry (a local file store) while an
//! agent and a framework stay away.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::Node;
use protos::v1::framework_info::{capability, Capability};
use protos::v1::{Filters, FrameworkId, FrameworkInfo, TaskId, TaskState};

fn with_failover(name: &str, seconds: f64) -> FrameworkInfo {
    FrameworkInfo {
        failover_timeout: Some(seconds),
        capabilities: vec![Capability {
            r#type: capability::Type::PartitionAware as i32,
        }],
        ..framework_info(name)
    }
}

/// A new scheduler process for framework `id`: a node of its own and a driver that
/// re-registers under the id.
fn restart_scheduler(
    master: &libactor::Upid,
    info: &FrameworkInfo,
    id: &FrameworkId,
) -> (Node, TestFramework) {
    let node = Node::builder().single_threaded().start().unwrap();
    let info = FrameworkInfo {
        id: Some(id.clone()),
        ..info.clone()
    };
    let framework = TestFramework::start(&node, master, info);
    (node, framework)
}

/// Launches `task` on the first offer and declines the others for an hour, so that the
/// next framework is offered them.
async fn launch_and_decline_the_rest(framework: &mut TestFramework, task: protos::v1::TaskInfo) {
    let offers = framework.offers().await;
    let mut ids = offers.iter().filter_map(|o| o.id.clone());
    let first = ids.next().expect("an offer");
    let rest: Vec<_> = ids.collect();
    framework
        .act(move |d| {
            d.launch_tasks(
                &[first],
                vec![task],
                Filters {
                    refuse_seconds: Some(0.0),
                },
            );
            for id in rest {
                d.decline_offer(
                    &id,
                    Filters {
                        refuse_seconds: Some(3600.0),
                    },
                );
            }
        })
        .await;
}

/// Which of the cluster's agents has id `id`.
async fn agent_index(cluster: &LocalCluster, id: &str) -> usize {
    for (i, agent) in cluster.agents.iter().enumerate() {
        let this = agent
            .slave
            .call(|s, _| s.id().map(str::to_owned))
            .await
            .unwrap();
        if this.as_deref() == Some(id) {
            return i;
        }
    }
    panic!("no agent {id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_restarted_within_its_failover_timeout_keeps_its_tasks_and_beyond_it_loses_them(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.registry = true;
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let master = cluster.master_pid().clone();

    // Within: a 60 s timeout, the scheduler back at once.
    let patient = with_failover("patient", 60.0);
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework = TestFramework::start(&node, &master, patient.clone());
    let id = framework.registered().await;
    framework
        .launch_on_first_offer(command_task("kept", "sleep 300", "cpus:0.5;mem:16"))
        .await;
    framework.status("kept", TaskState::TaskRunning).await;
    node.shutdown().await; // the scheduler process dies
    let (node, mut framework) = restart_scheduler(&master, &patient, &id);
    framework
        .until(|e| matches!(e, SchedulerEvent::Reregistered).then_some(()))
        .await;
    assert_eq!(
        framework.reconcile("kept", None).await.state(),
        TaskState::TaskRunning
    );
    // Later updates reach the new scheduler.
    framework
        .act(|d| {
            d.kill_task(&TaskId {
                value: "kept".into(),
            })
        })
        .await;
    framework.status("kept", TaskState::TaskKilled).await;
    node.shutdown().await;

    // Beyond: a 1 s timeout, the scheduler away for good; its task is killed on the agent.
    let hasty = with_failover("hasty", 1.0);
    let node = Node::builder().single_threaded().start().unwrap();
    let mut framework = TestFramework::start(&node, &master, hasty.clone());
    let id = framework.registered().await;
    framework
        .launch_on_first_offer(command_task("doomed", "sleep 300", "cpus:0.5;mem:16"))
        .await;
    framework.status("doomed", TaskState::TaskRunning).await;
    node.shutdown().await;
    let slave = cluster.agents[0].slave.clone();
    eventually("the agent kills the removed framework's task", || {
        let slave = slave.clone();
        async move { (slave.call(|s, _| s.live_tasks()).await.ok()? == 0).then_some(()) }
    })
    .await;
    let tasks = cluster
        .master
        .master
        .call(|m, _| m.task_count())
        .await
        .unwrap();
    assert_eq!(tasks, 0, "the master forgot the removed framework's task");
    // Coming back too late is refused.
    let (node, mut framework) = restart_scheduler(&master, &hasty, &id);
    let error = framework
        .until(|e| match e {
            SchedulerEvent::Error(why) => Some(why.clone()),
            _ => None,
        })
        .await;
    assert!(error.contains("has been removed"), "{error}");
    node.shutdown().await;
    cluster.shutdown().await;
}

/// A master restarted with its registry: the agent that comes back keeps its tasks, the one
/// that does not is marked unreachable after the re-registration timeout (frameworks told,
/// reconciliation answers TASK_UNREACHABLE), a framework that does not come back is removed
/// and its task killed, and the registry holds all this for the next master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_master_recovers_its_registry_and_settles_who_did_not_return() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalClusterConfig::new(2, dir.path());
    config.registry = true;
    config.agent_reregister_timeout = Duration::from_secs(2);
    // One task fills an agent: the two frameworks' tasks land on different agents.
    config.agent_resources = "cpus:1;mem:256".parse().unwrap();
    let mut cluster = LocalCluster::start(config).await.unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let master = cluster.master_pid().clone();

    let stays = with_failover("stays", 3600.0);
    let stays_node = Node::builder().single_threaded().start().unwrap();
    let mut stayer = TestFramework::start(&stays_node, &master, stays);
    stayer.registered().await;
    launch_and_decline_the_rest(&mut stayer, command_task("s", "sleep 300", "cpus:1;mem:16")).await;
    let on = stayer
        .status("s", TaskState::TaskRunning)
        .await
        .agent_id
        .unwrap();

    let leaves = with_failover("leaves", 0.0);
    let leaves_node = Node::builder().single_threaded().start().unwrap();
    let mut leaver = TestFramework::start(&leaves_node, &master, leaves);
    leaver.registered().await;
    leaver
        .launch_on_first_offer(command_task("l", "sleep 300", "cpus:1;mem:16"))
        .await;
    let other = leaver
        .status("l", TaskState::TaskRunning)
        .await
        .agent_id
        .unwrap();
    assert_ne!(on, other, "one task per agent");

    let gone_agent = agent_index(&cluster, &on.value).await;
    let back_agent = agent_index(&cluster, &other.value).await;

    // While the master is down, the stayer's agent and the leaver's scheduler go away.
    cluster.stop_master().await;
    cluster.agents[gone_agent].node.shutdown().await;
    leaves_node.shutdown().await;
    cluster.start_master().await.unwrap();

    // The stayer re-registers; after 2 s the missing agent is unreachable and it is told.
    stayer
        .until(|e| matches!(e, SchedulerEvent::Reregistered).then_some(()))
        .await;
    let lost = stayer
        .until(|e| match e {
            SchedulerEvent::AgentLost(id) => Some(id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(lost, on);
    assert_eq!(
        stayer.reconcile("s", Some(on.clone())).await.state(),
        TaskState::TaskUnreachable
    );
    // The leaver never came back: its task on the returning agent is killed.
    let back = cluster.agents[back_agent].slave.clone();
    eventually("the leaver's task is killed", || {
        let back = back.clone();
        async move { (back.call(|s, _| s.live_tasks()).await.ok()? == 0).then_some(()) }
    })
    .await;
    let (unreachable, tasks, agents) = cluster
        .master
        .master
        .call(|m, _| (m.unreachable_agents(), m.task_count(), m.agent_count()))
        .await
        .unwrap();
    assert_eq!(unreachable, vec![on.value.clone()]);
    assert_eq!((tasks, agents), (0, 1));

    // The next master reads all this from the registry: the agent is still unreachable, the
    // leaver is gone for good.
    cluster.restart_master().await.unwrap();
    let unreachable = eventually("the next master recovered", || {
        let master = cluster.master.master.clone();
        // Empty until its recovery has read the registry.
        async move {
            let unreachable = master.call(|m, _| m.unreachable_agents()).await.ok()?;
            (!unreachable.is_empty()).then_some(unreachable)
        }
    })
    .await;
    assert_eq!(unreachable, vec![on.value.clone()]);
    stays_node.shutdown().await;
    cluster.shutdown().await;
}
