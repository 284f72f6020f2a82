//! Omega on the master: cell subscriptions, transactions with both conflict modes and both
//! commit modes, offers and transactions on the same agents, bad transactions — driven by
//! stand-in agents and schedulers under the paused clock.

use std::time::Duration;

use libactor::{Clock, Node, Upid};
use master::master::{Master, MAX_PLACEMENTS_PER_TRANSACTION};
use protos::internal::{
    AcceptOffersMessage, RegisterFrameworkMessage, RegisterSlaveMessage, StatusUpdate,
    StatusUpdateMessage,
};
use protos::omega::{
    CellAgent, CellPosition, CommitMode, CommitTransactionMessage, ConflictMode, Outcome,
    Placement, SubscribeCellMessage, TransactionResultMessage,
};
use protos::v1::task_status::Reason;
use protos::v1::{
    AgentId, AgentInfo, FrameworkId, FrameworkInfo, Offer, TaskId, TaskState, TaskStatus,
};
use protos::IdText;
use resources::Resources;
use tokio::sync::mpsc;

mod stand_in;
use stand_in::{got, no_filter, r, task, Got, StandIn};

type Rx = mpsc::UnboundedReceiver<Got>;

struct Agent {
    pid: Upid,
    rx: Rx,
    id: String,
}

struct Framework {
    pid: Upid,
    rx: Rx,
    id: FrameworkId,
}

struct Cell {
    clock: Clock,
    node: Node,
    handle: master::master::MasterHandle,
    master: Upid,
    agents: Vec<Agent>,
}

impl Cell {
    /// A master and `n` agents of `cpus:4;mem:1024`, on hosts `host-{i}` with a `rack`
    /// attribute of `r{i % 2}`.
    async fn start(n: usize) -> Cell {
        Cell::start_on(n, 1).await
    }

    /// The same on `arbiters` threads (the allocator and the master then run concurrently).
    async fn start_on(n: usize, arbiters: usize) -> Cell {
        let clock = Clock::paused();
        let node = Node::builder()
            .clock(clock.clone())
            .configure(|c| {
                c.arbiters = arbiters;
                c.io_threads = 1;
            })
            .start()
            .unwrap();
        let handle = Master::spawn(&node, "m1").unwrap();
        let mut cell = Cell {
            clock,
            node,
            master: handle.master.pid().clone(),
            handle,
            agents: Vec::new(),
        };
        for i in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let pid = cell
                .node
                .spawn(&format!("slave({i})"), StandIn { tx })
                .unwrap();
            let rack: protos::v1::Attribute = protos::v1::Attribute {
                name: "rack".into(),
                r#type: protos::v1::value::Type::Text as i32,
                text: Some(protos::v1::value::Text {
                    value: format!("r{}", i % 2),
                }),
                ..Default::default()
            };
            cell.node.send_from(
                &pid,
                &cell.master,
                RegisterSlaveMessage {
                    slave: Some(AgentInfo {
                        hostname: format!("host-{i}"),
                        resources: r("cpus:4;mem:1024").to_proto(),
                        attributes: vec![rack],
                        ..Default::default()
                    }),
                    version: "test".into(),
                },
            );
            let id = match got(&cell.clock, &mut rx).await {
                Got::SlaveRegistered(m) => m.slave_id.unwrap().value,
                other => panic!("expected registration, got {other:?}"),
            };
            cell.agents.push(Agent { pid, rx, id });
        }
        cell
    }

    async fn framework(&self, name: &str) -> Framework {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pid = self
            .node
            .spawn(&format!("{name}(1)"), StandIn { tx })
            .unwrap();
        self.node.send_from(
            &pid,
            &self.master,
            RegisterFrameworkMessage {
                framework: Some(FrameworkInfo {
                    name: name.into(),
                    user: "keel".into(),
                    ..Default::default()
                }),
            },
        );
        let id = loop {
            match got(&self.clock, &mut rx).await {
                Got::FrameworkRegistered(m) => break m.framework_id.unwrap(),
                Got::Offers(_) => continue,
                other => panic!("expected registration, got {other:?}"),
            }
        };
        Framework { pid, rx, id }
    }

    /// Subscribes `f` to the cell and returns the whole update it gets first.
    async fn subscribe(&self, f: &mut Framework, resume: Option<CellPosition>) -> CellUpdate {
        self.node.send_from(
            &f.pid,
            &self.master,
            SubscribeCellMessage {
                framework_id: Some(f.id.clone()),
                resume,
            },
        );
        self.cell_update(f).await
    }

    /// The next whole cell update `f` gets (its messages merged), skipping other messages.
    async fn cell_update(&self, f: &mut Framework) -> CellUpdate {
        self.clock.settle().await.unwrap();
        let mut merged: Option<CellUpdate> = None;
        while let Ok(g) = f.rx.try_recv() {
            if let Got::Cell(m) = g {
                let more = m.more;
                let u = merged.get_or_insert_with(|| CellUpdate {
                    reset: m.reset,
                    position: m.position.clone().unwrap(),
                    agents: Vec::new(),
                    removed: Vec::new(),
                });
                u.agents.extend(m.agents);
                u.removed.extend(m.removed.iter().map(|a| a.value.clone()));
                if !more {
                    return merged.unwrap();
                }
            }
        }
        panic!("no whole cell update arrived");
    }

    fn commit(
        &self,
        f: &Framework,
        epoch: &str,
        conflict: ConflictMode,
        commit: CommitMode,
        placements: Vec<Placement>,
    ) {
        self.node.send_from(
            &f.pid,
            &self.master,
            CommitTransactionMessage {
                framework_id: Some(f.id.clone()),
                transaction_id: "tx".into(),
                epoch: epoch.into(),
                conflict_mode: conflict as i32,
                commit_mode: commit as i32,
                placements,
                preempt: false,
            },
        );
    }

    /// The next transaction result `f` gets, skipping other messages.
    async fn result(&self, f: &mut Framework) -> TransactionResultMessage {
        self.clock.settle().await.unwrap();
        while let Ok(g) = f.rx.try_recv() {
            if let Got::Transaction(m) = g {
                return m;
            }
        }
        panic!("no transaction result arrived");
    }

    /// The tasks launched on agent `i` since last asked.
    fn launched_on(&mut self, i: usize) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(g) = self.agents[i].rx.try_recv() {
            if let Got::RunTask(m) = g {
                ids.push(m.task.unwrap().task_id.unwrap().value);
            }
        }
        ids
    }

    fn agent_update(&self, i: usize, framework: &FrameworkId, task: &str, state: TaskState) {
        let a = &self.agents[i];
        self.node.send_from(
            &a.pid,
            &self.master,
            StatusUpdateMessage {
                update: Some(StatusUpdate {
                    framework_id: Some(framework.clone()),
                    slave_id: Some(AgentId {
                        value: a.id.clone(),
                    }),
                    status: Some(TaskStatus {
                        task_id: Some(TaskId { value: task.into() }),
                        state: state as i32,
                        ..Default::default()
                    }),
                    uuid: vec![1].into(),
                    ..Default::default()
                }),
                pid: a.pid.to_string(),
            },
        );
    }

    fn metric(&self, name: &str) -> f64 {
        self.node
            .metrics()
            .snapshot()
            .get(name)
            .copied()
            .unwrap_or(0.0)
    }

    /// The books and the allocator never disagreed.
    fn assert_consistent(&self) {
        assert_eq!(self.metric("master/allocator_refusals"), 0.0);
    }
}

/// A whole cell update.
#[derive(Debug)]
struct CellUpdate {
    reset: bool,
    position: CellPosition,
    agents: Vec<CellAgent>,
    removed: Vec<String>,
}

impl CellUpdate {
    fn agent(&self, id: &str) -> &CellAgent {
        self.agents
            .iter()
            .find(|a| a.agent_id.text() == id)
            .unwrap_or_else(|| panic!("agent {id} not in {self:?}"))
    }
}

fn placement(agent: &CellAgent, task_id: &str, resources: &str) -> Placement {
    Placement {
        agent_id: agent.agent_id.clone(),
        seen_version: agent.version,
        task: Some(task(task_id, resources)),
        priority: 0,
    }
}

fn outcomes(result: &TransactionResultMessage) -> Vec<Outcome> {
    result.results.iter().map(|r| r.outcome()).collect()
}

fn used(agent: &CellAgent) -> Resources {
    Resources::from_proto(&agent.used).unwrap()
}

fn offers(rx: &mut Rx) -> Vec<Offer> {
    let mut all = Vec::new();
    while let Ok(g) = rx.try_recv() {
        if let Got::Offers(m) = g {
            all.extend(m.offers);
        }
    }
    all
}

#[tokio::test]
async fn a_subscriber_gets_the_cell_then_its_changes_and_no_offers() {
    let mut c = Cell::start(2).await;
    let mut s = c.framework("omega").await;
    let cell = c.subscribe(&mut s, None).await;
    assert!(cell.reset);
    assert_eq!(cell.agents.len(), 2);
    let a0 = cell.agent(&c.agents[0].id).clone();
    assert_eq!(a0.hostname, "host-0");
    assert!(a0.active);
    assert!(used(&a0).is_empty());
    assert_eq!(a0.attributes[0].name, "rack");

    c.commit(
        &s,
        &cell.position.epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a0, "t1", "cpus:1;mem:128")],
    );
    let result = c.result(&mut s).await;
    assert_eq!(outcomes(&result), vec![Outcome::Committed], "{result:?}");
    assert_eq!(used(&result.agents[0]), r("cpus:1;mem:128"));
    assert!(result.agents[0].version > a0.version);
    assert_eq!(result.agents[0].tasks[0].task_id.text(), "t1");
    assert_eq!(c.launched_on(0), vec!["t1"]);

    // The change reaches subscribers as a delta, with the version the result named.
    let delta = c.cell_update(&mut s).await;
    assert!(!delta.reset);
    assert_eq!(
        delta.agent(&c.agents[0].id).version,
        result.agents[0].version
    );

    // The task ends: its resources are free again, in a new version.
    c.agent_update(0, &s.id, "t1", TaskState::TaskRunning);
    c.agent_update(0, &s.id, "t1", TaskState::TaskFinished);
    let delta = c.cell_update(&mut s).await;
    let a0_now = delta.agent(&c.agents[0].id);
    assert!(used(a0_now).is_empty());
    assert!(a0_now.tasks.is_empty());

    // Allocation cycles go on; the subscriber is offered nothing.
    for _ in 0..5 {
        c.clock.advance(Duration::from_secs(1));
        c.clock.settle().await.unwrap();
    }
    assert!(offers(&mut s.rx).is_empty());
    assert_eq!(c.metric("omega/placements_committed"), 1.0);
    assert_eq!(c.metric("omega/cell_subscribers"), 1.0);
    c.assert_consistent();
    c.node.shutdown().await;
}

/// A scheduler subscribing in a loop gets three whole cells at once, then one a second: the
/// subscriptions made meanwhile join the deferred one, which goes to the latest.
#[tokio::test]
async fn a_scheduler_that_subscribes_in_a_loop_gets_its_snapshots_at_a_bounded_rate() {
    let c = Cell::start(2).await;
    let mut s = c.framework("omega").await;
    let subscribe = |c: &Cell, s: &Framework| {
        c.node.send_from(
            &s.pid,
            &c.master,
            SubscribeCellMessage {
                framework_id: Some(s.id.clone()),
                resume: None,
            },
        )
    };
    let whole_cells = |s: &mut Framework| {
        std::iter::from_fn(|| s.rx.try_recv().ok())
            .filter(|g| matches!(g, Got::Cell(m) if m.reset && !m.more))
            .count()
    };
    for _ in 0..6 {
        subscribe(&c, &s);
    }
    c.clock.settle().await.unwrap();
    assert_eq!(whole_cells(&mut s), 3);
    assert_eq!(c.metric("omega/cell_snapshots_deferred"), 3.0);
    // The deferred subscriber hears nothing, not even changes, until its snapshot.
    assert_eq!(c.metric("omega/cell_subscribers"), 0.0);
    c.clock.advance(Duration::from_secs(1));
    c.clock.settle().await.unwrap();
    assert_eq!(whole_cells(&mut s), 1);
    assert_eq!(c.metric("omega/cell_subscribers"), 1.0);
    // Nothing more was owed.
    c.clock.advance(Duration::from_secs(5));
    c.clock.settle().await.unwrap();
    assert_eq!(whole_cells(&mut s), 0);
    // Resuming from a position costs no snapshot and is never deferred.
    let position = c.subscribe(&mut s, None).await.position;
    let resumed = c.subscribe(&mut s, Some(position)).await;
    assert!(!resumed.reset);
    c.node.shutdown().await;
}

#[tokio::test]
async fn fine_grained_conflicts_only_when_resources_no_longer_fit_coarse_on_any_change() {
    let mut c = Cell::start(1).await;
    let mut s1 = c.framework("omega-a").await;
    let mut s2 = c.framework("omega-b").await;
    let cell = c.subscribe(&mut s1, None).await;
    c.subscribe(&mut s2, None).await;
    let a0 = cell.agent(&c.agents[0].id).clone();
    let epoch = cell.position.epoch.clone();

    // Both decided on the same version; the first commits.
    c.commit(
        &s1,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a0, "a1", "cpus:2;mem:256")],
    );
    assert_eq!(outcomes(&c.result(&mut s1).await), vec![Outcome::Committed]);
    // Fine-grained: the second still fits, so it commits on the stale version.
    c.commit(
        &s2,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a0, "b1", "cpus:1;mem:256")],
    );
    assert_eq!(outcomes(&c.result(&mut s2).await), vec![Outcome::Committed]);
    // Coarse-grained: the agent changed since that version.
    c.commit(
        &s2,
        &epoch,
        ConflictMode::Coarse,
        CommitMode::Incremental,
        vec![placement(&a0, "b2", "cpus:0.5;mem:64")],
    );
    let result = c.result(&mut s2).await;
    assert_eq!(outcomes(&result), vec![Outcome::ConflictVersion]);
    assert!(result.results[0].message.contains("version"), "{result:?}");
    // Fine-grained, too big for what is left (1 cpu): a resource conflict.
    c.commit(
        &s2,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a0, "b3", "cpus:2;mem:64")],
    );
    assert_eq!(
        outcomes(&c.result(&mut s2).await),
        vec![Outcome::ConflictResources]
    );
    assert_eq!(c.launched_on(0), vec!["a1", "b1"]);
    assert_eq!(c.metric("omega/transactions_conflicted"), 2.0);
    assert_eq!(c.metric("omega/conflict_fraction"), 0.5);
    c.assert_consistent();
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_gang_commits_all_or_nothing_and_incremental_commits_what_fits() {
    let mut c = Cell::start(2).await;
    let mut s = c.framework("omega").await;
    let cell = c.subscribe(&mut s, None).await;
    let (a0, a1) = (
        cell.agent(&c.agents[0].id).clone(),
        cell.agent(&c.agents[1].id).clone(),
    );
    let epoch = cell.position.epoch.clone();
    // Three tasks, the third does not fit beside the second on agent 1.
    let gang = || {
        vec![
            placement(&a0, "g0", "cpus:3;mem:128"),
            placement(&a1, "g1", "cpus:3;mem:128"),
            placement(&a1, "g2", "cpus:3;mem:128"),
        ]
    };
    c.commit(
        &s,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::AllOrNothing,
        gang(),
    );
    let result = c.result(&mut s).await;
    assert_eq!(
        outcomes(&result),
        vec![
            Outcome::Aborted,
            Outcome::Aborted,
            Outcome::ConflictResources
        ]
    );
    assert!(result.agents.is_empty(), "nothing changed");
    assert!(c.launched_on(0).is_empty() && c.launched_on(1).is_empty());

    c.commit(
        &s,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        gang(),
    );
    let result = c.result(&mut s).await;
    assert_eq!(
        outcomes(&result),
        vec![
            Outcome::Committed,
            Outcome::Committed,
            Outcome::ConflictResources
        ]
    );
    assert_eq!(c.launched_on(0), vec!["g0"]);
    assert_eq!(c.launched_on(1), vec!["g1"]);
    c.assert_consistent();
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_commit_takes_offered_resources_and_the_offer_is_rescinded() {
    let mut c = Cell::start(1).await;
    let mut mesos = c.framework("mesos").await;
    let mut s = c.framework("omega").await;
    let cell = c.subscribe(&mut s, None).await;
    c.clock.advance(Duration::from_secs(1));
    c.clock.settle().await.unwrap();
    // The offer-based framework holds the whole agent.
    let held = offers(&mut mesos.rx);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        Resources::from_proto(&held[0].resources).unwrap(),
        r("cpus:4;mem:1024")
    );
    let a0 = cell.agent(&c.agents[0].id).clone();
    c.commit(
        &s,
        &cell.position.epoch,
        ConflictMode::Coarse,
        CommitMode::Incremental,
        vec![placement(&a0, "o1", "cpus:3;mem:512")],
    );
    assert_eq!(outcomes(&c.result(&mut s).await), vec![Outcome::Committed]);
    let got: Vec<Got> = std::iter::from_fn(|| mesos.rx.try_recv().ok()).collect();
    let rescinded: Vec<_> = got
        .iter()
        .filter_map(|g| match g {
            Got::Rescind(m) => m.offer_id.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(rescinded, vec![held[0].id.clone().unwrap()]);
    // What the commit left is offered again at once.
    let again: Vec<&Offer> = got
        .iter()
        .filter_map(|g| match g {
            Got::Offers(m) => Some(&m.offers),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(again.len(), 1, "{got:?}");
    assert_eq!(
        Resources::from_proto(&again[0].resources).unwrap(),
        r("cpus:1;mem:512")
    );
    // Accepting the rescinded offer launches nothing.
    c.node.send_from(
        &mesos.pid,
        &c.master,
        AcceptOffersMessage {
            framework_id: Some(mesos.id.clone()),
            offer_ids: vec![held[0].id.clone().unwrap()],
            tasks: vec![task("m1", "cpus:4;mem:1024")],
            filters: no_filter(),
            groups: Vec::new(),
        },
    );
    c.clock.settle().await.unwrap();
    let dropped = std::iter::from_fn(|| mesos.rx.try_recv().ok()).any(|g| {
        matches!(g, Got::Update(m) if m.update.as_ref().unwrap().status.as_ref().unwrap().reason
            == Some(Reason::InvalidOffers as i32))
    });
    assert!(dropped, "the late accept is dropped");
    assert_eq!(c.launched_on(0), vec!["o1"]);
    assert_eq!(c.metric("omega/offers_rescinded_by_commits"), 1.0);
    c.assert_consistent();
    c.node.shutdown().await;
}

/// An offer-based framework launching and declining as fast as it is offered, and a
/// shared-state scheduler committing on the same agents: no resource is ever held twice (the
/// books check it after every change), the allocator never disagrees, and every placement is
/// answered.
#[tokio::test]
async fn offers_and_transactions_racing_for_the_same_agents_never_use_a_resource_twice() {
    let mut c = Cell::start_on(3, 2).await;
    let mut mesos = c.framework("mesos").await;
    let mut s = c.framework("omega").await;
    let mut cell = c.subscribe(&mut s, None).await;
    let epoch = cell.position.epoch.clone();
    let mut committed = 0;
    for round in 0..200 {
        // Mesos: take a slice of every offer, give the rest back at once.
        for offer in offers(&mut mesos.rx) {
            let tasks = if round % 3 == 0 {
                vec![]
            } else {
                vec![task(
                    &format!("m{round}-{}", offer.agent_id.text()),
                    "cpus:0.5;mem:32",
                )]
            };
            c.node.send_from(
                &mesos.pid,
                &c.master,
                AcceptOffersMessage {
                    framework_id: Some(mesos.id.clone()),
                    offer_ids: vec![offer.id.clone().unwrap()],
                    tasks,
                    filters: no_filter(),
                    groups: Vec::new(),
                },
            );
        }
        // Omega: one task on every agent, on the copy as it stands.
        let placements = cell
            .agents
            .iter()
            .map(|a| {
                placement(
                    a,
                    &format!("o{round}-{}", a.agent_id.text()),
                    "cpus:0.5;mem:32",
                )
            })
            .collect();
        c.commit(
            &s,
            &epoch,
            ConflictMode::FineGrained,
            CommitMode::Incremental,
            placements,
        );
        c.clock.advance(Duration::from_millis(500));
        let result = c.result(&mut s).await;
        assert_eq!(result.results.len(), 3);
        committed += outcomes(&result)
            .iter()
            .filter(|o| **o == Outcome::Committed)
            .count();
        for a in result.agents {
            let id = a.agent_id.text().to_owned();
            cell.agents.retain(|b| b.agent_id.text() != id);
            cell.agents.push(a);
        }
        // Finish some of each, so that resources come and go.
        if round % 4 == 3 {
            for i in 0..3 {
                let agent = c.agents[i].id.clone();
                c.agent_update(
                    i,
                    &s.id,
                    &format!("o{}-{agent}", round - 1),
                    TaskState::TaskFinished,
                );
                c.agent_update(
                    i,
                    &mesos.id,
                    &format!("m{}-{agent}", round - 1),
                    TaskState::TaskFinished,
                );
            }
        }
    }
    let launched: Vec<String> = (0..3).flat_map(|i| c.launched_on(i)).collect();
    let by_offers = launched.iter().filter(|t| t.starts_with('m')).count();
    let by_commits = launched.iter().filter(|t| t.starts_with('o')).count();
    assert_eq!(by_commits, committed);
    assert!(by_offers > 10 && committed > 10, "{by_offers} {committed}");
    c.assert_consistent();
    c.node.shutdown().await;
}

#[tokio::test]
async fn bad_transactions_are_refused_with_a_reason_and_counted() {
    let mut c = Cell::start(1).await;
    let mut s = c.framework("omega").await;
    let cell = c.subscribe(&mut s, None).await;
    let a0 = cell.agent(&c.agents[0].id).clone();
    let epoch = cell.position.epoch.clone();
    let mut ghost = a0.clone();
    ghost.agent_id = Some(AgentId {
        value: "ghost".into(),
    });
    let mut negative = placement(&a0, "neg", "cpus:1;mem:128");
    for resource in &mut negative.task.as_mut().unwrap().resources {
        if let Some(scalar) = resource.scalar.as_mut() {
            scalar.value = -scalar.value;
        }
    }
    let mut no_command = placement(&a0, "nc", "cpus:1");
    no_command.task.as_mut().unwrap().command = None;
    c.commit(
        &s,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![
            placement(&ghost, "x1", "cpus:1"),
            placement(&a0, "huge", "cpus:64;mem:128"),
            negative,
            no_command,
            placement(&a0, "ok", "cpus:1;mem:64"),
            placement(&a0, "ok", "cpus:1;mem:64"),
        ],
    );
    let result = c.result(&mut s).await;
    assert_eq!(
        outcomes(&result),
        vec![
            Outcome::AgentUnavailable,
            Outcome::Invalid,
            Outcome::Invalid,
            Outcome::Invalid,
            Outcome::Committed,
            Outcome::Invalid,
        ],
        "{result:?}"
    );
    assert!(result.results[1].message.contains("exceed"), "{result:?}");
    // The same id again, now live.
    c.commit(
        &s,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a0, "ok", "cpus:1;mem:64")],
    );
    assert_eq!(outcomes(&c.result(&mut s).await), vec![Outcome::Duplicate]);

    // Whole transactions: a stale epoch, none, too many.
    let refusals: [(&str, Vec<Placement>, &str); 3] = [
        ("m0-1", vec![placement(&a0, "e", "cpus:1")], "stale epoch"),
        (&epoch, vec![], "at least one"),
        (
            &epoch,
            (0..=MAX_PLACEMENTS_PER_TRANSACTION)
                .map(|i| placement(&a0, &format!("t{i}"), "cpus:0.001"))
                .collect(),
            "at most",
        ),
    ];
    for (epoch, placements, why) in refusals {
        c.commit(
            &s,
            epoch,
            ConflictMode::FineGrained,
            CommitMode::Incremental,
            placements,
        );
        let result = c.result(&mut s).await;
        assert!(result.error.contains(why), "{why}: {result:?}");
        assert!(result.results.is_empty());
    }
    // A process that is not the framework's scheduler: dropped, counted, unanswered.
    let mut other = c.framework("other").await;
    c.node.send_from(
        &other.pid,
        &c.master,
        CommitTransactionMessage {
            framework_id: Some(s.id.clone()),
            transaction_id: "spoof".into(),
            epoch: epoch.clone(),
            placements: vec![placement(&a0, "spoofed", "cpus:1")],
            ..Default::default()
        },
    );
    c.clock.settle().await.unwrap();
    assert!(
        !std::iter::from_fn(|| other.rx.try_recv().ok()).any(|g| matches!(g, Got::Transaction(_)))
    );
    assert_eq!(c.launched_on(0), vec!["ok"]);
    assert_eq!(c.metric("omega/transactions_refused"), 4.0);
    assert_eq!(c.metric("omega/placements_refused"), 6.0);
    c.assert_consistent();
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_comes_back_gets_only_what_changed_and_removals() {
    let mut c = Cell::start(3).await;
    let mut s = c.framework("omega").await;
    let mut watcher = c.framework("watcher").await;
    let cell = c.subscribe(&mut s, None).await;
    c.subscribe(&mut watcher, None).await;
    let a1 = cell.agent(&c.agents[1].id).clone();
    // While `s` is away (it keeps its position): the watcher commits on agent 1, and agent 2
    // is removed (it stops answering pings).
    c.commit(
        &watcher,
        &cell.position.epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a1, "w1", "cpus:1;mem:64")],
    );
    c.result(&mut watcher).await;
    let gone = c.agents.remove(2);
    c.node.terminate(&gone.pid);
    for _ in 0..=master::master::MAX_AGENT_PING_TIMEOUTS {
        c.clock.advance(master::master::AGENT_PING_TIMEOUT);
        c.clock.settle().await.unwrap();
    }
    while s.rx.try_recv().is_ok() {}
    let back = c.subscribe(&mut s, Some(cell.position.clone())).await;
    assert!(!back.reset);
    assert_eq!(back.agents.len(), 1, "{back:?}");
    assert_eq!(back.agent(&c.agents[1].id).tasks.len(), 1);
    assert_eq!(back.removed, vec![gone.id.clone()]);
    // From another epoch (another master): the whole cell.
    let stale = CellPosition {
        epoch: "m0-1".into(),
        seq: back.position.seq,
    };
    let whole = c.subscribe(&mut s, Some(stale)).await;
    assert!(whole.reset);
    assert_eq!(whole.agents.len(), 2);
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_drained_machine_takes_no_commit_and_shows_inactive() {
    let mut c = Cell::start(1).await;
    let mut s = c.framework("omega").await;
    let cell = c.subscribe(&mut s, None).await;
    let a0 = cell.agent(&c.agents[0].id).clone();
    let drained = c
        .handle
        .master
        .call(|m, ctx| m.drain_machine(ctx, "host-0", false, "repair").is_ok())
        .await
        .unwrap();
    assert!(drained);
    let delta = c.cell_update(&mut s).await;
    assert!(!delta.agent(&c.agents[0].id).active);
    c.commit(
        &s,
        &cell.position.epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a0, "d1", "cpus:1;mem:64")],
    );
    let result = c.result(&mut s).await;
    assert_eq!(outcomes(&result), vec![Outcome::AgentUnavailable]);
    assert!(result.results[0].message.contains("drained"));
    assert!(c.launched_on(0).is_empty());
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_higher_priority_placement_preempts_lower_tasks_of_either_model_after_the_grace() {
    let mut c = Cell::start(1).await;
    let mut mesos = c.framework("mesos").await;
    let mut low = c.framework("omega-low").await;
    let mut high = c.framework("omega-high").await;
    let cell = c.subscribe(&mut low, None).await;
    c.subscribe(&mut high, None).await;
    let epoch = cell.position.epoch.clone();
    let a0 = cell.agent(&c.agents[0].id).clone();
    // An offer-based task (priority 0) first, then a shared-state one of priority 10.
    c.clock.advance(Duration::from_secs(1));
    c.clock.settle().await.unwrap();
    let offer = offers(&mut mesos.rx).remove(0);
    c.node.send_from(
        &mesos.pid,
        &c.master,
        AcceptOffersMessage {
            framework_id: Some(mesos.id.clone()),
            offer_ids: vec![offer.id.unwrap()],
            tasks: vec![task("m", "cpus:2;mem:256")],
            filters: no_filter(),
            groups: Vec::new(),
        },
    );
    let mut p = placement(&a0, "b", "cpus:2;mem:256");
    p.priority = 10;
    c.commit(
        &low,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![p],
    );
    assert_eq!(
        outcomes(&c.result(&mut low).await),
        vec![Outcome::Committed]
    );
    assert_eq!(c.launched_on(0), vec!["m", "b"]);

    // The cell is full. Without preemption a priority-100 placement conflicts.
    let hi = || {
        let mut p = placement(&a0, "hi", "cpus:2;mem:256");
        p.priority = 100;
        p
    };
    c.commit(
        &high,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![hi()],
    );
    assert_eq!(
        outcomes(&c.result(&mut high).await),
        vec![Outcome::ConflictResources]
    );
    // With it, the lowest priority goes: the offer-based task, not the newer shared-state one.
    c.node.send_from(
        &high.pid,
        &c.master,
        CommitTransactionMessage {
            framework_id: Some(high.id.clone()),
            transaction_id: "p".into(),
            epoch: epoch.clone(),
            placements: vec![hi()],
            preempt: true,
            ..Default::default()
        },
    );
    let result = c.result(&mut high).await;
    assert_eq!(outcomes(&result), vec![Outcome::Preempting], "{result:?}");
    let notice = std::iter::from_fn(|| mesos.rx.try_recv().ok())
        .find_map(|g| match g {
            Got::Revocation(m) => Some(m),
            _ => None,
        })
        .expect("the victim's framework is told first");
    assert_eq!(notice.task_ids[0].value, "m");
    assert_eq!(
        notice.grace_seconds,
        master::master::DEFAULT_PREEMPTION_GRACE.as_secs_f64()
    );
    // Nothing is killed during the grace period.
    c.clock
        .advance(master::master::DEFAULT_PREEMPTION_GRACE / 2);
    c.clock.settle().await.unwrap();
    assert!(
        !std::iter::from_fn(|| c.agents[0].rx.try_recv().ok()).any(|g| matches!(g, Got::Kill(_)))
    );
    c.clock.advance(master::master::DEFAULT_PREEMPTION_GRACE);
    c.clock.settle().await.unwrap();
    let kill = std::iter::from_fn(|| c.agents[0].rx.try_recv().ok())
        .find_map(|g| match g {
            Got::Kill(m) => Some(m),
            _ => None,
        })
        .expect("the victim is killed after the grace");
    assert_eq!(kill.task_id.unwrap().value, "m");
    assert_eq!(kill.reason, Some(Reason::ContainerPreempted as i32));
    c.agent_update(0, &mesos.id, "m", TaskState::TaskKilled);
    c.clock.settle().await.unwrap();

    // What it freed is held for the preemptor: another scheduler cannot take it.
    let mut sneak = placement(&a0, "sneak", "cpus:2;mem:256");
    sneak.priority = 10;
    c.commit(
        &low,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![sneak],
    );
    assert_eq!(
        outcomes(&c.result(&mut low).await),
        vec![Outcome::ConflictResources]
    );
    c.commit(
        &high,
        &epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![hi()],
    );
    assert_eq!(
        outcomes(&c.result(&mut high).await),
        vec![Outcome::Committed]
    );
    assert_eq!(c.launched_on(0), vec!["hi"]);
    assert_eq!(c.metric("omega/tasks_preempted"), 1.0);
    c.assert_consistent();
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_role_limit_caps_what_commits_hold() {
    let c = Cell::start(2).await;
    let mut s = c.framework("omega").await;
    let cell = c.subscribe(&mut s, None).await;
    let limits = [("*".to_owned(), r("cpus:3"))].into_iter().collect();
    c.handle
        .master
        .call(move |m, ctx| m.set_role_limits(ctx, limits))
        .await
        .unwrap();
    let (a0, a1) = (
        cell.agent(&c.agents[0].id).clone(),
        cell.agent(&c.agents[1].id).clone(),
    );
    c.commit(
        &s,
        &cell.position.epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![
            placement(&a0, "l1", "cpus:2;mem:64"),
            placement(&a1, "l2", "cpus:1.5;mem:64"),
            placement(&a1, "l3", "cpus:1;mem:64"),
        ],
    );
    let result = c.result(&mut s).await;
    assert_eq!(
        outcomes(&result),
        vec![Outcome::Committed, Outcome::Refused, Outcome::Committed],
        "{result:?}"
    );
    assert!(
        result.results[1].message.contains("limited to"),
        "{result:?}"
    );
    // The role is at its limit until a task ends.
    c.commit(
        &s,
        &cell.position.epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a1, "l4", "cpus:0.5;mem:64")],
    );
    assert_eq!(outcomes(&c.result(&mut s).await), vec![Outcome::Refused]);
    c.agent_update(0, &s.id, "l1", TaskState::TaskFinished);
    c.commit(
        &s,
        &cell.position.epoch,
        ConflictMode::FineGrained,
        CommitMode::Incremental,
        vec![placement(&a1, "l4", "cpus:0.5;mem:64")],
    );
    assert_eq!(outcomes(&c.result(&mut s).await), vec![Outcome::Committed]);
    c.node.shutdown().await;
}
