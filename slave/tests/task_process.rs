//! Real OS processes for tasks: output captured in the sandbox, exit statuses, and kills that
//! honour the grace period (timed on a paused clock).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use libactor::Clock;
use protos::v1::CommandInfo;
use slave::checkpoint::{ExecutorDir, MetaDir};
use slave::task_process::{LaunchError, TaskProcess, Termination};

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

fn sandbox(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keel-task-process-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn shell(command: &str) -> CommandInfo {
    CommandInfo {
        value: command.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn output_goes_to_the_sandbox_and_the_status_is_reported() {
    let dir = sandbox("output");
    let mut cmd = shell("echo hello $KEEL_TEST_VAR; echo oops >&2; exit 3");
    cmd.environment = Some(protos::v1::Environment {
        variables: vec![protos::v1::environment::Variable {
            name: "KEEL_TEST_VAR".into(),
            value: "world".into(),
        }],
    });
    let mut task = TaskProcess::spawn(
        &cmd,
        &dir,
        &[("KEEL_SANDBOX".into(), dir.display().to_string())],
    )
    .unwrap();
    let status = tokio::time::timeout(EVENT_TIMEOUT, task.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, Termination::Exited(3));
    assert!(!status.success());
    assert_eq!(
        std::fs::read_to_string(dir.join("stdout")).unwrap(),
        "hello world\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("stderr")).unwrap(),
        "oops\n"
    );
    let mut ok = TaskProcess::spawn(
        &shell("test \"$PWD\" = \"$KEEL_SANDBOX\""),
        &dir,
        &[("KEEL_SANDBOX".into(), dir.display().to_string())],
    )
    .unwrap();
    assert!(
        tokio::time::timeout(EVENT_TIMEOUT, ok.wait())
            .await
            .unwrap()
            .unwrap()
            .success(),
        "runs in its sandbox"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn kill_honours_the_grace_period_of_a_task_trapping_sigterm() {
    let dir = sandbox("trap");
    let ready = common::fifo(&dir);
    let script = "trap 'echo got-term' TERM; echo ready > ready; while :; do sleep 1; done";
    let mut task = TaskProcess::spawn(&shell(script), &dir, &[]).unwrap();
    common::wait_ready(ready, EVENT_TIMEOUT).await;
    let clock = Clock::paused();
    let c = clock.clone();
    let killing = tokio::spawn(async move {
        let t = task.kill(Duration::from_secs(3), &c).await;
        (t, task)
    });
    // The kill waits out the grace period on the paused clock...
    tokio::time::timeout(EVENT_TIMEOUT, async {
        while clock.pending_timers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert!(
        !killing.is_finished(),
        "a task that traps SIGTERM survives it"
    );
    clock.advance(Duration::from_secs(3));
    let (status, _task) = tokio::time::timeout(EVENT_TIMEOUT, killing)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.unwrap(), Termination::Signaled(libc::SIGKILL));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_task_that_does_not_trap_dies_of_sigterm() {
    let dir = sandbox("plain");
    let ready = common::fifo(&dir);
    let mut task =
        TaskProcess::spawn(&shell("echo ready > ready; exec sleep 1000"), &dir, &[]).unwrap();
    common::wait_ready(ready, EVENT_TIMEOUT).await;
    let clock = Clock::paused();
    let status = tokio::time::timeout(EVENT_TIMEOUT, task.kill(Duration::from_secs(3), &clock))
        .await
        .unwrap();
    assert_eq!(status.unwrap(), Termination::Signaled(libc::SIGTERM));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_empty_command_is_refused() {
    let dir = sandbox("empty");
    assert!(matches!(
        TaskProcess::spawn(&shell("  "), &dir, &[]),
        Err(LaunchError::EmptyCommand)
    ));
}

/// A supervised process (as the agent starts checkpointed executors) in `name`'s sandbox, with
/// its checkpoint directory.
fn supervised(name: &str, command: &str) -> (TaskProcess, ExecutorDir, PathBuf) {
    let dir = std::env::temp_dir().join(format!("keel-task-process-{}-{name}", std::process::id()));
    let meta = MetaDir::new(&dir.join("work"));
    let run = meta.executor("c1");
    std::fs::create_dir_all(&run.path).unwrap();
    let sandbox = dir.join("sandbox");
    let task = TaskProcess::spawn_joined(
        &shell(command),
        &sandbox,
        &[],
        Vec::new(),
        Some(&run.path),
        None,
    )
    .unwrap();
    (task, run, sandbox)
}

#[tokio::test]
async fn a_supervised_process_records_how_its_command_ended() {
    let (mut task, run, _) = supervised("supervised-exit", "echo out; exit 3");
    let ended = tokio::time::timeout(EVENT_TIMEOUT, task.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, Termination::Exited(3));
    assert_eq!(run.exit_status(), Some(Termination::Exited(3)));
    assert!(run.started());
    assert_eq!(run.live_pid(), None, "it ended");

    // SIGTERM to the group: the command dies of it, the supervisor records it and then ends
    // the same way, so the agent sees the signal.
    let ready = common::fifo(&sandbox("supervised-term").join("sandbox"));
    let (mut task, run, _) = supervised("supervised-term", "echo ready > ready; exec sleep 300");
    common::wait_ready(ready, EVENT_TIMEOUT).await;
    let clock = Clock::new();
    let ended = tokio::time::timeout(EVENT_TIMEOUT, task.kill(Duration::from_secs(10), &clock))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, Termination::Signaled(libc::SIGTERM));
    assert_eq!(
        run.exit_status(),
        Some(Termination::Signaled(libc::SIGTERM))
    );
}

#[tokio::test]
async fn an_adopted_process_is_watched_and_killed_like_a_child() {
    let ready = common::fifo(&sandbox("adopted").join("sandbox"));
    let (task, run, sandbox) = supervised("adopted", "echo ready > ready; exec sleep 300");
    common::wait_ready(ready, EVENT_TIMEOUT).await;
    let first = task.pid();
    // The agent that started it "dies": its handle is gone, the process runs on.
    std::mem::forget(task);
    // The supervisor wrote its pid before it started the command.
    let pid = run.live_pid().expect("the supervisor runs");
    assert_eq!(pid, first);
    let mut adopted = TaskProcess::adopt(Some(pid), run.clone(), &sandbox);
    assert_eq!(adopted.pid(), pid);
    let clock = Clock::new();
    let ended = tokio::time::timeout(EVENT_TIMEOUT, adopted.kill(Duration::from_secs(10), &clock))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended, Termination::Signaled(libc::SIGTERM));

    // One that ended while no agent watched: its recorded status is all there is.
    let (mut task, run, sandbox) = supervised("adopted-ended", "exit 4");
    tokio::time::timeout(EVENT_TIMEOUT, task.wait())
        .await
        .unwrap()
        .unwrap();
    let mut adopted = TaskProcess::adopt(run.live_pid(), run.clone(), &sandbox);
    assert_eq!(adopted.wait().await.unwrap(), Termination::Exited(4));
    std::fs::remove_file(run.exit_status_file()).unwrap();
    let mut adopted = TaskProcess::adopt(None, run, &sandbox);
    let unknown = adopted.wait().await.unwrap_err();
    assert!(
        unknown.to_string().contains("left no exit status"),
        "{unknown}"
    );
}
