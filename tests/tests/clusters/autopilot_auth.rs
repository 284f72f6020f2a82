//! Autopilot on a cluster with credentials: a repair service that has not authenticated with
//! the master gets no orders (the failing machine waits in Failure, the refusal is counted);
//! one that proves its credential gets the order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authentication::Credential;
use autopilot::device_manager::{device_manager_beside, DeviceManagerConfig};
use autopilot::health::HealthPolicy;
use autopilot::repair_driver::CommandDriver;
use autopilot::repair_service::{RepairService, REPAIR_SERVICE_ID};
use keel::local_cluster::{LocalAutopilot, LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::machines::get;
use keel_testkit::watchdogs::install_watchdog;
use keel_tests::cluster::AGENTS_UP;
use libactor::Node;
use protos::autopilot::RepairAction;

/// Errors always.
const BROKEN: &str = "#!/bin/sh\necho \"disk gone\"; exit 2\n";

fn service(cluster: &LocalCluster) -> RepairService {
    let driver = CommandDriver::new(
        BTreeMap::from([(RepairAction::Reboot, "echo rebooted".to_owned())]),
        Duration::from_secs(10),
    );
    RepairService::new(
        device_manager_beside(cluster.master_pid()).unwrap(),
        Arc::new(driver),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_authenticated_repair_service_gets_orders() {
    let root = tempfile::tempdir().unwrap();
    let watchdogs = root.path().join("watchdogs");
    install_watchdog(&watchdogs.join("agent-0"), "disk", BROKEN);
    let credential = Credential {
        principal: "ops".into(),
        secret: "s3cret".into(),
    };
    let mut config = LocalClusterConfig::new(1, root.path().join("cluster"));
    config.credential = Some(credential.clone());
    config.autopilot = Some(LocalAutopilot {
        device_manager: DeviceManagerConfig {
            health: HealthPolicy {
                error_threshold: 2,
                probation: Duration::from_secs(600),
                ..Default::default()
            },
            ..Default::default()
        },
        watchdog_interval: Duration::from_millis(100),
        watchdog_root: Some(watchdogs),
        filesync: Default::default(),
        collector: Default::default(),
    });
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let master = cluster.master_pid().clone();
    let unauthorized = || {
        cluster
            .master_node
            .metrics()
            .snapshot()
            .get("autopilot/unauthorized_requests")
            .copied()
            .unwrap_or(0.0)
    };

    let stranger = Node::builder().single_threaded().start().unwrap();
    stranger
        .spawn(REPAIR_SERVICE_ID, service(&cluster))
        .unwrap();
    eventually("the unauthenticated repair service is refused", || async {
        (unauthorized() >= 1.0).then_some(())
    })
    .await;
    let m = eventually(
        "the machine fails and waits for a repair service",
        || async {
            let m = get(&master, "/device-manager/machine?id=local-agent-0").await?;
            (m["state"] == "Failure").then_some(m)
        },
    )
    .await;
    assert_eq!(m["action"], "Reboot", "{m}");

    let trusted = Node::builder().single_threaded().start().unwrap();
    trusted
        .spawn(
            REPAIR_SERVICE_ID,
            service(&cluster).with_credential(credential),
        )
        .unwrap();
    eventually("the authenticated repair service reboots it", || async {
        let audit = get(&master, "/device-manager/audit").await?;
        audit
            .to_string()
            .contains("machine local-agent-0: Reboot done")
            .then_some(())
    })
    .await;
    stranger.shutdown().await;
    trusted.shutdown().await;
    cluster.shutdown().await;
}
