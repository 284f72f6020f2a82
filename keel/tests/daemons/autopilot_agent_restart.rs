//! A manifest keeps running, once, across an agent crash: a real `keel-slave --autopilot` runs
//! a deployed manifest's process; the agent is SIGKILLed (its process survives it, as it is
//! not in the agent's process group) and started again on the same work dir. The new
//! application manager stops the process its predecessor left and runs the recorded active
//! manifest again: one process of it runs, never two, and the device manager is told. The
//! machine's type comes from a provisioning rule on the agent's `rack` attribute.

use std::path::Path;

use keel_testkit::autopilot_daemons::{autopilot_agent, autopilot_master, runs};
use keel_testkit::daemon::Daemon;
use keel_testkit::eventually::eventually;
use keel_testkit::machines::get;
use keel_testkit::manifests::{keelctl_deploy, running, write_manifest, RECORDS_AND_RUNS};
use libactor::Upid;

async fn start_agent(master: &Upid, work: &Path) -> Daemon {
    let extra = ["--attributes", "rack:r1-07"];
    autopilot_agent(
        env!("CARGO_BIN_EXE_keel-slave"),
        master.as_str(),
        "host-1",
        work,
        &extra,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_runs_its_manifest_again_and_only_once() {
    let root = tempfile::tempdir().unwrap();
    let (_master, master) = autopilot_master(
        env!("CARGO_BIN_EXE_keel-master"),
        &root.path().join("master"),
        &[
            // A rollout's unit is done once Healthy again: after a quiet second.
            "--autopilot-probation-seconds",
            "1",
            "--autopilot-type-rule",
            "rack:r1-*=storage",
        ],
    )
    .await;
    let work = root.path().join("agent");
    let agent = start_agent(&master, &work).await;
    let m = eventually("the machine is Healthy", || async {
        let m = get(&master, "/device-manager/machine?id=host-1").await?;
        (m["state"] == "Healthy").then_some(m)
    })
    .await;
    assert_eq!(m["machine_type"], "storage", "typed by its rack: {m}");
    let manifest = write_manifest(
        &root.path().join("manifests"),
        "storage",
        "1",
        RECORDS_AND_RUNS,
    );
    let (ok, out) = keelctl_deploy(
        env!("CARGO_BIN_EXE_keelctl"),
        master.address(),
        &manifest,
        1,
        true,
    );
    assert!(ok, "{out}");
    let (_, first) = eventually("the manifest's process runs", || async {
        running(&work, "1").filter(|(_, pid)| runs(*pid))
    })
    .await;

    agent.crash().await;
    assert!(
        runs(first),
        "a SIGKILLed agent leaves its manifest's process"
    );
    let agent = start_agent(&master, &work).await;
    let (version, second) = eventually("the restarted agent runs the manifest again", || async {
        running(&work, "1").filter(|(_, pid)| *pid != first && runs(*pid))
    })
    .await;
    assert_eq!(version, "1");
    assert!(
        !runs(first),
        "the earlier process was stopped: one runs, not two"
    );
    let m = eventually("the device manager sees version 1", || async {
        let m = get(&master, "/device-manager/machine?id=host-1").await?;
        (m["manifest_version"] == "1").then_some(m)
    })
    .await;
    assert_eq!(m["state"], "Healthy", "{m}");

    agent.stop().await;
    // What the stopped agent may have left is stopped here, as its next start would.
    autopilot::leftover_processes::stop_leftovers(&work, std::time::Duration::from_secs(5)).await;
    assert!(!runs(second));
}
