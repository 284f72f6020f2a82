//! Omega beside offers on whole clusters (a master and real agents over TCP, tasks as real OS
//! processes): shared-state batch and service schedulers with an offer-based framework at
//! once, and a shared-state scheduler through a master restart.

use std::time::Duration;

use frameworks::examples::batch::BatchEvent;
use frameworks::examples::omega_batch::{OmegaBatch, OmegaBatchSpec};
use frameworks::{shared_state, SchedulerOptions};
use keel::example_runs::framework_info;
use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel::omega_demo::{run_omega, OmegaDemo};
use keel_testkit::eventually::eventually;
use libactor::Node;
use protos::v1::TaskState;

const AGENTS_UP: Duration = Duration::from_secs(30);
/// Bounds each wait: a healthy run takes a few seconds.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn metric(node: &Node, name: &str) -> f64 {
    node.metrics().snapshot().get(name).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_state_and_offer_based_frameworks_share_one_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(2, dir.path()))
        .await
        .unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let demo = OmegaDemo {
        batch_schedulers: 2,
        batch_tasks: 8,
        batch_command: "true".into(),
        service_jobs: 1,
        tasks_per_job: 2,
        decision_time: Duration::from_millis(200),
        offer_tasks: 8,
        task_resources: "cpus:0.5;mem:32".parse().unwrap(),
    };
    let mut lines = Vec::new();
    let report = tokio::time::timeout(
        RUN_TIMEOUT,
        run_omega(&node, cluster.master_pid(), None, &demo, None, |l| {
            lines.push(l)
        }),
    )
    .await
    .expect("the demo ends")
    .expect("the demo runs");
    assert!(report.complete(&demo), "{report:?}");
    // The gang went to two distinct machines.
    let placed = lines.iter().find(|l| l.contains("placed on")).unwrap();
    assert_eq!(placed.matches(", ").count(), 1, "{placed}");
    let committed: u64 = report.batch.iter().map(|s| s.committed).sum();
    assert_eq!(committed, 16);
    let m = &cluster.master_node;
    assert_eq!(metric(m, "omega/placements_committed"), 18.0);
    assert_eq!(metric(m, "master/allocator_refusals"), 0.0);
    // The transactions show in /master/state and in keelctl's table.
    let state = libactor::http_client::get_json(cluster.master_pid().address(), "/master/state")
        .await
        .unwrap();
    let recent = state["omega"]["recent_transactions"].as_array().unwrap();
    let committed_shown: u64 = recent
        .iter()
        .map(|t| t["committed"].as_u64().unwrap())
        .sum();
    assert_eq!(committed_shown, 18, "{:#}", state["omega"]);
    let table = keel::tables::transactions(&state);
    assert!(table.contains("COMMITTED"), "{table}");
    assert_eq!(table.lines().count(), recent.len() + 2, "{table}");
    // And through the operator API (Keel's GET_TRANSACTIONS), in JSON.
    let reply = keel_testkit::v1_client::post(
        cluster.master_pid().address(),
        None,
        "/api/v1",
        "application/json",
        &[("accept", "application/json".to_owned())],
        br#"{"type": "GET_TRANSACTIONS"}"#.to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(answer["type"], "GET_TRANSACTIONS");
    let listed = answer["get_transactions"]["transactions"]
        .as_array()
        .unwrap();
    assert_eq!(listed.len(), recent.len(), "{answer:#}");
    let committed_listed: u64 = listed
        .iter()
        .map(|t| t["committed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(committed_listed, 18, "{answer:#}");
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_scheduler_places_on_the_most_reliable_machine() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::start(LocalClusterConfig::new(3, dir.path()))
        .await
        .unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    // Scores as Autopilot's records give them (see keel::machine_reliability): the last
    // agent's machine never failed, the first failed before, the second is on probation.
    let hosts: Vec<String> = cluster.agents.iter().map(|a| a.hostname.clone()).collect();
    let scores: std::collections::HashMap<String, i64> = [
        (hosts[0].clone(), -3),
        (hosts[1].clone(), -1_001),
        (hosts[2].clone(), 0),
    ]
    .into();
    let reliability: frameworks::examples::omega_service::Reliability =
        std::sync::Arc::new(move |host: &str| scores.get(host).copied().unwrap_or(0));
    let demo = OmegaDemo {
        batch_schedulers: 0,
        batch_tasks: 0,
        batch_command: "true".into(),
        service_jobs: 1,
        tasks_per_job: 1,
        decision_time: Duration::from_millis(10),
        offer_tasks: 0,
        task_resources: "cpus:0.5;mem:32".parse().unwrap(),
    };
    let mut lines = Vec::new();
    let report = tokio::time::timeout(
        RUN_TIMEOUT,
        run_omega(
            &node,
            cluster.master_pid(),
            None,
            &demo,
            Some(reliability),
            |l| lines.push(l),
        ),
    )
    .await
    .expect("the demo ends")
    .expect("the demo runs");
    assert!(report.complete(&demo), "{report:?}");
    let state = libactor::http_client::get_json(cluster.master_pid().address(), "/master/state")
        .await
        .unwrap();
    let best = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hostname"] == hosts[2].as_str())
        .and_then(|s| s["id"].as_str())
        .unwrap()
        .to_owned();
    let placed = lines.iter().find(|l| l.contains("placed on")).unwrap();
    assert!(
        placed.ends_with(&best),
        "{placed} (best: {best} on {})",
        hosts[2]
    );
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_state_scheduler_carries_on_through_a_master_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalClusterConfig::new(2, dir.path());
    config.registry = true;
    let mut cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let node = Node::builder().single_threaded().start().unwrap();
    let spec = OmegaBatchSpec::new("survivor", 6, "sleep 4", "cpus:0.5;mem:32".parse().unwrap());
    let (scheduler, mut events) = OmegaBatch::new(spec);
    let mut stats = scheduler.stats();
    let handle = shared_state::start(
        &node,
        cluster.master_pid().clone(),
        framework_info("survivor"),
        scheduler,
        SchedulerOptions::default(),
    )
    .unwrap();
    tokio::time::timeout(RUN_TIMEOUT, stats.wait_for(|s| s.committed == 6))
        .await
        .expect("every task committed")
        .unwrap();
    let epoch_before = handle
        .call(|_, d| d.cell().epoch().to_owned())
        .await
        .unwrap();

    cluster.restart_master().await.unwrap();
    cluster
        .wait_for_master_agents(2, Duration::from_secs(60))
        .await
        .unwrap();
    // The driver re-registers and subscribes again: its copy is now the new master's cell,
    // holding the tasks the agents brought back.
    let (epoch_after, tasks) = eventually("the copy follows the new master", || {
        let (handle, before) = (handle.clone(), epoch_before.clone());
        async move {
            handle
                .call(|_, d| {
                    let cell = d.cell();
                    let tasks: usize = cell.agents().map(|a| a.tasks.len()).sum();
                    (cell.is_current() && tasks > 0).then(|| (cell.epoch().to_owned(), tasks))
                })
                .await
                .ok()
                .flatten()
                .filter(|(epoch, _)| *epoch != before)
        }
    })
    .await;
    assert!(!epoch_after.is_empty());
    assert!(tasks <= 6);

    // Each task's last state, for the failure message if the job does not end.
    let mut last = std::collections::BTreeMap::new();
    let outcomes = tokio::time::timeout(RUN_TIMEOUT, async {
        while let Some(event) = events.recv().await {
            match event {
                BatchEvent::Done(outcomes) => return outcomes,
                BatchEvent::Status { task_id, state, .. } => {
                    last.insert(task_id, state);
                }
            }
        }
        panic!("the scheduler ended without Done");
    })
    .await;
    let Ok(outcomes) = outcomes else {
        let counts = |node: &Node, prefix: &str| {
            let mut m: Vec<_> = node
                .metrics()
                .snapshot()
                .into_iter()
                .filter(|(k, v)| (k.starts_with(prefix) || k.starts_with("libactor/")) && *v != 0.0)
                .collect();
            m.sort_by(|a, b| a.0.cmp(&b.0));
            m
        };
        let agents: Vec<_> = cluster
            .agents
            .iter()
            .map(|a| counts(&a.node, "slave/"))
            .collect();
        panic!(
            "the job did not end: last states {last:?}; stats {:?}; master {:?}; agents {agents:?}",
            stats.borrow().clone(),
            counts(&cluster.master_node, "master/"),
        );
    };
    assert_eq!(outcomes.len(), 6);
    assert!(
        outcomes.iter().all(|o| o.state == TaskState::TaskFinished),
        "{outcomes:?}"
    );
    // Every task ran once. A launch that reached its agent between registrations was not
    // run there; the scheduler's reconciliation after the failover learned that (LOST,
    // unknown to the agent) and placed it again, so commits may exceed six, runs may not.
    let ignored: f64 = cluster
        .agents
        .iter()
        .map(|a| metric(&a.node, "slave/launches_ignored_unregistered"))
        .sum();
    assert_eq!(stats.borrow().committed as f64, 6.0 + ignored);
    let launched: f64 = cluster
        .agents
        .iter()
        .map(|a| metric(&a.node, "slave/tasks_launched"))
        .sum();
    assert_eq!(launched, 6.0);
    node.shutdown().await;
    cluster.shutdown().await;
}

/// A launch lost on its way to the agent, then the master that sent it fails: the new master
/// has never heard of the task, and the agent never ran it. The scheduler's reconciliation
/// after re-registering reaches the agent, which answers LOST (unknown to it), and the task
/// is placed again and runs — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_lost_before_a_master_failover_is_placed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.registry = true;
    let mut cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let lost = cluster.agents[0]
        .node
        .drop_message::<protos::internal::RunTaskMessage>(
            libactor::filter::Match::Any,
            libactor::filter::Match::Any,
        );
    let node = Node::builder().single_threaded().start().unwrap();
    let spec = OmegaBatchSpec::new("lost", 1, "true", "cpus:0.5;mem:32".parse().unwrap());
    let (scheduler, mut events) = OmegaBatch::new(spec);
    let stats = scheduler.stats();
    let _handle = shared_state::start(
        &node,
        cluster.master_pid().clone(),
        framework_info("lost-launch"),
        scheduler,
        SchedulerOptions::default(),
    )
    .unwrap();
    tokio::time::timeout(RUN_TIMEOUT, lost)
        .await
        .expect("the launch reaches the agent's node")
        .expect("and is dropped there");

    cluster.restart_master().await.unwrap();
    let outcomes = tokio::time::timeout(RUN_TIMEOUT, async {
        while let Some(event) = events.recv().await {
            if let BatchEvent::Done(outcomes) = event {
                return outcomes;
            }
        }
        panic!("the scheduler ended without Done");
    })
    .await
    .expect("the job ends");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].state, TaskState::TaskFinished, "{outcomes:?}");
    assert_eq!(stats.borrow().committed, 2, "placed, lost, placed again");
    assert_eq!(metric(&cluster.agents[0].node, "slave/tasks_launched"), 1.0);
    node.shutdown().await;
    cluster.shutdown().await;
}
