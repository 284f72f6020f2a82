//! The master with its allocator, driven by stand-in agents and schedulers (libactor processes
//! speaking the real messages) under the paused clock.

use std::time::Duration;

use libactor::{Clock, Node, Upid};
use master::master::{MarkingGone, Master};
use protos::internal::{
    AcceptOffersMessage, DeclineOffersMessage, PongSlaveMessage, RegisterFrameworkMessage,
    RegisterSlaveMessage, StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::v1::task_status::Reason;
use protos::v1::{
    AgentInfo, FrameworkId, FrameworkInfo, Offer, TaskId, TaskInfo, TaskState, TaskStatus,
};
use resources::Resources;
use tokio::sync::mpsc;

mod stand_in;
use stand_in::{got, no_filter, nothing, r, task, Got, StandIn};

struct Cluster {
    handle: master::master::MasterHandle,
    clock: Clock,
    node: Node,
    master: Upid,
    agent: Upid,
    agent_rx: mpsc::UnboundedReceiver<Got>,
    scheduler: Upid,
    scheduler_rx: mpsc::UnboundedReceiver<Got>,
    framework_id: FrameworkId,
    agent_id: String,
}

fn offers_of(g: Got) -> Vec<Offer> {
    match g {
        Got::Offers(m) => m.offers,
        other => panic!("expected offers, got {other:?}"),
    }
}

/// A master, one agent with `cpus:4;mem:1024` and one registered framework.
async fn cluster() -> Cluster {
    let clock = Clock::paused();
    let node = Node::builder()
        .clock(clock.clone())
        .single_threaded()
        .start()
        .unwrap();
    let handle = Master::spawn(&node, "m1").unwrap();
    let master = handle.master.pid().clone();
    let (tx, mut agent_rx) = mpsc::unbounded_channel();
    let agent = node.spawn("slave(1)", StandIn { tx }).unwrap();
    node.send_from(
        &agent,
        &master,
        RegisterSlaveMessage {
            slave: Some(AgentInfo {
                hostname: "node-1".into(),
                resources: r("cpus:4;mem:1024").to_proto(),
                ..Default::default()
            }),
            version: "test".into(),
        },
    );
    let agent_id = match got(&clock, &mut agent_rx).await {
        Got::SlaveRegistered(m) => m.slave_id.unwrap().value,
        other => panic!("expected registration, got {other:?}"),
    };
    let (tx, mut scheduler_rx) = mpsc::unbounded_channel();
    let scheduler = node.spawn("scheduler(1)", StandIn { tx }).unwrap();
    node.send_from(
        &scheduler,
        &master,
        RegisterFrameworkMessage {
            framework: Some(FrameworkInfo {
                name: "test".into(),
                user: "keel".into(),
                ..Default::default()
            }),
        },
    );
    clock.settle().await.unwrap();
    let framework_id = match scheduler_rx.try_recv().unwrap() {
        Got::FrameworkRegistered(m) => m.framework_id.unwrap(),
        other => panic!("expected registration, got {other:?}"),
    };
    Cluster {
        handle,
        clock,
        node,
        master,
        agent,
        agent_rx,
        scheduler,
        scheduler_rx,
        framework_id,
        agent_id,
    }
}

impl Cluster {
    fn accept(&self, offer: &Offer, tasks: Vec<TaskInfo>) {
        self.node.send_from(
            &self.scheduler,
            &self.master,
            AcceptOffersMessage {
                framework_id: Some(self.framework_id.clone()),
                offer_ids: vec![offer.id.clone().unwrap()],
                tasks,
                filters: no_filter(),
                groups: Vec::new(),
            },
        );
    }

    fn agent_update(&self, task: &str, state: TaskState) {
        self.node.send_from(
            &self.agent,
            &self.master,
            StatusUpdateMessage {
                update: Some(StatusUpdate {
                    framework_id: Some(self.framework_id.clone()),
                    slave_id: Some(protos::v1::AgentId {
                        value: self.agent_id.clone(),
                    }),
                    status: Some(TaskStatus {
                        task_id: Some(TaskId { value: task.into() }),
                        state: state as i32,
                        ..Default::default()
                    }),
                    uuid: vec![1, 2, 3].into(),
                    ..Default::default()
                }),
                pid: self.agent.to_string(),
            },
        );
    }
}

#[tokio::test]
async fn a_task_runs_end_to_end_through_offers() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    assert_eq!(offers.len(), 1);
    assert_eq!(
        Resources::from_proto(&offers[0].resources).unwrap(),
        r("cpus:4;mem:1024")
    );
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    match c.agent_rx.try_recv().unwrap() {
        Got::RunTask(m) => {
            let t = m.task.unwrap();
            assert_eq!(t.task_id.unwrap().value, "t1");
            assert_eq!(t.agent_id.unwrap().value, c.agent_id);
            assert_eq!(m.pid, c.scheduler.to_string());
        }
        other => panic!("expected a launch, got {other:?}"),
    }
    // What the task did not take is offered again at once (refuse_seconds 0).
    let rest = offers_of(c.scheduler_rx.try_recv().unwrap());
    assert_eq!(
        Resources::from_proto(&rest[0].resources).unwrap(),
        r("cpus:3;mem:896")
    );
    c.agent_update("t1", TaskState::TaskRunning);
    c.agent_update("t1", TaskState::TaskFinished);
    c.clock.settle().await.unwrap();
    for expected in [TaskState::TaskRunning, TaskState::TaskFinished] {
        match c.scheduler_rx.try_recv().unwrap() {
            Got::Update(m) => assert_eq!(m.update.unwrap().status.unwrap().state, expected as i32),
            other => panic!("expected an update, got {other:?}"),
        }
    }
    // The acknowledgement goes back to the agent.
    c.node.send_from(
        &c.scheduler,
        &c.master,
        StatusUpdateAcknowledgementMessage {
            slave_id: Some(protos::v1::AgentId {
                value: c.agent_id.clone(),
            }),
            framework_id: Some(c.framework_id.clone()),
            task_id: Some(TaskId { value: "t1".into() }),
            uuid: vec![1, 2, 3].into(),
        },
    );
    match got(&c.clock, &mut c.agent_rx).await {
        Got::Ack(ack) => assert_eq!(ack.task_id.unwrap().value, "t1"),
        other => panic!("expected the acknowledgement, got {other:?}"),
    }
    let m = c.node.metrics().snapshot();
    assert_eq!(m["master/tasks_launched"], 1.0);
    c.node.shutdown().await;
}

#[tokio::test]
async fn bad_launches_are_refused_with_task_error_and_a_reason() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(
        &offers[0],
        vec![
            task("big", "cpus:8;mem:128"),
            task("ok", "cpus:1;mem:128"),
            task("ok", "cpus:1;mem:128"),
        ],
    );
    c.clock.settle().await.unwrap();
    let mut refusals = Vec::new();
    while let Ok(g) = c.scheduler_rx.try_recv() {
        if let Got::Update(m) = g {
            let status = m.update.unwrap().status.unwrap();
            assert_eq!(status.state, TaskState::TaskError as i32);
            assert_eq!(status.reason, Some(Reason::TaskInvalid as i32));
            refusals.push((status.task_id.unwrap().value, status.message));
        }
    }
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(refusals[0].1.contains("exceed"), "{refusals:?}");
    assert!(refusals[1].1.contains("already in use"), "{refusals:?}");
    assert!(
        matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)),
        "the valid task still runs"
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn declined_resources_return_after_refuse_seconds() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.node.send_from(
        &c.scheduler,
        &c.master,
        DeclineOffersMessage {
            framework_id: Some(c.framework_id.clone()),
            offer_ids: vec![offers[0].id.clone().unwrap()],
            filters: Some(protos::v1::Filters {
                refuse_seconds: Some(10.0),
            }),
        },
    );
    nothing(&c.clock, &mut c.scheduler_rx).await;
    for _ in 0..9 {
        c.clock.advance(Duration::from_secs(1));
        nothing(&c.clock, &mut c.scheduler_rx).await;
    }
    c.clock.advance(Duration::from_secs(1));
    assert_eq!(offers_of(got(&c.clock, &mut c.scheduler_rx).await).len(), 1);
    c.node.shutdown().await;
}

#[tokio::test]
async fn malformed_registrations_and_foreign_accepts_are_refused() {
    let mut c = cluster().await;
    let _ = got(&c.clock, &mut c.scheduler_rx).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let bad_agent = c.node.spawn("slave(2)", StandIn { tx }).unwrap();
    let mut negative = r("cpus:1").to_proto();
    negative[0].scalar = Some(protos::v1::value::Scalar { value: -4.0 });
    for info in [
        AgentInfo {
            hostname: "node-2".into(),
            resources: negative,
            ..Default::default()
        },
        AgentInfo {
            hostname: "".into(),
            resources: r("cpus:1").to_proto(),
            ..Default::default()
        },
    ] {
        c.node.send_from(
            &bad_agent,
            &c.master,
            RegisterSlaveMessage {
                slave: Some(info),
                version: String::new(),
            },
        );
    }
    nothing(&c.clock, &mut rx).await;
    // Another process cannot accept the framework's offers.
    let offer = Offer {
        id: Some(protos::v1::OfferId {
            value: "m1-O9999".into(),
        }),
        ..Default::default()
    };
    c.node.send_from(
        &bad_agent,
        &c.master,
        AcceptOffersMessage {
            framework_id: Some(c.framework_id.clone()),
            offer_ids: vec![offer.id.unwrap()],
            tasks: vec![task("x", "cpus:1")],
            filters: None,
            groups: Vec::new(),
        },
    );
    nothing(&c.clock, &mut c.agent_rx).await;
    assert_eq!(c.node.metrics().snapshot()["master/invalid_messages"], 3.0);
    c.node.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_stops_answering_pings_is_removed_and_its_tasks_reported_lost() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    assert!(matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)));
    let remainder = offers_of(c.scheduler_rx.try_recv().unwrap());
    // Declined for long: no offer is outstanding or re-offered while the pings go on.
    c.node.send_from(
        &c.scheduler,
        &c.master,
        DeclineOffersMessage {
            framework_id: Some(c.framework_id.clone()),
            offer_ids: vec![remainder[0].id.clone().unwrap()],
            filters: Some(protos::v1::Filters {
                refuse_seconds: Some(100_000.0),
            }),
        },
    );
    // Healthy for a while: pongs keep it registered.
    for _ in 0..10 {
        c.clock.advance(master::master::AGENT_PING_TIMEOUT);
        nothing(&c.clock, &mut c.scheduler_rx).await;
    }
    // From now on pongs are lost. The first timeout still sees the pong to the ping sent just
    // before; then MAX_AGENT_PING_TIMEOUTS misses in a row remove the agent.
    let _partition = c
        .node
        .drop_messages::<PongSlaveMessage>(&c.agent, &c.master);
    for _ in 0..master::master::MAX_AGENT_PING_TIMEOUTS {
        c.clock.advance(master::master::AGENT_PING_TIMEOUT);
        nothing(&c.clock, &mut c.scheduler_rx).await;
    }
    c.clock.advance(master::master::AGENT_PING_TIMEOUT);
    c.clock.settle().await.unwrap();
    let mut got_lost_task = false;
    let mut got_lost_agent = false;
    while let Ok(g) = c.scheduler_rx.try_recv() {
        match g {
            Got::Update(m) => {
                let status = m.update.unwrap().status.unwrap();
                assert_eq!(status.task_id.unwrap().value, "t1");
                assert_eq!(status.state, TaskState::TaskLost as i32);
                assert_eq!(status.reason, Some(Reason::AgentRemoved as i32));
                got_lost_task = true;
            }
            Got::LostSlave(m) => {
                assert_eq!(m.slave_id.unwrap().value, c.agent_id);
                got_lost_agent = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        got_lost_task && got_lost_agent,
        "lost task {got_lost_task}, lost agent {got_lost_agent}"
    );
    assert_eq!(c.node.metrics().snapshot()["master/agents_removed"], 1.0);
    // Its resources are gone: nothing more is offered.
    c.clock.advance(Duration::from_secs(60));
    nothing(&c.clock, &mut c.scheduler_rx).await;
    c.node.shutdown().await;
}

fn updates(rx: &mut mpsc::UnboundedReceiver<Got>) -> Vec<TaskStatus> {
    let mut out = Vec::new();
    while let Ok(g) = rx.try_recv() {
        match g {
            Got::Update(m) => out.push(m.update.unwrap().status.unwrap()),
            other => panic!("expected status updates, got {other:?}"),
        }
    }
    out
}

#[tokio::test]
async fn unanswered_offers_are_rescinded_and_offered_again() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.clock
        .advance(master::master::OFFER_TIMEOUT - Duration::from_secs(1));
    nothing(&c.clock, &mut c.scheduler_rx).await;
    c.clock.advance(Duration::from_secs(1));
    match got(&c.clock, &mut c.scheduler_rx).await {
        Got::Rescind(m) => assert_eq!(m.offer_id, offers[0].id),
        other => panic!("expected a rescind, got {other:?}"),
    }
    let again = offers_of(c.scheduler_rx.try_recv().expect("re-offered"));
    assert_ne!(again[0].id, offers[0].id);
    // Accepting the rescinded offer now fails: the task is dropped, not launched.
    c.accept(&offers[0], vec![task("late", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    let refused = updates(&mut c.scheduler_rx);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].state, TaskState::TaskDropped as i32);
    assert_eq!(refused[0].reason, Some(Reason::InvalidOffers as i32));
    nothing(&c.clock, &mut c.agent_rx).await;
    c.node.shutdown().await;
}

#[tokio::test]
async fn kill_goes_to_the_agent_and_unknown_tasks_are_reported_lost() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    assert!(matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)));
    let _ = c.scheduler_rx.try_recv();
    for id in ["t1", "ghost"] {
        c.node.send_from(
            &c.scheduler,
            &c.master,
            protos::internal::KillTaskMessage {
                framework_id: Some(c.framework_id.clone()),
                task_id: Some(TaskId { value: id.into() }),
                kill_policy: None,
                reason: None,
            },
        );
    }
    c.clock.settle().await.unwrap();
    let ghost = updates(&mut c.scheduler_rx);
    assert_eq!(ghost.len(), 1);
    assert_eq!(ghost[0].task_id.as_ref().unwrap().value, "ghost");
    assert_eq!(ghost[0].state, TaskState::TaskLost as i32);
    assert_eq!(ghost[0].reason, Some(Reason::TaskUnknown as i32));
    match c.agent_rx.try_recv().unwrap() {
        Got::Kill(m) => assert_eq!(m.task_id.unwrap().value, "t1"),
        other => panic!("expected the kill at the agent, got {other:?}"),
    }
    assert!(
        c.agent_rx.try_recv().is_err(),
        "the unknown task's kill goes nowhere"
    );
    c.node.shutdown().await;
}

/// A framework that retries a kill (as Mesos advises) may kill a task that has just ended: the
/// end it was sent stands, and no TASK_LOST contradicts it (found by the simulation, seed
/// 101225 with three masters).
#[tokio::test]
async fn a_kill_after_the_end_is_not_answered_lost() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    assert!(matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)));
    c.agent_update("t1", TaskState::TaskFinished);
    c.clock.settle().await.unwrap();
    let kill = || protos::internal::KillTaskMessage {
        framework_id: Some(c.framework_id.clone()),
        task_id: Some(TaskId { value: "t1".into() }),
        kill_policy: None,
        reason: None,
    };
    c.node.send_from(&c.scheduler, &c.master, kill());
    c.clock.settle().await.unwrap();
    // Offers of the freed resources come too; the updates are what matters.
    let mut states = Vec::new();
    while let Ok(got) = c.scheduler_rx.try_recv() {
        if let Got::Update(m) = got {
            states.push(m.update.unwrap().status.unwrap().state);
        }
    }
    assert_eq!(states, vec![TaskState::TaskFinished as i32]);
    assert!(
        !matches!(c.agent_rx.try_recv(), Ok(Got::Kill(_))),
        "no kill reaches the agent for a task that ended"
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_late_running_update_does_not_move_a_task_back_from_killing() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.agent_update("t1", TaskState::TaskRunning);
    c.clock.settle().await.unwrap();
    c.node.send_from(
        &c.scheduler,
        &c.master,
        protos::internal::KillTaskMessage {
            framework_id: Some(c.framework_id.clone()),
            task_id: Some(TaskId { value: "t1".into() }),
            kill_policy: None,
            reason: None,
        },
    );
    c.clock.settle().await.unwrap();
    let master = c.handle.master.clone();
    let framework = c.framework_id.value.clone();
    let state = || {
        let framework = framework.clone();
        master.call(move |m, _| m.task_state(&framework, "t1"))
    };
    assert_eq!(state().await.unwrap(), Some(TaskState::TaskKilling));
    // A RUNNING the agent sent before the kill reached it arrives after: the framework still
    // hears it, but the master's task does not go back to RUNNING.
    while c.scheduler_rx.try_recv().is_ok() {}
    c.agent_update("t1", TaskState::TaskRunning);
    c.clock.settle().await.unwrap();
    assert_eq!(state().await.unwrap(), Some(TaskState::TaskKilling));
    let forwarded = updates(&mut c.scheduler_rx);
    assert_eq!(forwarded.len(), 1);
    assert_eq!(forwarded[0].state, TaskState::TaskRunning as i32);
    assert_eq!(
        c.node.metrics().snapshot()["master/task_state_moves_refused"],
        1.0
    );
    // The kill's outcome moves it on, and it ends.
    c.agent_update("t1", TaskState::TaskKilled);
    c.clock.settle().await.unwrap();
    assert_eq!(state().await.unwrap(), None);
    assert_eq!(
        c.node.metrics().snapshot()["master/task_state_moves_refused"],
        1.0
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn an_agent_marked_gone_ends_its_tasks_and_is_never_taken_back() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    assert!(matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)));
    let _ = c.scheduler_rx.try_recv();
    c.agent_update("t1", TaskState::TaskRunning);
    c.clock.settle().await.unwrap();
    let _ = updates(&mut c.scheduler_rx);
    let master = c.handle.master.clone();
    let mark = |id: &str| {
        let id = id.to_owned();
        master.call(move |m, ctx| m.mark_agent_gone(ctx, "ops", &id))
    };

    let unknown = mark("no-such-agent").await.unwrap().unwrap_err();
    assert_eq!(unknown.status, 404, "{unknown:?}");
    let Ok(Ok(MarkingGone::Underway(durable))) = mark(&c.agent_id).await else {
        panic!("the agent is marked gone");
    };
    c.clock.settle().await.unwrap();
    durable.await.expect("the mark is carried out");
    match c.agent_rx.try_recv() {
        Ok(Got::Shutdown(m)) => assert_eq!(m.message, "Agent has been marked gone"),
        other => panic!("expected the agent to be shut down, got {other:?}"),
    }
    // A framework that is not partition-aware hears TASK_LOST, as from Mesos.
    let mut lost = Vec::new();
    while let Ok(g) = c.scheduler_rx.try_recv() {
        match g {
            Got::Update(m) => lost.push(m.update.unwrap().status.unwrap()),
            Got::LostSlave(m) => assert_eq!(m.slave_id.unwrap().value, c.agent_id),
            Got::Rescind(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].state, TaskState::TaskLost as i32);
    assert_eq!(lost[0].reason, Some(Reason::AgentRemoved as i32));
    assert_eq!(
        c.handle.master.call(|m, _| m.agent_count()).await.unwrap(),
        0
    );
    assert!(matches!(
        mark(&c.agent_id).await,
        Ok(Ok(MarkingGone::AlreadyGone))
    ));

    // The agent comes back under its id: told again to shut down, not admitted.
    c.node.send_from(
        &c.agent,
        &c.master,
        protos::internal::ReregisterSlaveMessage {
            slave: Some(AgentInfo {
                id: Some(protos::v1::AgentId {
                    value: c.agent_id.clone(),
                }),
                hostname: "node-1".into(),
                resources: r("cpus:4;mem:1024").to_proto(),
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    assert!(matches!(
        got(&c.clock, &mut c.agent_rx).await,
        Got::Shutdown(_)
    ));
    assert_eq!(
        c.handle.master.call(|m, _| m.agent_count()).await.unwrap(),
        0
    );
    nothing(&c.clock, &mut c.scheduler_rx).await;

    // A partition-aware framework reconciling a task of the gone agent hears GONE_BY_OPERATOR.
    let (tx, mut aware_rx) = mpsc::unbounded_channel();
    let aware = c.node.spawn("scheduler(2)", StandIn { tx }).unwrap();
    c.node.send_from(
        &aware,
        &c.master,
        RegisterFrameworkMessage {
            framework: Some(FrameworkInfo {
                name: "aware".into(),
                user: "keel".into(),
                capabilities: vec![protos::v1::framework_info::Capability {
                    r#type: protos::v1::framework_info::capability::Type::PartitionAware as i32,
                }],
                ..Default::default()
            }),
        },
    );
    let aware_id = match got(&c.clock, &mut aware_rx).await {
        Got::FrameworkRegistered(m) => m.framework_id.unwrap(),
        other => panic!("expected registration, got {other:?}"),
    };
    c.node.send_from(
        &aware,
        &c.master,
        protos::internal::ReconcileTasksMessage {
            framework_id: Some(aware_id),
            statuses: vec![TaskStatus {
                task_id: Some(TaskId { value: "t9".into() }),
                agent_id: Some(protos::v1::AgentId {
                    value: c.agent_id.clone(),
                }),
                ..Default::default()
            }],
        },
    );
    c.clock.settle().await.unwrap();
    let answered = updates(&mut aware_rx);
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0].state, TaskState::TaskGoneByOperator as i32);
    let m = c.node.metrics().snapshot();
    assert_eq!(m["master/slaves_marked_gone"], 1.0);
    assert!(m["master/registrations_refused"] >= 1.0);
    c.node.shutdown().await;
}

#[tokio::test]
async fn quota_limits_cut_offers_and_refuse_lowering_below_use_without_force() {
    use protos::v1::quota::QuotaConfig;
    use protos::v1::value::Scalar;
    let mut c = cluster().await;
    assert_eq!(offers_of(got(&c.clock, &mut c.scheduler_rx).await).len(), 1);
    let quota = |cpus: Option<f64>| QuotaConfig {
        role: "*".into(),
        limits: cpus
            .map(|v| ("cpus".to_owned(), Scalar { value: v }))
            .into_iter()
            .collect(),
        ..Default::default()
    };
    let master = c.handle.master.clone();
    let update = |force: bool, configs: Vec<QuotaConfig>| {
        master.call(move |m, ctx| m.update_quota(ctx, "ops", force, configs))
    };
    let durable = update(false, vec![quota(Some(1.5))])
        .await
        .unwrap()
        .expect("a valid quota");
    c.clock.settle().await.unwrap();
    durable.await.unwrap();
    // The outstanding offer is rescinded; the next fits the limit.
    assert!(matches!(c.scheduler_rx.try_recv(), Ok(Got::Rescind(_))));
    c.clock
        .advance(master::allocator::DEFAULT_ALLOCATION_INTERVAL);
    let capped = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    assert_eq!(
        Resources::from_proto(&capped[0].resources).unwrap(),
        r("cpus:1.5;mem:1024")
    );
    let status = master.call(|m, _| m.quota_status()).await.unwrap();
    assert_eq!(status.configs.len(), 1);
    assert_eq!(status.configs[0].limits["cpus"].value, 1.5);

    // A task holds one cpu: a limit below it needs force.
    c.accept(&capped[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    while c.scheduler_rx.try_recv().is_ok() {}
    let refused = update(false, vec![quota(Some(0.5))])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.status, 400);
    assert!(refused.why.contains("force"), "{}", refused.why);
    for bad in [
        QuotaConfig {
            role: "a/b".into(),
            ..quota(Some(1.0))
        },
        QuotaConfig {
            guarantees: [("cpus".to_owned(), Scalar { value: 2.0 })].into(),
            ..quota(Some(1.0))
        },
    ] {
        let refused = update(false, vec![bad]).await.unwrap().unwrap_err();
        assert_eq!(refused.status, 400, "{}", refused.why);
    }
    let twice = update(false, vec![quota(Some(2.0)), quota(Some(3.0))])
        .await
        .unwrap();
    assert_eq!(twice.unwrap_err().status, 400, "a role named twice");
    let forced = update(true, vec![quota(Some(0.5))]).await.unwrap().unwrap();
    c.clock.settle().await.unwrap();
    forced.await.unwrap();
    // Over its limit: offered no cpus at all (memory alone still goes out).
    c.clock
        .advance(master::allocator::DEFAULT_ALLOCATION_INTERVAL);
    c.clock.settle().await.unwrap();
    while let Ok(g) = c.scheduler_rx.try_recv() {
        if let Got::Offers(m) = g {
            for offer in m.offers {
                let offered = Resources::from_proto(&offer.resources).unwrap();
                assert_eq!(offered.scalar("cpus"), 0.0, "{offered}");
            }
        }
    }
    // Lifted: the rest of the agent again.
    let lifted = update(false, vec![quota(None)]).await.unwrap().unwrap();
    c.clock.settle().await.unwrap();
    lifted.await.unwrap();
    assert!(master
        .call(|m, _| m.quota_status())
        .await
        .unwrap()
        .configs
        .is_empty());
    c.clock
        .advance(master::allocator::DEFAULT_ALLOCATION_INTERVAL);
    c.clock.settle().await.unwrap();
    let mut cpus = 0.0;
    while let Ok(g) = c.scheduler_rx.try_recv() {
        if let Got::Offers(m) = g {
            for offer in m.offers {
                cpus += Resources::from_proto(&offer.resources)
                    .unwrap()
                    .scalar("cpus");
            }
        }
    }
    assert_eq!(cpus, 3.0);
    c.node.shutdown().await;
}

#[tokio::test]
async fn explicit_and_implicit_reconciliation() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    let _ = c.scheduler_rx.try_recv();
    c.agent_update("t1", TaskState::TaskRunning);
    c.clock.settle().await.unwrap();
    let _ = updates(&mut c.scheduler_rx);
    let ask = |statuses: Vec<TaskStatus>| protos::internal::ReconcileTasksMessage {
        framework_id: Some(c.framework_id.clone()),
        statuses,
    };
    let about = |id: &str| TaskStatus {
        task_id: Some(TaskId { value: id.into() }),
        ..Default::default()
    };
    c.node.send_from(
        &c.scheduler,
        &c.master,
        ask(vec![about("t1"), about("ghost")]),
    );
    c.clock.settle().await.unwrap();
    let explicit = updates(&mut c.scheduler_rx);
    let states: Vec<(String, i32)> = explicit
        .iter()
        .map(|s| (s.task_id.as_ref().unwrap().value.clone(), s.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("t1".into(), TaskState::TaskRunning as i32),
            ("ghost".into(), TaskState::TaskLost as i32)
        ]
    );
    assert!(explicit
        .iter()
        .all(|s| s.reason == Some(Reason::Reconciliation as i32)));
    c.node.send_from(&c.scheduler, &c.master, ask(Vec::new()));
    c.clock.settle().await.unwrap();
    let implicit = updates(&mut c.scheduler_rx);
    assert_eq!(implicit.len(), 1);
    assert_eq!(implicit[0].task_id.as_ref().unwrap().value, "t1");
    c.node.shutdown().await;
}

#[tokio::test]
async fn teardown_shuts_the_framework_down_on_its_agents_and_frees_its_resources() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    assert!(matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)));
    let unregister = protos::internal::UnregisterFrameworkMessage {
        framework_id: Some(c.framework_id.clone()),
    };
    // Only the framework's own scheduler may tear it down.
    c.node.send_from(&c.agent, &c.master, unregister.clone());
    nothing(&c.clock, &mut c.agent_rx).await;
    c.node.send_from(&c.scheduler, &c.master, unregister);
    match got(&c.clock, &mut c.agent_rx).await {
        Got::ShutdownFramework(m) => assert_eq!(m.framework_id.unwrap(), c.framework_id),
        other => panic!("expected a shutdown, got {other:?}"),
    }
    // A new framework is offered the whole agent.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let other = c.node.spawn("scheduler(2)", StandIn { tx }).unwrap();
    c.node.send_from(
        &other,
        &c.master,
        RegisterFrameworkMessage {
            framework: Some(FrameworkInfo {
                name: "next".into(),
                user: "keel".into(),
                ..Default::default()
            }),
        },
    );
    c.clock.settle().await.unwrap();
    assert!(matches!(
        rx.try_recv().unwrap(),
        Got::FrameworkRegistered(_)
    ));
    let offered = offers_of(rx.try_recv().unwrap());
    assert_eq!(
        Resources::from_proto(&offered[0].resources).unwrap(),
        r("cpus:4;mem:1024")
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_drained_machine_is_not_offered_its_tasks_are_killed_and_the_drain_settles() {
    let mut c = cluster().await;
    let offers = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    c.accept(&offers[0], vec![task("t1", "cpus:1;mem:128")]);
    c.clock.settle().await.unwrap();
    assert!(matches!(c.agent_rx.try_recv().unwrap(), Got::RunTask(_)));
    let rest = offers_of(c.scheduler_rx.try_recv().unwrap());
    c.agent_update("t1", TaskState::TaskRunning);
    c.clock.settle().await.unwrap();
    let _ = updates(&mut c.scheduler_rx);

    let master = c.handle.master.clone();
    let mut settled = master
        .call(|m, ctx| m.drain_machine(ctx, "node-1", true, "repair: Reboot"))
        .await
        .unwrap()
        .unwrap();
    c.clock.settle().await.unwrap();
    // The outstanding offer is taken back and the task killed with a reason to act on.
    match c.scheduler_rx.try_recv().unwrap() {
        Got::Rescind(m) => assert_eq!(m.offer_id, rest[0].id),
        other => panic!("expected the rescind, got {other:?}"),
    }
    match c.agent_rx.try_recv().unwrap() {
        Got::Kill(m) => {
            assert_eq!(m.task_id.unwrap().value, "t1");
            assert_eq!(m.reason, Some(Reason::AgentDraining as i32));
        }
        other => panic!("expected the kill at the agent, got {other:?}"),
    }
    assert!(settled.try_recv().is_err(), "the task still runs");
    c.agent_update("t1", TaskState::TaskKilled);
    c.clock.settle().await.unwrap();
    let outcome = settled.try_recv().expect("settled once the task ended");
    assert_eq!((outcome.agents, outcome.tasks_killed), (1, 1));
    // Nothing is offered while drained, even after the allocation interval.
    let _ = updates(&mut c.scheduler_rx);
    c.clock.advance(Duration::from_secs(5));
    nothing(&c.clock, &mut c.scheduler_rx).await;
    master
        .call(|m, ctx| m.reactivate_machine(ctx, "node-1"))
        .await
        .unwrap();
    c.clock.advance(Duration::from_secs(5));
    let again = offers_of(got(&c.clock, &mut c.scheduler_rx).await);
    assert_eq!(
        Resources::from_proto(&again[0].resources).unwrap(),
        r("cpus:4;mem:1024")
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn frameworks_known_only_by_their_agents_tasks_are_listed_as_recovered() {
    let c = cluster().await;
    // After a failover an agent comes back with the task of a framework that has not
    // re-registered (yet): the task holds resources, so /master/state shows whose it is.
    let (tx, _rx) = mpsc::unbounded_channel();
    let returning = c.node.spawn("slave(2)", StandIn { tx }).unwrap();
    let agent_id = protos::v1::AgentId {
        value: "m0-S0009".into(),
    };
    c.node.send_from(
        &returning,
        &c.master,
        protos::internal::ReregisterSlaveMessage {
            slave: Some(AgentInfo {
                id: Some(agent_id.clone()),
                hostname: "node-2".into(),
                resources: r("cpus:2;mem:256").to_proto(),
                ..Default::default()
            }),
            tasks: vec![protos::internal::Task {
                name: "t9".into(),
                task_id: Some(TaskId { value: "t9".into() }),
                framework_id: Some(FrameworkId {
                    value: "away".into(),
                }),
                slave_id: Some(agent_id),
                state: TaskState::TaskRunning as i32,
                resources: r("cpus:1;mem:64").to_proto(),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    c.clock.settle().await.unwrap();
    let state = libactor::http_client::get_json(c.master.address(), "/master/state")
        .await
        .unwrap();
    let frameworks = state["frameworks"].as_array().unwrap();
    let away = frameworks
        .iter()
        .find(|f| f["id"] == "away")
        .expect("the framework away is listed");
    assert_eq!(away["active"], false);
    assert_eq!(away["recovered"], true);
    assert_eq!(away["tasks"][0]["id"], "t9");
    assert_eq!(away["tasks"][0]["state"], "TASK_RUNNING");
    assert_eq!(away["used_resources"]["cpus"], 1.0);
    let registered = frameworks
        .iter()
        .find(|f| f["id"] == c.framework_id.value.as_str())
        .expect("the registered framework is listed");
    assert_eq!(registered["recovered"], false);
    c.node.shutdown().await;
}
