//! Rolling deployment on a whole cluster: six agents with Autopilot's satellites (watchdogs,
//! application manager with filesync), the device manager and deployment server beside the
//! master, and `keelctl deploy` uploading a manifest and following it. A good manifest rolls
//! out over three scale units and every machine runs its process; a bad one (its process
//! crashes, or the watchdog it ships errors) halts in the first unit and every machine ends on
//! the previous version, its process running again.

use std::path::Path;
use std::time::Duration;

use autopilot::device_manager::DeviceManagerConfig;
use autopilot::health::HealthPolicy;
use keel::local_cluster::{LocalAutopilot, LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::manifests::{
    self, keelctl_deploy, write_manifest, write_manifest_with_watchdog, RECORDS_AND_RUNS,
};
use keel_testkit::AGENTS_UP;
use serde_json::Value;

const AGENTS: usize = 6;

const KEELCTL: &str = env!("CARGO_BIN_EXE_keelctl");
/// Dies at once.
const BAD: &str = "echo starting; exit 1\n";

fn deploy(master: &str, manifest: &Path) -> (bool, String) {
    keelctl_deploy(KEELCTL, master, manifest, 2, true)
}

fn running(work: &Path, i: usize, version: &str) -> Option<(String, i32)> {
    manifests::running(&work.join(format!("agent-{i}")), version)
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn machines(master: &str) -> Value {
    libactor::http_client::get_json(master, "/device-manager/machines")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_manifest_rolls_out_by_units_and_a_bad_one_rolls_back() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("cluster");
    let mut config = LocalClusterConfig::new(AGENTS, &work);
    config.autopilot = Some(LocalAutopilot {
        device_manager: DeviceManagerConfig {
            health: HealthPolicy {
                error_threshold: 2,
                error_window: Duration::from_secs(60),
                probation: Duration::from_secs(3),
                ..Default::default()
            },
            ..Default::default()
        },
        watchdog_interval: Duration::from_millis(100),
        watchdog_root: None,
        filesync: Default::default(),
        collector: Default::default(),
    });
    config.ca = Some(keel_testkit::test_ca::shared().ca());
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let master = cluster.master_node.address().to_owned();
    eventually("every machine reports", || async {
        let v = libactor::http_client::get_json(&master, "/device-manager/machines")
            .await
            .ok()?;
        (v["machines"].as_array()?.len() == AGENTS).then_some(())
    })
    .await;

    let sources = root.path().join("manifests");
    for version in ["1", "2"] {
        let (ok, out) = deploy(
            &master,
            &write_manifest(&sources, "default", version, RECORDS_AND_RUNS),
        );
        assert!(ok, "{out}");
        assert!(out.contains("uploaded bin/app.sh"), "{out}");
        assert!(out.contains("Succeeded"), "{out}");
        assert!(out.contains("unit   3 [####################] 2/2"), "{out}");
        for i in 0..AGENTS {
            let (v, pid) = eventually("the machine runs the new version", || async {
                running(&work, i, version)
            })
            .await;
            assert_eq!(v, version);
            assert!(alive(pid), "agent {i} runs version {version}'s process");
        }
    }
    let before: Vec<i32> = (0..AGENTS)
        .map(|i| running(&work, i, "2").unwrap().1)
        .collect();

    let (ok, out) = deploy(&master, &write_manifest(&sources, "default", "3", BAD));
    assert!(!ok, "a crashing version must not succeed: {out}");
    assert!(out.contains("RolledBack"), "{out}");
    assert!(out.contains("failed version 3"), "{out}");
    let rollout = libactor::http_client::get_json(&master, "/device-manager/rollout")
        .await
        .unwrap();
    let units = rollout["rollout"]["units"].as_array().unwrap();
    assert_eq!(
        units[0]["phase"], "current",
        "halted in the first unit: {rollout}"
    );
    let first_unit: Vec<&str> = units[0]["machines"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let v = machines(&master).await;
    for m in v["machines"].as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        assert_eq!(m["manifest_version"], "2", "{id}: {m}");
    }
    for (i, old) in before.iter().enumerate() {
        let host = format!("local-agent-{i}");
        let (v, pid) = eventually("version 2's process runs", || async {
            running(&work, i, "2").filter(|(_, pid)| alive(*pid))
        })
        .await;
        assert_eq!(v, "2");
        if first_unit.contains(&host.as_str()) {
            assert_ne!(pid, *old, "{host} was switched and switched back");
        } else {
            assert_eq!(pid, *old, "{host} never left version 2");
        }
    }

    // A version whose process runs but whose own watchdog (shipped in the manifest) errors.
    let unhealthy = write_manifest_with_watchdog(
        &sources,
        "default",
        "4",
        RECORDS_AND_RUNS,
        Some("echo \"version 4 is unhealthy\"; exit 2"),
    );
    let (ok, out) = deploy(&master, &unhealthy);
    assert!(
        !ok,
        "a version failing its watchdog must not succeed: {out}"
    );
    assert!(out.contains("RolledBack"), "{out}");
    let rollout = libactor::http_client::get_json(&master, "/device-manager/rollout")
        .await
        .unwrap();
    assert_eq!(
        rollout["rollout"]["units"][0]["phase"], "current",
        "halted in the first unit: {rollout}"
    );
    // Why, in the audit log: the watchdog's own text.
    let audit = libactor::http_client::get_json(&master, "/device-manager/audit")
        .await
        .unwrap();
    assert!(
        audit.to_string().contains("version 4 is unhealthy"),
        "the watchdog's text says why: {audit}"
    );
    for i in 0..AGENTS {
        eventually("every machine runs version 2 again", || async {
            running(&work, i, "2").filter(|(_, pid)| alive(*pid))
        })
        .await;
    }
    let v = machines(&master).await;
    for m in v["machines"].as_array().unwrap() {
        assert_eq!(m["manifest_version"], "2", "{m}");
        // The version's fault, not the machine's: no repair.
        assert_eq!(m["action"], "DoNothing", "{m}");
    }
    cluster.shutdown().await;
}
