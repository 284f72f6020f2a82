//! The cockpit in a real browser: a cluster where one machine fails and is being repaired and
//! a rollout is in progress, its `/cockpit` page rendered by headless Chromium (Debian's
//! `chromium`, installed by the test command). The page's JavaScript fetches the device
//! manager's and the collection service's routes; the test asserts on the DOM Chromium
//! rendered and keeps a screenshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use autopilot::collector::CollectorConfig;
use autopilot::device_manager::{device_manager_beside, DeviceManagerConfig, TypeRule};
use autopilot::health::HealthPolicy;
use autopilot::repair_driver::CommandDriver;
use autopilot::repair_service::{RepairService, REPAIR_SERVICE_ID};
use keel::local_cluster::{LocalAutopilot, LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::manifests::{keelctl_deploy, write_manifest, RECORDS_AND_RUNS};
use keel_testkit::watchdogs::install_watchdog;
use keel_testkit::AGENTS_UP;
use libactor::Node;
use protos::autopilot::RepairAction;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Errors always: agent 0's machine keeps failing.
const BROKEN_FAN: &str = "#!/bin/sh\necho \"fan stopped\"; exit 2\n";

/// Runs headless Chromium on `url` with `args`; its stdout.
fn chromium(profile: &Path, url: &str, args: &[&str]) -> String {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's `chromium` package (bash scripts/test.sh does)"
    );
    let out = std::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cockpit_shows_machines_repairs_and_a_rollout_in_chromium() {
    let root = tempfile::tempdir().unwrap();
    let work = root.path().join("cluster");
    let watchdogs = root.path().join("watchdogs");
    install_watchdog(&watchdogs.join("agent-0"), "fan", BROKEN_FAN);
    let mut config = LocalClusterConfig::new(3, &work);
    config.autopilot = Some(LocalAutopilot {
        device_manager: DeviceManagerConfig {
            health: HealthPolicy {
                error_threshold: 2,
                error_window: Duration::from_secs(60),
                probation: Duration::from_secs(600),
                ..Default::default()
            },
            // Machines switching in the rollout count against the repair cap too: room for both.
            limits: autopilot::repair_limits::RepairLimits {
                max_fraction: 1.0,
                ..Default::default()
            },
            // The failing machine is of another type than the one rolled out.
            type_rules: vec!["local-agent-0=db".parse::<TypeRule>().unwrap()],
            ..Default::default()
        },
        watchdog_interval: Duration::from_millis(200),
        watchdog_root: Some(watchdogs),
        filesync: Default::default(),
        collector: CollectorConfig {
            interval: Duration::from_millis(200),
            ..Default::default()
        },
    });
    config.ca = Some(keel_testkit::test_ca::shared().ca());
    let cluster = LocalCluster::start(config).await.unwrap();
    cluster.wait_for_agents(AGENTS_UP).await.unwrap();
    let master = cluster.master_node.address().to_owned();
    let node = Node::builder()
        .single_threaded()
        .tls(keel_testkit::test_ca::shared().tls("repair", &[authentication::roles::REPAIR]))
        .start()
        .unwrap();
    let reboots = CommandDriver::new(
        BTreeMap::from([(RepairAction::Reboot, "echo rebooted".to_owned())]),
        Duration::from_secs(10),
    );
    node.spawn(
        REPAIR_SERVICE_ID,
        RepairService::new(
            device_manager_beside(cluster.master_pid()).unwrap(),
            Arc::new(reboots),
        ),
    )
    .unwrap();

    eventually(
        "every machine reports from its registered agent",
        || async {
            let v = libactor::http_client::get_json(&master, "/device-manager/machines")
                .await
                .ok()?;
            (v["machines"].as_array()?.len() == 3).then_some(())
        },
    )
    .await;
    // A rollout over the two `default` machines, one per unit; a 600 s probation holds it in
    // its first unit.
    let manifest = write_manifest(
        &root.path().join("manifests"),
        "default",
        "1",
        RECORDS_AND_RUNS,
    );
    let (ok, out) = keelctl_deploy(env!("CARGO_BIN_EXE_keelctl"), &master, &manifest, 1, false);
    assert!(ok, "{out}");
    eventually("the failing machine is being repaired", || async {
        let m =
            libactor::http_client::get_json(&master, "/device-manager/machine?id=local-agent-0")
                .await
                .ok()?;
        (m["state"] == "Probation" && m["action"] == "Reboot").then_some(())
    })
    .await;
    eventually("the collection service has gathered points", || async {
        let v = libactor::http_client::get_json(
            &master,
            "/collector/series?name=autopilot/watchdog_rounds",
        )
        .await
        .ok()?;
        let machines = v["machines"].as_object()?;
        (machines.len() == 3
            && machines
                .values()
                .all(|p| p.as_array().is_some_and(|p| p.len() >= 2)))
        .then_some(())
    })
    .await;

    eventually(
        "the collection service reads every machine's recent log lines",
        || async {
            let v = libactor::http_client::get_json(&master, "/collector/logs")
                .await
                .ok()?;
            (v["logs"].as_object()?.len() == 3).then_some(())
        },
    )
    .await;

    let url = format!("http://{master}/cockpit");
    let profile = root.path().join("chromium");
    let dom = chromium(&profile, &url, &["--dump-dom"]);
    for expected in [
        r#"id="machine-local-agent-0" data-state="Probation""#,
        r#"id="machine-local-agent-1""#,
        r#"id="machine-local-agent-2""#,
        r#"id="count-Probation""#,
        // In the repair queue with its error (its action escalates while the fan stays broken).
        r#"data-machine="local-agent-0">local-agent-0: Probation ("#,
        "fan: fan stopped",
        r#"id="rollout-summary" data-state="Running""#,
        r#"id="unit-1" data-phase="current""#,
        r#"id="unit-2" data-phase="pending""#,
        r#"data-counter="autopilot/watchdog_rounds""#,
        "<polyline",
    ] {
        assert!(
            dom.contains(expected),
            "the page lacks {expected:?}:\n{dom}"
        );
    }
    assert!(
        !dom.contains("refreshed <span id=\"refreshed\">failed"),
        "{dom}"
    );

    let shot = root.path().join("cockpit.png");
    chromium(
        &profile,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400",
        ],
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 10_000, "a screenshot with something on it");
    // Kept for people: target/cockpit.png.
    let _ = std::fs::copy(
        &shot,
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/cockpit.png"),
    );

    node.shutdown().await;
    cluster.shutdown().await;
}
