//! Revocation under the paused clock: a framework holding the whole cluster while another
//! starves is told which tasks go, and after the grace period they are killed (TASK_KILLED,
//! REASON_CONTAINER_PREEMPTED) and offered to the starved framework — never below the role's
//! guarantee.

use std::collections::HashMap;
use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::{Clock, Node};
use master::master::RevocationPolicy;
use protos::v1::task_status::Reason;
use protos::v1::{Filters, TaskState};

const GRACE: Duration = Duration::from_secs(30);
const CHECK: Duration = Duration::from_secs(5);

/// One agent (`cpus:4`), a greedy framework running four 1-CPU tasks on it, and a second one
/// that registers afterwards and gets nothing. Returns the cluster, the clock and both.
async fn greedy_and_starved(
    guarantees: HashMap<String, resources::Resources>,
) -> (
    LocalCluster,
    Clock,
    Node,
    TestFramework,
    TestFramework,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::paused();
    let mut config = LocalClusterConfig::new(1, dir.path());
    config.agent_resources = "cpus:4;mem:1024".parse().unwrap();
    config.clock = Some(clock.clone());
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .unwrap();
    let policy = RevocationPolicy {
        enabled: true,
        check_interval: CHECK,
        grace_period: GRACE,
        guarantees,
    };
    cluster
        .master
        .master
        .call(move |m, ctx| m.set_revocation(ctx, policy))
        .await
        .unwrap();
    let node = Node::builder()
        .single_threaded()
        .clock(clock.clone())
        .start()
        .unwrap();
    let mut greedy = TestFramework::start(&node, cluster.master_pid(), framework_info("greedy"));
    greedy.registered().await;
    let offer = greedy.offers().await.remove(0).id.unwrap();
    let tasks = (0..4)
        .map(|i| command_task(&format!("g{i}"), "sleep 300", "cpus:1;mem:16"))
        .collect();
    greedy
        .act(move |d| d.launch_tasks(&[offer], tasks, Filters::default()))
        .await;
    for i in 0..4 {
        greedy
            .status(&format!("g{i}"), TaskState::TaskRunning)
            .await;
    }
    let mut starved = TestFramework::start(&node, cluster.master_pid(), framework_info("starved"));
    starved.registered().await;
    // All it is offered is the memory the greedy tasks left; it needs CPUs, so it declines
    // (for long: a later offer with CPUs is more than it refused, so it still comes).
    let leftover: Vec<_> = starved
        .offers()
        .await
        .into_iter()
        .filter_map(|o| o.id)
        .collect();
    starved
        .act(move |d| {
            d.decline_offers(
                &leftover,
                Filters {
                    refuse_seconds: Some(3600.0),
                },
            )
        })
        .await;
    clock.settle().await.unwrap();
    (cluster, clock, node, greedy, starved, dir)
}

async fn advance(clock: &Clock, d: Duration) {
    clock.advance(d);
    clock.settle().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_above_the_fair_share_are_revoked_after_the_grace_period() {
    let (cluster, clock, node, mut greedy, mut starved, _dir) =
        greedy_and_starved(HashMap::new()).await;

    advance(&clock, CHECK).await;
    let (revoked, grace) = greedy
        .until(|e| match e {
            SchedulerEvent::Revoked(tasks, grace) => Some((tasks.clone(), *grace)),
            _ => None,
        })
        .await;
    assert_eq!(grace, GRACE);
    let mut revoked: Vec<String> = revoked.into_iter().map(|t| t.value).collect();
    revoked.sort();
    assert_eq!(
        revoked.len(),
        2,
        "down to the fair share of 2 of 4 CPUs: {revoked:?}"
    );

    // Nothing happens during the grace period.
    advance(&clock, GRACE - Duration::from_secs(1)).await;
    assert!(!greedy
        .drain()
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Status(s) if s.state() == TaskState::TaskKilled)));

    advance(&clock, Duration::from_secs(1)).await;
    // Both are killed, in either order.
    let mut killed = Vec::new();
    while killed.len() < revoked.len() {
        let status = greedy
            .until(|e| match e {
                SchedulerEvent::Status(s) if s.state() == TaskState::TaskKilled => Some(s.clone()),
                _ => None,
            })
            .await;
        assert_eq!(status.reason(), Reason::ContainerPreempted);
        killed.push(status.task_id.unwrap().value);
    }
    killed.sort();
    assert_eq!(killed, revoked);
    // The freed CPUs go to the starved framework (in one offer or one per freed task).
    let mut cpus = 0.0;
    while cpus < 2.0 {
        cpus += starved
            .offers()
            .await
            .iter()
            .map(|o| {
                resources::Resources::from_proto(&o.resources)
                    .unwrap()
                    .scalar("cpus")
            })
            .sum::<f64>();
    }
    assert_eq!(cpus, 2.0);
    let revoked_count = cluster.master_node.metrics().snapshot()["master/tasks_revoked"];
    assert_eq!(revoked_count, 2.0);
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guarantee_is_never_revoked() {
    only_what_exceeds_the_guarantee_is_revoked(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_guarantee_set_by_an_operator_is_never_revoked() {
    only_what_exceeds_the_guarantee_is_revoked(true).await;
}

/// The greedy framework's role ("*") is guaranteed 3 CPUs, by the revocation policy or by
/// the operator API's quota: only one task may go.
async fn only_what_exceeds_the_guarantee_is_revoked(by_quota: bool) {
    use protos::v1::quota::QuotaConfig;
    let guarantee: resources::Resources = "cpus:3".parse().unwrap();
    let policy = if by_quota {
        HashMap::new()
    } else {
        HashMap::from([("*".to_owned(), guarantee.clone())])
    };
    let (cluster, clock, node, mut greedy, _starved, _dir) = greedy_and_starved(policy).await;
    if by_quota {
        let config = QuotaConfig {
            role: "*".into(),
            guarantees: [(
                "cpus".to_owned(),
                protos::v1::value::Scalar {
                    value: guarantee.scalar("cpus"),
                },
            )]
            .into(),
            ..Default::default()
        };
        let durable = cluster
            .master
            .master
            .call(move |m, ctx| m.update_quota(ctx, "ops", false, vec![config]))
            .await
            .unwrap()
            .expect("a valid guarantee");
        durable.await.unwrap();
    }
    advance(&clock, CHECK).await;
    let revoked = greedy
        .until(|e| match e {
            SchedulerEvent::Revoked(tasks, _) => Some(tasks.clone()),
            _ => None,
        })
        .await;
    assert_eq!(revoked.len(), 1, "4 CPUs held, 3 guaranteed: {revoked:?}");
    advance(&clock, GRACE).await;
    greedy
        .status(&revoked[0].value, TaskState::TaskKilled)
        .await;
    // Later checks take nothing more: the rest is guaranteed.
    for _ in 0..3 {
        advance(&clock, CHECK).await;
    }
    assert!(!greedy
        .drain()
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Revoked(..))));
    node.shutdown().await;
    cluster.shutdown().await;
}
