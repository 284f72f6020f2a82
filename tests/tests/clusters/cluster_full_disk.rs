//! An agent whose disk is full: a launch it cannot record is dropped and never started (a
//! restarted agent would not know the task, and a framework launching it again would run it
//! twice), and the same task runs once the disk has room again. The batch schedulers leave
//! such an agent alone for a while instead of launching there again at once.

use std::time::Duration;

use frameworks::agent_rest::REST;
use frameworks::examples::batch::{BatchEvent, BatchScheduler, BatchSpec};
use frameworks::examples::omega_batch::{OmegaBatch, OmegaBatchSpec};
use frameworks::{scheduler_driver, shared_state, SchedulerOptions};
use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use keel_testkit::small_disk::SmallDisk;
use libactor::{Clock, Node};
use protos::v1::task_status::Reason;
use protos::v1::TaskState;
use tokio::sync::mpsc::UnboundedReceiver;

/// A one-agent cluster whose work dir is a small disk, and a node for a framework; all on
/// `clock` when given.
struct Setup {
    cluster: LocalCluster,
    node: Node,
    disk: SmallDisk,
    _dir: tempfile::TempDir,
}

async fn setup(clock: Option<Clock>) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SmallDisk::mount_on(&dir.path().join("cluster"), 8 << 20).expect("a tmpfs (root)");
    let mut config = LocalClusterConfig::new(1, disk.path());
    config.clock = clock.clone();
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .expect("the agent registers");
    let mut node = Node::builder().single_threaded();
    if let Some(clock) = clock {
        node = node.clock(clock);
    }
    let node = node.start().expect("framework node");
    Setup {
        cluster,
        node,
        disk,
        _dir: dir,
    }
}

/// The next batch event (bounded).
async fn next(events: &mut UnboundedReceiver<BatchEvent>) -> BatchEvent {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event within 30 s")
        .expect("the job runs")
}

/// Waits for the job's first event, its task dropped by the full disk, then lets the clock
/// run to a second before the agent's rest ends.
async fn dropped_then_resting(clock: &Clock, events: &mut UnboundedReceiver<BatchEvent>) {
    let first = next(events).await;
    assert!(
        matches!(first, BatchEvent::Status { state, .. } if state == TaskState::TaskDropped),
        "{first:?}"
    );
    clock.settle().await.expect("the cluster settles");
    clock.advance(REST - Duration::from_secs(1));
    clock.settle().await.expect("the cluster settles");
}

/// Gives the disk room again, lets the rest end, and returns the job's only outcome.
async fn room_again_then_done(
    s: &Setup,
    clock: &Clock,
    events: &mut UnboundedReceiver<BatchEvent>,
) -> frameworks::examples::batch::TaskOutcome {
    s.disk.free().expect("the disk has room");
    clock.advance(Duration::from_secs(2));
    let mut outcomes = loop {
        if let BatchEvent::Done(outcomes) = next(events).await {
            break outcomes;
        }
    };
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    outcomes.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_the_agent_cannot_record_is_dropped_and_runs_once_there_is_room() {
    let s = setup(None).await;
    // Outside the small disk: each start of the task adds a line.
    let starts = s._dir.path().join("starts");
    let mut framework =
        TestFramework::start(&s.node, s.cluster.master_pid(), framework_info("test"));
    framework.registered().await;
    let task = command_task(
        "once",
        &format!("echo started >> {}", starts.display()),
        "cpus:0.5;mem:16",
    );

    s.disk.fill().expect("the disk fills");
    framework.launch_on_first_offer(task.clone()).await;
    let dropped = framework.status("once", TaskState::TaskDropped).await;
    assert_eq!(dropped.reason(), Reason::ContainerLaunchFailed);
    assert!(
        dropped.message.contains("could not record the launch"),
        "{}",
        dropped.message
    );
    let failures = s.cluster.agents[0].node.metrics().snapshot()["slave/checkpoint_failures"];
    assert!(failures >= 1.0, "the failed checkpoint is counted");
    // Nothing of the framework is left on the agent: no shutdown would come for it.
    let agent = s.cluster.agents[0].slave.pid().clone();
    let state = libactor::http_client::get_json(agent.address(), &format!("/{}/state", agent.id()))
        .await
        .expect("the agent's state");
    assert_eq!(state["frameworks"], serde_json::json!([]), "{state}");

    s.disk.free().expect("the disk has room");
    framework.launch_on_first_offer(task).await;
    framework.status("once", TaskState::TaskFinished).await;
    let text = std::fs::read_to_string(&starts).expect("the task started");
    assert_eq!(
        text, "started\n",
        "the task started once, after the disk had room"
    );
    s.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_rests_an_agent_that_could_not_start_its_task_then_finishes() {
    let clock = Clock::paused();
    let s = setup(Some(clock.clone())).await;
    s.disk.fill().expect("the disk fills");
    let (scheduler, mut events) = BatchScheduler::new(BatchSpec {
        task_prefix: "rest".into(),
        commands: vec!["true".into()],
        task_resources: "cpus:0.5;mem:16".parse().expect("resources"),
    });
    let driver = scheduler_driver::start(
        &s.node,
        s.cluster.master_pid().clone(),
        framework_info("rest"),
        scheduler,
        SchedulerOptions::default(),
    )
    .expect("the driver starts");
    // Resting, the agent gets no launch: an immediate retry would fail the same way, again
    // and again, as fast as offers come.
    dropped_then_resting(&clock, &mut events).await;
    let during: Vec<BatchEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(
        during.is_empty(),
        "launched again while resting: {} events, the first {:?}",
        during.len(),
        during.first()
    );
    // Once the disk has room and the rest is over, the task runs.
    let outcome = room_again_then_done(&s, &clock, &mut events).await;
    assert_eq!(outcome.state, TaskState::TaskFinished, "{outcome:?}");
    driver.join().await;
    s.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_omega_batch_job_rests_an_agent_that_could_not_start_its_task_then_finishes() {
    let clock = Clock::paused();
    let s = setup(Some(clock.clone())).await;
    s.disk.fill().expect("the disk fills");
    let spec = OmegaBatchSpec::new("rest", 1, "true", "cpus:0.5;mem:16".parse().unwrap());
    let (scheduler, mut events) = OmegaBatch::new(spec);
    let stats = scheduler.stats();
    let _driver = shared_state::start(
        &s.node,
        s.cluster.master_pid().clone(),
        framework_info("omega-rest"),
        scheduler,
        SchedulerOptions::default(),
    )
    .expect("the driver starts");
    // Without the rest it would place the task again at every change of its cell copy, and
    // give it up after its 1,000 attempts within a second.
    dropped_then_resting(&clock, &mut events).await;
    assert_eq!(stats.borrow().committed, 1, "placed again while resting");
    let outcome = room_again_then_done(&s, &clock, &mut events).await;
    assert_eq!(outcome.state, TaskState::TaskFinished, "{outcome:?}");
    assert_eq!(stats.borrow().committed, 2, "placed, dropped, placed again");
    s.node.shutdown().await;
    s.cluster.shutdown().await;
}
