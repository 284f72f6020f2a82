//! The status update manager under the paused clock: in order per task, resent with backoff
//! until acknowledged, independent across tasks, re-sent to a new master.

use std::time::Duration;

use libactor::{Clock, Context, Match, Node, Process, ProcessRef, Upid};
use protos::internal::{StatusUpdate, StatusUpdateAcknowledgementMessage, StatusUpdateMessage};
use protos::v1::{FrameworkId, TaskId, TaskState, TaskStatus};
use slave::status_update_manager::{StatusUpdateManager, UpdateError, RETRY_INTERVAL_MIN};
use tokio::sync::mpsc;

/// Stands in for the master: records each StatusUpdateMessage.
struct MasterStub {
    tx: mpsc::UnboundedSender<StatusUpdateMessage>,
}

impl Process for MasterStub {
    fn initialize(&mut self, ctx: &mut Context<Self>) {
        ctx.install(
            |m: &mut MasterStub, _: &mut Context<MasterStub>, _: Upid, u: StatusUpdateMessage| {
                let _ = m.tx.send(u);
            },
        );
    }
}

struct Cluster {
    clock: Clock,
    node: Node,
    sum: ProcessRef<StatusUpdateManager>,
    master: Upid,
    updates: mpsc::UnboundedReceiver<StatusUpdateMessage>,
}

async fn start() -> Cluster {
    start_with(StatusUpdateManager::new()).await
}

async fn start_with(manager: StatusUpdateManager) -> Cluster {
    let clock = Clock::paused();
    let node = Node::builder()
        .clock(clock.clone())
        .single_threaded()
        .start()
        .unwrap();
    let (tx, updates) = mpsc::unbounded_channel();
    let master = node.spawn("master", MasterStub { tx }).unwrap();
    let sum = node.spawn_ref("sum", manager).unwrap();
    let m = master.clone();
    sum.dispatch(move |s, ctx| s.set_master(ctx, m));
    clock.settle().await.unwrap();
    Cluster {
        clock,
        node,
        sum,
        master,
        updates,
    }
}

fn update(task: &str, state: TaskState) -> StatusUpdate {
    StatusUpdate {
        framework_id: Some(FrameworkId { value: "fw".into() }),
        status: Some(TaskStatus {
            task_id: Some(TaskId { value: task.into() }),
            state: state as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn state_of(m: &StatusUpdateMessage) -> (String, i32) {
    let status = m.update.as_ref().and_then(|u| u.status.as_ref()).unwrap();
    (status.task_id.as_ref().unwrap().value.clone(), status.state)
}

impl Cluster {
    async fn submit(&self, u: StatusUpdate) -> Result<(), UpdateError> {
        self.sum.call(move |s, ctx| s.update(ctx, u)).await.unwrap()
    }

    /// Acknowledges `m` as the master would, from the framework.
    fn ack(&self, m: &StatusUpdateMessage) {
        let u = m.update.as_ref().unwrap();
        let to: Upid = m.pid.parse().unwrap();
        self.node.send_from(
            &self.master,
            &to,
            StatusUpdateAcknowledgementMessage {
                framework_id: u.framework_id.clone(),
                task_id: u.status.as_ref().and_then(|s| s.task_id.clone()),
                uuid: u.uuid.clone(),
                ..Default::default()
            },
        );
    }

    async fn next_update(&mut self) -> StatusUpdateMessage {
        self.clock.settle().await.unwrap();
        self.updates
            .try_recv()
            .expect("an update reached the master")
    }

    async fn assert_no_update(&mut self) {
        self.clock.settle().await.unwrap();
        assert!(self.updates.try_recv().is_err(), "no update expected now");
    }
}

#[tokio::test]
async fn updates_of_a_task_go_out_one_at_a_time_in_order() {
    let mut c = start().await;
    for state in [
        TaskState::TaskStarting,
        TaskState::TaskRunning,
        TaskState::TaskFinished,
    ] {
        c.submit(update("t1", state)).await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = c.next_update().await;
        c.assert_no_update().await;
        seen.push(state_of(&m).1);
        c.ack(&m);
    }
    assert_eq!(
        seen,
        vec![
            TaskState::TaskStarting as i32,
            TaskState::TaskRunning as i32,
            TaskState::TaskFinished as i32
        ]
    );
    c.clock.settle().await.unwrap();
    assert_eq!(c.sum.call(|s, _| s.pending()).await.unwrap(), 0);
    assert_eq!(
        c.submit(update("t1", TaskState::TaskRunning)).await,
        Ok(()),
        "a finished stream is forgotten once acknowledged"
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn unacknowledged_updates_are_resent_with_backoff() {
    let mut c = start().await;
    c.submit(update("t1", TaskState::TaskRunning))
        .await
        .unwrap();
    let first = c.next_update().await;
    // The framework's acknowledgement is lost on its way.
    let dropped = c
        .node
        .drop_message::<StatusUpdateAcknowledgementMessage>(Match::Any, Match::Any);
    c.ack(&first);
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .unwrap()
        .unwrap();
    c.clock
        .advance(RETRY_INTERVAL_MIN - Duration::from_millis(1));
    c.assert_no_update().await;
    c.clock.advance(Duration::from_millis(1));
    let second = c.next_update().await;
    assert_eq!(
        second.update.as_ref().unwrap().uuid,
        first.update.as_ref().unwrap().uuid,
        "the same update"
    );
    // Unacknowledged again: the next resend waits twice as long.
    c.clock
        .advance(RETRY_INTERVAL_MIN * 2 - Duration::from_millis(1));
    c.assert_no_update().await;
    c.clock.advance(Duration::from_millis(1));
    let third = c.next_update().await;
    c.ack(&third);
    c.clock.advance(RETRY_INTERVAL_MIN * 10);
    c.assert_no_update().await;
    let m = c.node.metrics().snapshot();
    assert_eq!(m["slave/status_updates/resent"], 2.0);
    assert_eq!(m["slave/status_updates/acknowledged"], 1.0);
    c.node.shutdown().await;
}

#[tokio::test]
async fn tasks_do_not_wait_for_each_other() {
    let mut c = start().await;
    c.submit(update("t1", TaskState::TaskRunning))
        .await
        .unwrap();
    c.submit(update("t1", TaskState::TaskFinished))
        .await
        .unwrap();
    c.submit(update("t2", TaskState::TaskRunning))
        .await
        .unwrap();
    c.clock.settle().await.unwrap();
    let a = c.updates.try_recv().unwrap();
    let b = c.updates.try_recv().unwrap();
    let mut tasks = vec![state_of(&a).0, state_of(&b).0];
    tasks.sort();
    assert_eq!(
        tasks,
        vec!["t1", "t2"],
        "t2 is not held behind t1's unacknowledged update"
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_new_master_gets_every_pending_head() {
    let mut c = start().await;
    c.submit(update("t1", TaskState::TaskRunning))
        .await
        .unwrap();
    let _ = c.next_update().await;
    let (tx, mut new_updates) = mpsc::unbounded_channel();
    let new_master = c.node.spawn("master-2", MasterStub { tx }).unwrap();
    c.sum.dispatch(move |s, ctx| s.set_master(ctx, new_master));
    c.clock.settle().await.unwrap();
    let resent = new_updates
        .try_recv()
        .expect("the head goes to the new master at once");
    assert_eq!(
        state_of(&resent),
        ("t1".into(), TaskState::TaskRunning as i32)
    );
    c.node.shutdown().await;
}

/// Every update that reaches the master now, ordered by task.
async fn arrived(c: &mut Cluster) -> Vec<StatusUpdateMessage> {
    c.clock.settle().await.unwrap();
    let mut got = Vec::new();
    while let Ok(m) = c.updates.try_recv() {
        got.push(m);
    }
    got.sort_by_key(state_of);
    got
}

fn states(updates: &[StatusUpdateMessage]) -> Vec<(String, i32)> {
    updates.iter().map(state_of).collect()
}

#[tokio::test]
async fn a_restarted_manager_resends_what_its_log_holds_unacknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("meta/status_updates");
    let mut c = start_with(StatusUpdateManager::recover(&log).unwrap()).await;
    c.submit(update("t1", TaskState::TaskRunning))
        .await
        .unwrap();
    let running = c.next_update().await;
    c.ack(&running);
    c.submit(update("t1", TaskState::TaskFinished))
        .await
        .unwrap();
    c.submit(update("t2", TaskState::TaskRunning))
        .await
        .unwrap();
    assert_eq!(arrived(&mut c).await.len(), 2);
    c.node.shutdown().await;

    // The agent restarted: what was not acknowledged goes to the master again, and t1's
    // stream still knows it ended.
    let mut c = start_with(StatusUpdateManager::recover(&log).unwrap()).await;
    let resent = arrived(&mut c).await;
    assert_eq!(
        states(&resent),
        vec![
            ("t1".into(), TaskState::TaskFinished as i32),
            ("t2".into(), TaskState::TaskRunning as i32)
        ]
    );
    assert_eq!(c.sum.call(|s, _| s.pending()).await.unwrap(), 2);
    assert_eq!(
        c.submit(update("t1", TaskState::TaskFailed)).await,
        Err(UpdateError::StreamClosed("t1".into()))
    );
    // This time t1's terminal update is acknowledged: gone for the next run too.
    c.ack(&resent[0]);
    c.clock.settle().await.unwrap();
    assert_eq!(c.sum.call(|s, _| s.pending()).await.unwrap(), 1);
    c.node.shutdown().await;

    let mut c = start_with(StatusUpdateManager::recover(&log).unwrap()).await;
    assert_eq!(
        states(&arrived(&mut c).await),
        vec![("t2".into(), TaskState::TaskRunning as i32)]
    );
    c.node.shutdown().await;
}

#[tokio::test]
async fn a_shut_down_frameworks_updates_are_dropped_now_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("meta/status_updates");
    let mut c = start_with(StatusUpdateManager::recover(&log).unwrap()).await;
    c.submit(update("t1", TaskState::TaskKilled)).await.unwrap();
    c.next_update().await;
    assert_eq!(c.sum.call(|s, _| s.pending()).await.unwrap(), 1);
    // The master shut the framework down: no one will acknowledge its updates.
    c.sum.call(|s, _| s.forget_framework("fw")).await.unwrap();
    assert_eq!(c.sum.call(|s, _| s.pending()).await.unwrap(), 0);
    c.clock.advance(Duration::from_secs(600));
    c.assert_no_update().await;
    assert_eq!(
        c.node.metrics().snapshot()["slave/status_updates/pending"],
        0.0
    );
    c.node.shutdown().await;

    let mut c = start_with(StatusUpdateManager::recover(&log).unwrap()).await;
    assert_eq!(c.sum.call(|s, _| s.pending()).await.unwrap(), 0);
    c.assert_no_update().await;
    c.node.shutdown().await;
}

#[tokio::test]
async fn bad_updates_are_refused() {
    let c = start().await;
    let no_task = StatusUpdate {
        framework_id: Some(FrameworkId { value: "fw".into() }),
        ..Default::default()
    };
    assert_eq!(c.submit(no_task).await, Err(UpdateError::MissingIds));
    c.submit(update("t9", TaskState::TaskFailed)).await.unwrap();
    assert!(matches!(
        c.submit(update("t9", TaskState::TaskRunning)).await,
        Err(UpdateError::StreamClosed(_))
    ));
    c.node.shutdown().await;
}
