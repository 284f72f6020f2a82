//! LAUNCH_GROUP: a task group (a pod) runs on one executor, all of its tasks or none. The
//! whole group is checked against what is left of the offers before any task is booked; one
//! bad task refuses them all (`REASON_TASK_GROUP_INVALID` / `_UNAUTHORIZED`, as Mesos). The
//! booked tasks go to the agent in one `RunTaskGroupMessage`, which the agent hands its
//! executor as one `LAUNCH_GROUP`.
//!
//! The executor is the framework's own (`CUSTOM`, with a command) or the agent's default
//! executor (`DEFAULT`, no command), which runs each task's command.

use std::collections::HashSet;

use libactor::{Context, Upid};
use protos::internal::RunTaskGroupMessage;
use protos::v1::executor_info::Type as ExecutorType;
use protos::v1::offer::operation::LaunchGroup;
use protos::v1::task_status::Reason;
use protos::v1::{ExecutorInfo, FrameworkId, FrameworkInfo, TaskGroupInfo, TaskInfo, TaskState};
use protos::IdText;
use resources::Resources;

use super::Master;

/// Why a group is refused: the reason every task of it ends with, and the message.
struct GroupRefusal {
    reason: Reason,
    why: String,
}

impl GroupRefusal {
    fn invalid(why: impl Into<String>) -> GroupRefusal {
        GroupRefusal {
            reason: Reason::TaskGroupInvalid,
            why: why.into(),
        }
    }
}

impl Master {
    /// Launches `group` on `agent` from `remaining` (what is left of the accepted offers,
    /// reduced by what the group takes), or refuses every task of it with TASK_ERROR.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_group(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        info: &FrameworkInfo,
        scheduler: &Upid,
        agent: &str,
        group: &LaunchGroup,
        remaining: &mut Resources,
    ) {
        let tasks = group
            .task_group
            .as_ref()
            .map(|g| g.tasks.as_slice())
            .unwrap_or_default();
        let (executor, needs) = match self.validate_group(framework, info, group, remaining) {
            Ok(valid) => valid,
            Err(refusal) => {
                for task in tasks {
                    self.refuse_task(
                        ctx,
                        framework,
                        task,
                        TaskState::TaskError,
                        refusal.reason,
                        &refusal.why,
                    );
                }
                return;
            }
        };
        let mut launched = Vec::with_capacity(tasks.len());
        for (task, needed) in tasks.iter().zip(needs) {
            *remaining = remaining.checked_sub(&needed).unwrap_or_default();
            let task = TaskInfo {
                executor: Some(executor.clone()),
                ..task.clone()
            };
            if let Some(task) = self.book_task(framework, agent, &task, needed, 0) {
                launched.push(task);
            }
        }
        let Some(agent_entry) = self.books.agent(agent) else {
            return;
        };
        let count = launched.len() as u64;
        ctx.send(
            agent_entry.pid(),
            RunTaskGroupMessage {
                framework_id: Some(FrameworkId {
                    value: framework.to_owned(),
                }),
                framework: Some(info.clone()),
                pid: scheduler.to_string(),
                executor: Some(executor),
                task_group: Some(TaskGroupInfo { tasks: launched }),
            },
        );
        self.metrics.add(|m| &m.tasks_launched, count);
    }

    /// The group's executor (its framework id filled in) and what each task takes, or why
    /// the group may not run.
    fn validate_group(
        &self,
        framework: &str,
        info: &FrameworkInfo,
        group: &LaunchGroup,
        remaining: &Resources,
    ) -> Result<(ExecutorInfo, Vec<Resources>), GroupRefusal> {
        let mut executor = group
            .executor
            .clone()
            .ok_or_else(|| GroupRefusal::invalid("LAUNCH_GROUP has no 'executor'"))?;
        if executor.executor_id.text().is_empty() {
            return Err(GroupRefusal::invalid("the group's executor has no id"));
        }
        match executor.framework_id.as_ref().map(|f| f.value.as_str()) {
            None | Some("") => {}
            Some(id) if id == framework => {}
            Some(other) => {
                return Err(GroupRefusal::invalid(format!(
                    "the group's executor names framework {other}, not {framework}"
                )))
            }
        }
        let has_command = executor
            .command
            .as_ref()
            .is_some_and(|c| !c.value.is_empty());
        match ExecutorType::try_from(executor.r#type).unwrap_or(ExecutorType::Unknown) {
            ExecutorType::Default if has_command => {
                return Err(GroupRefusal::invalid(
                    "a DEFAULT executor takes no command: the agent runs its own",
                ))
            }
            ExecutorType::Custom if !has_command => {
                return Err(GroupRefusal::invalid("a CUSTOM executor needs a command"))
            }
            ExecutorType::Default | ExecutorType::Custom => {}
            ExecutorType::Unknown => {
                return Err(GroupRefusal::invalid(
                    "the group's executor has no type (DEFAULT or CUSTOM)",
                ))
            }
        }
        Resources::from_proto(&executor.resources).map_err(|e| {
            GroupRefusal::invalid(format!("the group's executor has invalid resources: {e}"))
        })?;
        executor.framework_id = Some(FrameworkId {
            value: framework.to_owned(),
        });
        let tasks = group
            .task_group
            .as_ref()
            .map(|g| g.tasks.as_slice())
            .unwrap_or_default();
        if tasks.is_empty() {
            return Err(GroupRefusal::invalid("the task group has no tasks"));
        }
        let default = executor.r#type == ExecutorType::Default as i32;
        let mut left = remaining.clone();
        let mut ids = HashSet::with_capacity(tasks.len());
        let mut needs = Vec::with_capacity(tasks.len());
        for task in tasks {
            let id = task.task_id.text();
            if !ids.insert(id) {
                return Err(GroupRefusal::invalid(format!(
                    "task id {id} appears twice in the group"
                )));
            }
            if task.executor.is_some() {
                return Err(GroupRefusal::invalid(format!(
                    "task {id} names an executor: a group's tasks run on the group's"
                )));
            }
            if default && task.command.is_none() {
                return Err(GroupRefusal::invalid(format!(
                    "task {id} has no command for the default executor to run"
                )));
            }
            if let Some(why) = self.run_as_refusal(info, task) {
                return Err(GroupRefusal {
                    reason: Reason::TaskGroupUnauthorized,
                    why,
                });
            }
            let task = TaskInfo {
                executor: Some(executor.clone()),
                ..task.clone()
            };
            let needed = self
                .validate_task(framework, &task, &left)
                .map_err(|why| GroupRefusal::invalid(format!("task {id}: {why}")))?;
            left = left.checked_sub(&needed).unwrap_or_default();
            needs.push(needed);
        }
        Ok((executor, needs))
    }
}
