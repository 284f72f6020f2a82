//! Autopilot's limits on a whole cluster: 20 agents with watchdog services, 30% of them
//! failing at once. The repair cap is never exceeded (checked over the whole audit log, not
//! sampled), machines over it wait their turn, and a machine type's floor of healthy machines
//! holds. Repairs go through the `command` driver, whose operator commands here fix nothing,
//! so every failing machine escalates to Replace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autopilot::device_manager::{device_manager_beside, DeviceManagerConfig};
use autopilot::health::HealthPolicy;
use autopilot::repair_driver::CommandDriver;
use autopilot::repair_limits::RepairLimits;
use autopilot::repair_service::{RepairService, REPAIR_SERVICE_ID};
use keel::local_cluster::{LocalAutopilot, LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::watchdogs::install_watchdog;
use keel_tests::cluster::AGENTS_UP;
use libactor::Node;
use protos::autopilot::RepairAction;
use serde_json::Value;

const AGENTS: usize = 20;
/// 30% of the machines.
const FAILING: usize = 6;

/// Errors while `persist` sits beside it.
const DISK_WATCHDOG: &str = r#"#!/bin/sh
if [ -e "$(dirname "$0")/persist" ]; then echo "disk errors"; exit 2; fi
echo "disk ok"
"#;

fn watchdogs(root: &Path) {
    for i in 0..AGENTS {
        install_watchdog(&root.join(format!("agent-{i}")), "disk", DISK_WATCHDOG);
    }
}

/// The most machines in repair at once over the whole audit log, and the machines that ever
/// left Healthy.
fn replay(audit: &Value) -> (usize, BTreeSet<String>) {
    let mut in_repair = BTreeSet::new();
    let mut ever = BTreeSet::new();
    let mut most = 0;
    for r in audit["audit"].as_array().unwrap() {
        let what = r["what"].as_str().unwrap();
        let Some((machine, change)) = what
            .strip_prefix("machine ")
            .and_then(|w| w.split_once(": "))
        else {
            continue;
        };
        if change == "Replace done" {
            in_repair.remove(machine);
        } else if let Some((_, to)) = change.split_once(" -> ") {
            if to.starts_with("Healthy") {
                in_repair.remove(machine);
            } else {
                in_repair.insert(machine.to_owned());
                ever.insert(machine.to_owned());
            }
        }
        most = most.max(in_repair.len());
    }
    (most, ever)
}

/// Machines Healthy in `/device-manager/machines`.
fn healthy(machines: &Value) -> usize {
    machines["machines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["state"] == "Healthy")
        .count()
}

/// Starts the cluster with `limits`, fails [`FAILING`] machines, and waits until `replaced`
/// machines are replaced (and, when some must wait for ever, until the device manager has
/// deferred them many more times).
async fn fail_thirty_percent(limits: RepairLimits, replaced: usize) -> (Value, Value) {
    let root = tempfile::tempdir().unwrap();
    watchdogs(&root.path().join("watchdogs"));
    let mut config = LocalClusterConfig::new(AGENTS, root.path().join("cluster"));
    config.autopilot = Some(LocalAutopilot {
        device_manager: DeviceManagerConfig {
            health: HealthPolicy {
                error_threshold: 2,
                error_window: Duration::from_secs(60),
                probation: Duration::from_secs(600),
                ..Default::default()
            },
            limits,
            ..Default::default()
        },
        watchdog_interval: Duration::from_millis(100),
        watchdog_root: Some(root.path().join("watchdogs")),
        filesync: Default::default(),
        collector: Default::default(),
    });
    let config = config.secure().unwrap();
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let master = cluster.master_pid().clone();
    let repair_tls = cluster
        .issue("repair", &[authentication::roles::REPAIR])
        .unwrap();
    let node = Node::builder()
        .single_threaded()
        .tls(repair_tls.expect("a secure cluster issues certificates"))
        .start()
        .unwrap();
    let fix_nothing = CommandDriver::new(
        BTreeMap::from([
            (RepairAction::Reboot, "true".to_owned()),
            (RepairAction::Reimage, "true".to_owned()),
            (
                RepairAction::Replace,
                "echo listed for replacement".to_owned(),
            ),
        ]),
        Duration::from_secs(10),
    );
    node.spawn(
        REPAIR_SERVICE_ID,
        RepairService::new(
            device_manager_beside(&master).unwrap(),
            Arc::new(fix_nothing),
        ),
    )
    .unwrap();
    let machines = || async {
        libactor::http_client::get_json(master.address(), "/device-manager/machines")
            .await
            .ok()
    };
    eventually("every machine reports", || async {
        let v = machines().await?;
        (v["machines"].as_array()?.len() == AGENTS).then_some(())
    })
    .await;

    for i in 0..FAILING {
        let flag = root
            .path()
            .join("watchdogs")
            .join(format!("agent-{i}"))
            .join("persist");
        std::fs::write(flag, b"").unwrap();
    }
    eventually("the admitted machines are replaced", || async {
        let v = machines().await?;
        let done = v["machines"]
            .as_array()?
            .iter()
            .filter(|m| m["replaced"] == true)
            .count();
        (done == replaced).then_some(())
    })
    .await;
    // The others keep failing and keep being deferred.
    let deferred = || {
        cluster
            .master_node
            .metrics()
            .snapshot()
            .get("autopilot/failures_deferred")
            .copied()
            .unwrap_or(0.0)
    };
    let before = deferred();
    if replaced < FAILING {
        eventually("the rest are deferred round after round", || async {
            (deferred() >= before + 20.0).then_some(())
        })
        .await;
    }
    let audit = libactor::http_client::get_json(master.address(), "/device-manager/audit")
        .await
        .unwrap();
    let all = machines().await.unwrap();
    node.shutdown().await;
    cluster.shutdown().await;
    (audit, all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_failing_never_exceed_the_repair_cap() {
    // 10% of 20 machines: at most 2 in repair at once; each is replaced in turn.
    let limits = RepairLimits {
        max_fraction: 0.1,
        ..Default::default()
    };
    let (audit, machines) = fail_thirty_percent(limits, FAILING).await;
    let (most, ever) = replay(&audit);
    assert_eq!(most, 2, "the cap is reached and never exceeded: {audit}");
    assert_eq!(ever.len(), FAILING, "{audit}");
    assert_eq!(healthy(&machines), AGENTS - FAILING);
    // The records rank the machines for the shared-state service scheduler: those that failed
    // score below those that never did (and, replaced, are not ranked at all).
    for m in machines["machines"].as_array().unwrap() {
        let (failures, score) = (
            m["failures"].as_u64().unwrap(),
            m["reliability"].as_i64().unwrap(),
        );
        if m["replaced"] == true {
            assert!(failures >= 1 && score < 0, "{m}");
        } else {
            assert_eq!((failures, score), (0, 0), "{m}");
        }
    }
    let scores = keel::machine_reliability::scores_of(&machines);
    assert_eq!(scores.len(), AGENTS - FAILING);
    assert!(scores.values().all(|s| *s == 0), "{scores:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_types_floor_of_healthy_machines_holds() {
    // A cap of 10, but 17 healthy `default` machines must stay: only 3 may ever be taken.
    let limits = RepairLimits {
        max_fraction: 0.5,
        floors: [("default".to_owned(), AGENTS - 3)].into(),
    };
    let (audit, machines) = fail_thirty_percent(limits, 3).await;
    let (_, ever) = replay(&audit);
    assert_eq!(ever.len(), 3, "the floor holds: {audit}");
    let healthy = machines["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "Healthy")
        .count();
    assert_eq!(
        healthy,
        AGENTS - 3,
        "failing machines over the floor wait, Healthy"
    );
}
