//! Autopilot on a real cluster: `keel-master --autopilot` runs the device manager, agents are
//! real `keel-slave` processes with the watchdog service and a custom watchdog, supervised by
//! the `process` repair driver of a repair service this test runs. A machine whose watchdog
//! errors once is left alone; one whose watchdog keeps erroring is drained (its task killed
//! with `REASON_AGENT_DRAINING`), rebooted (a new agent process), reimaged (its work dir
//! wiped) and replaced. An operator's `keelctl repair` goes through the same path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use autopilot::device_manager::device_manager_beside;
use autopilot::repair_driver::{MachineProcess, ProcessDriver};
use autopilot::repair_service::{RepairService, REPAIR_SERVICE_ID};
use keel_testkit::autopilot_daemons::{autopilot_agent_args, autopilot_master};
use keel_testkit::eventually::eventually;
use keel_testkit::machines::{get, repair_actions};
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use keel_testkit::watchdogs::install_watchdog;
use libactor::{Node, Upid};
use protos::v1::task_status::Reason;
use protos::v1::TaskState;
use serde_json::Value;

const MASTER_BIN: &str = env!("CARGO_BIN_EXE_keel-master");
const SLAVE_BIN: &str = env!("CARGO_BIN_EXE_keel-slave");
const KEELCTL_BIN: &str = env!("CARGO_BIN_EXE_keelctl");

/// Errors when `persist` is next to its directory, or once when `once` is (it removes it).
const FAN_WATCHDOG: &str = r#"#!/bin/sh
here=$(dirname "$0")/..
if [ -e "$here/persist" ]; then echo "fan stopped"; exit 2; fi
if [ -e "$here/once" ]; then rm -f "$here/once"; echo "fan stalled"; exit 2; fi
echo "fan ok"
"#;

/// One machine's directories: `work` (the agent's, wiped by Reimage) and `watchdogs`.
fn machine_dirs(root: &Path, host: &str) -> PathBuf {
    let dir = root.join(host);
    install_watchdog(&dir.join("watchdogs"), "fan", FAN_WATCHDOG);
    dir
}

fn agent_process(master: &Upid, dir: &Path, host: &str) -> MachineProcess {
    let (work, watchdogs) = (dir.join("work"), dir.join("watchdogs"));
    let mut args = autopilot_agent_args(master.as_str(), host, &work);
    let extra = [
        "--resources",
        "cpus:2;mem:512",
        "--watchdog-dir",
        watchdogs.to_str().unwrap(),
        "--machine-type",
        "web",
    ];
    args.extend(extra.map(String::from));
    MachineProcess {
        program: SLAVE_BIN.into(),
        args: args.into_iter().map(Into::into).collect(),
        env: Vec::new(),
        work_dir: work,
        log: Some(dir.join("agent.log")),
    }
}

async fn machine(master: &Upid, host: &str) -> Option<Value> {
    get(master, &format!("/device-manager/machine?id={host}")).await
}

fn keelctl(master: &Upid, args: &[&str]) -> std::process::Output {
    std::process::Command::new(KEELCTL_BIN)
        .env("KEEL_TLS_DIR", keel_testkit::manifests::operator_tls_dir())
        .env_remove("KEEL_INSECURE")
        .arg("--master")
        .arg(master.address())
        .args(args)
        .output()
        .expect("keelctl runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_machines_are_drained_and_repaired_with_stronger_actions() {
    let root = tempfile::tempdir().unwrap();
    let (_master, master) = autopilot_master(
        MASTER_BIN,
        &root.path().join("master"),
        &[
            "--autopilot-error-threshold",
            "2",
            "--autopilot-error-window-seconds",
            "60",
            "--autopilot-probation-seconds",
            "600",
        ],
    )
    .await;
    let node = Node::builder()
        .tls(keel_testkit::test_ca::shared().tls("repair", &[authentication::roles::REPAIR]))
        .start()
        .unwrap();
    let driver = ProcessDriver::new(Duration::from_secs(10));
    node.spawn(
        REPAIR_SERVICE_ID,
        RepairService::new(
            device_manager_beside(&master).unwrap(),
            Arc::new(driver.clone()),
        ),
    )
    .unwrap();
    let hosts = ["host-1", "host-2"];
    let mut dirs = Vec::new();
    for host in hosts {
        let dir = machine_dirs(root.path(), host);
        driver
            .start(host, agent_process(&master, &dir, host))
            .await
            .unwrap();
        dirs.push(dir);
    }
    for host in hosts {
        eventually("every machine reports and is Healthy", || async {
            let m = machine(&master, host).await?;
            (m["state"] == "Healthy" && m["watchdogs"].as_array().is_some_and(|w| !w.is_empty()))
                .then_some(())
        })
        .await;
    }

    // One transient error never triggers a repair.
    std::fs::write(dirs[0].join("once"), b"").unwrap();
    eventually("the transient error is reported", || async {
        (!dirs[0].join("once").exists()).then_some(())
    })
    .await;
    let first_reported = machine(&master, "host-1").await.unwrap()["last_report"].clone();
    eventually("a later round reports the fan ok", || async {
        let m = machine(&master, "host-1").await?;
        (m["last_report"] != first_reported
            && m["watchdogs"]
                .as_array()?
                .iter()
                .any(|w| w["name"] == "fan" && w["status"] == "OK"))
        .then_some(())
    })
    .await;
    let m = machine(&master, "host-1").await.unwrap();
    assert_eq!(m["state"], "Healthy", "{m}");
    assert!(repair_actions(&m).is_empty(), "{m}");

    // A task on the machine that will fail.
    let framework_node = Node::builder()
        .tls(
            keel_testkit::test_ca::shared()
                .tls("autopilot-test", &[authentication::roles::FRAMEWORK]),
        )
        .start()
        .unwrap();
    let mut framework = TestFramework::start(&framework_node, &master, framework_info("autopilot"));
    framework.registered().await;
    framework
        .launch_on_first_offer(command_task("t1", "exec sleep 300", "cpus:1.5;mem:32"))
        .await;
    let running = framework.status("t1", TaskState::TaskRunning).await;
    let agent_id = running.agent_id.expect("agent id").value;
    let state = get(&master, "/master/state").await.unwrap();
    let failing = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == agent_id.as_str())
        .and_then(|s| s["hostname"].as_str())
        .unwrap()
        .to_owned();
    let (failing_dir, healthy) = if failing == "host-1" {
        (&dirs[0], "host-2")
    } else {
        (&dirs[1], "host-1")
    };
    let first_pid = driver.pid(&failing).await.unwrap();
    std::fs::write(failing_dir.join("work").join("marker"), b"before").unwrap();

    // The error persists: Failure → drained → Reboot → (still failing) Reimage → Replace.
    std::fs::write(failing_dir.join("persist"), b"").unwrap();
    let killed = framework.status("t1", TaskState::TaskKilled).await;
    assert_eq!(
        killed.reason,
        Some(Reason::AgentDraining as i32),
        "{killed:?}"
    );
    let m = eventually("the machine is replaced", || async {
        let m = machine(&master, &failing).await?;
        (m["replaced"] == true).then_some(m)
    })
    .await;
    assert_eq!(repair_actions(&m), ["Reboot", "Reimage", "Replace"], "{m}");
    assert_eq!(driver.replaced().await, std::slice::from_ref(&failing));
    assert_eq!(
        driver.pid(&failing).await,
        None,
        "a replaced machine is stopped"
    );
    assert!(
        !failing_dir.join("work").join("marker").exists(),
        "the reimage wiped the work dir"
    );
    let audit = get(&master, "/device-manager/audit").await.unwrap();
    let outcomes: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["actor"] == "repair" && r["what"].as_str().is_some_and(|w| w.contains(" done"))
        })
        .filter_map(|r| r["what"].as_str())
        .collect();
    assert_eq!(outcomes.len(), 3, "{audit}");
    let state = get(&master, "/master/state").await.unwrap();
    assert!(
        state["drained_machines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["hostname"] == failing.as_str()),
        "{state}"
    );
    assert_ne!(first_pid, 0);
    let other = machine(&master, healthy).await.unwrap();
    assert_eq!(other["state"], "Healthy", "{other}");

    // keelctl shows the machines, and an operator's repair goes through the same path.
    let out = keelctl(&master, &["machines"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        table.contains("Replaced") && table.contains(healthy),
        "{table}"
    );
    let before = driver.pid(healthy).await.unwrap();
    let out = keelctl(&master, &["repair", healthy, "--action", "reboot"]);
    assert!(out.status.success(), "{out:?}");
    let out = keelctl(&master, &["repair", healthy, "--action", "explode"]);
    assert!(!out.status.success(), "a bad action is refused: {out:?}");
    eventually("the operator's reboot restarts the agent", || async {
        driver
            .pid(healthy)
            .await
            .filter(|pid| *pid != before)
            .map(|_| ())
    })
    .await;
    let out = keelctl(&master, &["machine", healthy]);
    let detail = String::from_utf8_lossy(&out.stdout);
    assert!(
        detail.contains("repair requested by ops"),
        "the proven operator: {detail}"
    );
    let out = keelctl(&master, &["audit"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Reboot done"),
        "{out:?}"
    );

    driver.stop_all().await;
    node.shutdown().await;
    framework_node.shutdown().await;
}
