//! What the agent knows of one executor: the OS process it runs, the tasks it holds and where
//! it is in its life (Mesos's `Executor` in `slave.hpp`).
//!
//! Two kinds share this record. A *command* task has an executor of its own whose id is the
//! task id: the agent runs the task's command itself as the executor's OS process and turns its
//! exit into the task's terminal state. A *custom* executor is the framework's program: the
//! agent starts it with `KEEL_*` variables naming the agent, waits for its
//! `RegisterExecutorMessage`, then hands it tasks, and the executor reports their states.
//!
//! ```text
//!  Fetching ──▶ Starting ──▶ Launching ──RegisterExecutorMessage──▶ Running ──shutdown / kill──▶ Terminating ──exit──▶ (gone)
//!      │            │  (a command task goes straight to Running)
//!      └────────────┴──launch failed / registration timeout / exit───────────────────────────────────▶ (gone)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libactor::Upid;
use protos::v1::{ExecutorInfo, TaskInfo, TaskState};
use resources::Resources;
use tokio::sync::oneshot;

use crate::containerizer::ContainerHandle;

/// Environment variable naming the agent's pid, for a custom executor to register with.
pub const ENV_SLAVE_PID: &str = "KEEL_SLAVE_PID";
/// Environment variable naming the agent's id.
pub const ENV_SLAVE_ID: &str = "KEEL_SLAVE_ID";
/// Environment variable naming the executor's framework.
pub const ENV_FRAMEWORK_ID: &str = "KEEL_FRAMEWORK_ID";
/// Environment variable naming the executor.
pub const ENV_EXECUTOR_ID: &str = "KEEL_EXECUTOR_ID";
/// Environment variable holding the sandbox directory.
pub const ENV_SANDBOX: &str = "KEEL_SANDBOX_DIRECTORY";
/// Environment variable telling a custom executor how long to wait for a restarted agent
/// (seconds); unset when the agent does not recover executors.
pub const ENV_RECOVERY_TIMEOUT: &str = "KEEL_RECOVERY_TIMEOUT_SECONDS";

/// Which program the executor's OS process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorKind {
    /// The agent runs one task's command; the process's exit is the task's end.
    Command,
    /// The framework's executor program, which registers and runs tasks it is sent.
    Custom,
}

/// Where an executor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorState {
    /// Its URIs are being fetched into its sandbox; no OS process yet.
    Fetching,
    /// Its container is being created (off the agent's thread); no OS process known yet.
    Starting,
    /// Its OS process started; a custom executor has not registered yet.
    Launching,
    /// Registered (custom) or running its command.
    Running,
    /// Asked to shut down or killed; waiting for its OS process to end.
    Terminating,
    /// A custom executor a restarted agent adopted, asked to re-register
    /// (`ReconnectExecutorMessage`) and not answered yet.
    Reconnecting,
}

/// A task the agent holds, as the agent last saw it.
#[derive(Debug, Clone)]
pub struct AgentTask {
    /// What the framework asked to run.
    pub info: TaskInfo,
    /// Its latest state.
    pub state: TaskState,
    /// What it uses.
    pub resources: Resources,
    /// The task was sent to the executor (custom executors only; queued tasks were not).
    pub delivered: bool,
    /// Why it is being killed, when the master said (a revocation): its TASK_KILLED says so.
    pub kill_reason: Option<protos::v1::task_status::Reason>,
    /// Its last reported health, when it has a health check; every update carries it.
    pub healthy: Option<bool>,
    /// The task group it came in (the group's first task id): the group's tasks reach the
    /// executor together, as one `LAUNCH_GROUP`. `None` for a task launched alone.
    pub group: Option<String>,
}

impl AgentTask {
    /// A task just received from the master, in `group` if it came in one.
    pub fn staging(info: TaskInfo, group: Option<String>) -> AgentTask {
        AgentTask {
            resources: Resources::from_proto(&info.resources).unwrap_or_default(),
            info,
            state: TaskState::TaskStaging,
            delivered: false,
            kill_reason: None,
            healthy: None,
            group,
        }
    }
}

/// What goes to an executor in one message: a task launched alone, or a task group.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// A task launched alone (`RunTaskMessage`, the executor's `LAUNCH`).
    Task(Box<TaskInfo>),
    /// A task group (`RunTaskGroupMessage`, the executor's `LAUNCH_GROUP`).
    Group(Vec<TaskInfo>),
}

/// One executor on the agent.
#[derive(Debug)]
pub struct Executor {
    /// The executor's id (the task id for command tasks).
    pub id: String,
    /// Its framework.
    pub framework: String,
    /// What it runs.
    pub kind: ExecutorKind,
    /// The framework's description (custom executors).
    pub info: Option<ExecutorInfo>,
    /// Where it is in its life.
    pub state: ExecutorState,
    /// Its libactor pid once it registered (custom executors).
    pub pid: Option<Upid>,
    /// Its OS process id.
    pub os_pid: u32,
    /// Its sandbox directory.
    pub sandbox: PathBuf,
    /// Which run of this executor id it is (the sandbox's last component).
    pub run: u64,
    /// Its container's id: unique on the agent, also naming its checkpoint directory.
    pub container_id: String,
    /// Its tasks by task id, including terminal ones whose last update is not acknowledged.
    pub tasks: BTreeMap<String, AgentTask>,
    /// Asks the OS process's supervisor to kill it, with this grace period.
    pub kill: Option<oneshot::Sender<std::time::Duration>>,
    /// The framework is shutting it down: tasks it leaves behind are KILLED, not FAILED.
    pub shutting_down: bool,
    /// Its container's isolation (statistics, limit updates).
    pub container: Option<Arc<dyn ContainerHandle>>,
    /// The command task's health checking, when it asked for a check.
    pub health: Option<crate::slave::TaskHealth>,
}

impl Executor {
    /// Tasks not in a terminal state.
    pub fn live_tasks(&self) -> impl Iterator<Item = &AgentTask> {
        self.tasks.values().filter(|t| !t.state.is_terminal())
    }

    /// The live tasks not yet sent to the executor, marked sent: what goes to it once it
    /// (re-)registers, each group's tasks together.
    pub fn take_undelivered(&mut self) -> Vec<Delivery> {
        let mut alone = Vec::new();
        let mut groups: BTreeMap<String, Vec<TaskInfo>> = BTreeMap::new();
        for task in self
            .tasks
            .values_mut()
            .filter(|t| !t.delivered && !t.state.is_terminal())
        {
            task.delivered = true;
            match &task.group {
                Some(group) => groups
                    .entry(group.clone())
                    .or_default()
                    .push(task.info.clone()),
                None => alone.push(Delivery::Task(Box::new(task.info.clone()))),
            }
        }
        alone.extend(groups.into_values().map(Delivery::Group));
        alone
    }

    /// What the container may use now: the executor's own resources and its live tasks'.
    pub fn resources(&self) -> Resources {
        let mut total = self
            .info
            .as_ref()
            .and_then(|i| Resources::from_proto(&i.resources).ok())
            .unwrap_or_default();
        for task in self.live_tasks() {
            // Resources that do not add up (a mismatched role or kind) stay out of the limit.
            let _ = total.add(&task.resources);
        }
        total
    }

    /// Fits the container's limits to [`Executor::resources`] after tasks came or went.
    pub fn update_container(&self) {
        let Some(container) = &self.container else {
            return;
        };
        if let Err(e) = container.update(&self.resources()) {
            tracing::warn!(executor = %self.id, error = %e, "container limits not updated");
        }
    }

    /// Asks the supervisor to end the OS process (SIGTERM, `grace`, SIGKILL); at most once.
    pub fn kill(&mut self, grace: std::time::Duration) {
        self.state = ExecutorState::Terminating;
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(grace);
        }
    }
}

/// Where an executor's run lives:
/// `{work_dir}/slaves/{agent}/frameworks/{framework}/executors/{executor}/runs/{run}`.
pub fn sandbox_path(
    work_dir: &Path,
    agent: &str,
    framework: &str,
    executor: &str,
    run: u64,
) -> PathBuf {
    work_dir
        .join("slaves")
        .join(path_safe(agent))
        .join("frameworks")
        .join(path_safe(framework))
        .join("executors")
        .join(path_safe(executor))
        .join("runs")
        .join(run.to_string())
}

/// Ids come from frameworks: keep them from climbing out of the work dir.
pub(crate) fn path_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_paths_stay_inside_the_work_dir() {
        let p = sandbox_path(Path::new("/w"), "S1", "../../etc", "e/x", 3);
        assert_eq!(
            p,
            PathBuf::from("/w/slaves/S1/frameworks/_.._etc/executors/e_x/runs/3")
        );
        assert!(!p.components().any(|c| c == std::path::Component::ParentDir));
    }
}
