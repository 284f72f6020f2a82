//! The device manager on a real node with its ground truth in a real file store: reports make
//! a machine fail, repairs escalate, probation ends, and a new device manager recovers it all.

use std::sync::Arc;
use std::time::Duration;

use autopilot::device_manager::{DeviceManager, DeviceManagerConfig, DEVICE_MANAGER_ID};
use autopilot::ground_truth;
use autopilot::health::HealthPolicy;
use coordination::{AnyStore, FileStore};
use libactor::{Context, Node, Process, Upid};
use protos::autopilot::{
    HealthState, RepairAction, RepairOrder, WatchdogReport, WatchdogResult, WatchdogStatus,
};
use tokio::sync::mpsc;

/// Stands in for the repair service: records the orders it gets.
struct Orders(mpsc::UnboundedSender<RepairOrder>);

impl Orders {
    fn order(&mut self, _: &mut Context<Self>, _: Upid, order: RepairOrder) {
        let _ = self.0.send(order);
    }
}

impl Process for Orders {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(Self::order);
    }
}

fn report(status: WatchdogStatus) -> WatchdogReport {
    WatchdogReport {
        agent_id: "agent-1".into(),
        hostname: "host-1".into(),
        machine_type: "web".into(),
        results: vec![WatchdogResult {
            name: "fan".into(),
            status: status as i32,
            text: "fan speed 0".into(),
            fatal: false,
        }],
        manifest_version: String::new(),
        attributes: Default::default(),
    }
}

#[tokio::test]
async fn persistent_errors_fail_a_machine_repairs_escalate_and_a_new_manager_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(AnyStore::File(FileStore::open(dir.path()).unwrap()));
    let node = Node::builder().start().unwrap();
    let (tx, mut orders) = mpsc::unbounded_channel();
    let repair = node.spawn("repair", Orders(tx)).unwrap();
    let config = DeviceManagerConfig {
        health: HealthPolicy {
            error_threshold: 2,
            error_window: Duration::from_secs(600),
            probation: Duration::ZERO,
            ..Default::default()
        },
        repair_service: Some(repair),
        ..Default::default()
    };
    let recovered = ground_truth::recover(&store).await.unwrap();
    let dm = node
        .spawn_ref(
            DEVICE_MANAGER_ID,
            DeviceManager::new(config.clone(), Some(store.clone()), recovered),
        )
        .unwrap();
    let agent = node.pid("watchdog").unwrap();
    let send = |status| node.send_from(&agent, dm.pid(), report(status));
    let state = || async {
        node.clock().settle().await.unwrap();
        dm.call(|d, _| d.machines()["host-1"].clone())
            .await
            .unwrap()
    };

    send(WatchdogStatus::Error);
    assert_eq!(
        state().await.state(),
        HealthState::Healthy,
        "one error is not a failure"
    );
    send(WatchdogStatus::Error);
    let m = state().await;
    assert_eq!(
        m.state(),
        HealthState::Probation,
        "failed, then handed to repair"
    );
    assert_eq!(m.action(), RepairAction::Reboot);
    let order = tokio::time::timeout(Duration::from_secs(10), orders.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (order.machine_id.as_str(), order.action()),
        ("host-1", RepairAction::Reboot)
    );

    send(WatchdogStatus::Ok);
    assert_eq!(
        state().await.state(),
        HealthState::Healthy,
        "quiet through probation"
    );

    send(WatchdogStatus::Error);
    send(WatchdogStatus::Error);
    assert_eq!(
        state().await.action(),
        RepairAction::Reimage,
        "the next failure escalates"
    );
    let order = tokio::time::timeout(Duration::from_secs(10), orders.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(order.action(), RepairAction::Reimage);

    let audit = dm.call(|d, _| d.audit().to_vec()).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.what.contains("Healthy -> Failure (Reboot)")),
        "{audit:?}"
    );
    assert!(audit.windows(2).all(|w| w[0].seq < w[1].seq));

    // Written through: a device manager started on the same store knows the machine's history.
    let written = || async {
        let again = ground_truth::recover(&store).await.unwrap();
        again
            .machines
            .get("host-1")
            .map(|m| (m.action(), m.history.len(), again.audit.len()))
    };
    let expected = Some((RepairAction::Reimage, 5, audit.len()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while written().await != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "ground truth not written: {:?}",
            written().await
        );
        node.clock().settle().await.unwrap();
        tokio::task::yield_now().await;
    }
    node.shutdown().await;
}

#[tokio::test]
async fn new_machines_are_typed_by_hostname_or_by_an_attribute_of_their_agent() {
    let node = Node::builder().start().unwrap();
    let config = DeviceManagerConfig {
        type_rules: vec![
            "rack:r1-*=storage".parse().unwrap(),
            "web-*=web".parse().unwrap(),
        ],
        ..Default::default()
    };
    let dm = node
        .spawn_ref(
            DEVICE_MANAGER_ID,
            DeviceManager::new(config, None, Default::default()),
        )
        .unwrap();
    let agent = node.pid("watchdog").unwrap();
    for (host, rack) in [("host-1", "r1-07"), ("web-2", "r2-01"), ("host-3", "r2-02")] {
        let mut r = report(WatchdogStatus::Ok);
        r.hostname = host.into();
        r.machine_type = "declared".into();
        r.attributes = [("rack".to_owned(), rack.to_owned())].into();
        node.send_from(&agent, dm.pid(), r);
    }
    node.clock().settle().await.unwrap();
    let types = dm
        .call(|d, _| {
            d.machines()
                .iter()
                .map(|(id, m)| (id.clone(), m.machine_type.clone()))
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
    assert_eq!(
        types,
        [
            ("host-1".to_owned(), "storage".to_owned()),
            ("host-3".to_owned(), "declared".to_owned()),
            ("web-2".to_owned(), "web".to_owned()),
        ]
    );
    let audit = dm.call(|d, _| d.audit().to_vec()).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.why.contains("by rule rack:r1-*=storage")),
        "{audit:?}"
    );
}
