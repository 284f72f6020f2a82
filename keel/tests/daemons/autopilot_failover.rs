//! The device manager moves with leadership and loses nothing: two `keel-master --zk
//! --autopilot` contend in a real ZooKeeper, an agent (`keel-slave --autopilot`) fails and is
//! repaired by `keel-repair` (the command driver; its reboot command clears the fault), the
//! leader is SIGKILLed, and the new leader's device manager has the machine's state, history
//! and audit log, keeps the machine drained, and escalates its next failure to Reimage —
//! carried out by the same `keel-repair`, which followed the new leader. A rollout under way
//! when the leader dies is resumed by the next one and finishes.

use std::path::Path;
use std::time::Duration;

use authentication::roles;
use coordination::{Detector, ZkUrl};
use keel_testkit::autopilot_daemons::{autopilot_agent, master_tls_arg};
use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;
use keel_testkit::leader::leader_other_than;
use keel_testkit::machines::{get, repair_actions};
use keel_testkit::manifests::{keelctl_deploy, running, write_manifest, RECORDS_AND_RUNS};
use keel_testkit::watchdogs::install_watchdog;
use keel_testkit::zookeeper_server::ZooKeeperServer;
use libactor::Upid;
use serde_json::Value;

/// Errors while `persist` sits beside it.
const FAN_WATCHDOG: &str = r#"#!/bin/sh
if [ -e "$(dirname "$0")/persist" ]; then echo "fan stopped"; exit 2; fi
echo "fan ok"
"#;

/// Two masters contending in `zk_url` with Autopilot and `extra` flags, the `i`th with its
/// work dir under `dir`.
async fn start_masters(zk_url: &str, dir: &Path, extra: &[&str]) -> Vec<(Daemon, String)> {
    let mut masters = Vec::new();
    let tls = master_tls_arg();
    for i in 0..2 {
        let work = dir.join(format!("master-{i}"));
        let mut args = vec![
            "--port",
            "0",
            "--zk",
            zk_url,
            "--zk-session-timeout-seconds",
            "2",
            "--work-dir",
            work.to_str().unwrap(),
            "--autopilot",
            "--tls-dir",
            &tls,
        ];
        args.extend_from_slice(extra);
        masters.push(Daemon::start(env!("CARGO_BIN_EXE_keel-master"), &args).await);
    }
    masters
}

/// How long a resumed rollout may take on the new leader: re-registrations, a fresh sync of the
/// unit under way and two probations, on a loaded CI machine.
const ROLLOUT_RESUMES_WITHIN: Duration = Duration::from_secs(60);

/// Waits (bounded) for the rollout on `leader` to succeed; on a timeout the failure shows the
/// rollout, the machines and the audit log, which tell where it stopped.
async fn rollout_succeeds(leader: &Upid) -> Value {
    let done = tokio::time::timeout(ROLLOUT_RESUMES_WITHIN, async {
        let mut every = tokio::time::interval(Duration::from_millis(100));
        loop {
            every.tick().await;
            if let Some(r) = get(leader, "/device-manager/rollout").await {
                if r["rollout"]["state"] == "Succeeded" {
                    return r;
                }
            }
        }
    })
    .await;
    match done {
        Ok(r) => r,
        Err(_) => panic!(
            "the new leader did not finish the rollout within {ROLLOUT_RESUMES_WITHIN:?}\nrollout: {:?}\nmachines: {:?}\naudit: {:?}",
            get(leader, "/device-manager/rollout").await,
            get(leader, "/device-manager/machines").await,
            get(leader, "/device-manager/audit").await,
        ),
    }
}

fn repairs(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_manager_state_survives_a_master_failover_and_repairs_resume() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let zk_url = zk.url("/keel");
    let dir = tempfile::tempdir().unwrap();
    let mut masters = start_masters(
        &zk_url,
        dir.path(),
        &[
            "--autopilot-error-threshold",
            "2",
            "--autopilot-probation-seconds",
            "600",
        ],
    )
    .await;
    let detector = Detector::start(zk_url.parse::<ZkUrl>().unwrap(), Duration::from_secs(2));
    let first = leader_other_than(&detector, None).await;

    let watchdogs = dir.path().join("watchdogs");
    install_watchdog(&watchdogs, "fan", FAN_WATCHDOG);
    let fault = watchdogs.join("persist");
    let log = dir.path().join("repairs.log");
    // Each command records what it did, then clears the fault as a repair would.
    let command = format!(
        "echo $KEEL_REPAIR_ACTION $KEEL_HOSTNAME >> {}; rm -f {}",
        log.display(),
        fault.display()
    );
    let (_repair, _) = Daemon::start(
        env!("CARGO_BIN_EXE_keel-repair"),
        &[
            "--master",
            &zk_url,
            "--reboot-command",
            &command,
            "--reimage-command",
            &command,
            "--tls-dir",
            &keel_testkit::test_ca::shared().tls_arg("repair", &[roles::REPAIR]),
        ],
    )
    .await;
    let watchdog_dir = ["--watchdog-dir", watchdogs.to_str().unwrap()];
    let _agent = agent(&zk_url, "host-1", &dir.path().join("work"), &watchdog_dir).await;

    let leader: Upid = first.parse().unwrap();
    eventually(
        "the machine reports to the leader's device manager",
        || async {
            let m = get(&leader, "/device-manager/machine?id=host-1").await?;
            (m["state"] == "Healthy").then_some(())
        },
    )
    .await;
    std::fs::write(&fault, b"").unwrap();
    eventually("the failure is repaired by a reboot", || async {
        repairs(&log).contains("Reboot host-1").then_some(())
    })
    .await;
    // What the leader has made durable is what must survive it.
    let before = eventually("the reboot's outcome is recorded durably", || async {
        let audit = get(&leader, "/device-manager/audit").await?;
        let durable = audit["durable_seq"].as_u64()?;
        let records: Vec<Value> = audit["audit"]
            .as_array()?
            .iter()
            .filter(|r| r["seq"].as_u64().is_some_and(|s| s <= durable))
            .cloned()
            .collect();
        records
            .iter()
            .any(|r| r["what"] == "machine host-1: Reboot done")
            .then_some(records)
    })
    .await;

    let index = masters.iter().position(|(_, p)| *p == first).unwrap();
    masters.remove(index).0.crash().await;
    let second = leader_other_than(&detector, Some(&first)).await;
    let leader: Upid = second.parse().unwrap();
    let m = eventually("the new leader's device manager serves", || async {
        get(&leader, "/device-manager/machine?id=host-1").await
    })
    .await;
    assert_eq!(m["state"], "Probation", "{m}");
    assert_eq!(repair_actions(&m), ["Reboot"], "{m}");
    let audit = get(&leader, "/device-manager/audit").await.unwrap();
    let after = audit["audit"].as_array().unwrap();
    assert!(
        after.len() >= before.len() && after[..before.len()] == before[..],
        "the audit log carries over: {audit}"
    );
    eventually("the new master keeps the machine drained", || async {
        let state = get(&leader, "/master/state").await?;
        state["drained_machines"]
            .as_array()?
            .iter()
            .any(|d| d["hostname"] == "host-1")
            .then_some(())
    })
    .await;

    // Failing again in probation: the new device manager escalates from the recovered history.
    std::fs::write(&fault, b"").unwrap();
    eventually(
        "the next failure is reimaged through the followed repair service",
        || async { repairs(&log).contains("Reimage host-1").then_some(()) },
    )
    .await;
    let m = get(&leader, "/device-manager/machine?id=host-1")
        .await
        .unwrap();
    assert_eq!(repair_actions(&m), ["Reboot", "Reimage"], "{m}");
}

/// An agent of the cluster in `zk_url`, machine `host`, with Autopilot's satellites and
/// `extra` flags.
async fn agent(zk_url: &str, host: &str, work: &Path, extra: &[&str]) -> Daemon {
    autopilot_agent(env!("CARGO_BIN_EXE_keel-slave"), zk_url, host, work, extra).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_progress_rollout_resumes_on_the_new_leader() {
    let zk = ZooKeeperServer::start().expect("zookeeper");
    let zk_url = zk.url("/keel");
    let dir = tempfile::tempdir().unwrap();
    let mut masters =
        start_masters(&zk_url, dir.path(), &["--autopilot-probation-seconds", "3"]).await;
    let detector = Detector::start(zk_url.parse::<ZkUrl>().unwrap(), Duration::from_secs(2));
    let first = leader_other_than(&detector, None).await;
    let leader: Upid = first.parse().unwrap();
    let works = [dir.path().join("host-a"), dir.path().join("host-b")];
    let agents = [
        agent(&zk_url, "host-a", &works[0], &[]).await,
        agent(&zk_url, "host-b", &works[1], &[]).await,
    ];
    for host in ["host-a", "host-b"] {
        eventually("the machines report", || async {
            let m = get(&leader, &format!("/device-manager/machine?id={host}")).await?;
            (m["state"] == "Healthy").then_some(())
        })
        .await;
    }
    let manifest = write_manifest(
        &dir.path().join("manifests"),
        "default",
        "1",
        RECORDS_AND_RUNS,
    );
    let (ok, out) = keelctl_deploy(env!("CARGO_BIN_EXE_keelctl"), &zk_url, &manifest, 1, false);
    assert!(ok, "{out}");
    // host-b, in the second unit, pre-loads the files while the first unit switches; host-a
    // has them too. (The files live on the leader that received the upload: a new leader has
    // none, so machines must not still need them when it takes over.)
    for (work, what) in works
        .iter()
        .zip(["the first unit fetches", "the second unit pre-loads"])
    {
        eventually(what, || async {
            work.join("manifests/app/1/bin/app.sh")
                .exists()
                .then_some(())
        })
        .await;
    }
    let rollout = get(&leader, "/device-manager/rollout").await.unwrap();
    assert_eq!(rollout["rollout"]["state"], "Running", "{rollout}");
    assert_eq!(rollout["rollout"]["current_unit"], 1, "{rollout}");

    let index = masters.iter().position(|(_, p)| *p == first).unwrap();
    masters.remove(index).0.crash().await;
    let second = leader_other_than(&detector, Some(&first)).await;
    let leader: Upid = second.parse().unwrap();
    let done = rollout_succeeds(&leader).await;
    assert_eq!(
        done["rollout"]["id"], 1,
        "the same rollout, resumed: {done}"
    );
    for work in &works {
        let (version, _) = eventually("every machine runs version 1", || async {
            running(work, "1")
        })
        .await;
        assert_eq!(version, "1");
    }

    // A machine joining now is sent version 1 by the new leader, whose deployment server never
    // received the upload: it fetches the files from a machine that runs them.
    let late_work = dir.path().join("host-c");
    let late = agent(&zk_url, "host-c", &late_work, &[]).await;
    let (version, _) = eventually("the new machine runs version 1", || async {
        running(&late_work, "1")
    })
    .await;
    assert_eq!(version, "1");
    let metrics = get(&leader, "/metrics/snapshot").await.unwrap();
    assert!(
        metrics["deployment/peer_fetches"].as_f64() >= Some(1.0),
        "fetched from a machine: {metrics}"
    );
    assert_eq!(metrics["deployment/peer_fetch_failures"], 0.0, "{metrics}");

    // Stopped as an operator would, so that their manifests' processes stop with them.
    for agent in agents.into_iter().chain([late]) {
        agent.stop().await;
    }
}
