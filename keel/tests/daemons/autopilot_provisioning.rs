//! Provisioning on a whole cluster: machine types come from hostname rules, new machines burn
//! in (Probation, not offered to frameworks) before they are Healthy, and a machine that joins
//! after a rollout receives its type's active manifest and runs it. Reports about a machine
//! from anywhere but its own agent's node are refused.

use std::time::Duration;

use autopilot::device_manager::{DeviceManagerConfig, TypeRule};
use autopilot::health::HealthPolicy;
use keel::local_cluster::{LocalAutopilot, LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::manifests::{keelctl_deploy, running, write_manifest, RECORDS_AND_RUNS};
use keel_testkit::AGENTS_UP;
use serde_json::Value;

const KEELCTL: &str = env!("CARGO_BIN_EXE_keelctl");

async fn machine(master: &str, id: &str) -> Option<Value> {
    libactor::http_client::get_json(master, &format!("/device-manager/machine?id={id}"))
        .await
        .ok()
}

/// Whether the master offers agents on `hostname` (`active` in its state).
async fn offered(master: &str, hostname: &str) -> Option<bool> {
    let state = libactor::http_client::get_json(master, "/master/state")
        .await
        .ok()?;
    state["slaves"]
        .as_array()?
        .iter()
        .find(|s| s["hostname"] == hostname)
        .and_then(|s| s["active"].as_bool())
}

/// A fatal disk error report about `host`.
fn forged_error(host: &str) -> protos::autopilot::WatchdogReport {
    protos::autopilot::WatchdogReport {
        agent_id: String::new(),
        hostname: host.into(),
        machine_type: "web".into(),
        results: vec![protos::autopilot::WatchdogResult {
            name: "disk".into(),
            status: protos::autopilot::WatchdogStatus::Error as i32,
            text: "forged".into(),
            fatal: true,
        }],
        manifest_version: String::new(),
        attributes: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_machine_gets_its_type_and_manifest_and_is_healthy_after_burn_in() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("cluster");
    let mut config = LocalClusterConfig::new(2, &work);
    config.autopilot = Some(LocalAutopilot {
        device_manager: DeviceManagerConfig {
            health: HealthPolicy {
                probation: Duration::from_secs(2),
                ..Default::default()
            },
            type_rules: vec!["local-agent-*=web".parse::<TypeRule>().unwrap()],
            burn_in: true,
            ..Default::default()
        },
        watchdog_interval: Duration::from_millis(100),
        watchdog_root: None,
        filesync: Default::default(),
        collector: Default::default(),
    });
    config.ca = Some(keel_testkit::test_ca::shared().ca());
    let mut cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let master = cluster.master_node.address().to_owned();
    for i in 0..2 {
        let id = format!("local-agent-{i}");
        eventually("the first machines burn in and are Healthy", || async {
            let m = machine(&master, &id).await?;
            (m["state"] == "Healthy").then_some(())
        })
        .await;
    }
    // Reports about a machine from any node but its agent's are ignored (and counted): no one
    // else, not even another agent, can make it fail.
    let stranger = libactor::Node::builder()
        .tls(keel_testkit::test_ca::shared().tls("stranger", &[authentication::roles::AGENT]))
        .start()
        .unwrap();
    let from = stranger.pid("watchdog").unwrap();
    let dm = autopilot::device_manager::device_manager_beside(cluster.master_pid()).unwrap();
    for _ in 0..5 {
        stranger.send_from(&from, &dm, forged_error("local-agent-0"));
    }
    eventually("the forged reports are refused", || async {
        let m = cluster.master_node.metrics().snapshot();
        (m.get("autopilot/unverified_reports")
            .copied()
            .unwrap_or(0.0)
            >= 5.0)
            .then_some(())
    })
    .await;
    let m = machine(&master, "local-agent-0").await.unwrap();
    assert_eq!(m["state"], "Healthy", "{m}");
    stranger.shutdown().await;

    let manifest = write_manifest(&root.path().join("manifests"), "web", "1", RECORDS_AND_RUNS);
    let (ok, out) = keelctl_deploy(KEELCTL, &master, &manifest, 1, true);
    assert!(ok, "{out}");

    let index = cluster.add_agent().unwrap();
    let id = format!("local-agent-{index}");
    let m = eventually("the new machine is provisioned", || machine(&master, &id)).await;
    assert_eq!(m["machine_type"], "web", "typed by the rule: {m}");
    assert_eq!(m["state"], "Probation", "burning in: {m}");
    eventually(
        "the new agent registers, not offered while it burns in",
        || async { (!offered(&master, &id).await?).then_some(()) },
    )
    .await;
    let (version, _) = eventually("it runs its type's active manifest", || async {
        running(&work.join(format!("agent-{index}")), "1")
    })
    .await;
    assert_eq!(version, "1");
    eventually("it is Healthy after burn-in, and offered", || async {
        let m = machine(&master, &id).await?;
        let healthy = m["state"] == "Healthy" && m["manifest_version"] == "1";
        (healthy && offered(&master, &id).await?).then_some(())
    })
    .await;
    let audit = libactor::http_client::get_json(&master, "/device-manager/audit")
        .await
        .unwrap();
    assert!(
        audit
            .to_string()
            .contains(&format!("machine {id} added (type web, Probation)")),
        "{audit}"
    );
    cluster.shutdown().await;
}
