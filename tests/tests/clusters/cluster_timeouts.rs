//! Timeouts of a whole cluster under the paused clock: every node (master, agents, the test's
//! framework) shares one clock the test advances, so refusal filters, offer timeouts, agent
//! ping timeouts and status update retries happen at exact moments without any sleeping.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::eventually::eventually;
use keel_testkit::recording_scheduler::{
    command_task, framework_info, SchedulerEvent, TestFramework,
};
use libactor::{Clock, Match, Node};
use master::master::{AgentHealth, AGENT_PING_TIMEOUT, MAX_AGENT_PING_TIMEOUTS, OFFER_TIMEOUT};
use protos::internal::{
    ReregisterSlaveMessage, RunTaskMessage, SlaveReregisteredMessage,
    StatusUpdateAcknowledgementMessage, StatusUpdateMessage,
};
use protos::v1::task_status::Reason;
use protos::v1::{Filters, Offer, TaskState};

const AGENTS_UP: Duration = Duration::from_secs(30);

struct Setup {
    clock: Clock,
    cluster: LocalCluster,
    node: Node,
    framework: TestFramework,
    _dir: tempfile::TempDir,
}

async fn setup(agents: usize) -> Setup {
    setup_with(agents, |_| {}).await
}

async fn setup_with(agents: usize, tune: impl FnOnce(&mut LocalClusterConfig)) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = Clock::paused();
    let mut config = LocalClusterConfig::new(agents, dir.path());
    config.clock = Some(clock.clone());
    tune(&mut config);
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(AGENTS_UP)
        .await
        .expect("agents register");
    let node = Node::builder()
        .single_threaded()
        .clock(clock.clone())
        .start()
        .expect("framework node");
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("test"));
    framework.registered().await;
    Setup {
        clock,
        cluster,
        node,
        framework,
        _dir: dir,
    }
}

impl Setup {
    /// Has agent `i` register again with the master, as after a leader change.
    async fn register_agent_again(&self, i: usize) {
        let master = self.cluster.master_pid().clone();
        self.cluster.agents[i]
            .slave
            .call(move |sl, ctx| sl.set_master(ctx, master))
            .await
            .expect("the agent runs");
    }

    async fn advance(&self, d: Duration) {
        self.clock.advance(d);
        self.clock.settle().await.expect("the cluster settles");
    }

    /// Offers that arrived so far, without waiting.
    fn offers_now(&mut self) -> Vec<Offer> {
        self.framework
            .drain()
            .into_iter()
            .flat_map(|e| match e {
                SchedulerEvent::Offers(o) => o,
                _ => Vec::new(),
            })
            .collect()
    }

    async fn decline_all(&self, offers: &[Offer], refuse_seconds: f64) {
        let ids: Vec<_> = offers.iter().filter_map(|o| o.id.clone()).collect();
        self.framework
            .act(move |d| {
                for id in ids {
                    d.decline_offer(
                        &id,
                        Filters {
                            refuse_seconds: Some(refuse_seconds),
                        },
                    );
                }
            })
            .await;
        self.clock.settle().await.expect("the cluster settles");
    }

    async fn stop(self) {
        // Invariant: the master and its allocator never disagreed about who holds what.
        let refusals = self
            .cluster
            .master_node
            .metrics()
            .snapshot()
            .get("master/allocator_refusals")
            .copied()
            .unwrap_or(0.0);
        assert_eq!(
            refusals, 0.0,
            "the allocator refused the master's bookkeeping"
        );
        self.node.shutdown().await;
        self.cluster.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declined_resources_are_withheld_for_refuse_seconds_and_revive_lifts_the_filter() {
    let mut s = setup(1).await;
    let offers = s.framework.offers().await;
    s.decline_all(&offers, 10.0).await;
    for _ in 0..9 {
        s.advance(Duration::from_secs(1)).await;
        assert!(s.offers_now().is_empty(), "offered during the refusal");
    }
    s.advance(Duration::from_secs(2)).await;
    let again = s.framework.offers().await;
    assert_eq!(
        again[0].agent_id, offers[0].agent_id,
        "offered again once the filter expired"
    );

    s.decline_all(&again, 1000.0).await;
    s.advance(Duration::from_secs(5)).await;
    assert!(s.offers_now().is_empty());
    s.framework.act(|d| d.revive_offers()).await;
    let revived = s.framework.offers().await;
    assert_eq!(
        revived[0].agent_id, offers[0].agent_id,
        "revive clears the filter"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_offer_is_rescinded_after_the_offer_timeout() {
    let mut s = setup(1).await;
    let offer = s.framework.offers().await.remove(0);
    s.advance(OFFER_TIMEOUT - Duration::from_secs(1)).await;
    assert!(
        !s.framework
            .drain()
            .iter()
            .any(|e| matches!(e, SchedulerEvent::Rescinded(_))),
        "rescinded early"
    );
    s.advance(Duration::from_secs(1)).await;
    let rescinded = s
        .framework
        .until(|e| match e {
            SchedulerEvent::Rescinded(id) => Some(id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(Some(rescinded), offer.id);
    // Its resources went back to the allocator and come round again.
    let next = s.framework.offers().await;
    assert_eq!(next[0].agent_id, offer.agent_id);
    assert_ne!(next[0].id, offer.id);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_is_removed_its_tasks_lost_and_the_rest_still_offered() {
    let mut s = setup(2).await;
    let offers = s.framework.offers().await;
    assert_eq!(offers.len(), 2);
    let victim_agent = offers[0].agent_id.clone().unwrap();
    let first = offers[0].id.clone().unwrap();
    let rest = offers[1].id.clone().unwrap();
    s.framework
        .act(move |d| {
            d.launch_tasks(
                &[first],
                vec![command_task("doomed", "sleep 300", "cpus:1;mem:16")],
                Filters::default(),
            );
            d.decline_offer(
                &rest,
                Filters {
                    refuse_seconds: Some(0.0),
                },
            );
        })
        .await;
    s.framework.status("doomed", TaskState::TaskRunning).await;

    // The agent that runs the task dies without a word.
    let mut victim = None;
    for (i, a) in s.cluster.agents.iter().enumerate() {
        let id = a
            .slave
            .call(|sl, _| sl.id().map(str::to_owned))
            .await
            .unwrap();
        if id.as_deref() == Some(victim_agent.value.as_str()) {
            victim = Some(i);
        }
    }
    let victim = victim.expect("the offered agent is one of ours");
    s.cluster.agents[victim].node.shutdown().await;
    s.clock.settle().await.unwrap();

    // The ping in flight when it died was answered; then MAX_AGENT_PING_TIMEOUTS go unanswered.
    for _ in 0..=MAX_AGENT_PING_TIMEOUTS {
        s.advance(AGENT_PING_TIMEOUT).await;
    }
    let lost = s.framework.status("doomed", TaskState::TaskLost).await;
    assert_eq!(lost.reason(), Reason::AgentRemoved);
    s.framework
        .until(|e| match e {
            SchedulerEvent::AgentLost(id) if *id == victim_agent => Some(()),
            _ => None,
        })
        .await;
    assert_eq!(s.cluster.registered_agents().await, 1);
    // Only the survivor is offered from now on: let every outstanding offer time out, and
    // look at what comes round next.
    s.advance(OFFER_TIMEOUT).await;
    s.framework
        .until(|e| matches!(e, SchedulerEvent::Rescinded(_)).then_some(()))
        .await;
    let offers = s.framework.offers().await;
    assert!(!offers.is_empty());
    assert!(offers
        .iter()
        .all(|o| o.agent_id.as_ref() != Some(&victim_agent)));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_updates_are_resent_in_order_until_acknowledged() {
    let mut s = setup(1).await;
    let agent_node = s.cluster.agents[0].node.clone();
    let dropping =
        agent_node.drop_messages::<StatusUpdateAcknowledgementMessage>(Match::Any, Match::Any);

    let offer = s.framework.offers().await.remove(0).id.unwrap();
    s.framework
        .act(move |d| {
            d.launch_tasks(
                &[offer],
                vec![command_task("quick", "true", "cpus:0.1;mem:16")],
                Filters::default(),
            )
        })
        .await;
    s.framework.status("quick", TaskState::TaskRunning).await;
    // The task has finished on the agent by now, but FINISHED waits behind the unacknowledged
    // RUNNING; the agent resends RUNNING after 10 s, then 20 s.
    s.advance(Duration::from_secs(10)).await;
    s.framework.status("quick", TaskState::TaskRunning).await;
    s.advance(Duration::from_secs(20)).await;
    s.framework.status("quick", TaskState::TaskRunning).await;
    let seen = s.framework.drain();
    assert!(
        !seen.iter().any(
            |e| matches!(e, SchedulerEvent::Status(st) if st.state() == TaskState::TaskFinished)
        ),
        "FINISHED overtook the unacknowledged RUNNING"
    );

    drop(dropping);
    s.advance(Duration::from_secs(40)).await;
    let finished = s.framework.status("quick", TaskState::TaskFinished).await;
    assert_eq!(finished.message, "Command exited with status 0");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_registers_again_keeps_one_ping_deadline_and_no_ping_is_missed() {
    // The agent gives up after 40 s without a ping; the master pings every 15 s.
    let s = setup_with(1, |c| c.agent_master_ping_timeout = Duration::from_secs(40)).await;
    let agent = &s.cluster.agents[0];
    // Registering again 5 s later (as after a leader change) must replace the first deadline:
    // two would each reset what the other waits for, and the second, 5 s after the first,
    // would find no ping in between.
    s.advance(Duration::from_secs(5)).await;
    s.register_agent_again(0).await;
    s.clock.settle().await.expect("the cluster settles");
    for _ in 0..120 {
        s.advance(Duration::from_secs(5)).await;
    }
    let timeouts = agent.node.metrics().snapshot()["slave/master_ping_timeouts"];
    assert_eq!(
        timeouts, 0.0,
        "ten minutes of pings every 15 s, none missed"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_waits_as_long_as_its_master_advises_before_registering_again() {
    // A master of 2 agents that would take 10 s to answer each advises a first retry of 20 s,
    // so an unanswered re-registration is sent again 10–30 s later (spread ±50 %), not after
    // Mesos's 0.5–1.5 s: after a failover, a large cluster's first attempts are answered
    // before they are repeated.
    let s = setup(2).await;
    let slow = AgentHealth {
        readmission_cost: Duration::from_secs(10),
        ..AgentHealth::default()
    };
    s.cluster
        .master
        .master
        .call(move |m, ctx| m.set_agent_health(ctx, slow))
        .await
        .expect("the master runs");
    // The advice reaches the agents with the next pings.
    s.advance(AGENT_PING_TIMEOUT).await;
    let mut unanswered = s
        .cluster
        .master_node
        .drop_messages::<ReregisterSlaveMessage>(Match::Any, Match::Any);
    s.register_agent_again(0).await;
    unanswered.dropped(1).await;
    s.advance(Duration::from_secs(9)).await;
    assert_eq!(
        unanswered.dropped_so_far(),
        1,
        "no retry within 9 s of the first attempt"
    );
    s.advance(Duration::from_secs(21)).await;
    unanswered.dropped(2).await;
    drop(unanswered);
    // The next wait doubles (20–60 s); that attempt is answered.
    let answered = s.cluster.agents[0]
        .node
        .expect_message::<SlaveReregisteredMessage>(Match::Any, Match::Any);
    s.advance(Duration::from_secs(60)).await;
    let reply = answered.await.expect("the agent re-registered");
    assert_eq!(reply.message.registration_backoff_seconds, 20.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_lost_on_its_way_is_reported_lost_when_the_agent_registers_again() {
    let mut s = setup(1).await;
    let agent = &s.cluster.agents[0];
    // The launch never reaches the agent (it restarted, or its connection broke).
    let lost = agent
        .node
        .drop_message::<RunTaskMessage>(Match::Any, Match::Any);
    s.framework
        .launch_on_first_offer(command_task("vanished", "true", "cpus:0.5;mem:16"))
        .await;
    lost.await.expect("the launch was sent");
    // The agent registers again (as after a leader change) without the task.
    s.register_agent_again(0).await;
    let status = s.framework.status("vanished", TaskState::TaskLost).await;
    assert_eq!(status.reason(), Reason::TaskUnknown);
    // Its resources are free again.
    let state = libactor::http_client::get_json(s.cluster.master_pid().address(), "/master/state")
        .await
        .expect("the master's state");
    let used = state["slaves"][0]["used_resources"]["cpus"].as_f64();
    assert_eq!(used.unwrap_or(0.0), 0.0, "{state}");
    assert_eq!(
        state["frameworks"][0]["completed_tasks"][0]["state"], "TASK_LOST",
        "{state}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_end_is_not_yet_acknowledged_is_not_taken_for_a_lost_launch() {
    let mut s = setup(1).await;
    let agent = &s.cluster.agents[0];
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    s.framework
        .launch_on_first_offer(command_task(
            "ended",
            &format!("while [ ! -e {} ]; do sleep 0.05; done", go.display()),
            "cpus:0.5;mem:16",
        ))
        .await;
    s.framework.status("ended", TaskState::TaskRunning).await;
    // RUNNING acknowledged; the end is lost on its way to the master (as when the agent
    // dies right after sending it).
    let metrics = agent.node.metrics();
    eventually("RUNNING is acknowledged", || async {
        (metrics.snapshot()["slave/status_updates/pending"] == 0.0).then_some(())
    })
    .await;
    let lost_end = s
        .cluster
        .master_node
        .drop_message::<StatusUpdateMessage>(Match::Any, Match::Any);
    std::fs::write(&go, "").unwrap();
    lost_end.await.expect("the end was sent");
    // Its executor is gone; its end waits for an acknowledgement. The agent registers again.
    s.register_agent_again(0).await;
    // The agent reported the ended task, so the master takes nothing for lost; the end
    // itself comes again, and the task's resources are freed with it.
    s.framework.status("ended", TaskState::TaskFinished).await;
    s.stop().await;
}
