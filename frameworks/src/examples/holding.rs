//! `hold`: a custom executor whose tasks run until they are killed. It does no work: it is
//! what to try kills, failovers and agent restarts with when a task's state must not change on
//! its own (`<binary> executor hold`).

use protos::v1::{TaskId, TaskInfo, TaskState, TaskStatus};

use crate::executor::Executor;
use crate::executor_driver::ExecutorDriver;

/// Reports each task RUNNING, and KILLED when told to kill it.
#[derive(Debug, Default)]
pub struct HoldingExecutor;

impl Executor for HoldingExecutor {
    fn launch_task(&mut self, driver: &mut ExecutorDriver, task: TaskInfo) {
        driver.send_status_update(TaskStatus {
            task_id: task.task_id,
            state: TaskState::TaskRunning as i32,
            ..Default::default()
        });
    }

    fn kill_task(&mut self, driver: &mut ExecutorDriver, task_id: &TaskId) {
        driver.send_status_update(TaskStatus {
            task_id: Some(task_id.clone()),
            state: TaskState::TaskKilled as i32,
            message: "killed by the holding executor".into(),
            ..Default::default()
        });
    }
}
