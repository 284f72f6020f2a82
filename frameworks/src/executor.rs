//! The [`Executor`] trait: what a framework's custom executor is told (Mesos's `Executor`).
//!
//! A custom executor is a program the agent starts in the executor's sandbox; it runs the
//! framework's tasks inside itself and reports their states. Callbacks run one at a time in the
//! driver's libactor process, one at a time, so a task that computes for long holds up the
//! executor's other messages (kills included) until it is done.

use protos::v1::{AgentInfo, ExecutorInfo, FrameworkInfo, TaskId, TaskInfo};

use crate::executor_driver::ExecutorDriver;

/// A framework's executor. [`Executor::launch_task`] and [`Executor::kill_task`] must be
/// written; the rest default to logging.
pub trait Executor: Send + 'static {
    /// The agent accepted the executor.
    fn registered(
        &mut self,
        _driver: &mut ExecutorDriver,
        executor: &ExecutorInfo,
        framework: &FrameworkInfo,
        agent: &AgentInfo,
    ) {
        tracing::info!(
            executor = ?executor.executor_id.as_ref().map(|e| &e.value),
            framework = %framework.name,
            agent = %agent.hostname,
            "executor registered"
        );
    }

    /// Run `task`; report its states with [`ExecutorDriver::send_status_update`].
    fn launch_task(&mut self, driver: &mut ExecutorDriver, task: TaskInfo);

    /// Kill a task; report TASK_KILLED when it is gone.
    fn kill_task(&mut self, driver: &mut ExecutorDriver, task_id: &TaskId);

    /// The scheduler sent the executor a message.
    fn framework_message(&mut self, _driver: &mut ExecutorDriver, data: &[u8]) {
        tracing::debug!(bytes = data.len(), "framework message");
    }

    /// The agent asks the executor to end: kill every task. The driver stops after this
    /// returns.
    fn shutdown(&mut self, _driver: &mut ExecutorDriver) {
        tracing::info!("executor shutting down");
    }

    /// Something went wrong that ends the executor (the driver stops after this returns).
    fn error(&mut self, _driver: &mut ExecutorDriver, message: &str) {
        tracing::error!(%message, "executor error");
    }
}
