//! An agent whose disk is full: a launch it cannot record is dropped and never started (a
//! restarted agent would not know the task, and a framework launching it again would run it
//! twice), and the same task runs once the disk has room again.

use std::time::Duration;

use keel::local_cluster::{LocalCluster, LocalClusterConfig};
use keel_testkit::recording_scheduler::{command_task, framework_info, TestFramework};
use keel_testkit::small_disk::SmallDisk;
use libactor::Node;
use protos::v1::task_status::Reason;
use protos::v1::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_the_agent_cannot_record_is_dropped_and_runs_once_there_is_room() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SmallDisk::mount_on(&dir.path().join("cluster"), 8 << 20).expect("a tmpfs (root)");
    // Outside the small disk: each start of the task adds a line.
    let starts = dir.path().join("starts");
    let cluster = LocalCluster::start(LocalClusterConfig::new(1, disk.path()))
        .await
        .expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .expect("the agent registers");
    let node = Node::builder()
        .single_threaded()
        .start()
        .expect("framework node");
    let mut framework = TestFramework::start(&node, cluster.master_pid(), framework_info("test"));
    framework.registered().await;
    let task = command_task(
        "once",
        &format!("echo started >> {}", starts.display()),
        "cpus:0.5;mem:16",
    );

    disk.fill().expect("the disk fills");
    framework.launch_on_first_offer(task.clone()).await;
    let dropped = framework.status("once", TaskState::TaskDropped).await;
    assert_eq!(dropped.reason(), Reason::ContainerLaunchFailed);
    assert!(
        dropped.message.contains("could not record the launch"),
        "{}",
        dropped.message
    );
    let failures = cluster.agents[0].node.metrics().snapshot()["slave/checkpoint_failures"];
    assert!(failures >= 1.0, "the failed checkpoint is counted");

    disk.free().expect("the disk has room");
    framework.launch_on_first_offer(task).await;
    framework.status("once", TaskState::TaskFinished).await;
    let text = std::fs::read_to_string(&starts).expect("the task started");
    assert_eq!(
        text, "started\n",
        "the task started once, after the disk had room"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_rests_an_agent_that_could_not_start_its_task_then_finishes() {
    use frameworks::examples::batch::{
        BatchEvent, BatchScheduler, BatchSpec, REST_AFTER_DROPPED_LAUNCH,
    };
    use frameworks::{scheduler_driver, SchedulerOptions};
    use libactor::Clock;

    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SmallDisk::mount_on(&dir.path().join("cluster"), 8 << 20).expect("a tmpfs (root)");
    let clock = Clock::paused();
    let mut config = LocalClusterConfig::new(1, disk.path());
    config.clock = Some(clock.clone());
    let cluster = LocalCluster::start(config).await.expect("cluster starts");
    cluster
        .wait_for_agents(Duration::from_secs(30))
        .await
        .expect("the agent registers");
    let node = Node::builder()
        .single_threaded()
        .clock(clock.clone())
        .start()
        .expect("framework node");
    disk.fill().expect("the disk fills");
    let (scheduler, mut events) = BatchScheduler::new(BatchSpec {
        task_prefix: "rest".into(),
        commands: vec!["true".into()],
        task_resources: "cpus:0.5;mem:16".parse().expect("resources"),
    });
    let driver = scheduler_driver::start(
        &node,
        cluster.master_pid().clone(),
        framework_info("rest"),
        scheduler,
        SchedulerOptions::default(),
    )
    .expect("the driver starts");
    let dropped = |e: &BatchEvent| matches!(e, BatchEvent::Status { state, .. } if *state == TaskState::TaskDropped);
    let first = tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event within 30 s")
        .expect("the job runs");
    assert!(dropped(&first), "{first:?}");
    // Resting, the agent gets no launch: an immediate retry would fail the same way, again
    // and again, as fast as offers come.
    clock.settle().await.expect("the cluster settles");
    clock.advance(REST_AFTER_DROPPED_LAUNCH - Duration::from_secs(1));
    clock.settle().await.expect("the cluster settles");
    let during: Vec<BatchEvent> = std::iter::from_fn(|| events.try_recv().ok()).collect();
    assert!(
        during.is_empty(),
        "launched again while resting: {} events, the first {:?}",
        during.len(),
        during.first()
    );
    // Once the disk has room and the rest is over, the task runs.
    disk.free().expect("the disk has room");
    clock.advance(Duration::from_secs(2));
    let outcomes = loop {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("an event within 30 s")
            .expect("the job runs");
        if let BatchEvent::Done(outcomes) = event {
            break outcomes;
        }
    };
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].state, TaskState::TaskFinished, "{outcomes:?}");
    driver.join().await;
    cluster.shutdown().await;
}
