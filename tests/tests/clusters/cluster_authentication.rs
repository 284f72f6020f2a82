//! Authentication against a live cluster whose master requires it: agents and frameworks with
//! the right credential get in and work; no credential, a wrong secret or a principal that is
//! not the authenticated one are refused, counted, and harm no one.

use std::time::Duration;

use authentication::Credential;
use frameworks::{scheduler_driver, DriverStatus, SchedulerOptions};
use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{framework_info, recording_scheduler, TestFramework};
use libactor::Node;
use slave::slave::{Registration, Slave, SlaveConfig};

fn credential(secret: &str) -> Credential {
    Credential {
        principal: "ops".into(),
        secret: secret.into(),
    }
}

fn metric(cluster: &LocalCluster, name: &str) -> f64 {
    cluster
        .master_node
        .metrics()
        .snapshot()
        .get(name)
        .copied()
        .unwrap_or(0.0)
}

async fn cluster(dir: &std::path::Path) -> LocalCluster {
    let mut config = LocalClusterConfig::new(1, dir);
    config.credential = Some(credential("right"));
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .expect("authenticated agents register");
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frameworks_must_prove_their_principal() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let node = Node::builder().single_threaded().start().unwrap();
    let master = cluster.master_pid().clone();

    // The right secret: registered and offered the agent.
    let mut good = TestFramework::start_with(
        &node,
        &master,
        framework_info("good"),
        SchedulerOptions {
            credential: Some(credential("right")),
            ..Default::default()
        },
    );
    good.registered().await;
    assert_eq!(good.offers().await.len(), 1);

    // No credential, a wrong secret, a principal other than the proven one: each driver ends
    // with the master's reason.
    let cases = [
        (None, "", "has not authenticated"),
        (Some(credential("wrong")), "", "authentication failed"),
        (
            Some(credential("right")),
            "someone-else",
            "is not the authenticated principal",
        ),
    ];
    for (credential, principal, expected) in cases {
        let mut info = framework_info("intruder");
        info.principal = principal.into();
        let (scheduler, _events) = recording_scheduler();
        let handle = scheduler_driver::start(
            &node,
            master.clone(),
            info,
            scheduler,
            SchedulerOptions {
                credential,
                ..Default::default()
            },
        )
        .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), handle.join())
            .await
            .expect("the driver ends");
        match status {
            DriverStatus::Aborted(why) => assert!(why.contains(expected), "{why}"),
            other => panic!("expected an abort, got {other:?}"),
        }
    }
    assert!(metric(&cluster, "master/registrations_refused") >= 2.0);
    assert!(metric(&cluster, "master/authentication_failures") >= 1.0);
    assert_eq!(
        cluster
            .master
            .master
            .call(|m, _| m.framework_count())
            .await
            .unwrap(),
        1
    );
    node.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_wrong_secret_is_never_registered() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path()).await;
    let node = Node::builder().single_threaded().start().unwrap();
    let failures = metric(&cluster, "master/authentication_failures");
    let impostor = Slave::spawn(
        &node,
        SlaveConfig {
            master: cluster.master_pid().clone(),
            work_dir: dir.path().join("impostor"),
            resources: "cpus:1;mem:64".parse().unwrap(),
            attributes: Vec::new(),
            hostname: "impostor".into(),
            credential: Some(credential("wrong")),
            containerizer: Default::default(),
            gc: Default::default(),
            master_ping_timeout: slave::slave::MASTER_PING_TIMEOUT,
            executor_recovery_timeout: None,
            executor_tls: None,
            fetcher_allowed_paths: None,
            switch_user: false,
            acls: Default::default(),
            launcher_dir: slave::slave::default_launcher_dir(),
        },
    )
    .unwrap();
    eventually("the failure is counted", || async {
        (metric(&cluster, "master/authentication_failures") > failures).then_some(())
    })
    .await;
    assert_ne!(
        impostor.call(|s, _| s.registration()).await.unwrap(),
        Registration::Registered
    );
    assert_eq!(cluster.registered_agents().await, 1, "only the real agent");
    node.shutdown().await;
    cluster.shutdown().await;
}
