//! A custom executor for tests, started by a real agent: reports each task RUNNING, echoes
//! every framework message back to the scheduler, and reports TASK_KILLED when told to kill.

use bytes::Bytes;
use frameworks::{Executor, ExecutorDriver};
use protos::v1::{TaskId, TaskInfo, TaskState, TaskStatus};

struct Echo;

impl Executor for Echo {
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
            message: "killed by the echo executor".into(),
            ..Default::default()
        });
    }

    fn framework_message(&mut self, driver: &mut ExecutorDriver, data: &[u8]) {
        driver.send_framework_message(Bytes::copy_from_slice(data));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let status = frameworks::executor_driver::run(Echo).await?;
    eprintln!("echo executor ended: {status:?}");
    Ok(())
}
