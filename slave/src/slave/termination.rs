//! How an executor's end becomes its live tasks' last states. [`task_end`] is the one table
//! of every way a task ends when its executor does (a pure function of how the container
//! ended, tested below); `executor_exited` applies it and tells the master.

use libactor::Context;
use protos::internal::ExitedExecutorMessage;
use protos::v1::task_status::Reason;
use protos::v1::{AgentId, ExecutorId, FrameworkId, TaskState};

use crate::checkpoint::ExecutorDir;
use crate::containerizer::{ContainerExit, Limitation};
use crate::executor::{ExecutorKind, ExecutorState};
use crate::task_process::Termination;

use super::Slave;

/// How an executor ended, as far as its tasks go.
#[derive(Debug)]
pub(super) struct ExecutorEnd<'a> {
    /// The command executor (one task, the command) or a custom one.
    pub(super) kind: ExecutorKind,
    /// How its main process ended.
    pub(super) termination: &'a std::io::Result<Termination>,
    /// The limit the kernel enforced, when that is what ended it.
    pub(super) limitation: Option<&'a Limitation>,
    /// The agent was ending it (a kill or a shutdown).
    pub(super) killing: bool,
    /// Its supervisor exited before it ran the command (see [`never_ran`]).
    pub(super) never_ran: bool,
}

/// The status the supervisor exits with when it ran nothing (see
/// [`crate::task_process::SUPERVISOR_SCRIPT`]).
const SUPERVISOR_RAN_NOTHING: i32 = 125;

/// Whether a run whose supervisor ended as `termination` never ran its command: the
/// supervisor records its pid before anything else and exits 125 when it cannot (a full
/// disk), so an exit of 125 with no pid recorded means nothing ran, and the task may be
/// launched again. (A command of its own exiting 125 leaves the pid recorded.)
pub(super) fn never_ran(termination: &std::io::Result<Termination>, dir: &ExecutorDir) -> bool {
    matches!(termination, Ok(Termination::Exited(SUPERVISOR_RAN_NOTHING))) && !dir.pid_recorded()
}

/// The terminal state and reason of a live task whose executor ended as `end`; `kill_reason`
/// is why the task was being killed, if it was.
pub(super) fn task_end(end: &ExecutorEnd<'_>, kill_reason: Option<Reason>) -> (TaskState, Reason) {
    match (end.limitation, end.kind) {
        _ if end.never_ran => (TaskState::TaskDropped, Reason::ContainerLaunchFailed),
        // Only a run the restarted agent claimed before its supervisor started ends so.
        (Some(l), _) if l.reason == Reason::AgentRestarted => (TaskState::TaskDropped, l.reason),
        (Some(l), _) => (TaskState::TaskFailed, l.reason),
        (None, ExecutorKind::Command) if matches!(end.termination, Ok(Termination::Exited(0))) => {
            (TaskState::TaskFinished, Reason::CommandExecutorFailed)
        }
        _ if end.killing => (
            TaskState::TaskKilled,
            kill_reason.unwrap_or(Reason::ExecutorTerminated),
        ),
        (None, ExecutorKind::Command) => (TaskState::TaskFailed, Reason::CommandExecutorFailed),
        (None, ExecutorKind::Custom) => (TaskState::TaskFailed, Reason::ExecutorTerminated),
    }
}

/// The exit status the master is told (the code, or 128 + the signal; -1 when unknown) and a
/// sentence for the task's message.
pub(super) fn exit_status(termination: &std::io::Result<Termination>) -> (i32, String) {
    match termination {
        Ok(Termination::Exited(code)) => (*code, format!("Command exited with status {code}")),
        Ok(Termination::Signaled(sig)) => {
            (128 + sig, format!("Command terminated by signal {sig}"))
        }
        Err(e) => (-1, e.to_string()),
    }
}

/// The message of a task's last update: the limitation first when there was one.
fn end_message(end: &ExecutorEnd<'_>, executor_id: &str, exit: &str) -> String {
    match (end.limitation, end.kind) {
        // It never ran: the limitation says all there is.
        (Some(l), _) if end.termination.is_err() => l.message.clone(),
        (Some(l), _) => format!("{}; {exit}", l.message),
        (None, ExecutorKind::Command) => exit.to_owned(),
        (None, ExecutorKind::Custom) => format!("executor {executor_id} ended: {exit}"),
    }
}

impl Slave {
    pub(super) fn executor_exited(
        &mut self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        run: u64,
        exit: ContainerExit,
    ) {
        let ContainerExit {
            termination: ended,
            limitation,
        } = exit;
        if let Some(handle) = self
            .executor(framework, executor_id)
            .filter(|e| e.run == run)
            .and_then(|e| e.container.as_ref())
        {
            self.launcher.forget(handle.id());
        }
        let Some(executor) = self.executor(framework, executor_id) else {
            return;
        };
        // A later run of the same executor id is not this one.
        if executor.run != run {
            return;
        }
        let Some(mut executor) = self
            .frameworks
            .get_mut(framework)
            .and_then(|f| f.executors.remove(executor_id))
        else {
            return;
        };
        self.metrics.inc(|m| &m.executors_exited);
        self.metrics.inc(|m| &m.executors_terminated);
        if let Some(pid) = &executor.pid {
            ctx.unlink(pid);
        }
        let (status, exit) = exit_status(&ended);
        tracing::info!(%framework, executor = %executor_id, message = %exit, "executor exited");
        if limitation.is_some() {
            self.metrics.inc(|m| &m.container_limitations);
        }
        let end = ExecutorEnd {
            kind: executor.kind,
            termination: &ended,
            limitation: limitation.as_ref(),
            killing: executor.state == ExecutorState::Terminating || executor.shutting_down,
            never_ran: never_ran(&ended, &self.meta.executor(&executor.container_id)),
        };
        let message = if end.never_ran {
            "the agent could not start the command (its supervisor could not record its pid: a full disk?); it never ran".to_owned()
        } else {
            end_message(&end, executor_id, &exit)
        };
        let live: Vec<String> = executor
            .live_tasks()
            .filter_map(|t| t.info.task_id.as_ref().map(|t| t.value.clone()))
            .collect();
        for task in live {
            let kill_reason = executor.tasks.get(&task).and_then(|t| t.kill_reason);
            let (state, reason) = task_end(&end, kill_reason);
            if let Some(Err(refused)) = executor
                .tasks
                .get_mut(&task)
                .map(|t| t.state.move_to(state))
            {
                self.refuse_move(framework, &task, refused);
            }
            self.count_terminal(state);
            let healthy = executor.tasks.get(&task).and_then(|t| t.healthy);
            self.report_status(
                ctx,
                framework,
                executor_id,
                &task,
                state,
                reason,
                message.clone(),
                healthy,
            );
        }
        if executor.kind == ExecutorKind::Custom {
            self.tell_master_executor_exited(ctx, framework, executor_id, status);
        }
        executor.kill = None;
        self.forget_checkpoint(&executor.container_id);
        self.schedule_gc(ctx, executor.sandbox.clone());
        self.forget_framework_if_idle(framework);
    }

    /// Tells the master a custom executor is gone, so that it frees the executor's resources.
    pub(super) fn tell_master_executor_exited(
        &self,
        ctx: &mut Context<Self>,
        framework: &str,
        executor_id: &str,
        status: i32,
    ) {
        ctx.send(
            &self.config.master.clone(),
            ExitedExecutorMessage {
                slave_id: self.id.clone().map(|value| AgentId { value }),
                framework_id: Some(FrameworkId {
                    value: framework.to_owned(),
                }),
                executor_id: Some(ExecutorId {
                    value: executor_id.to_owned(),
                }),
                status,
            },
        );
    }

    /// Forgets `framework` once it has no executor left here (its updates too, if the master
    /// shut it down).
    pub(super) fn forget_framework_if_idle(&mut self, framework: &str) {
        if self
            .frameworks
            .get(framework)
            .is_some_and(|f| f.executors.is_empty())
        {
            let record = self.frameworks.remove(framework);
            if record.is_some_and(|r| r.shut_down) {
                self.forget_framework_updates(framework);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end<'a>(
        kind: ExecutorKind,
        termination: &'a std::io::Result<Termination>,
        limitation: Option<&'a Limitation>,
        killing: bool,
    ) -> ExecutorEnd<'a> {
        ExecutorEnd {
            kind,
            termination,
            limitation,
            killing,
            never_ran: false,
        }
    }

    #[test]
    fn every_way_a_task_ends_with_its_executor() {
        use ExecutorKind::{Command, Custom};
        let ok = Ok(Termination::Exited(0));
        let failed = Ok(Termination::Exited(3));
        let signaled = Ok(Termination::Signaled(9));
        let oom = Limitation {
            reason: Reason::ContainerLimitationMemory,
            message: "memory limit 64 MB reached".into(),
        };
        let killed = Some(Reason::TaskKilledDuringLaunch);
        for (end, kill_reason, expected) in [
            (
                end(Command, &ok, None, false),
                None,
                (TaskState::TaskFinished, Reason::CommandExecutorFailed),
            ),
            (
                end(Command, &ok, None, true),
                None,
                (TaskState::TaskFinished, Reason::CommandExecutorFailed),
            ),
            (
                end(Command, &failed, None, false),
                None,
                (TaskState::TaskFailed, Reason::CommandExecutorFailed),
            ),
            (
                end(Command, &signaled, None, true),
                killed,
                (TaskState::TaskKilled, Reason::TaskKilledDuringLaunch),
            ),
            (
                end(Custom, &signaled, None, true),
                None,
                (TaskState::TaskKilled, Reason::ExecutorTerminated),
            ),
            (
                end(Custom, &ok, None, false),
                None,
                (TaskState::TaskFailed, Reason::ExecutorTerminated),
            ),
            (
                end(Command, &signaled, Some(&oom), true),
                killed,
                (TaskState::TaskFailed, Reason::ContainerLimitationMemory),
            ),
            (
                ExecutorEnd {
                    never_ran: true,
                    ..end(Custom, &failed, None, false)
                },
                None,
                (TaskState::TaskDropped, Reason::ContainerLaunchFailed),
            ),
        ] {
            assert_eq!(task_end(&end, kill_reason), expected, "{end:?}");
        }
    }

    #[test]
    fn the_message_puts_a_limitation_first() {
        let oom = Limitation {
            reason: Reason::ContainerLimitationMemory,
            message: "memory limit 64 MB reached".into(),
        };
        let signaled = Ok(Termination::Signaled(9));
        let (status, exit) = exit_status(&signaled);
        assert_eq!(status, 137);
        let e = end(ExecutorKind::Command, &signaled, Some(&oom), false);
        assert_eq!(
            end_message(&e, "x", &exit),
            "memory limit 64 MB reached; Command terminated by signal 9"
        );
        let e = end(ExecutorKind::Custom, &signaled, None, false);
        assert_eq!(
            end_message(&e, "x", &exit),
            "executor x ended: Command terminated by signal 9"
        );
    }
}
