//! Health checks of command tasks inside a whole cluster, timed on the paused clock: a task
//! turns healthy when its check passes, unhealthy when it fails, and is killed after the
//! threshold of failures in a row, every update carrying `healthy`; an invalid check is refused
//! at launch with TASK_ERROR and a reason.

use std::time::Duration;

use keel::local_cluster::LocalClusterConfig;
use keel_testkit::recording_scheduler::{command_task, SchedulerEvent};
use keel_tests::cluster::ClusterWithFramework;
use libactor::Clock;
use protos::v1::health_check::{TcpCheckInfo, Type};
use protos::v1::task_status::Reason;
use protos::v1::{CommandInfo, HealthCheck, TaskState, TaskStatus};

const INTERVAL: Duration = Duration::from_secs(1);

async fn setup(dir: &std::path::Path) -> (ClusterWithFramework, Clock) {
    let clock = Clock::paused();
    let mut config = LocalClusterConfig::new(1, dir);
    config.clock = Some(clock.clone());
    (ClusterWithFramework::start(config).await, clock)
}

/// The next update of `task` with health set to `healthy`.
async fn health(c: &mut ClusterWithFramework, task: &str, healthy: bool) -> TaskStatus {
    c.framework
        .until(|e| match e {
            SchedulerEvent::Status(s)
                if s.task_id.as_ref().is_some_and(|t| t.value == task)
                    && s.healthy == Some(healthy) =>
            {
                Some(s.clone())
            }
            _ => None,
        })
        .await
}

fn checked(task: protos::v1::TaskInfo, check: HealthCheck) -> protos::v1::TaskInfo {
    protos::v1::TaskInfo {
        health_check: Some(check),
        ..task
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_turns_healthy_then_unhealthy_and_is_killed_after_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("healthy-flag");
    std::fs::write(&flag, "").unwrap();
    let (mut c, clock) = setup(dir.path()).await;
    let check = HealthCheck {
        r#type: Type::Command as i32,
        command: Some(CommandInfo {
            value: format!("test -f {}", flag.display()),
            ..Default::default()
        }),
        delay_seconds: Some(INTERVAL.as_secs_f64()),
        interval_seconds: Some(INTERVAL.as_secs_f64()),
        grace_period_seconds: Some(0.0),
        consecutive_failures: Some(2),
        ..Default::default()
    };
    c.launch_on_first_offer(checked(
        command_task("web", "exec sleep 1000", "cpus:0.1;mem:32"),
        check,
    ))
    .await;
    let running = c.framework.status("web", TaskState::TaskRunning).await;
    assert_eq!(running.healthy, None, "not checked yet");

    clock.advance(INTERVAL);
    let healthy = health(&mut c, "web", true).await;
    assert_eq!(healthy.state(), TaskState::TaskRunning);
    assert_eq!(healthy.reason(), Reason::TaskHealthCheckStatusUpdated);

    std::fs::remove_file(&flag).unwrap();
    clock.advance(INTERVAL);
    let unhealthy = health(&mut c, "web", false).await;
    assert_eq!(unhealthy.state(), TaskState::TaskRunning);
    assert!(
        unhealthy.message.contains("exit status: 1"),
        "{}",
        unhealthy.message
    );

    clock.advance(INTERVAL);
    let killed = c.framework.status("web", TaskState::TaskKilled).await;
    assert_eq!(killed.healthy, Some(false));
    assert_eq!(killed.reason(), Reason::TaskHealthCheckStatusUpdated);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_health_check_is_refused_at_launch() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _clock) = setup(dir.path()).await;
    let check = HealthCheck {
        r#type: Type::Tcp as i32,
        tcp: Some(TcpCheckInfo { port: 70_000 }),
        ..Default::default()
    };
    c.launch_on_first_offer(checked(
        command_task("bad", "exec sleep 1000", "cpus:0.1;mem:32"),
        check,
    ))
    .await;
    let error = c.framework.status("bad", TaskState::TaskError).await;
    assert_eq!(error.reason(), Reason::TaskInvalid);
    assert!(error.message.contains("tcp.port"), "{}", error.message);
    c.shutdown().await;
}
